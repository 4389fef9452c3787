package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"example.com/opsvc/keystone"
	"example.com/opsvc/webhook"
)

// newRegistry is the registry /metrics serves: the Go runtime's and the
// process's metrics and the build info; run adds the server's, the
// database pool's and Keystone's.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	bi := buildInfo()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "opsvc_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision, "goversion": bi.GoVersion},
	})
	build.Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build,
	)
	return reg
}

// registerKeystone adds the Keystone validator's counts, read when scraped.
func registerKeystone(reg prometheus.Registerer, v *keystone.Validator) {
	counter := func(name, help string, labels prometheus.Labels, read func(keystone.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(read(v.Stats())) })
	}
	const validations = "Token lookups that asked Keystone, by result: valid, invalid (refused: 401), unavailable (no answer: 503)."
	reg.MustRegister(
		counter("opsvc_keystone_cache_hits_total", "Token validations answered from the cache.", nil,
			func(s keystone.Stats) int64 { return s.CacheHits }),
		counter("opsvc_keystone_cache_misses_total", "Token validations not in the cache (concurrent misses of one token share one lookup).", nil,
			func(s keystone.Stats) int64 { return s.CacheMisses }),
		counter("opsvc_keystone_validations_total", validations, prometheus.Labels{"result": "valid"},
			func(s keystone.Stats) int64 { return s.Valid }),
		counter("opsvc_keystone_validations_total", validations, prometheus.Labels{"result": "invalid"},
			func(s keystone.Stats) int64 { return s.Invalid }),
		counter("opsvc_keystone_validations_total", validations, prometheus.Labels{"result": "unavailable"},
			func(s keystone.Stats) int64 { return s.Unavailable }),
	)
}

// serveAdmin serves /metrics and net/http/pprof on ADMIN_ADDR, a listener of
// its own, never the public one: both show internals, and profiles cost CPU.
func serveAdmin(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ADMIN_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		Registry: reg, // promhttp_metric_handler_* too
	}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { _ = hs.Serve(ln) }()
	log.Info("admin listening", "addr", ln.Addr().String(), "paths", "/metrics /debug/pprof/")
	return func() { hs.Close() }, nil
}

// registerWebhooks adds the webhook dispatcher's counts, read when scraped,
// and the outbox's pending deliveries, counted in the database then.
func registerWebhooks(reg prometheus.Registerer, d *webhook.Dispatcher, db *lateStore) {
	counter := func(name, help string, labels prometheus.Labels, read func(webhook.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(read(d.Stats())) })
	}
	const deliveries = "Webhook deliveries this instance finished, by result: delivered (2xx), failed (given up after WEBHOOK_RETRY_PERIOD, or 410), canceled (the subscription was deleted or disabled first)."
	reg.MustRegister(
		counter("opsvc_webhook_deliveries_total", deliveries, prometheus.Labels{"result": "delivered"},
			func(s webhook.Stats) int64 { return s.Delivered }),
		counter("opsvc_webhook_deliveries_total", deliveries, prometheus.Labels{"result": "failed"},
			func(s webhook.Stats) int64 { return s.Failed }),
		counter("opsvc_webhook_deliveries_total", deliveries, prometheus.Labels{"result": "canceled"},
			func(s webhook.Stats) int64 { return s.Canceled }),
		counter("opsvc_webhook_retries_total", "Webhook attempts that failed and are to be tried again.", nil,
			func(s webhook.Stats) int64 { return s.Retried }),
		counter("opsvc_webhook_subscriptions_disabled_total", "Subscriptions disabled by a 410 Gone from their receiver.", nil,
			func(s webhook.Stats) int64 { return s.Disabled }),
		pendingCollector{db},
	)
}

// pendingCollector reports the outbox's pending deliveries, every
// instance's, as counted at scrape time; nothing while the database does
// not answer (a scrape must not fail, nor say 0, for that).
type pendingCollector struct{ db *lateStore }

var pendingDesc = prometheus.NewDesc("opsvc_webhook_deliveries_pending",
	"Webhook deliveries not finished yet (due now or waiting for a retry), in the whole database.", nil, nil)

func (pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- pendingDesc }

func (c pendingCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.db.get()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := st.PendingDeliveries(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(n))
}

// newPurgeCounter is opsvc_retention_purged_total, by family.
func newPurgeCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "opsvc_retention_purged_total",
		Help: "Terminal operations this instance purged for being older than RETENTION_PERIOD, by family (msf, icc).",
	}, []string{"family"})
	c.WithLabelValues("msf")
	c.WithLabelValues("icc")
	reg.MustRegister(c)
	return c
}
