package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"example.com/opsvc/server"
	"example.com/opsvc/store"
	"example.com/opsvc/webhook"
)

var _ server.Store = (*store.Store)(nil)

// Connection limits: MAX_CONNECTIONS defaults to defaultMaxConnections, or
// fewer when the open-file limit is low; fdReserve descriptors are left for the
// database pool, files and outgoing calls.
const (
	defaultMaxConnections = 10000
	fdReserve             = 128
)

// run starts the service and blocks until ctx is cancelled (SIGTERM), then
// drains, stops accepting connections, lets in-flight requests finish, and
// closes the database. It logs JSON to stdout; the "listening" line carries
// the address. When the database cannot be reached at start it serves anyway
// (503 until the database answers) and keeps trying for
// DATABASE_START_TIMEOUT.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	started := time.Now()
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	var handler slog.Handler = slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel})
	var tracer trace.Tracer
	if cfg.OTLPEndpoint != "" {
		var shutdown func(context.Context) error
		if tracer, shutdown, err = newTracer(ctx, cfg.OTLPEndpoint); err != nil {
			return err
		}
		// Last: the spans of the shutdown itself are flushed too.
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = shutdown(sctx)
		}()
		handler = traceHandler{handler}
	}
	log := slog.New(handler)
	if cfg.PprofAlias {
		log.Warn("PPROF_ADDR is deprecated: set ADMIN_ADDR, which serves /metrics as well as /debug/pprof/")
	}
	reg := newRegistry()

	maxConns, err := maxConnections(cfg.MaxConnections)
	if err != nil {
		return err
	}
	auth, mode, err := newAuthenticator(cfg, log)
	if err != nil {
		return err
	}
	if k, ok := auth.(keystoneAuth); ok {
		registerKeystone(reg, k.v)
	}
	db := &lateStore{register: reg}
	closeStore := sync.OnceValue(db.close)
	defer closeStore()
	guard := webhook.NewGuard(cfg.Webhooks.AllowedCIDRs)
	w := cfg.Webhooks
	dispatcher := webhook.New(db, webhook.Config{
		Timeout:         w.Timeout,
		RetryPeriod:     w.RetryPeriod,
		RetryMin:        w.RetryMin,
		RetryMax:        w.RetryMax,
		PollInterval:    w.PollInterval,
		RoundInterval:   w.RoundInterval,
		RefreshInterval: w.RefreshInterval,
		Retention:       w.Retention,
		Concurrency:     w.Concurrency,
		Guard:           guard,
		Logger:          log,
	})
	registerWebhooks(reg, dispatcher, db)
	storeOpts := store.Options{Logger: log, Timeout: cfg.DatabaseTimeout, Tracer: tracer,
		EncodeEvent: server.EncodeEvent, OnDeliveries: dispatcher.Wake}
	st, err := store.Open(ctx, cfg.DatabaseURL, storeOpts)
	// After a failed first attempt, opened reports the end of the next
	// ones: nil once open. They end before the store is closed.
	opened := make(chan error, 1)
	opening := false
	openCtx, stopOpening := context.WithCancel(ctx)
	defer func() {
		stopOpening()
		if opening {
			<-opened
		}
	}()
	switch {
	case err == nil:
		db.set(st)
	case errors.Is(err, store.ErrUnavailable) && cfg.DatabaseStartTimeout > 0:
		opening = true
		log.Warn("database unreachable: serving 503 until it answers",
			"start_timeout", cfg.DatabaseStartTimeout.String(), "error", err)
		go func(err error) {
			st, err := keepOpening(openCtx, cfg.DatabaseURL, storeOpts, started.Add(cfg.DatabaseStartTimeout), err, log)
			if err == nil {
				db.set(st)
				log.Info("database ready", "after", time.Since(started).Round(time.Millisecond).String())
			}
			opened <- err
		}(err)
	default:
		return fmt.Errorf("DATABASE_URL: open database: %w", err)
	}

	srv, err := server.New(server.Options{
		Store:              db,
		Auth:               auth,
		AllowedCIDRs:       cfg.AllowedCIDRs,
		Logger:             log,
		ReadyTimeout:       cfg.ReadyTimeout,
		BodyMemory:         cfg.BodyMemory,
		StreamWriteTimeout: cfg.StreamWriteTimeout,
		Metrics:            reg,
		Tracer:             tracer,
		Subscriptions:      db,
		WebhookURLs:        guard,
	})
	if err != nil {
		return err
	}
	tcp, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	// Requests net/http refuses itself (unparsable, headers too large) are
	// answered in the API's JSON too.
	ln := newConnLimiter(server.WrapListener(tcp), maxConns, log)
	hs := &http.Server{
		Handler: srv,
		// A client sending its headers slowly (slow-loris) or not at all is
		// cut after READ_HEADER_TIMEOUT; one trickling its body after
		// READ_TIMEOUT (a minute by default, for 4 MiB): neither can hold a
		// connection, and a shutdown, for long.
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		// Larger headers are answered 431 before any handler sees them.
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		IdleTimeout:    cfg.IdleTimeout,
		ConnState:      ln.track,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// The dispatcher stops after the requests (whose writes wake it) and
	// before the database closes; deliveries it had in flight are handed
	// back, due at once.
	dispatchCtx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	dispatched := make(chan struct{})
	go func() { dispatcher.Run(dispatchCtx); close(dispatched) }()
	stopDispatcher := sync.OnceFunc(func() {
		stopDispatch()
		<-dispatched
		st := dispatcher.Stats()
		log.Info("webhooks stopped", "delivered", st.Delivered, "retried", st.Retried, "failed", st.Failed,
			"canceled", st.Canceled, "subscriptions_disabled", st.Disabled)
	})
	defer stopDispatcher()
	if cfg.AdminAddr != "" {
		stopAdmin, err := serveAdmin(cfg.AdminAddr, reg, log)
		if err != nil {
			tcp.Close()
			return err
		}
		defer stopAdmin()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "database", cfg.DatabaseKind, "auth", mode,
		"max_connections", maxConns, "tracing", tracer != nil)
	purging := make(chan struct{})
	if cfg.RetentionPeriod > 0 {
		go func() {
			defer close(purging)
			purgeLoop(ctx, db, cfg.RetentionPeriod, cfg.RetentionInterval, newPurgeCounter(reg), log)
		}()
	} else {
		close(purging)
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case err := <-opened:
		opening = false
		if err != nil {
			hs.Close()
			return fmt.Errorf("DATABASE_URL: open database: unreachable for DATABASE_START_TIMEOUT (%s): %w", cfg.DatabaseStartTimeout, err)
		}
		select {
		case err := <-serveErr:
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}

	// /readyz says 503 first, so that load balancers stop sending requests
	// here while they are still served.
	srv.Drain()
	log.Info("shutting down", "drain_delay", cfg.ShutdownDrainDelay.String(), "timeout", cfg.ShutdownTimeout.String())
	time.Sleep(cfg.ShutdownDrainDelay)
	// Shutdown closes the listener at once, so new connections are refused,
	// then waits for in-flight requests up to SHUTDOWN_TIMEOUT.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		// What is still open after SHUTDOWN_TIMEOUT is cut: a client too slow
		// to send its request, or a request still running. Its client gets no
		// answer, so nothing it sent was acknowledged.
		counts, peers := ln.open()
		log.Warn("shutdown timeout: closing the connections still open",
			"error", err.Error(), "connections", counts, "peers", peers)
		hs.Close()
	}
	stopDispatcher()
	stopOpening()
	if opening {
		<-opened
		opening = false
	}
	<-purging // ended with ctx
	if err := closeStore(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	log.Info("stopped")
	return nil
}

// maxConnections is MAX_CONNECTIONS, or its default, checked against the
// open-file limit.
func maxConnections(n int) (int, error) {
	limit, known := openFileLimit()
	if n == 0 {
		n = defaultMaxConnections
		if known {
			n = max(min(n, limit-fdReserve), 1)
		}
		return n, nil
	}
	if known && n > limit-fdReserve {
		return 0, fmt.Errorf("MAX_CONNECTIONS: %d needs more than the open-file limit (%d) allows; at most %d, or raise the limit (ulimit -n)",
			n, limit, limit-fdReserve)
	}
	return n, nil
}
