package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Config is what one opsbench run measures, and how long each measurement
// may take.
type Config struct {
	DatabaseURL string   // -db, BENCH_DATABASE_URL: mysql://USER:PASS@127.0.0.1:PORT/NAME
	Service     string   // -service: the opsvc binary
	TokensFile  string   // -tokens: the service's sample tokens, to which a token per bench tenant is added
	ServiceEnv  []string // -service-env KEY=VALUE, repeatable: more environment for the service
	Runs        int      // -runs: each measurement is repeated this many times; the median is reported
	Conns       int      // -conns: concurrent connections of the throughput rows (A1, /healthz)

	Throughput time.Duration // -throughput-time: one A1 or /healthz run
	Latency    time.Duration // -latency-time: at most this long for one B1/B3 run ...
	MaxReqs    int           // -latency-requests: ... and at most this many requests

	Tenants     int // -tenants: ICC data set: tenants ...
	Connections int // -connections: ... connections per tenant ...
	OpsPerConn  int // -ops: ... and operations per connection
	MSFOps      int // -msf-ops: MSF operations streamed by the A2 detail-list RSS row

	BufferPool string // -buffer-pool: auto (raise innodb_buffer_pool_size when too small) or keep
	PprofDir   string // -pprof: profile the service through ADMIN_ADDR into this directory
	Only       map[string]bool
	Quick      bool
}

// sections are the groups of rows -only may pick.
var sections = []string{"b1", "b3", "rss", "healthz", "a1", "wait"}

const defaultDatabaseURL = "mysql://root:@127.0.0.1:3306/opsvc_bench"

// parseConfig reads the flags; the database comes from BENCH_DATABASE_URL
// unless -db is given.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	c := Config{}
	fs := flag.NewFlagSet("opsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.DatabaseURL, "db", or(getenv("BENCH_DATABASE_URL"), defaultDatabaseURL),
		"MariaDB/MySQL server and base database name (env BENCH_DATABASE_URL); NAME, NAME_a1 and NAME_floor are used")
	fs.StringVar(&c.Service, "service", "bin/opsvc", "the service binary (make build)")
	fs.StringVar(&c.TokensFile, "tokens", "testdata/tokens.json", "the service's tokens file; a member token per bench tenant is added to a copy")
	fs.Func("service-env", "KEY=VALUE for the service's environment (repeatable), e.g. a tuning variable", func(s string) error {
		if !strings.Contains(s, "=") {
			return errors.New("want KEY=VALUE")
		}
		c.ServiceEnv = append(c.ServiceEnv, s)
		return nil
	})
	fs.IntVar(&c.Runs, "runs", 3, "runs of each measurement; the median is reported")
	fs.IntVar(&c.Conns, "conns", 32, "concurrent connections for the A1 and /healthz throughput rows")
	fs.DurationVar(&c.Throughput, "throughput-time", 8*time.Second, "length of one A1 or /healthz run")
	fs.DurationVar(&c.Latency, "latency-time", 5*time.Second, "longest time of one B1/B3 latency run")
	fs.IntVar(&c.MaxReqs, "latency-requests", 2000, "most requests of one B1/B3 latency run")
	fs.IntVar(&c.Tenants, "tenants", 100, "ICC data set: tenants")
	fs.IntVar(&c.Connections, "connections", 1000, "ICC data set: connections per tenant")
	fs.IntVar(&c.OpsPerConn, "ops", 10, "ICC data set: operations per connection")
	fs.IntVar(&c.MSFOps, "msf-ops", 100000, "MSF operations listed by the A2 detail-list RSS row")
	fs.StringVar(&c.BufferPool, "buffer-pool", "auto", "auto: raise innodb_buffer_pool_size (SET GLOBAL) when smaller than the data set; keep: only warn")
	fs.StringVar(&c.PprofDir, "pprof", "", "write CPU and heap profiles of the service here, fetched from ADMIN_ADDR (the service must serve net/http/pprof there)")
	only := fs.String("only", "", "comma-separated sections to run: "+strings.Join(sections, ","))
	fs.BoolVar(&c.Quick, "quick", false, "smoke run: short runs and a small data set in NAME_quick (figures are not meaningful)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.Quick {
		// Explicit flags still win over the quick defaults.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quick := map[string]func(){
			"throughput-time":  func() { c.Throughput = time.Second },
			"latency-time":     func() { c.Latency = time.Second },
			"latency-requests": func() { c.MaxReqs = 200 },
			"tenants":          func() { c.Tenants = 2 },
			"msf-ops":          func() { c.MSFOps = 10000 },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	c.Only = map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(sections, s) {
			return Config{}, fmt.Errorf("-only: unknown section %q (want %s)", s, strings.Join(sections, ","))
		}
		c.Only[s] = true
	}
	if len(c.Only) == 0 {
		for _, s := range sections {
			c.Only[s] = true
		}
	}
	switch {
	case c.Runs < 1 || c.Runs > 9:
		return Config{}, errors.New("-runs: want 1 to 9")
	case c.Conns < 1 || c.Conns > 256:
		return Config{}, errors.New("-conns: want 1 to 256")
	case c.Throughput <= 0 || c.Throughput > time.Minute, c.Latency <= 0 || c.Latency > time.Minute:
		return Config{}, errors.New("-throughput-time and -latency-time: want more than 0 and at most 1m")
	case c.MaxReqs < 1 || c.MaxReqs > 100000:
		return Config{}, errors.New("-latency-requests: want 1 to 100000")
	case c.Tenants < 1 || c.Tenants > 1000, c.Connections < 1 || c.Connections > 10000, c.OpsPerConn < 1 || c.OpsPerConn > 100:
		return Config{}, errors.New("-tenants (1-1000), -connections (1-10000), -ops (1-100): out of range")
	case c.Tenants*c.Connections*c.OpsPerConn > 5000000:
		return Config{}, errors.New("the ICC data set is limited to 5,000,000 operations")
	case c.MSFOps < 1 || c.MSFOps > 1000000:
		return Config{}, errors.New("-msf-ops: want 1 to 1000000")
	case c.BufferPool != "auto" && c.BufferPool != "keep":
		return Config{}, errors.New("-buffer-pool: want auto or keep")
	}
	return c, nil
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
