package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"example.com/opsvc/store"
)

// bench is one opsbench run.
type bench struct {
	cfg      Config
	srv      *dbServer
	admin    *sql.DB
	progress io.Writer

	dataName, a1Name, floorName string
	icc                         iccDataset
	msf                         msfDataset

	work   string // temporary: the tokens file and the servers' logs
	tokens string
	prof   *profiler
	pool   bufferPool
	files  []*os.File

	rows  []row
	notes []string
}

// run parses the flags, measures, and prints the table to stdout; progress
// goes to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	started := time.Now()
	cfg, err := parseConfig(args, getenv, stderr)
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
	b := &bench{
		cfg: cfg, srv: srv, progress: stderr,
		dataName: srv.name,
		icc:      iccDataset{tenants: cfg.Tenants, connections: cfg.Connections, ops: cfg.OpsPerConn},
		msf:      msfDataset{ops: cfg.MSFOps},
	}
	if cfg.Quick {
		b.dataName += "_quick"
	}
	b.a1Name, b.floorName = b.dataName+"_a1", b.dataName+"_floor"
	if b.prof, err = newProfiler(cfg.PprofDir); err != nil {
		return err
	}
	if b.work, err = os.MkdirTemp("", "opsbench-"); err != nil {
		return err
	}
	if b.admin, err = srv.open("", 2, nil); err != nil {
		return err
	}
	defer b.admin.Close()

	loadStart := loadAverage()
	err = b.measure(ctx)
	if err == nil {
		err = ctx.Err() // interrupted: the figures are incomplete
	}
	for _, f := range b.files {
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("%w (servers' logs are in %s)", err, b.work)
	}
	os.RemoveAll(b.work)

	fmt.Fprintf(stdout, "opsbench %s UTC: %d CPUs, load average %s at start, %s at end\n",
		started.UTC().Format("2006-01-02 15:04"), runtime.NumCPU(), loadStart, loadAverage())
	info, err := serverInfo(ctx, b.admin)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database: %s at %s; %s\n", info, srv.url.Host, b.pool)
	if size, err := databaseBytes(ctx, b.admin, b.dataName, b.a1Name, b.floorName); err == nil {
		fmt.Fprintf(stdout, "data: %s holds %d ICC operations (%d tenants x %d connections x %d) and %d MSF operations; %s, %s and %s take %s\n",
			b.dataName, b.icc.rows(), b.icc.tenants, b.icc.connections, b.icc.ops, b.msf.ops, b.dataName, b.a1Name, b.floorName, mib(size))
	}
	fmt.Fprintf(stdout, "runs: %d per row, the median then each run; A1 and /healthz: %d connections for %s; B1/B3: one request at a time, up to %s or %d requests\n\n",
		cfg.Runs, cfg.Conns, cfg.Throughput, cfg.Latency, cfg.MaxReqs)
	if err := printTable(stdout, b.rows); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	for _, n := range append(b.notes, b.prof.notes()...) {
		fmt.Fprintln(stdout, "- "+n)
	}
	fmt.Fprintf(stdout, "- total time %s\n", time.Since(started).Round(time.Second))
	return nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// measure runs the selected sections and collects their rows.
func (b *bench) measure(ctx context.Context) error {
	only := b.cfg.Only
	var err error
	if b.pool, err = ensureBufferPool(ctx, b.admin, b.estimate(), b.cfg.BufferPool); err != nil {
		return err
	}
	b.logf("%s", b.pool)
	if b.tokens, err = writeTokens(b.cfg.TokensFile, b.work, b.icc); err != nil {
		return err
	}
	if only["b1"] || only["b3"] || only["rss"] || only["healthz"] {
		if err := b.dataSections(ctx); err != nil {
			return err
		}
	}
	if only["a1"] {
		if err := b.a1Section(ctx); err != nil {
			return err
		}
	}
	if only["wait"] {
		if err := b.waitSection(ctx); err != nil {
			return err
		}
	}
	return nil
}

// estimate is the buffer pool the data sets need: about 1.2 KB per ICC
// operation with its five indexes, 3 KB per MSF operation with its
// clusters, and room for the A1 runs.
func (b *bench) estimate() int64 {
	return b.icc.rows()*1200 + int64(b.msf.ops)*3000 + 256<<20
}

// startService starts bin/opsvc on database db, its log in the work
// directory as name.log.
func (b *bench) startService(ctx context.Context, db, name string, env ...string) (*process, error) {
	pprofAddr := ""
	if b.prof != nil {
		var err error
		if pprofAddr, err = freeLoopbackAddr(); err != nil {
			return nil, err
		}
	}
	logTo, err := b.logFile(name)
	if err != nil {
		return nil, err
	}
	env = serviceEnv("127.0.0.1:0", b.srv.serviceURL(db), b.tokens, pprofAddr, append(env, b.cfg.ServiceEnv...))
	p, err := startProcess(ctx, "opsvc", b.cfg.Service, nil, env, logTo)
	if err != nil {
		return nil, err
	}
	p.pprofAddr = pprofAddr
	return p, nil
}

func (b *bench) logFile(name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(b.work, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err == nil {
		b.files = append(b.files, f)
	}
	return f, err
}

// dataSections loads (once) and warms the data sets, then measures the
// list, health and memory rows on them.
func (b *bench) dataSections(ctx context.Context) error {
	only := b.cfg.Only
	if err := ensureDatabase(ctx, b.admin, b.dataName); err != nil {
		return err
	}
	// The service creates or upgrades its schema; the loads then fill it.
	svc, err := b.startService(ctx, b.dataName, "opsvc-data")
	if err != nil {
		return err
	}
	defer svc.stop()
	db, err := b.srv.open(b.dataName, loaders+1, map[string]string{"interpolateParams": "true"})
	if err != nil {
		return err
	}
	defer db.Close()
	// The store, for what the service's own code must write: MSF operations
	// (their clusters are JSON columns) and the ICC latest markers. Its
	// timeout is a loader's, not a request's: rebuilding the markers of a
	// million operations is one statement that takes longer than 5 s.
	st, err := store.Open(ctx, b.srv.serviceURL(b.dataName), store.Options{Timeout: loadTimeout})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := loadICC(ctx, db, b.dataName, st, b.icc, b.progress); err != nil {
		return err
	}
	if only["rss"] {
		if err := loadMSF(ctx, db, b.dataName, st, b.msf, b.progress); err != nil {
			return err
		}
	}
	if size, err := databaseBytes(ctx, b.admin, b.dataName); err == nil && size*5/4 > b.pool.Size {
		if b.pool, err = ensureBufferPool(ctx, b.admin, size*5/4, b.cfg.BufferPool); err != nil {
			return err
		}
		b.logf("%s", b.pool)
	}
	b.logf("warming the buffer pool")
	if err := warm(ctx, db, b.dataName, "icc_operations", "icc_latest", "msf_operations"); err != nil {
		return err
	}
	if only["b1"] || only["b3"] {
		if err := b.listSection(ctx, svc, db); err != nil {
			return err
		}
	}
	if only["healthz"] {
		if err := b.healthSection(ctx, svc); err != nil {
			return err
		}
	}
	svc.stop()
	if only["rss"] {
		return b.rssSection(ctx)
	}
	return nil
}

// listSection measures the B1 and B3 rows.
func (b *bench) listSection(ctx context.Context, svc *process, db *sql.DB) error {
	floor, err := newFloorLister(ctx, db, b.dataName, b.icc)
	if err != nil {
		return err
	}
	client := listClient{svc: svc, client: newHTTPClient(1), d: b.icc}
	defer client.client.CloseIdleConnections()
	for _, s := range listShapes(b.icc) {
		if !b.cfg.Only[s.family] {
			continue
		}
		r := row{name: s.name, target: target{kind: atMostX, x: 2}}
		na, err := client.probe(ctx, s)
		switch {
		case err != nil:
			r.service.na = "ERROR: " + err.Error()
		case na != "":
			r.service.na, r.ideal.na = na, "-"
		}
		if r.service.na != "" {
			b.logf("%s: %s", s.name, r.service.na)
			b.rows = append(b.rows, r)
			continue
		}
		q, err := floor.choose(ctx, s)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		var svcRuns, floorRuns []loadRun
		for i := range b.cfg.Runs {
			wait := func() {}
			if i == 0 {
				wait = b.prof.cpu(ctx, svc, slug(s.name), b.cfg.Latency)
			}
			sr := client.serviceRun(ctx, s, i+1, b.cfg)
			wait()
			fr := floor.floorRun(ctx, s, q, i+1, b.cfg)
			svcRuns, floorRuns = append(svcRuns, sr), append(floorRuns, fr)
			b.logf("%s run %d/%d: service p50 %.1f p99 %.1f ms (%d requests), floor p50 %.1f p99 %.1f ms (%d)",
				s.name, i+1, b.cfg.Runs, sr.percentile(50), sr.percentile(99), len(sr.latencies),
				fr.percentile(50), fr.percentile(99), len(fr.latencies))
		}
		r.service = b.failed(s.name, latencyFigure(svcRuns, 99), svcRuns)
		r.ideal = b.failed(s.name+" (ideal)", latencyFigure(floorRuns, 99), floorRuns)
		b.rows = append(b.rows, r)
		b.notes = append(b.notes, fmt.Sprintf("%s: ideal is %s; p50 service %s, ideal %s",
			s.name, q.name, latencyFigure(svcRuns, 50), latencyFigure(floorRuns, 50)))
	}
	return nil
}

// failed marks f as failed when runs had errors, and notes the first one.
func (b *bench) failed(what string, f figure, runs []loadRun) figure {
	f, first := failed(f, runs)
	if f.na != "" {
		b.notes = append(b.notes, fmt.Sprintf("%s: %s, the first: %v", what, f.na, first))
	}
	return f
}

// slug names a profile file after a row.
func slug(name string) string {
	var out strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			out.WriteRune(r)
		case out.Len() > 0 && !strings.HasSuffix(out.String(), "-"):
			out.WriteByte('-')
		}
	}
	return strings.Trim(out.String(), "-")
}

// healthSection measures /healthz of the service beside a bare net/http
// server answering the same body, each a process of its own.
func (b *bench) healthSection(ctx context.Context, svc *process) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logTo, err := b.logFile("bare")
	if err != nil {
		return err
	}
	bare, err := startProcess(ctx, "opsbench serve-bare", self, []string{"serve-bare"}, baseEnv(), logTo)
	if err != nil {
		return err
	}
	defer bare.stop()
	client := newHTTPClient(b.cfg.Conns)
	defer client.CloseIdleConnections()
	get := func(p *process) func(ctx context.Context, _, _ int) error {
		return func(ctx context.Context, _, _ int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url("/healthz"), nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && (resp.StatusCode != http.StatusOK || string(body) != healthBody) {
				err = fmt.Errorf("HTTP %d %q", resp.StatusCode, body)
			}
			return err
		}
	}
	warmFor := min(time.Second, b.cfg.Throughput/4)
	load(ctx, b.cfg.Conns, warmFor, maxCallsPerWorker, get(svc))
	load(ctx, b.cfg.Conns, warmFor, maxCallsPerWorker, get(bare))
	var svcRuns, bareRuns []loadRun
	for i := range b.cfg.Runs {
		wait := func() {}
		if i == 0 {
			wait = b.prof.cpu(ctx, svc, "healthz", b.cfg.Throughput)
		}
		var sr, br loadRun
		inTurns(i, func() {
			sr = load(ctx, b.cfg.Conns, b.cfg.Throughput, maxCallsPerWorker, get(svc))
			wait()
		}, func() {
			br = load(ctx, b.cfg.Conns, b.cfg.Throughput, maxCallsPerWorker, get(bare))
		})
		svcRuns, bareRuns = append(svcRuns, sr), append(bareRuns, br)
		b.logf("GET /healthz run %d/%d: service %.0f/s, bare net/http %.0f/s", i+1, b.cfg.Runs, sr.perSecond(), br.perSecond())
	}
	b.rows = append(b.rows, row{
		name:    fmt.Sprintf("GET /healthz throughput (%d conns)", b.cfg.Conns),
		service: b.failed("GET /healthz", throughputFigure(svcRuns), svcRuns),
		ideal:   b.failed("GET /healthz (ideal)", throughputFigure(bareRuns), bareRuns),
		target:  target{kind: atLeastX, x: 0.9},
	})
	b.notes = append(b.notes, "GET /healthz: ideal is a bare net/http handler answering the same body, in a process of its own (opsbench serve-bare)")
	return nil
}

// inTurns runs run i of a row's two sides: the service's, then the
// ideal's, and every other run the other way round, so that a machine that
// speeds up or slows down during the row (this one's speed wanders by a
// fifth within a minute) favours neither.
func inTurns(i int, service, ideal func()) {
	if i%2 == 1 {
		ideal()
		service()
		return
	}
	service()
	ideal()
}

// rssSection measures how much the service's resident memory grows while it
// streams a whole tenant's B1 list and the A2 detail list, each run in a
// fresh process.
func (b *bench) rssSection(ctx context.Context) error {
	tenantItems := b.icc.connections * b.icc.ops
	streams := []struct {
		name, path, token string
		items             int
	}{
		{fmt.Sprintf("RSS growth, B1 whole tenant (%d items)", tenantItems), "/v1.0/icc/operations", b.icc.token(0), tenantItems},
		{fmt.Sprintf("RSS growth, A2 detail-list (%d items)", b.msf.ops), "/v1/operations?format=detail-list", "", b.msf.ops},
	}
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	for _, s := range streams {
		r := row{name: s.name, service: figure{unit: "MiB"}, ideal: figure{na: "-"}, target: target{kind: atMostUnit, x: 16, unit: "MiB"}}
		for i := range b.cfg.Runs {
			growth, err := b.rssRun(ctx, client, s.path, s.token, s.items, i == 0 && s.token == "")
			if err != nil {
				r.service.na = "ERROR: " + err.Error()
				break
			}
			r.service.values = append(r.service.values, float64(growth)/(1<<20))
			b.logf("%s run %d/%d: %.1f MiB", s.name, i+1, b.cfg.Runs, float64(growth)/(1<<20))
		}
		b.rows = append(b.rows, r)
	}
	b.notes = append(b.notes, "RSS growth: peak VmHWM while streaming the list minus VmRSS just before, in a fresh service process each run (/proc/PID/status; the peak is reset through /proc/PID/clear_refs)")
	return nil
}

// rssRun starts a service, warms it with small requests, and returns how
// far its RSS peaked above where it was, while it streamed path.
func (b *bench) rssRun(ctx context.Context, client *http.Client, path, token string, items int, heapProfile bool) (int64, error) {
	svc, err := b.startService(ctx, b.dataName, "opsvc-rss")
	if err != nil {
		return 0, err
	}
	defer svc.stop()
	warmPaths := []struct{ path, token string }{
		{"/healthz", ""},
		{"/v1/operations/opsbench-none", ""},
		{"/v1.0/icc/operations?connection_id=" + b.icc.connectionID(0, 0) + "&latest=true", b.icc.token(0)},
	}
	for _, w := range warmPaths {
		if _, err := b.fetch(ctx, client, svc.url(w.path), w.token); err != nil {
			return 0, err
		}
	}
	time.Sleep(200 * time.Millisecond)
	pid := svc.pid()
	before, _, err := memory(pid)
	if err != nil {
		return 0, err
	}
	resetErr := resetPeak(pid)
	// Sampling too, in case the peak cannot be reset.
	peak := make(chan int64, 1)
	stopSampling := make(chan struct{})
	go func() {
		var top int64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := memory(pid); err == nil {
				top = max(top, rss)
			}
			select {
			case <-stopSampling:
				peak <- top
				return
			case <-t.C:
			}
		}
	}()
	got, err := b.fetch(ctx, client, svc.url(path), token)
	close(stopSampling)
	top := <-peak
	if err != nil {
		return 0, err
	}
	if got != items {
		return 0, fmt.Errorf("%s: %d items, want %d", path, got, items)
	}
	if _, hwm, err := memory(pid); err == nil && resetErr == nil {
		top = max(top, hwm)
	}
	if heapProfile {
		b.prof.heap(ctx, svc, "a2-detail-list")
	}
	return max(0, top-before), nil
}

// itemKey occurs once in each list item of B1 and A2.
var itemKey = []byte(`"operation_id":`)

// fetch GETs url and returns how many items the answer lists, counted as it
// streams by without decoding it.
func (b *bench) fetch(ctx context.Context, client *http.Client, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return 0, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	n := 0
	buf := make([]byte, 64<<10)
	var tail []byte
	for {
		k, err := resp.Body.Read(buf)
		chunk := append(tail, buf[:k]...)
		n += bytes.Count(chunk, itemKey)
		// Keep what could start a key cut by the next read.
		tail = append([]byte(nil), chunk[max(0, len(chunk)-len(itemKey)+1):]...)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// a1Section measures A1 throughput and latency beside the floor.
func (b *bench) a1Section(ctx context.Context) error {
	for _, db := range []string{b.a1Name, b.floorName} {
		if err := recreate(ctx, b.admin, db); err != nil {
			return err
		}
	}
	floorDB, err := b.srv.open(b.floorName, b.cfg.Conns, a1FloorParams)
	if err != nil {
		return err
	}
	defer floorDB.Close()
	// The floor keeps the relational design the service started from: an
	// operation row and a row per cluster.
	for _, ddl := range a1FloorSchema {
		if _, err := floorDB.ExecContext(ctx, ddl); err != nil {
			return fmt.Errorf("floor schema: %w", err)
		}
	}
	floor := a1Floor{db: floorDB}

	// The webhook receiver of the row with a subscriber is on 127.0.0.1.
	svc, err := b.startService(ctx, b.a1Name, "opsvc-a1", "WEBHOOK_ALLOWED_CIDRS=127.0.0.1/32")
	if err != nil {
		return err
	}
	defer svc.stop()
	client := newHTTPClient(b.cfg.Conns)
	defer client.CloseIdleConnections()

	warmFor := min(time.Second, b.cfg.Throughput/4)
	a1ServiceRun(ctx, svc, client, "warm", b.cfg.Conns, warmFor)
	a1FloorRun(ctx, floor, "warm", b.cfg.Conns, warmFor)
	var svcRuns, floorRuns []loadRun
	for i := range b.cfg.Runs {
		tag := fmt.Sprintf("r%d", i+1)
		wait := func() {}
		if i == 0 {
			wait = b.prof.cpu(ctx, svc, "a1-put", b.cfg.Throughput)
		}
		var sr, fr loadRun
		inTurns(i, func() {
			sr = a1ServiceRun(ctx, svc, client, tag, b.cfg.Conns, b.cfg.Throughput)
			wait()
		}, func() {
			fr = a1FloorRun(ctx, floor, tag, b.cfg.Conns, b.cfg.Throughput)
		})
		svcRuns, floorRuns = append(svcRuns, sr), append(floorRuns, fr)
		b.logf("A1 run %d/%d: service %.0f/s p50 %.1f p99 %.1f ms (%d errors), floor %.0f/s p50 %.1f p99 %.1f ms (%d errors)",
			i+1, b.cfg.Runs, sr.perSecond(), sr.percentile(50), sr.percentile(99), sr.errors,
			fr.perSecond(), fr.percentile(50), fr.percentile(99), fr.errors)
	}
	conns := fmt.Sprintf("(%d conns)", b.cfg.Conns)
	b.rows = append(b.rows,
		row{name: "A1 PUT throughput " + conns, target: target{kind: atLeastX, x: 0.8},
			service: b.failed("A1", throughputFigure(svcRuns), svcRuns), ideal: b.failed("A1 (ideal)", throughputFigure(floorRuns), floorRuns)},
		row{name: "A1 PUT p50 " + conns, service: latencyFigure(svcRuns, 50), ideal: latencyFigure(floorRuns, 50)},
		row{name: "A1 PUT p99 " + conns, service: latencyFigure(svcRuns, 99), ideal: latencyFigure(floorRuns, 99)},
	)
	b.notes = append(b.notes, fmt.Sprintf("A1: half new ids, half updates (executing, then completed a second later), 3,300 bytes of body strings, "+
		"2 target clusters and 1 rollback cluster each; ideal is the same transaction in plain database/sql "+
		"(SELECT ... FOR UPDATE, INSERT or UPDATE, DELETE clusters, one multi-row INSERT, COMMIT) over %d connections "+
		"with interpolateParams=true and tx_isolation=READ-COMMITTED per session, in %s", b.cfg.Conns, b.floorName))
	// Last: it leaves deliveries and marks behind.
	if r, err := b.a1Webhook(ctx, svc, client); err != nil {
		b.logf("A1 with a webhook subscriber: not measured: %v", err)
	} else {
		b.rows = append(b.rows, r)
	}
	return nil
}

// a1Webhook measures A1 with an operation.terminal subscriber, whose
// receiver (here, on 127.0.0.1) answers 204: each completed notification,
// half of the workload, then has an event that the service writes to the
// outbox and delivers. Its ideal is A1 without a subscriber, run by turns
// with it on the same service (the subscription is deleted between), so
// that both meet the same machine and the same database; every other pair
// runs the other way round (inTurns). Each run also says what it cost each
// process in CPU time per request, which tells where a difference comes
// from.
func (b *bench) a1Webhook(ctx context.Context, svc *process, client *http.Client) (row, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return row{}, err
	}
	var received atomic.Int64
	receiver := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			received.Add(1)
			w.WriteHeader(http.StatusNoContent)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = receiver.Serve(ln) }()
	defer receiver.Close()
	hook := "http://" + ln.Addr().String() + "/hook"

	cpu := newCPUMeter(svc.pid())
	// run is one run, with a subscriber or without; it says what the run
	// cost in CPU time, and how many webhooks arrived during it.
	run := func(i int, subscribed bool) (loadRun, string, error) {
		tag, id := fmt.Sprintf("u%d", i+1), ""
		if subscribed {
			tag = fmt.Sprintf("w%d", i+1)
			var err error
			if id, err = subscribe(ctx, client, svc, hook); err != nil {
				return loadRun{}, "", err
			}
		}
		wait := func() {}
		if i == 0 && subscribed {
			wait = b.prof.cpu(ctx, svc, "a1-put-webhook", b.cfg.Throughput)
		}
		before, from := received.Load(), cpu.sample()
		r := a1ServiceRun(ctx, svc, client, tag, b.cfg.Conns, b.cfg.Throughput)
		to := cpu.sample()
		wait()
		say := cpu.perRequest(from, to, len(r.latencies))
		if !subscribed {
			return r, say, nil
		}
		terminal, during := int64(len(r.latencies)/2), received.Load()-before
		// The last round's events arrive just after the run: they are let
		// through before the subscription (and its pending deliveries)
		// goes, and before the next run starts.
		for end := time.Now().Add(5 * time.Second); received.Load()-before < terminal && time.Now().Before(end); {
			time.Sleep(20 * time.Millisecond)
		}
		say += fmt.Sprintf("; %d of its %d terminal notifications' webhooks received during the run, %d in all",
			during, terminal, received.Load()-before)
		return r, say, unsubscribe(ctx, client, svc, id)
	}
	var with, without []loadRun
	for i := range b.cfg.Runs {
		var pair [2]loadRun // without, with
		var says [2]string
		var errs [2]error
		// The second run of a pair is skipped when the first failed.
		inTurns(i, func() {
			if errs[0] == nil {
				pair[1], says[1], errs[1] = run(i, true)
			}
		}, func() {
			if errs[1] == nil {
				pair[0], says[0], errs[0] = run(i, false)
			}
		})
		if err := errors.Join(errs[:]...); err != nil {
			return row{}, err
		}
		without, with = append(without, pair[0]), append(with, pair[1])
		u, w := pair[0], pair[1]
		b.logf("A1 without a webhook subscriber, run %d/%d: %.0f/s p50 %.1f p99 %.1f ms (%d errors), %s",
			i+1, b.cfg.Runs, u.perSecond(), u.percentile(50), u.percentile(99), u.errors, says[0])
		b.logf("A1 with a webhook subscriber, run %d/%d: %.0f/s p50 %.1f p99 %.1f ms (%d errors), %s",
			i+1, b.cfg.Runs, w.perSecond(), w.percentile(50), w.percentile(99), w.errors, says[1])
	}
	name := fmt.Sprintf("A1 PUT throughput, 1 webhook subscriber (%d conns)", b.cfg.Conns)
	b.notes = append(b.notes, name+": ideal is A1 without a subscriber, run by turns with it on the same service (every other pair the other way round); "+
		"an operation.terminal subscriber on 127.0.0.1 answering 204 receives the completed half of the writes (the log says how many arrived during each run, "+
		"and what each run cost the service, the database and opsbench in CPU time per request)")
	return row{name: name, target: target{kind: atLeastX, x: 0.9},
		service: b.failed("A1 with a webhook subscriber", throughputFigure(with), with), ideal: throughputFigure(without)}, nil
}

// subscribe creates an operation.terminal subscription to url and returns
// its id.
func subscribe(ctx context.Context, client *http.Client, svc *process, url string) (string, error) {
	body := `{"url":"` + url + `","events":["operation.terminal"]}`
	answer, err := adminRequest(ctx, client, http.MethodPost, svc.url("/v1/subscriptions"), body, http.StatusCreated)
	if err != nil {
		return "", err
	}
	var sub struct{ ID string }
	if err := json.Unmarshal(answer, &sub); err != nil || sub.ID == "" {
		return "", fmt.Errorf("POST /v1/subscriptions: no id in %s", answer)
	}
	return sub.ID, nil
}

// unsubscribe deletes subscription id (its pending deliveries with it).
func unsubscribe(ctx context.Context, client *http.Client, svc *process, id string) error {
	_, err := adminRequest(ctx, client, http.MethodDelete, svc.url("/v1/subscriptions/"+id), "", http.StatusNoContent)
	return err
}

// adminRequest sends an admin's request and returns the answer's body,
// or an error unless it has status want.
func adminRequest(ctx context.Context, client *http.Client, method, url, body string, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Auth-Token", "admin-token") // testdata/tokens.json's
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: HTTP %d %s", method, url, resp.StatusCode, answer)
	}
	return answer, nil
}

// loadAverage is the one-minute load average, "?" when unknown.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}
