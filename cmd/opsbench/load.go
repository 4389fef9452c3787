package main

import (
	"context"
	"sync"
	"time"
)

// maxConsecutiveErrors stops a worker that does nothing but fail.
const maxConsecutiveErrors = 20

// load calls fn from workers goroutines, each in a closed loop, until d has
// passed or each has made maxPerWorker calls, and records the latency of
// every call that succeeded. The run's elapsed time ends when the last call
// in flight returns.
func load(ctx context.Context, workers int, d time.Duration, maxPerWorker int, fn func(ctx context.Context, worker, i int) error) loadRun {
	// Calls in flight at the deadline get a generous while to finish.
	ctx, cancel := context.WithTimeout(ctx, d+2*time.Minute)
	defer cancel()
	var (
		mu  sync.Mutex
		out loadRun
		wg  sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1024)
			var errs, consecutive int
			var firstErr error
			for i := 0; i < maxPerWorker && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				t := time.Now()
				if err := fn(ctx, w, i); err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
					if consecutive++; consecutive >= maxConsecutiveErrors {
						break
					}
					continue
				}
				consecutive = 0
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			defer mu.Unlock()
			out.latencies = append(out.latencies, lat...)
			out.errors += errs
			if out.firstErr == nil {
				out.firstErr = firstErr
			}
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	return out
}
