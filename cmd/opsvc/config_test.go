package main

import (
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"example.com/opsvc/keystone"
)

func TestLoadConfig(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	t.Run("defaults are the contract's", func(t *testing.T) {
		c, err := loadConfig(env())
		if err != nil {
			t.Fatal(err)
		}
		want := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		if c.ListenAddr != ":8080" || c.DatabaseURL != "sqlite:operations.db" || c.AuthTokensFile != "" ||
			!reflect.DeepEqual(c.AllowedCIDRs, want) || c.Keystone.CacheTTL != 60*time.Second {
			t.Fatalf("got %+v", c)
		}
		if c.DatabaseTimeout != 5*time.Second || c.DatabaseStartTimeout != 2*time.Minute || c.ReadyTimeout != time.Second ||
			c.ShutdownDrainDelay != 0 || c.ShutdownTimeout != 30*time.Second || c.MaxConnections != 0 || c.IdleTimeout != 2*time.Minute {
			t.Fatalf("reliability defaults: got %+v", c)
		}
		if c.ReadHeaderTimeout != 10*time.Second || c.ReadTimeout != time.Minute || c.MaxHeaderBytes != 64<<10 {
			t.Fatalf("client limits: got %+v", c)
		}
	})
	t.Run("observability settings are read", func(t *testing.T) {
		c, err := loadConfig(env("LOG_LEVEL", "warn", "ADMIN_ADDR", "127.0.0.1:9090", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"))
		if err != nil {
			t.Fatal(err)
		}
		if c.LogLevel != slog.LevelWarn || c.AdminAddr != "127.0.0.1:9090" || c.PprofAlias || c.OTLPEndpoint != "http://collector:4318/v1/traces" {
			t.Fatalf("got %+v", c)
		}
		c, err = loadConfig(env("PPROF_ADDR", "127.0.0.1:6060", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:4318/traces"))
		if err != nil {
			t.Fatal(err)
		}
		if c.AdminAddr != "127.0.0.1:6060" || !c.PprofAlias || c.OTLPEndpoint != "http://b:4318/traces" {
			t.Fatalf("PPROF_ADDR and the traces endpoint: got %+v", c)
		}
	})
	t.Run("keystone defaults are the keystone package's", func(t *testing.T) {
		c, err := loadConfig(env())
		if err != nil {
			t.Fatal(err)
		}
		k := c.Keystone
		if k.CacheTTL != keystone.DefaultCacheTTL || k.NegativeTTL != keystone.DefaultNegativeTTL ||
			k.CacheSize != keystone.DefaultCacheSize || k.Timeout != keystone.DefaultTimeout || k.Domain != keystone.DefaultDomain {
			t.Fatalf("got %+v", k)
		}
		if c.LogLevel != slog.LevelInfo || c.AdminAddr != "" || c.OTLPEndpoint != "" || c.DatabaseKind != "sqlite" {
			t.Fatalf("got %+v", c)
		}
	})
	t.Run("client limits are read", func(t *testing.T) {
		c, err := loadConfig(env("READ_HEADER_TIMEOUT", "2s", "READ_TIMEOUT", "30s", "MAX_HEADER_BYTES", "16384"))
		if err != nil {
			t.Fatal(err)
		}
		if c.ReadHeaderTimeout != 2*time.Second || c.ReadTimeout != 30*time.Second || c.MaxHeaderBytes != 16384 {
			t.Fatalf("got %+v", c)
		}
	})
	t.Run("reliability settings are read", func(t *testing.T) {
		c, err := loadConfig(env("DATABASE_TIMEOUT", "2s", "DATABASE_START_TIMEOUT", "0", "READY_TIMEOUT", "500ms",
			"SHUTDOWN_DRAIN_DELAY", "5s", "MAX_CONNECTIONS", "100", "IDLE_TIMEOUT", "30s"))
		if err != nil {
			t.Fatal(err)
		}
		if c.DatabaseTimeout != 2*time.Second || c.DatabaseStartTimeout != 0 || c.ReadyTimeout != 500*time.Millisecond ||
			c.ShutdownDrainDelay != 5*time.Second || c.MaxConnections != 100 || c.IdleTimeout != 30*time.Second {
			t.Fatalf("got %+v", c)
		}
	})
	t.Run("values are read", func(t *testing.T) {
		c, err := loadConfig(env("LISTEN_ADDR", "127.0.0.1:9000", "DATABASE_URL", "mysql://u:p@h:3306/d",
			"MSF_ALLOWED_CIDRS", " 10.0.0.0/8 ,192.0.2.7,2001:db8::/32", "KEYSTONE_URL", "http://k:5000/v3",
			"KEYSTONE_USERNAME", "opsvc", "KEYSTONE_PASSWORD", "pw", "KEYSTONE_PROJECT", "service",
			"KEYSTONE_CACHE_TTL", "30s", "KEYSTONE_CACHE_SIZE", "50", "SHUTDOWN_TIMEOUT", "5s"))
		if err != nil {
			t.Fatal(err)
		}
		want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
		if !reflect.DeepEqual(c.AllowedCIDRs, want) || c.Keystone.CacheTTL != 30*time.Second ||
			c.Keystone.CacheSize != 50 || c.ShutdownTimeout != 5*time.Second || c.Keystone.Domain != "Default" {
			t.Fatalf("got %+v", c)
		}
	})
	refusals := []struct {
		name string
		env  func(string) string
		want string
	}{
		{"bad CIDR", env("MSF_ALLOWED_CIDRS", "10.0.0.0/33"), "MSF_ALLOWED_CIDRS"},
		{"bad database URL", env("DATABASE_URL", "postgres://x"), "DATABASE_URL"},
		{"mysql URL without host", env("DATABASE_URL", "mysql:///operations"), "DATABASE_URL: mysql: no host"},
		{"mysql URL without database", env("DATABASE_URL", "mysql://u:p@db:3306"), "DATABASE_URL: mysql: must name one database"},
		{"sqlite file in a missing directory", env("DATABASE_URL", "sqlite:/nonexistent/dir/operations.db"), `DATABASE_URL: sqlite: directory "/nonexistent/dir" does not exist`},
		{"sqlite without a path", env("DATABASE_URL", "sqlite:"), "DATABASE_URL"},
		{"upper-case log level", env("LOG_LEVEL", "INFO"), "LOG_LEVEL"},
		{"bad duration", env("SHUTDOWN_TIMEOUT", "soon"), "SHUTDOWN_TIMEOUT"},
		{"bad cache size", env("KEYSTONE_CACHE_SIZE", "0"), "KEYSTONE_CACHE_SIZE"},
		{"zero database timeout", env("DATABASE_TIMEOUT", "0s"), "DATABASE_TIMEOUT"},
		{"negative drain delay", env("SHUTDOWN_DRAIN_DELAY", "-1s"), "SHUTDOWN_DRAIN_DELAY"},
		{"bad connection limit", env("MAX_CONNECTIONS", "none"), "MAX_CONNECTIONS"},
		{"keystone without credentials", env("KEYSTONE_URL", "http://k:5000/v3"), "KEYSTONE_USERNAME"},
		{"both token modes", env("KEYSTONE_URL", "http://k/v3", "KEYSTONE_USERNAME", "u", "KEYSTONE_PASSWORD", "p",
			"KEYSTONE_PROJECT", "s", "AUTH_TOKENS_FILE", "t.json"), "AUTH_TOKENS_FILE"},
		{"bad log level", env("LOG_LEVEL", "loud"), "LOG_LEVEL"},
		{"zero header timeout", env("READ_HEADER_TIMEOUT", "0"), "READ_HEADER_TIMEOUT"},
		{"header timeout past the read timeout", env("READ_HEADER_TIMEOUT", "2m"), "READ_HEADER_TIMEOUT"},
		{"header limit too small", env("MAX_HEADER_BYTES", "100"), "MAX_HEADER_BYTES"},
		{"header limit above 1 MiB", env("MAX_HEADER_BYTES", "2097152"), "MAX_HEADER_BYTES"},
		{"bad webhook CIDR", env("WEBHOOK_ALLOWED_CIDRS", "loopback"), "WEBHOOK_ALLOWED_CIDRS"},
		{"zero webhook timeout", env("WEBHOOK_TIMEOUT", "0s"), "WEBHOOK_TIMEOUT"},
		{"bad retry period", env("WEBHOOK_RETRY_PERIOD", "a day"), "WEBHOOK_RETRY_PERIOD"},
		{"first retry after the longest", env("WEBHOOK_RETRY_MIN", "2h"), "WEBHOOK_RETRY_MIN"},
		{"bad webhook concurrency", env("WEBHOOK_CONCURRENCY", "0"), "WEBHOOK_CONCURRENCY"},
		{"zero webhook round interval", env("WEBHOOK_ROUND_INTERVAL", "0s"), "WEBHOOK_ROUND_INTERVAL"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
