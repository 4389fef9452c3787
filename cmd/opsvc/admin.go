package main

import (
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
