package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"example.com/opsvc/server"
	"example.com/opsvc/store"
)

var _ server.Store = (*store.Store)(nil)

// run starts the service and blocks until ctx is cancelled (SIGTERM), then
// stops accepting connections, lets in-flight requests finish, and closes the
// database. It logs JSON to stdout; the "listening" line carries the address.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: level}))

	auth, mode, err := newAuthenticator(cfg, log)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, store.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	closeStore := sync.OnceValue(st.Close)
	defer closeStore()

	srv, err := server.New(server.Options{
		Store:        st,
		Auth:         auth,
		AllowedCIDRs: cfg.AllowedCIDRs,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		// A whole request, 4 MiB body included, within a minute: a client
		// trickling its body can't hold a connection (and a shutdown) forever.
		ReadTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "database", databaseKind(cfg.DatabaseURL), "auth", mode)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Shutdown closes the listener at once, so new connections are refused,
	// then waits for in-flight requests up to SHUTDOWN_TIMEOUT.
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := closeStore(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	log.Info("stopped")
	return nil
}

func databaseKind(url string) string {
	if strings.HasPrefix(url, "sqlite:") {
		return "sqlite"
	}
	return "mysql"
}
