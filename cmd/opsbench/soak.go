package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// `opsbench soak` runs the service for a long while (10 minutes by default)
// under a mixed load over 32 connections: A1 and B2 writes, and B1 and B3
// reads bounded by their filters, with a whole list (A2 list or
// detail-list, B1 or B3 latest=true of a whole tenant) now and then. Every
// minute it samples the service's resident memory, goroutines, open files
// and database connections, and it prints them as a table. It fails on any
// error or 5xx, and when one of those four is not flat: when the last
// sample is above the median of the later samples by more than the
// tolerance (flatRules). The database is NAME_soak on BENCH_DATABASE_URL's
// server, dropped and created again by every run.

// soakConfig is what one soak run does.
type soakConfig struct {
	DatabaseURL string   // -db, BENCH_DATABASE_URL: the server and base NAME; the soak uses NAME_soak
	Service     string   // -service: the opsvc binary
	TokensFile  string   // -tokens: the sample tokens, to which a member token per soak tenant is added
	ServiceEnv  []string // -service-env KEY=VALUE
	Duration    time.Duration
	Every       time.Duration // -every: the sampling period
	Conns       int
	Tenants     int
	Whole       time.Duration // -whole-every: how often one whole list is read
}

func parseSoakConfig(args []string, getenv func(string) string, stderr io.Writer) (soakConfig, error) {
	c := soakConfig{}
	fs := flag.NewFlagSet("opsbench soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.DatabaseURL, "db", or(getenv("BENCH_DATABASE_URL"), defaultDatabaseURL),
		"MariaDB/MySQL server and base database name (env BENCH_DATABASE_URL); NAME_soak is dropped and created again")
	fs.StringVar(&c.Service, "service", "bin/opsvc", "the service binary (make build)")
	fs.StringVar(&c.TokensFile, "tokens", "testdata/tokens.json", "the service's tokens file; a member token per soak tenant is added to a copy")
	fs.Func("service-env", "KEY=VALUE for the service's environment (repeatable)", func(s string) error {
		if !strings.Contains(s, "=") {
			return errors.New("want KEY=VALUE")
		}
		c.ServiceEnv = append(c.ServiceEnv, s)
		return nil
	})
	fs.DurationVar(&c.Duration, "duration", 10*time.Minute, "how long the load runs (make soak: SOAK_DURATION)")
	fs.DurationVar(&c.Every, "every", time.Minute, "how often the service is sampled")
	fs.IntVar(&c.Conns, "conns", 32, "concurrent connections")
	fs.IntVar(&c.Tenants, "tenants", 8, "ICC tenants the writes spread over and the reads come from")
	fs.DurationVar(&c.Whole, "whole-every", 15*time.Second, "how often a whole list is read (A2 list, A2 detail-list, B1 and B3 latest=true of a tenant, in turn)")
	if err := fs.Parse(args); err != nil {
		return soakConfig{}, err
	}
	if fs.NArg() > 0 {
		return soakConfig{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case c.Duration < 10*time.Second || c.Duration > 24*time.Hour:
		return soakConfig{}, errors.New("-duration: want 10s to 24h")
	case c.Every <= 0 || c.Duration/c.Every < 2 || c.Duration/c.Every > 240:
		return soakConfig{}, errors.New("-every: want 2 to 240 samples in -duration")
	case c.Conns < 1 || c.Conns > 256:
		return soakConfig{}, errors.New("-conns: want 1 to 256")
	case c.Tenants < 1 || c.Tenants > 1000:
		return soakConfig{}, errors.New("-tenants: want 1 to 1000")
	case c.Whole <= 0:
		return soakConfig{}, errors.New("-whole-every: want more than 0")
	}
	return c, nil
}

// sample is what the service looked like at one moment of the run, and what
// the load did since the sample before.
type sample struct {
	at                 time.Duration // since the load started
	rss                int64
	goroutines         int
	files              int
	dbConns            int
	requests, errors   int
	serverErrors       int // 5xx
	p50, p99           float64
	a1IDs, iccOps      int64
	interval           time.Duration
	goroutineErr, fErr error
}

// flatRule says how far a resource's last sample may rise above the median
// of the later samples: by rel of it, or by abs, whichever is larger.
type flatRule struct {
	name string
	unit string
	rel  float64
	abs  float64
	of   func(sample) float64
}

// flatRules: memory may rise by GC and allocator noise; goroutines and
// files by the connections a request holds while in flight (32 clients);
// database connections within the pool. A leak of one per request, or of
// memory per request, is far past these.
var flatRules = []flatRule{
	{"RSS", "MiB", 0.10, 4, func(s sample) float64 { return float64(s.rss) / (1 << 20) }},
	{"goroutines", "", 0.25, 32, func(s sample) float64 { return float64(s.goroutines) }},
	{"open files", "", 0.20, 10, func(s sample) float64 { return float64(s.files) }},
	{"database connections", "", 0.20, 5, func(s sample) float64 { return float64(s.dbConns) }},
}

// laterFrom is where the later samples start: after the first fifth of the
// run (2 minutes of 10), the warm-up of pools, caches and the heap.
func laterFrom(d time.Duration) time.Duration { return d / 5 }

// flatCheck is one rule applied to a run's samples.
type flatCheck struct {
	rule                flatRule
	median, last, bound float64
	ok                  bool
}

func checkFlat(samples []sample, d time.Duration) []flatCheck {
	var later []sample
	for _, s := range samples {
		if s.at > 0 && s.at >= laterFrom(d) {
			later = append(later, s)
		}
	}
	if len(later) == 0 {
		return nil
	}
	var out []flatCheck
	for _, r := range flatRules {
		vals := make([]float64, len(later))
		for i, s := range later {
			vals[i] = r.of(s)
		}
		last := vals[len(vals)-1]
		slices.Sort(vals)
		med := vals[len(vals)/2]
		if len(vals)%2 == 0 {
			med = (vals[len(vals)/2-1] + vals[len(vals)/2]) / 2
		}
		bound := med + max(med*r.rel, r.abs)
		out = append(out, flatCheck{rule: r, median: med, last: last, bound: bound, ok: last <= bound})
	}
	return out
}

// soakKind is one kind of request the load sends.
type soakKind string

const (
	kindA1      soakKind = "A1 PUT /v1/operations/{id}"
	kindB2      soakKind = "B2 PUT /v1.0/icc/operations/{id}"
	kindB1      soakKind = "B1 GET /v1.0/icc/operations?connection_id=X&..."
	kindB3List  soakKind = "B3 GET /v2.0/operations?resource_id=X&..."
	kindB3Show  soakKind = "B3 GET /v2.0/operations/{id}"
	kindA2List  soakKind = "A2 GET /v1/operations?format=list (whole)"
	kindA2Det   soakKind = "A2 GET /v1/operations?format=detail-list (whole)"
	kindB1Whole soakKind = "B1 GET /v1.0/icc/operations?latest=true (whole tenant)"
	kindB3Whole soakKind = "B3 GET /v2.0/operations?latest=true (whole tenant)"
)

var soakKinds = []soakKind{kindA1, kindB2, kindB1, kindB3List, kindB3Show, kindA2List, kindA2Det, kindB1Whole, kindB3Whole}

// iccRef is an ICC operation the load recorded, which reads may ask for.
type iccRef struct {
	tenant int
	conn   string
	op     string
}

// soakLoad is the load and what it saw.
type soakLoad struct {
	svc    *process
	client *http.Client
	icc    iccDataset
	whole  time.Duration

	stopping  atomic.Bool  // no new requests: the run is over
	nextWhole atomic.Int64 // unix nanoseconds
	wholeTurn atomic.Int64
	a1IDs     atomic.Int64 // ids with an acknowledged A1
	iccOps    atomic.Int64 // ICC operations created (201)

	mu        sync.Mutex
	refs      []iccRef
	interval  []time.Duration // latencies since the last sample
	intErrors int
	int5xx    int
	perKind   map[soakKind]*kindTotals
	firstErrs []string
}

type kindTotals struct {
	n, errors int
	latencies []time.Duration
}

// record keeps the outcome of one request; err says why it failed.
func (l *soakLoad) record(kind soakKind, took time.Duration, status int, err error) {
	l.mu.Lock()
	k := l.perKind[kind]
	k.n++
	k.latencies = append(k.latencies, took)
	l.interval = append(l.interval, took)
	if status >= 500 {
		l.int5xx++
	}
	l.mu.Unlock()
	if err != nil {
		l.failed(kind, err)
	}
}

// failed counts an error: a request that failed, or an answer that was
// not what it should be.
func (l *soakLoad) failed(kind soakKind, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.perKind[kind].errors++
	l.intErrors++
	if len(l.firstErrs) < 10 {
		l.firstErrs = append(l.firstErrs, fmt.Sprintf("%s: %v", kind, err))
	}
}

// call sends one request and checks its status; with into set it decodes
// the answer there, else discards it. A request cut short because the run
// ended is not counted.
func (l *soakLoad) call(ctx context.Context, kind soakKind, method, path, token string, body []byte, into any, want ...int) bool {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.svc.url(path), rd)
	if err != nil {
		l.record(kind, 0, 0, err)
		return false
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	start := time.Now()
	resp, err := l.client.Do(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		if !slices.Contains(want, status) {
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			err = fmt.Errorf("%s %s: HTTP %d %s", method, path, status, answer)
		} else if into != nil {
			err = json.NewDecoder(resp.Body).Decode(into)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	took := time.Since(start)
	if ctx.Err() != nil {
		return false
	}
	l.record(kind, took, status, err)
	return err == nil
}

// a1State is a worker's current MSF operation: each gets 4 notifications,
// executing 3 times then completed, a second apart.
type a1State struct {
	k, step int
	acked   bool
}

func (l *soakLoad) a1(ctx context.Context, w int, st *a1State) {
	id := fmt.Sprintf("soak-w%03d-%07d", w, st.k)
	n := a1Notify(id, false)
	n.LastUpdateTime = a1Occurred.Add(time.Duration(st.step) * time.Second).Format(msfTimeLayout)
	if st.step == 3 {
		n.Status = "completed"
	}
	body, _ := json.Marshal(n)
	if l.call(ctx, kindA1, http.MethodPut, "/v1/operations/"+id, "", body, nil, http.StatusOK) && !st.acked {
		st.acked = true
		l.a1IDs.Add(1)
	}
	if st.step++; st.step == 4 {
		*st = a1State{k: st.k + 1}
	}
}

// b2State is a worker's current ICC connection: its 4 operations (prepare,
// approve, update, delete), each recorded processing, then complete.
type b2State struct{ c, op, step int }

var b2Phases = []struct{ phase, order string }{
	{"prepare_connection", "Create"}, {"approve_connection", "Create"},
	{"update_connection", "Update"}, {"delete_connection", "Delete"},
}

var soakEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (l *soakLoad) b2(ctx context.Context, w int, st *b2State) {
	tenant := (w + st.c) % l.icc.tenants
	conn := uuidFrom(rand.New(rand.NewPCG(uint64(w)+1<<32, uint64(st.c))))
	id := fmt.Sprintf("soak-w%03d-c%06d-%d", w, st.c, st.op)
	reception := soakEpoch.Add(time.Duration(w)*24*time.Hour + time.Duration(st.c)*time.Minute + time.Duration(st.op)*time.Second)
	p := b2Phases[st.op]
	op := map[string]any{
		"connection_id":      conn,
		"tenant_id":          l.icc.tenantID(tenant),
		"order_type":         p.order,
		"phase":              p.phase,
		"operation_status":   "processing",
		"reception_datetime": reception.Format(time.DateTime),
		"request_body": map[string]any{"connection": map[string]any{
			"name": "soak " + id, "bandwidth": "100", "qos_type": "Guarantee",
			"tenant_id": l.icc.tenantID(tenant), "description": strings.Repeat("soak ", 40),
		}},
	}
	want := http.StatusCreated
	if st.step == 1 {
		op["operation_status"] = "complete"
		op["commit_datetime"] = reception.Add(30 * time.Second).Format(time.DateTime)
		want = http.StatusOK
	}
	body, _ := json.Marshal(op)
	if l.call(ctx, kindB2, http.MethodPut, "/v1.0/icc/operations/"+id, adminToken, body, nil, want) && st.step == 0 {
		l.iccOps.Add(1)
		l.mu.Lock()
		l.refs = append(l.refs, iccRef{tenant: tenant, conn: conn, op: id})
		l.mu.Unlock()
	}
	if st.step++; st.step == 2 {
		st.step = 0
		if st.op++; st.op == len(b2Phases) {
			st.op = 0
			st.c++
		}
	}
}

// adminToken is testdata/tokens.json's admin token: B2 needs it.
const adminToken = "admin-token"

func (l *soakLoad) pickRef(r *rand.Rand) (iccRef, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.refs) == 0 {
		return iccRef{}, false
	}
	return l.refs[r.IntN(len(l.refs))], true
}

type soakList struct {
	Operations []json.RawMessage `json:"operations"`
}

// b1Queries and b3Queries are the filters the reads use, each with a
// connection (or resource) so that an answer stays small however the data
// grows. Those marked one answer exactly one item.
var (
	b1Queries = []struct {
		q   string
		one bool
	}{
		{"connection_id=%s", false},
		{"connection_id=%s&latest=true", true},
		{"connection_id=%s&order_type=Create", false},
		{"connection_id=%s&phase=update_connection&operation_status=complete", false},
	}
	b3Queries = []struct {
		q   string
		one bool
	}{
		{"resource_id=%s", false},
		{"resource_id=%s&latest=true", true},
		{"resource_id=%s&request_type=Delete", false},
		{"resource_id=%s&resource_type=aws_connection&latest=true", true},
	}
)

func (l *soakLoad) list(ctx context.Context, r *rand.Rand, kind soakKind) bool {
	ref, ok := l.pickRef(r)
	if !ok {
		return false
	}
	path, queries := "/v1.0/icc/operations", b1Queries
	if kind == kindB3List {
		path, queries = "/v2.0/operations", b3Queries
	}
	q := queries[r.IntN(len(queries))]
	var got soakList
	query := fmt.Sprintf(q.q, ref.conn)
	if !l.call(ctx, kind, http.MethodGet, path+"?"+query, l.icc.token(ref.tenant), nil, &got, http.StatusOK) {
		return true
	}
	if (q.one && len(got.Operations) != 1) || (strings.Count(q.q, "&") == 0 && len(got.Operations) == 0) {
		l.failed(kind, fmt.Errorf("%s?%s: %d items", path, query, len(got.Operations)))
	}
	return true
}

func (l *soakLoad) show(ctx context.Context, r *rand.Rand) bool {
	ref, ok := l.pickRef(r)
	if !ok {
		return false
	}
	var got struct {
		Operation struct {
			ID string `json:"id"`
		} `json:"operation"`
	}
	if l.call(ctx, kindB3Show, http.MethodGet, "/v2.0/operations/"+ref.op, l.icc.token(ref.tenant), nil, &got, http.StatusOK) && got.Operation.ID != ref.op {
		l.failed(kindB3Show, fmt.Errorf("/v2.0/operations/%s: id %q", ref.op, got.Operation.ID))
	}
	return true
}

// wholeList reads one whole list, when one is due: in turn the A2 list, the
// A2 detail list, and a tenant's B1 and B3 latest=true.
func (l *soakLoad) wholeList(ctx context.Context, r *rand.Rand) bool {
	now := time.Now().UnixNano()
	due := l.nextWhole.Load()
	if now < due || !l.nextWhole.CompareAndSwap(due, now+int64(l.whole)) {
		return false
	}
	tenant := r.IntN(l.icc.tenants)
	switch l.wholeTurn.Add(1) % 4 {
	case 1:
		l.call(ctx, kindA2List, http.MethodGet, "/v1/operations?format=list", "", nil, nil, http.StatusOK)
	case 2:
		l.call(ctx, kindA2Det, http.MethodGet, "/v1/operations?format=detail-list", "", nil, nil, http.StatusOK)
	case 3:
		l.call(ctx, kindB1Whole, http.MethodGet, "/v1.0/icc/operations?latest=true", l.icc.token(tenant), nil, nil, http.StatusOK)
	default:
		l.call(ctx, kindB3Whole, http.MethodGet, "/v2.0/operations?latest=true", l.icc.token(tenant), nil, nil, http.StatusOK)
	}
	return true
}

// worker sends requests until the run is over (the request in flight then
// is answered and counted) or ctx ends: 35% A1, 15% B2, 20% B1, 15% B3
// lists, 15% B3 shows (a write while nothing is recorded yet), and a whole
// list when one is due.
func (l *soakLoad) worker(ctx context.Context, w int) {
	r := rand.New(rand.NewPCG(uint64(w), 0x50a4))
	var a1 a1State
	var b2 b2State
	for ctx.Err() == nil && !l.stopping.Load() {
		if l.wholeList(ctx, r) {
			continue
		}
		switch x := r.IntN(100); {
		case x < 35:
			l.a1(ctx, w, &a1)
		case x < 50:
			l.b2(ctx, w, &b2)
		case x < 70:
			if !l.list(ctx, r, kindB1) {
				l.b2(ctx, w, &b2)
			}
		case x < 85:
			if !l.list(ctx, r, kindB3List) {
				l.b2(ctx, w, &b2)
			}
		default:
			if !l.show(ctx, r) {
				l.b2(ctx, w, &b2)
			}
		}
	}
}

// takeInterval returns the latencies and errors since the last call.
func (l *soakLoad) takeInterval() (lat []time.Duration, errs, serverErrs int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lat, errs, serverErrs = l.interval, l.intErrors, l.int5xx
	l.interval, l.intErrors, l.int5xx = nil, 0, 0
	return lat, errs, serverErrs
}

// runSoak is `opsbench soak`.
func runSoak(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	started := time.Now()
	cfg, err := parseSoakConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	srv, err := parseServer(cfg.DatabaseURL)
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.Service); err != nil {
		return fmt.Errorf("-service: %w (run make build)", err)
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	dbName := srv.name + "_soak"
	admin, err := srv.open("", 2, nil)
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := recreate(ctx, admin, dbName); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "opsbench-soak-")
	if err != nil {
		return err
	}
	icc := iccDataset{tenants: cfg.Tenants}
	tokens, err := writeTokens(cfg.TokensFile, work, icc)
	if err != nil {
		return err
	}
	logFile, err := os.Create(work + "/opsvc.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	pprofAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	env := serviceEnv("127.0.0.1:0", srv.serviceURL(dbName), tokens, pprofAddr, cfg.ServiceEnv)
	svc, err := startProcess(ctx, "opsvc", cfg.Service, nil, env, logFile)
	if err != nil {
		return fmt.Errorf("%w (its log: %s)", err, logFile.Name())
	}
	defer svc.stop()
	svc.pprofAddr = pprofAddr

	client := newHTTPClient(cfg.Conns)
	defer client.CloseIdleConnections()
	l := &soakLoad{svc: svc, client: client, icc: icc, whole: cfg.Whole, perKind: map[soakKind]*kindTotals{}}
	for _, k := range soakKinds {
		l.perKind[k] = &kindTotals{}
	}
	probe := func(at time.Duration, interval time.Duration) sample {
		s := sample{at: at, interval: interval, a1IDs: l.a1IDs.Load(), iccOps: l.iccOps.Load()}
		s.rss, _, _ = memory(svc.pid())
		s.goroutines, s.goroutineErr = goroutineCount(ctx, client, svc)
		s.files, s.fErr = openFiles(svc.pid())
		_ = admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ?", dbName).Scan(&s.dbConns)
		lat, errs, serverErrs := l.takeInterval()
		s.requests, s.errors, s.serverErrors = len(lat), errs, serverErrs
		if run := (loadRun{latencies: lat}); len(lat) > 0 {
			s.p50, s.p99 = run.percentile(50), run.percentile(99)
		}
		return s
	}

	samples := []sample{probe(0, 0)}
	loadStart := time.Now()
	l.nextWhole.Store(loadStart.Add(cfg.Whole).UnixNano())
	var wg sync.WaitGroup
	for w := range cfg.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.worker(ctx, w)
		}()
	}
	logf("soak: %d connections for %s on %s, sampled every %s; the service's log: %s", cfg.Conns, cfg.Duration, dbName, cfg.Every, logFile.Name())
	n := int(cfg.Duration / cfg.Every)
	for i := 1; i <= n; i++ {
		at := time.Duration(i) * cfg.Every
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(loadStart.Add(at))):
		}
		if ctx.Err() != nil {
			break
		}
		s := probe(time.Since(loadStart), cfg.Every)
		samples = append(samples, s)
		logf("%s: %d requests, %d errors, %d 5xx, RSS %.1f MiB, %d goroutines, %d files, %d database connections",
			at, s.requests, s.errors, s.serverErrors, float64(s.rss)/(1<<20), s.goroutines, s.files, s.dbConns)
	}
	l.stopping.Store(true)
	wg.Wait()
	loadTime := time.Since(loadStart)
	if err := ctx.Err(); err != nil {
		return err // interrupted: no table
	}

	// Every acknowledged A1 id is listed; every created ICC operation is stored.
	var ids struct {
		OperationIDs []string `json:"operation_ids"`
	}
	listErr := errors.New("no answer")
	if l.call(ctx, kindA2List, http.MethodGet, "/v1/operations?format=list", "", nil, &ids, http.StatusOK) {
		listErr = nil
	}
	var stored int64
	countErr := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+dbName+".icc_operations").Scan(&stored)
	svc.stop()
	exitErr := svc.waitErr

	fmt.Fprintf(stdout, "opsbench soak %s UTC: %d CPUs, load average %s at the end; %s on %s\n",
		started.UTC().Format("2006-01-02 15:04"), runtime.NumCPU(), loadAverage(), cfg.Service, dbName)
	fmt.Fprintf(stdout, "load: %d connections for %s: 35%% A1, 15%% B2, 20%% B1 and 15%% B3 lists by connection, 15%% B3 shows; a whole list every %s\n\n",
		cfg.Conns, loadTime.Round(time.Second), cfg.Whole)
	printSamples(stdout, samples)
	fmt.Fprintln(stdout)
	printKinds(stdout, l)
	fmt.Fprintln(stdout)

	failures := 0
	var errs, serverErrs int
	for _, s := range samples {
		errs += s.errors
		serverErrs += s.serverErrors
	}
	// Errors of the last moments, after the last sample.
	_, lateErrs, late5xx := l.takeInterval()
	errs += lateErrs
	serverErrs += late5xx
	verdict := func(ok bool) string {
		if ok {
			return "pass"
		}
		failures++
		return "FAIL"
	}
	fmt.Fprintf(stdout, "errors %d, 5xx %d (want 0 and 0): %s\n", errs, serverErrs, verdict(errs == 0 && serverErrs == 0))
	for _, e := range l.firstErrs {
		fmt.Fprintln(stdout, "  "+e)
	}
	fmt.Fprintf(stdout, "flat: the last sample at most the median of the samples from %s on, plus the larger of the share or the amount shown\n",
		laterFrom(cfg.Duration).Round(time.Second))
	for _, c := range checkFlat(samples, cfg.Duration) {
		fmt.Fprintf(stdout, "  %-21s median %8.1f  last %8.1f  bound %8.1f (+%.0f%% or +%.0f%s): %s\n",
			c.rule.name, c.median, c.last, c.bound, c.rule.rel*100, c.rule.abs, strings.TrimSuffix(" "+c.rule.unit, " "), verdict(c.ok))
	}
	for _, s := range samples {
		if s.goroutineErr != nil || s.fErr != nil {
			fmt.Fprintf(stdout, "  a sample could not be read: %v %v: %s\n", s.goroutineErr, s.fErr, verdict(false))
			break
		}
	}
	switch {
	case listErr != nil:
		fmt.Fprintf(stdout, "data: the A2 list at the end: %v: %s\n", listErr, verdict(false))
	case countErr != nil:
		fmt.Fprintf(stdout, "data: counting the ICC operations: %v: %s\n", countErr, verdict(false))
	default:
		fmt.Fprintf(stdout, "data: the A2 list holds %d ids, %d acknowledged; the database %d ICC operations, %d created: %s\n",
			len(ids.OperationIDs), l.a1IDs.Load(), stored, l.iccOps.Load(),
			verdict(int64(len(ids.OperationIDs)) == l.a1IDs.Load() && stored == l.iccOps.Load()))
	}
	exit := "status 0"
	if exitErr != nil {
		exit = exitErr.Error()
	}
	fmt.Fprintf(stdout, "SIGTERM: the service exited with %s: %s\n", exit, verdict(exitErr == nil))
	fmt.Fprintf(stdout, "total time %s\n", time.Since(started).Round(time.Second))
	if failures > 0 {
		fmt.Fprintln(stdout, "result: FAIL")
		return fmt.Errorf("soak: %d checks failed (the service's log: %s)", failures, logFile.Name())
	}
	fmt.Fprintln(stdout, "result: pass")
	os.RemoveAll(work)
	return nil
}

// goroutineCount reads the first line of /debug/pprof/goroutine?debug=1,
// "goroutine profile: total N", from the service's ADMIN_ADDR.
func goroutineCount(ctx context.Context, client *http.Client, svc *process) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+svc.pprofAddr+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	first, _, _ := strings.Cut(string(b), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(first, "goroutine profile: total "))
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %q (does the service serve ADMIN_ADDR?)", first)
	}
	return n, nil
}

// openFiles counts /proc/PID/fd.
func openFiles(pid int) (int, error) {
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(entries), err
}

func printSamples(w io.Writer, samples []sample) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "at\trequests\treq/s\terrors\t5xx\tp50 ms\tp99 ms\tRSS MiB\tgoroutines\topen files\tdb conns\tA1 ids\tICC ops\t")
	for _, s := range samples {
		rate, p50, p99 := "-", "-", "-"
		if s.interval > 0 {
			rate = fmt.Sprintf("%.0f", float64(s.requests)/s.interval.Seconds())
			p50, p99 = fmt.Sprintf("%.1f", s.p50), fmt.Sprintf("%.1f", s.p99)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\t%.1f\t%d\t%d\t%d\t%d\t%d\t\n",
			s.at.Round(time.Second), s.requests, rate, s.errors, s.serverErrors, p50, p99,
			float64(s.rss)/(1<<20), s.goroutines, s.files, s.dbConns, s.a1IDs, s.iccOps)
	}
	tw.Flush()
}

func printKinds(w io.Writer, l *soakLoad) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "request\tcount\terrors\tp50 ms\tp99 ms\tmax ms")
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range soakKinds {
		t := l.perKind[k]
		if t.n == 0 {
			continue
		}
		run := loadRun{latencies: t.latencies}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\n", k, t.n, t.errors, run.percentile(50), run.percentile(99), run.percentile(100))
	}
	tw.Flush()
}
