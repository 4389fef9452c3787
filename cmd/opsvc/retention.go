package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/opsvc/store"
)

// purgeLoop removes, every interval, the operations that have been terminal
// for longer than period (RETENTION_PERIOD), until ctx ends. Each run logs
// what it removed, and counts it in purged. Instances sharing a database may all run it: a purge
// removes each operation once (store.Purge).
func purgeLoop(ctx context.Context, db *lateStore, period, interval time.Duration, purged *prometheus.CounterVec, log *slog.Logger) {
	log.Info("retention: purging terminal operations", "period", period.String(), "interval", interval.String())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := db.get()
		if err != nil {
			continue // not open yet
		}
		start := time.Now()
		p, err := st.Purge(ctx, period, store.PurgeBatch)
		purged.WithLabelValues("msf").Add(float64(p.MSF))
		purged.WithLabelValues("icc").Add(float64(p.ICC))
		attrs := []any{"msf", p.MSF, "icc", p.ICC, "duration_ms", time.Since(start).Milliseconds(),
			"longest_batch_ms", float64(p.Longest.Microseconds()) / 1000}
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("retention: purge failed", append(attrs, "error", err.Error())...)
		case p.MSF+p.ICC > 0:
			log.Info("retention: purged", attrs...)
		}
	}
}
