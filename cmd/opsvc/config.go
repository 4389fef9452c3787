package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"example.com/opsvc/keystone"
	"example.com/opsvc/server"
	"example.com/opsvc/store"
)

// Config is the whole configuration, read from the environment once, at start.
type Config struct {
	ListenAddr     string         // LISTEN_ADDR
	DatabaseURL    string         // DATABASE_URL: sqlite:PATH or mysql://USER:PASS@HOST:PORT/DB
	DatabaseKind   string         // "sqlite" or "mysql", from DATABASE_URL
	AuthTokensFile string         // AUTH_TOKENS_FILE: static tokens; empty: none
	AllowedCIDRs   []netip.Prefix // MSF_ALLOWED_CIDRS
	LogLevel       slog.Level     // LOG_LEVEL: debug, info, warn, error
	// AdminAddr (ADMIN_ADDR) is where /metrics and net/http/pprof listen;
	// empty: nowhere. PPROF_ADDR, its former name, is still read when
	// ADMIN_ADDR is not set (PprofAlias then says so, for a warning).
	AdminAddr  string
	PprofAlias bool
	// OTLPEndpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else
	// OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces") is where spans go over
	// OTLP/HTTP; empty: no tracing at all.
	OTLPEndpoint string

	DatabaseTimeout      time.Duration // DATABASE_TIMEOUT: bounds each call to the database
	DatabaseStartTimeout time.Duration // DATABASE_START_TIMEOUT: how long start-up keeps trying to reach it; 0: not at all
	ReadyTimeout         time.Duration // READY_TIMEOUT: bounds /readyz's database ping

	ShutdownDrainDelay time.Duration // SHUTDOWN_DRAIN_DELAY: after SIGTERM, how long /readyz says 503 before the listener closes
	ShutdownTimeout    time.Duration // SHUTDOWN_TIMEOUT: then, how long in-flight requests may take

	MaxConnections     int           // MAX_CONNECTIONS: open client connections at most; 0: from the open-file limit
	IdleTimeout        time.Duration // IDLE_TIMEOUT: how long a keep-alive connection may wait for its next request
	ReadHeaderTimeout  time.Duration // READ_HEADER_TIMEOUT: how long a client may take to send a request's line and headers
	ReadTimeout        time.Duration // READ_TIMEOUT: how long it may take to send a whole request, body included
	MaxHeaderBytes     int           // MAX_HEADER_BYTES: the most bytes of request line and headers read
	BodyMemory         int64         // BODY_MEMORY_MB (in MiB): what request bodies being decoded may take at once
	StreamWriteTimeout time.Duration // STREAM_WRITE_TIMEOUT: how long a streamed list waits for a client that stopped reading

	RetentionPeriod   time.Duration // RETENTION_PERIOD: terminal operations older than this are purged; 0: kept for ever
	RetentionInterval time.Duration // RETENTION_INTERVAL: how often the purge runs

	Webhooks WebhookConfig

	// Keystone selects Keystone mode when its URL (KEYSTONE_URL) is set;
	// KEYSTONE_USERNAME, _PASSWORD, _PROJECT, _DOMAIN, _CACHE_TTL,
	// _NEGATIVE_TTL, _CACHE_SIZE and _TIMEOUT fill the rest, with the
	// keystone package's defaults. run adds the Logger.
	Keystone keystone.Config
}

// WebhookConfig is the webhook dispatcher's configuration.
type WebhookConfig struct {
	AllowedCIDRs    []netip.Prefix // WEBHOOK_ALLOWED_CIDRS: private targets allowed nonetheless
	Timeout         time.Duration  // WEBHOOK_TIMEOUT: one request to a receiver
	RetryPeriod     time.Duration  // WEBHOOK_RETRY_PERIOD: how long an event is retried
	RetryMin        time.Duration  // WEBHOOK_RETRY_MIN: the first wait between attempts
	RetryMax        time.Duration  // WEBHOOK_RETRY_MAX: the longest wait between attempts
	PollInterval    time.Duration  // WEBHOOK_POLL_INTERVAL: how often the outbox is read when idle
	RoundInterval   time.Duration  // WEBHOOK_ROUND_INTERVAL: the shortest time between two of the dispatcher's rounds
	RefreshInterval time.Duration  // WEBHOOK_REFRESH_INTERVAL: how often subscriptions are reloaded
	Retention       time.Duration  // WEBHOOK_RETENTION: how long finished deliveries are kept
	Concurrency     int            // WEBHOOK_CONCURRENCY: requests in flight at most
}

// MAX_HEADER_BYTES stays between 4 KiB (a request line and a Keystone token
// with room to spare) and net/http's own default of 1 MiB.
const (
	minHeaderBytes = 4 << 10
	maxHeaderBytes = 1 << 20
)

// logLevels are LOG_LEVEL's values.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// loadConfig builds the Config from getenv, with the contract's defaults. A
// bad value stops start-up with an error naming the variable.
func loadConfig(getenv func(string) string) (Config, error) {
	c := Config{
		ListenAddr:     or(getenv("LISTEN_ADDR"), ":8080"),
		DatabaseURL:    or(getenv("DATABASE_URL"), "sqlite:operations.db"),
		AuthTokensFile: getenv("AUTH_TOKENS_FILE"),
		AdminAddr:      getenv("ADMIN_ADDR"),

		DatabaseTimeout:      5 * time.Second,
		DatabaseStartTimeout: 2 * time.Minute,
		ReadyTimeout:         time.Second,
		ShutdownTimeout:      30 * time.Second,
		IdleTimeout:          2 * time.Minute,
		StreamWriteTimeout:   server.DefaultStreamWriteTimeout,
		ReadHeaderTimeout:    10 * time.Second,
		ReadTimeout:          time.Minute,
		MaxHeaderBytes:       64 << 10,
		RetentionInterval:    time.Minute,

		Webhooks: WebhookConfig{
			Timeout:         10 * time.Second,
			RetryPeriod:     24 * time.Hour,
			RetryMin:        5 * time.Second,
			RetryMax:        time.Hour,
			PollInterval:    time.Second,
			RoundInterval:   200 * time.Millisecond,
			RefreshInterval: 5 * time.Second,
			Retention:       7 * 24 * time.Hour,
			Concurrency:     64,
		},

		Keystone: keystone.Config{
			URL:         getenv("KEYSTONE_URL"),
			Username:    getenv("KEYSTONE_USERNAME"),
			Password:    getenv("KEYSTONE_PASSWORD"),
			Project:     getenv("KEYSTONE_PROJECT"),
			Domain:      or(getenv("KEYSTONE_DOMAIN"), keystone.DefaultDomain),
			CacheTTL:    keystone.DefaultCacheTTL,
			NegativeTTL: keystone.DefaultNegativeTTL,
			CacheSize:   keystone.DefaultCacheSize,
			Timeout:     keystone.DefaultTimeout,
		},
	}
	if c.AdminAddr == "" && getenv("PPROF_ADDR") != "" {
		c.AdminAddr, c.PprofAlias = getenv("PPROF_ADDR"), true
	}
	c.OTLPEndpoint = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if base := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); c.OTLPEndpoint == "" && base != "" {
		c.OTLPEndpoint = strings.TrimSuffix(base, "/") + "/v1/traces"
	}
	var err error
	if c.AllowedCIDRs, err = parseCIDRs(or(getenv("MSF_ALLOWED_CIDRS"), "127.0.0.0/8,::1/128")); err != nil {
		return Config{}, fmt.Errorf("MSF_ALLOWED_CIDRS: %w", err)
	}
	if c.Webhooks.AllowedCIDRs, err = parseCIDRs(getenv("WEBHOOK_ALLOWED_CIDRS")); err != nil {
		return Config{}, fmt.Errorf("WEBHOOK_ALLOWED_CIDRS: %w", err)
	}
	if c.DatabaseKind, err = store.CheckURL(c.DatabaseURL); err != nil {
		return Config{}, fmt.Errorf("DATABASE_URL: %w", err)
	}
	level, ok := logLevels[or(getenv("LOG_LEVEL"), "info")]
	if !ok {
		return Config{}, fmt.Errorf("LOG_LEVEL: want debug, info, warn or error, not %q", getenv("LOG_LEVEL"))
	}
	c.LogLevel = level
	durations := []struct {
		name   string
		dst    *time.Duration
		zeroOK bool
	}{
		{"DATABASE_TIMEOUT", &c.DatabaseTimeout, false},
		{"DATABASE_START_TIMEOUT", &c.DatabaseStartTimeout, true},
		{"READY_TIMEOUT", &c.ReadyTimeout, false},
		{"SHUTDOWN_DRAIN_DELAY", &c.ShutdownDrainDelay, true},
		{"SHUTDOWN_TIMEOUT", &c.ShutdownTimeout, true},
		{"IDLE_TIMEOUT", &c.IdleTimeout, false},
		{"STREAM_WRITE_TIMEOUT", &c.StreamWriteTimeout, false},
		{"READ_HEADER_TIMEOUT", &c.ReadHeaderTimeout, false},
		{"READ_TIMEOUT", &c.ReadTimeout, false},
		{"KEYSTONE_CACHE_TTL", &c.Keystone.CacheTTL, true},
		{"KEYSTONE_NEGATIVE_TTL", &c.Keystone.NegativeTTL, true},
		{"KEYSTONE_TIMEOUT", &c.Keystone.Timeout, true},
		{"RETENTION_PERIOD", &c.RetentionPeriod, true},
		{"RETENTION_INTERVAL", &c.RetentionInterval, false},
		{"WEBHOOK_TIMEOUT", &c.Webhooks.Timeout, false},
		{"WEBHOOK_RETRY_PERIOD", &c.Webhooks.RetryPeriod, false},
		{"WEBHOOK_RETRY_MIN", &c.Webhooks.RetryMin, false},
		{"WEBHOOK_RETRY_MAX", &c.Webhooks.RetryMax, false},
		{"WEBHOOK_POLL_INTERVAL", &c.Webhooks.PollInterval, false},
		{"WEBHOOK_ROUND_INTERVAL", &c.Webhooks.RoundInterval, false},
		{"WEBHOOK_REFRESH_INTERVAL", &c.Webhooks.RefreshInterval, false},
		{"WEBHOOK_RETENTION", &c.Webhooks.Retention, false},
	}
	for _, d := range durations {
		v := getenv(d.name)
		if v == "" {
			continue
		}
		if *d.dst, err = time.ParseDuration(v); err != nil || *d.dst < 0 || (*d.dst == 0 && !d.zeroOK) {
			return Config{}, fmt.Errorf("%s: want a duration such as 30s, not %q", d.name, v)
		}
	}
	if v := getenv("KEYSTONE_CACHE_SIZE"); v != "" {
		if c.Keystone.CacheSize, err = strconv.Atoi(v); err != nil || c.Keystone.CacheSize < 1 {
			return Config{}, fmt.Errorf("KEYSTONE_CACHE_SIZE: want a positive number, not %q", v)
		}
	}
	c.BodyMemory = server.DefaultBodyMemory
	if v := getenv("BODY_MEMORY_MB"); v != "" {
		mb, err := strconv.Atoi(v)
		if err != nil || mb < 32 {
			// Below 32 MiB a single 4 MiB body could not be decoded.
			return Config{}, fmt.Errorf("BODY_MEMORY_MB: want a number of MiB, at least 32, not %q", v)
		}
		c.BodyMemory = int64(mb) << 20
	}
	if v := getenv("WEBHOOK_CONCURRENCY"); v != "" {
		if c.Webhooks.Concurrency, err = strconv.Atoi(v); err != nil || c.Webhooks.Concurrency < 1 {
			return Config{}, fmt.Errorf("WEBHOOK_CONCURRENCY: want a positive number, not %q", v)
		}
	}
	if c.Webhooks.RetryMin > c.Webhooks.RetryMax {
		return Config{}, fmt.Errorf("WEBHOOK_RETRY_MIN (%s) is longer than WEBHOOK_RETRY_MAX (%s)", c.Webhooks.RetryMin, c.Webhooks.RetryMax)
	}
	if v := getenv("MAX_CONNECTIONS"); v != "" {
		if c.MaxConnections, err = strconv.Atoi(v); err != nil || c.MaxConnections < 1 {
			return Config{}, fmt.Errorf("MAX_CONNECTIONS: want a positive number, not %q", v)
		}
	}
	if v := getenv("MAX_HEADER_BYTES"); v != "" {
		if c.MaxHeaderBytes, err = strconv.Atoi(v); err != nil || c.MaxHeaderBytes < minHeaderBytes || c.MaxHeaderBytes > maxHeaderBytes {
			return Config{}, fmt.Errorf("MAX_HEADER_BYTES: want a number of bytes from %d to %d, not %q", minHeaderBytes, maxHeaderBytes, v)
		}
	}
	if c.ReadHeaderTimeout > c.ReadTimeout {
		return Config{}, fmt.Errorf("READ_HEADER_TIMEOUT (%s) is longer than READ_TIMEOUT (%s), which bounds the whole request", c.ReadHeaderTimeout, c.ReadTimeout)
	}
	if k := c.Keystone; k.URL != "" && (k.Username == "" || k.Password == "" || k.Project == "") {
		return Config{}, fmt.Errorf("KEYSTONE_URL is set: KEYSTONE_USERNAME, KEYSTONE_PASSWORD and KEYSTONE_PROJECT are required too")
	}
	if c.Keystone.URL != "" && c.AuthTokensFile != "" {
		return Config{}, fmt.Errorf("AUTH_TOKENS_FILE and KEYSTONE_URL are both set: choose one")
	}
	return c, nil
}

// parseCIDRs reads a comma-separated list of CIDRs; a bare address counts as
// a single-host prefix.
func parseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a CIDR", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
