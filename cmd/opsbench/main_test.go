package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// These tests cover what opsbench decides without a database: the flags,
// the figures, the workloads' shapes and the 127.0.0.1-only rule. `make
// bench` (or `opsbench -quick`) is its test against a real service.

func TestParseConfig(t *testing.T) {
	getenv := func(string) string { return "" }
	t.Run("defaults run everything for 3 runs on opsvc_bench", func(t *testing.T) {
		c, err := parseConfig(nil, getenv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.Runs != 3 || c.Conns != 32 || c.DatabaseURL != defaultDatabaseURL || len(c.Only) != len(sections) {
			t.Fatalf("got %+v", c)
		}
		if n := c.Tenants * c.Connections * c.OpsPerConn; n != 1000000 {
			t.Fatalf("ICC data set of %d operations, want 1,000,000", n)
		}
	})
	t.Run("BENCH_DATABASE_URL is the default of -db", func(t *testing.T) {
		c, err := parseConfig(nil, func(k string) string {
			if k == "BENCH_DATABASE_URL" {
				return "mysql://u:p@127.0.0.1:3307/mine"
			}
			return ""
		}, io.Discard)
		if err != nil || c.DatabaseURL != "mysql://u:p@127.0.0.1:3307/mine" {
			t.Fatalf("got %q, %v", c.DatabaseURL, err)
		}
	})
	t.Run("quick shortens what was not set explicitly", func(t *testing.T) {
		c, err := parseConfig([]string{"-quick", "-tenants", "3"}, getenv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if c.Throughput != time.Second || c.Tenants != 3 || c.MSFOps != 10000 {
			t.Fatalf("got %+v", c)
		}
	})
	t.Run("only picks sections", func(t *testing.T) {
		c, err := parseConfig([]string{"-only", "a1,healthz"}, getenv, io.Discard)
		if err != nil || !c.Only["a1"] || !c.Only["healthz"] || c.Only["b1"] {
			t.Fatalf("got %v, %v", c.Only, err)
		}
	})
	for _, args := range [][]string{
		{"-only", "b2"},
		{"-runs", "0"},
		{"-throughput-time", "2h"},
		{"-buffer-pool", "huge"},
		{"-tenants", "1000", "-connections", "10000"},
		{"extra"},
	} {
		t.Run("refused: "+strings.Join(args, " "), func(t *testing.T) {
			if _, err := parseConfig(args, getenv, io.Discard); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestParseServer(t *testing.T) {
	for raw, ok := range map[string]bool{
		"mysql://root:@127.0.0.1:3306/opsvc_bench":      true,
		"mysql://root:@localhost/opsvc_bench":           true,
		"mysql://root:@db.example.net:3306/opsvc_bench": false,
		"mysql://root:@10.0.0.1:3306/opsvc_bench":       false,
		"mysql://root:@127.0.0.1:3306/":                 false,
		"mysql://root:@127.0.0.1:3306/bad-name":         false,
		"postgres://root:@127.0.0.1/opsvc_bench":        false,
	} {
		s, err := parseServer(raw)
		if (err == nil) != ok {
			t.Errorf("%s: err %v, want ok=%v", raw, err, ok)
		}
		if ok && err == nil && s.serviceURL(s.name+"_a1") != strings.Replace(raw, "opsvc_bench", "opsvc_bench_a1", 1) {
			t.Errorf("%s: service URL %s", raw, s.serviceURL(s.name+"_a1"))
		}
	}
}

func TestLoopbackDial(t *testing.T) {
	if _, err := loopbackDial(context.Background(), "tcp", "192.0.2.1:80"); err == nil {
		t.Fatal("dialled 192.0.2.1")
	}
	client := newHTTPClient(1)
	if _, err := client.Get("http://localhost.example:80/"); err == nil || !strings.Contains(err.Error(), "only connects to 127.0.0.1") {
		t.Fatalf("got %v", err)
	}
}

func TestFigures(t *testing.T) {
	r := loadRun{elapsed: 2 * time.Second}
	for i := 1; i <= 200; i++ {
		r.latencies = append(r.latencies, time.Duration(i)*time.Millisecond)
	}
	if got := r.perSecond(); got != 100 {
		t.Errorf("perSecond = %v", got)
	}
	if p50, p99 := r.percentile(50), r.percentile(99); p50 != 100 || p99 != 198 {
		t.Errorf("p50 %v p99 %v", p50, p99)
	}
	if got := (loadRun{}).percentile(99); !math.IsNaN(got) {
		t.Errorf("p99 of nothing = %v", got)
	}
	f := figure{values: []float64{3, 1, 2}, unit: "ms"}
	if f.median() != 2 || f.String() != "2.00 ms (3.00 1.00 2.00)" {
		t.Errorf("figure %v, median %v", f, f.median())
	}

	bad := []loadRun{{latencies: []time.Duration{1, 2}}, {latencies: []time.Duration{1}, errors: 1, firstErr: io.ErrUnexpectedEOF}}
	if f, first := failed(figure{values: []float64{1, 2}}, bad); f.na != "ERROR: 1 of 4 failed" || first != io.ErrUnexpectedEOF || f.ok() {
		t.Errorf("failed: %q, %v", f.na, first)
	}

	rows := []struct {
		row  row
		want string
	}{
		{row{service: figure{values: []float64{80}}, ideal: figure{values: []float64{100}}, target: target{kind: atLeastX, x: 0.8}}, "pass"},
		{row{service: figure{values: []float64{79}}, ideal: figure{values: []float64{100}}, target: target{kind: atLeastX, x: 0.8}}, "FAIL"},
		{row{service: figure{values: []float64{21}}, ideal: figure{values: []float64{10}}, target: target{kind: atMostX, x: 2}}, "FAIL"},
		{row{service: figure{values: []float64{16}}, ideal: figure{na: "-"}, target: target{kind: atMostUnit, x: 16}}, "pass"},
		{row{service: figure{na: "n/a (endpoint missing)"}, target: target{kind: atMostX, x: 2}}, "n/a"},
		{row{service: figure{na: "ERROR: HTTP 500"}, target: target{kind: atMostX, x: 2}}, "ERROR"},
		{row{service: figure{values: []float64{1}}, ideal: figure{values: []float64{1}}}, "-"},
	}
	for _, tt := range rows {
		if got := tt.row.result(); got != tt.want {
			t.Errorf("%v vs %v, target %v: %s, want %s", tt.row.service, tt.row.ideal, tt.row.target, got, tt.want)
		}
	}
}

func TestA1Workload(t *testing.T) {
	// Half the calls create, half update the id created just before.
	id0, up0 := a1Step("r1", 3, 0)
	id1, up1 := a1Step("r1", 3, 1)
	id2, _ := a1Step("r1", 3, 2)
	if up0 || !up1 || id0 != id1 || id2 == id1 {
		t.Fatalf("steps %s %v, %s %v, %s", id0, up0, id1, up1, id2)
	}
	first, second := a1Notify(id0, false), a1Notify(id0, true)
	// Never backwards: no 409.
	if first.Status != "executing" || second.Status != "completed" || second.LastUpdateTime <= first.LastUpdateTime {
		t.Fatalf("%s %s then %s %s", first.Status, first.LastUpdateTime, second.Status, second.LastUpdateTime)
	}
	n := len(first.Request.Body) + len(first.Response.Body)
	for _, c := range append(first.TargetClusters, first.Rollbacks.TargetClusters...) {
		n += len(c.Request.Body) + len(c.Response.Body)
	}
	if n != 3300 || len(first.TargetClusters) != 2 || len(first.Rollbacks.TargetClusters) != 1 {
		t.Fatalf("%d bytes of bodies, %d target and %d rollback clusters", n, len(first.TargetClusters), len(first.Rollbacks.TargetClusters))
	}
	if !json.Valid([]byte(first.Request.Body)) {
		t.Errorf("body is not JSON text: %s", first.Request.Body)
	}
	// What the load sends is the notification, marshalled.
	for _, update := range []bool{false, true} {
		want, err := json.Marshal(a1Notify(id0, update))
		if err != nil {
			t.Fatal(err)
		}
		if got := a1Body(id0, update); !bytes.Equal(got, want) {
			t.Errorf("update %v: a1Body is\n%s\nwant\n%s", update, got, want)
		}
	}
}

func TestICCDataset(t *testing.T) {
	d := iccDataset{tenants: 10, connections: 3, ops: 10}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	phaseOrder := map[string]string{
		"prepare_connection": "Create", "approve_connection": "Create", "update_connection": "Update", "delete_connection": "Delete",
	}
	tenants := map[string]bool{}
	for tn := range d.tenants {
		id := d.tenantID(tn)
		if len(id) < 1 || len(id) > 64 || tenants[id] {
			t.Fatalf("tenant %d: id %q", tn, id)
		}
		tenants[id] = true
		rows := d.tenantRows(tn, time.Now())
		if len(rows) != d.connections*d.ops {
			t.Fatalf("%d rows", len(rows))
		}
		for i, r := range rows {
			opID, tenant, conn, order, phase, status := r[0].(string), r[1].(string), r[2].(string), r[3].(string), r[4].(string), r[5].(string)
			reception, commit, body := r[6].(time.Time), r[7].(*time.Time), r[8].(string)
			if tenant != id || !uuid.MatchString(conn) || conn != d.connectionID(tn, i/d.ops) || len(opID) > 128 {
				t.Fatalf("row %d: %v", i, r[:3])
			}
			if phaseOrder[phase] != order {
				t.Fatalf("row %d: phase %s with order type %s", i, phase, order)
			}
			if (status == "processing") != (commit == nil) || (commit != nil && commit.Before(reception)) {
				t.Fatalf("row %d: %s committed at %v", i, status, commit)
			}
			if !json.Valid([]byte(body)) || len(body) < 150 || len(body) > 300 {
				t.Fatalf("row %d: body of %d bytes: %s", i, len(body), body)
			}
			if i%d.ops > 0 && !reception.After(rows[i-1][6].(time.Time)) {
				t.Fatalf("row %d: reception times of a connection do not rise", i)
			}
		}
	}
	if d.tenantID(0) != "39852f6f42a74d2b82f7099f78d0393a" {
		t.Error("tenant 0 is not testdata's tenant-a")
	}
}

func TestFetchCountsItemsAcrossReads(t *testing.T) {
	item := `{"operation_id":"x","request_body":{"a":1}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"operations":[`)
		for i := range 5000 {
			if i > 0 {
				io.WriteString(w, ",")
			}
			io.WriteString(w, item)
			if i%7 == 0 {
				w.(http.Flusher).Flush() // reads end at odd places
			}
		}
		io.WriteString(w, "]}\n")
	}))
	defer srv.Close()
	b := &bench{}
	n, err := b.fetch(context.Background(), newHTTPClient(1), srv.URL, "")
	if err != nil || n != 5000 {
		t.Fatalf("got %d items, %v", n, err)
	}
}

func TestLastLine(t *testing.T) {
	var sb strings.Builder
	l := &lastLine{w: &sb}
	io.WriteString(l, "{\"msg\":\"starting\"}\n")
	io.WriteString(l, "opsvc: open database: refused\nopsvc: schema too new\n")
	io.WriteString(l, "\n")
	if got := l.String(); got != "opsvc: schema too new" {
		t.Errorf("last line %q", got)
	}
	if !strings.HasPrefix(sb.String(), "{\"msg\"") {
		t.Errorf("not passed on: %q", sb.String())
	}
}

func TestParseSoakConfig(t *testing.T) {
	getenv := func(string) string { return "" }
	c, err := parseSoakConfig(nil, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Duration != 10*time.Minute || c.Every != time.Minute || c.Conns != 32 || c.DatabaseURL != defaultDatabaseURL {
		t.Fatalf("defaults: got %+v", c)
	}
	for _, args := range [][]string{
		{"-duration", "1s"},
		{"-duration", "1m", "-every", "1m"},
		{"-conns", "0"},
		{"-whole-every", "0s"},
		{"extra"},
	} {
		t.Run("refused: "+strings.Join(args, " "), func(t *testing.T) {
			if _, err := parseSoakConfig(args, getenv, io.Discard); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestCheckFlat(t *testing.T) {
	// A 10-minute run sampled every minute; resources grow by step a
	// minute from minute 2 on.
	run := func(rss, goroutines, files, db int) []sample {
		var out []sample
		for m := range 11 {
			out = append(out, sample{at: time.Duration(m) * time.Minute,
				rss: int64(40+rss*m) << 20, goroutines: 100 + goroutines*m, files: 60 + files*m, dbConns: 20})
		}
		return out
	}
	results := func(samples []sample) map[string]bool {
		out := map[string]bool{}
		for _, c := range checkFlat(samples, 10*time.Minute) {
			out[c.rule.name] = c.ok
		}
		return out
	}
	if got := results(run(0, 0, 0, 0)); !got["RSS"] || !got["goroutines"] || !got["open files"] || !got["database connections"] {
		t.Fatalf("flat resources: %v", got)
	}
	// The median of minutes 2 to 10 is minute 6: the last is 4 steps above.
	leaks := results(run(2, 20, 5, 0))
	if leaks["RSS"] || leaks["goroutines"] || leaks["open files"] || !leaks["database connections"] {
		t.Fatalf("2 MiB, 20 goroutines and 5 files a minute are leaks: %v", leaks)
	}
	noise := run(0, 0, 0, 0)
	noise[3].rss += 30 << 20 // a spike in the middle is no leak
	noise[10].goroutines += 30
	if got := results(noise); !got["RSS"] || !got["goroutines"] {
		t.Fatalf("noise taken for a leak: %v", got)
	}
}
