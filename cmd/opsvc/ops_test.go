package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"example.com/opsvc/internal/spectest"
	"example.com/opsvc/keystone"
)

// scrape reads the admin listener's /metrics and parses the exposition
// format.
func scrape(tb testing.TB, adminURL string) map[string]*dto.MetricFamily {
	tb.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("/metrics is not the text exposition format: %v", err)
	}
	return mfs
}

// series returns the metrics of family name whose labels include want.
func series(mfs map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// counterValue is the value of the one counter of name with labels want.
func counterValue(tb testing.TB, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	tb.Helper()
	ms := series(mfs, name, want)
	if len(ms) != 1 {
		tb.Fatalf("%s%v: %d series, want 1", name, want, len(ms))
	}
	return ms[0].GetCounter().GetValue()
}

func TestAdmin_metrics(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, map[string]string{"ADMIN_ADDR": "127.0.0.1:0"})
	if s.AdminURL == "" {
		t.Fatalf("no admin listening line:\n%s", s.logs)
	}

	// A1: accepted, repeated, refused backwards, refused invalid.
	wantStatus(t, putOp(t, s, "op-m1", minimal("op-m1", "executing", "20261123_100100")), 200)
	wantStatus(t, putOp(t, s, "op-m1", minimal("op-m1", "executing", "20261123_100100")), 200)
	wantStatus(t, putOp(t, s, "op-m1", minimal("op-m1", "unexecuted", "20261123_100200")), 409)
	wantStatus(t, putOp(t, s, "op-m1", edit(minimal("op-m1", "executing", "20261123_100300"), "status", "sleeping")), 400)
	wantStatus(t, s.do(t, http.MethodGet, "/v1/operations/op-m1", nil), 200)
	// B2: created, then the same again.
	body := iccOp("a80c1728-cc0c-11e6-8080-525400060300", tenantA, "approve_connection", "complete", "2016-12-27 08:15:41")
	wantStatus(t, putICC(t, s, "op-m2", body, adminToken), 201)
	wantStatus(t, putICC(t, s, "op-m2", body, adminToken), 200)

	mfs := scrape(t, s.AdminURL)
	for _, c := range []struct {
		family, outcome string
		want            float64
	}{
		{"msf", "accepted", 1}, {"msf", "repeat", 1}, {"msf", "refused_backwards", 1}, {"msf", "refused_invalid", 1},
		{"msf", "failed", 0}, {"icc", "accepted", 1}, {"icc", "repeat", 1}, {"icc", "refused_backwards", 0},
	} {
		if got := counterValue(t, mfs, "opsvc_writes_total", map[string]string{"family": c.family, "outcome": c.outcome}); got != c.want {
			t.Errorf("opsvc_writes_total{family=%q,outcome=%q} = %v, want %v", c.family, c.outcome, got, c.want)
		}
	}

	// Requests are labelled by route template, never by raw path.
	puts := series(mfs, "opsvc_http_request_duration_seconds",
		map[string]string{"route": "/v1/operations/:operation_id", "method": "PUT"})
	var count uint64
	for _, m := range puts {
		count += m.GetHistogram().GetSampleCount()
	}
	if count != 4 {
		t.Errorf("PUT /v1/operations/:operation_id observed %d times, want 4", count)
	}
	if len(series(mfs, "opsvc_http_request_duration_seconds",
		map[string]string{"route": "/v1/operations/:operation_id", "method": "GET", "status": "200"})) != 1 {
		t.Error("no series for GET /v1/operations/:operation_id 200")
	}
	for _, m := range mfs["opsvc_http_request_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if strings.Contains(l.GetValue(), "op-m") {
				t.Errorf("an id became a label value: %s=%q", l.GetName(), l.GetValue())
			}
		}
	}
	for _, name := range []string{"opsvc_http_requests_in_flight", "opsvc_build_info", "go_sql_open_connections",
		"go_sql_max_open_connections", "go_goroutines", "process_resident_memory_bytes"} {
		if mfs[name] == nil {
			t.Errorf("no %s in /metrics", name)
		}
	}
	if len(series(mfs, "go_sql_max_open_connections", map[string]string{"db_name": "opsvc"})) != 1 {
		t.Error("no database pool statistics for db_name opsvc")
	}

	// The README's Operating it section names every metric of ours.
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range mfs {
		if strings.HasPrefix(name, "opsvc_") || strings.HasPrefix(name, "go_sql_") || strings.HasPrefix(name, "promhttp_") {
			if !bytes.Contains(readme, []byte("`"+name+"`")) {
				t.Errorf("README does not name the metric %s", name)
			}
		}
	}

	// pprof is on the admin listener; neither is on the public one.
	resp, err := http.Get(s.AdminURL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte("goroutine profile: total")) {
		t.Errorf("admin /debug/pprof/goroutine: %d %.100s", resp.StatusCode, b)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		if _, r := s.send(t, http.MethodGet, path, nil); r.status != http.StatusNotFound {
			t.Errorf("public GET %s = %d, want 404", path, r.status)
		}
	}
}

func TestAdmin_offByDefault(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	if s.AdminURL != "" || strings.Contains(s.logs.String(), "admin listening") {
		t.Fatalf("an admin listener without ADMIN_ADDR:\n%s", s.logs)
	}
}

func TestAdmin_pprofAddrIsAnAlias(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, map[string]string{"PPROF_ADDR": "127.0.0.1:0"})
	if s.AdminURL == "" || !strings.Contains(s.logs.String(), "PPROF_ADDR is deprecated") {
		t.Fatalf("PPROF_ADDR: no admin listener or no warning:\n%s", s.logs)
	}
	scrape(t, s.AdminURL)
}

// The README's Configuration table has a row for every variable loadConfig
// reads, and opsvc --help names it.
func TestREADME_configuration(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	_, _ = loadConfig(func(k string) string { read = append(read, k); return "" })
	if len(read) < 20 {
		t.Fatalf("loadConfig read only %q", read)
	}
	for _, k := range read {
		if !bytes.Contains(readme, []byte("| `"+k+"` |")) && !bytes.Contains(readme, []byte("`"+k+"` (")) {
			t.Errorf("README's Configuration table has no row for %s", k)
		}
		if !strings.Contains(usage, k) {
			t.Errorf("opsvc --help does not name %s", k)
		}
	}
}

// The Keystone counters are read from the validator when scraped.
func TestRegisterKeystone(t *testing.T) {
	t.Parallel()
	v, err := keystone.New(keystone.Config{URL: "http://127.0.0.1:1/v3", Username: "u", Password: "p", Project: "s",
		Timeout: 500e6})
	if err != nil {
		t.Fatal(err)
	}
	reg := newRegistry()
	registerKeystone(reg, v)
	if _, err := v.Validate(context.Background(), "some-token"); err == nil {
		t.Fatal("Validate succeeded against nothing")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"opsvc_keystone_cache_misses_total", nil, 1},
		{"opsvc_keystone_cache_hits_total", nil, 0},
		{"opsvc_keystone_validations_total", map[string]string{"result": "unavailable"}, 1},
		{"opsvc_keystone_validations_total", map[string]string{"result": "valid"}, 0},
	} {
		if got := counterValue(t, byName, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// HEAD is answered wherever GET is: the same status and headers, no body,
// and headers openapi.yaml describes for the GET.
func TestHead(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	wantStatus(t, putOp(t, s, "op-h1", notification("op-h1")), 200)
	body := iccOp("a80c1728-cc0c-11e6-8080-525400060300", tenantA, "approve_connection", "complete", "2016-12-27 08:15:41")
	wantStatus(t, putICC(t, s, "op-h2", body, adminToken), 201)
	for _, c := range []struct {
		path, token string
	}{
		{"/v1/operations/op-h1", ""},
		{"/v1/operations/op-missing", ""},
		{"/v1/operations?format=list", ""},
		{"/v1/operations?format=detail-list", ""},
		{"/v1.0/icc/operations", tokenA},
		{"/v1.0/icc/operations", ""},
		{"/v2.0/operations?latest=true", tokenA},
		{"/v2.0/operations/op-h2", tokenA},
		{"/healthz", ""},
		{"/readyz", ""},
	} {
		t.Run(c.path, func(t *testing.T) {
			hdr := []string{}
			if c.token != "" {
				hdr = []string{"X-Auth-Token", c.token}
			}
			getReq, get := s.send(t, http.MethodGet, c.path, nil, hdr...)
			_, head := s.send(t, http.MethodHead, c.path, nil, hdr...)
			if head.status != get.status || len(head.body) != 0 {
				t.Fatalf("HEAD: %d with %d bytes of body; GET: %d", head.status, len(head.body), get.status)
			}
			for _, h := range []string{"Content-Type", "X-Request-Id"} {
				if (head.header.Get(h) == "") != (get.header.Get(h) == "") || (h == "Content-Type" && head.header.Get(h) != get.header.Get(h)) {
					t.Errorf("%s: HEAD %q, GET %q", h, head.header.Get(h), get.header.Get(h))
				}
			}
			// HEAD's headers with GET's body, as the spec describes the GET.
			spectest.Check(t, getReq, &http.Response{StatusCode: head.status, Header: head.header}, get.body)
		})
	}
	// A HEAD is logged as one.
	if !strings.Contains(s.logs.String(), `"method":"HEAD","path":"/v1/operations/op-h1"`) {
		t.Errorf("no access line for HEAD /v1/operations/op-h1:\n%.2000s", s.logs)
	}
}

// 405 names the methods the path has, HEAD among them where GET is.
func TestMethodNotAllowed_allow(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	for _, c := range []struct{ method, path, want string }{
		{http.MethodPost, "/v1/operations/op1", "DELETE, GET, HEAD, PUT"},
		{http.MethodPost, "/v2.0/operations", "GET, HEAD"},
		{http.MethodPut, "/v1.0/icc/operations", "GET, HEAD"},
	} {
		_, r := s.send(t, c.method, c.path, nil, "X-Auth-Token", adminToken)
		if r.status != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s = %d, want 405", c.method, c.path, r.status)
		}
		got := map[string]bool{}
		for _, m := range strings.Split(r.header.Get("Allow"), ",") {
			got[strings.TrimSpace(m)] = true
		}
		for _, m := range strings.Split(c.want, ", ") {
			if !got[m] {
				t.Errorf("%s %s: Allow %q lacks %s", c.method, c.path, r.header.Get("Allow"), m)
			}
		}
	}
}

// opsvc --help and opsvc version answer and exit, starting nothing.
func TestCommands(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"--help"}, 0, "Usage:"},
		{[]string{"-h"}, 0, "ADMIN_ADDR"},
		{[]string{"version"}, 0, "opsvc "},
		{[]string{"serve-please"}, 2, "unknown command"},
	} {
		var out, errOut bytes.Buffer
		handled, status := command(c.args, func(string) string { return "" }, &out, &errOut)
		if !handled || status != c.status || !strings.Contains(out.String()+errOut.String(), c.want) {
			t.Errorf("opsvc %v: handled %v, status %d, output %q; want status %d and %q",
				c.args, handled, status, out.String()+errOut.String(), c.status, c.want)
		}
	}
	if handled, _ := command(nil, nil, io.Discard, io.Discard); handled {
		t.Error("no arguments: handled, want to serve")
	}
}

// The binary built with -ldflags -X main.version says its version.
func TestCommands_versionFromLdflags(t *testing.T) {
	t.Parallel()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "opsvc "+testVersion+" (revision ") {
		t.Fatalf("opsvc version: %v %q", err, out)
	}
}
