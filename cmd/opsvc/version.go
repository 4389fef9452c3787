package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is the release, set at build time:
// go build -ldflags "-X main.version=1.2.3" ./cmd/opsvc. Without it, the
// module version from the build info ("(devel)" for a build from a work tree).
var version string

// build is what `opsvc version` and opsvc_build_info say.
type build struct{ Version, Revision, GoVersion string }

func buildInfo() build {
	b := build{Version: version, Revision: "unknown", GoVersion: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if b.Version == "" {
			b.Version = "unknown"
		}
		return b
	}
	b.GoVersion = bi.GoVersion
	if b.Version == "" {
		b.Version = bi.Main.Version
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified {
		b.Revision += "-modified"
	}
	return b
}

const usage = `opsvc: the Operations Service (MSF operation management and ICC connection
operation history, as openapi.yaml describes them).

Usage:
  opsvc              serve, configured by environment variables
  opsvc healthcheck  ask a running service's /readyz (LISTEN_ADDR); exit 0 when ready
  opsvc version      print the version and exit
  opsvc --help       print this and exit

Environment (defaults in brackets; the README's Configuration table says more):
  LISTEN_ADDR [:8080]
  DATABASE_URL [sqlite:operations.db]: sqlite:PATH or mysql://USER:PASS@HOST:PORT/DB
  AUTH_TOKENS_FILE: static tokens [none]
  MSF_ALLOWED_CIDRS [127.0.0.0/8,::1/128]
  LOG_LEVEL [info]: debug, info, warn or error
  ADMIN_ADDR: /metrics and /debug/pprof/, e.g. 127.0.0.1:9090 [none]; PPROF_ADDR: its deprecated name
  OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces over OTLP/HTTP [none]
  KEYSTONE_URL, KEYSTONE_USERNAME, KEYSTONE_PASSWORD, KEYSTONE_PROJECT, KEYSTONE_DOMAIN [Default],
  KEYSTONE_CACHE_TTL [60s], KEYSTONE_NEGATIVE_TTL [5s], KEYSTONE_CACHE_SIZE [10000], KEYSTONE_TIMEOUT [5s]
  DATABASE_TIMEOUT [5s], DATABASE_START_TIMEOUT [2m], READY_TIMEOUT [1s],
  SHUTDOWN_DRAIN_DELAY [0s], SHUTDOWN_TIMEOUT [30s], MAX_CONNECTIONS, IDLE_TIMEOUT [2m],
  READ_HEADER_TIMEOUT [10s], READ_TIMEOUT [1m], MAX_HEADER_BYTES [65536], BODY_MEMORY_MB [256],
  STREAM_WRITE_TIMEOUT [30s]
  RETENTION_PERIOD: purge terminal operations older than this, e.g. 720h [none],
  RETENTION_INTERVAL [1m]
  WEBHOOK_ALLOWED_CIDRS [none], WEBHOOK_TIMEOUT [10s], WEBHOOK_RETRY_PERIOD [24h],
  WEBHOOK_RETRY_MIN [5s], WEBHOOK_RETRY_MAX [1h], WEBHOOK_POLL_INTERVAL [1s],
  WEBHOOK_ROUND_INTERVAL [200ms], WEBHOOK_REFRESH_INTERVAL [5s], WEBHOOK_RETENTION [168h],
  WEBHOOK_CONCURRENCY [64]
`

// command runs what args name besides serving: it reports whether it did,
// and the exit status.
func command(args []string, getenv func(string) string, stdout, stderr io.Writer) (handled bool, status int) {
	if len(args) == 0 {
		return false, 0
	}
	switch args[0] {
	case "healthcheck":
		return true, healthcheck(getenv)
	case "version", "--version", "-version":
		b := buildInfo()
		fmt.Fprintf(stdout, "opsvc %s (revision %s, %s)\n", b.Version, b.Revision, b.GoVersion)
		return true, 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return true, 0
	}
	fmt.Fprintf(stderr, "opsvc: unknown command %q\n\n%s", args[0], usage)
	return true, 2
}
