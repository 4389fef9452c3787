package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Black-box tests: the opsctl binary against the opsvc binary, both built by
// TestMain, the service on SQLite in a temporary directory with
// testdata/tokens.json.

var bin struct{ opsctl, opsvc string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "opsctl-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.opsctl, bin.opsvc = filepath.Join(dir, "opsctl"), filepath.Join(dir, "opsvc")
	for out, pkg := range map[string]string{bin.opsctl: ".", bin.opsvc: "../opsvc"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n", pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	adminToken = "admin-token"
	tokenA     = "tenant-a-token"
	tokenB     = "tenant-b-token"
	tenantA    = "39852f6f42a74d2b82f7099f78d0393a"
	connA1     = "a80c1728-cc0c-11e6-8080-525400060300"
	connA2     = "b1c2d3e4-0000-4000-8000-000000000002"
)

// startService runs the opsvc binary on 127.0.0.1:0 until the test ends and
// answers its URL.
func startService(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(bin.opsvc)
	cmd.Env = append(os.Environ(),
		"LISTEN_ADDR=127.0.0.1:0",
		"DATABASE_URL=sqlite:"+filepath.Join(t.TempDir(), "operations.db"),
		"AUTH_TOKENS_FILE="+filepath.Join("..", "..", "testdata", "tokens.json"),
	)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("opsvc: %v", err)
		}
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var l struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "listening" {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return "http://" + l.Addr
		}
	}
	t.Fatalf("opsvc ended before it listened: %v", sc.Err())
	return ""
}

// result is what one opsctl run printed, and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// opsctl runs the binary with args, the environment env (pairs of NAME=value
// added to a clean one) and stdin.
func opsctl(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin.opsctl, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), code}
}

func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %s", code, r)
	}
}

// jsonOf decodes an opsctl -o json output.
func jsonOf(t *testing.T, r result) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r)
	}
	return v
}

// ids are the values of key in a list output's items.
func ids(t *testing.T, r result, key string) []string {
	t.Helper()
	out := []string{}
	for _, op := range jsonOf(t, r)["operations"].([]any) {
		out = append(out, op.(map[string]any)[key].(string))
	}
	return out
}

func TestOpsctl_usage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"help", "list"}, {"get", "--help"}, {"list", "-h"}, {"put", "--help"}, {"watch", "--help"}} {
		r := opsctl(t, nil, "", args...)
		wantCode(t, r, 0)
		if !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
			t.Errorf("%v: %s", args, r)
		}
	}
	for _, cmd := range []string{"get", "list", "put", "watch"} {
		r := opsctl(t, nil, "", cmd, "--help")
		for _, want := range []string{"Usage: opsctl " + cmd, "-endpoint", "-token", "-api", "Examples:"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s --help has no %q:\n%s", cmd, want, r.stdout)
			}
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"get"}, "want one operation id"},
		{[]string{"get", "a", "b"}, "want one operation id"},
		{[]string{"get", "a", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"get", "a", "-o", "yaml"}, `-o: "yaml" is not table or json`},
		{[]string{"get", "--api", "icc", "a"}, `--api: "icc" is not one of msf, v2`},
		{[]string{"list", "--latest"}, "--latest is a filter of --api icc and v2, not msf"},
		{[]string{"list", "--api", "icc", "--resource-id", connA1}, "--resource-id is a filter of --api v2, not icc"},
		{[]string{"list", "--api", "icc", "--connection-id", "nope"}, `--connection-id: "nope" is not a UUID`},
		{[]string{"list", "--format", "ids"}, `--format: "ids" is not list or detail-list`},
		{[]string{"put", "-f", "/nonexistent.json"}, "-f: open /nonexistent.json"},
		{[]string{"put", "--api", "icc", "-f", "../../testdata/icc-operation.json"}, "--api icc needs the operation's ID"},
		{[]string{"watch", "a", "--interval", "0s"}, "--interval must be positive"},
	} {
		r := opsctl(t, nil, "", tt.args...)
		wantCode(t, r, 1)
		if !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: stderr has no %q: %s", tt.args, tt.want, r)
		}
	}
}

func TestOpsctl_MSF(t *testing.T) {
	t.Parallel()
	url := startService(t)
	env := []string{"OPSCTL_ENDPOINT=" + url}

	// put from a file, the id from the body; then from stdin, the id given.
	r := opsctl(t, env, "", "put", "-f", "../../testdata/notification.json")
	wantCode(t, r, 0)
	if r.stdout != "op-20261123-0001 recorded\n" {
		t.Fatalf("put: %s", r)
	}
	canceled, err := os.ReadFile("../../testdata/msf/03-0011700000001000-canceled.json")
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, opsctl(t, env, string(canceled), "put", "0011700000001000"), 0)

	// get -o json is the service's own answer.
	r = opsctl(t, env, "", "get", "op-20261123-0001", "-o", "json")
	wantCode(t, r, 0)
	resp, err := http.Get(url + "/v1/operations/op-20261123-0001")
	if err != nil {
		t.Fatal(err)
	}
	var direct map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&direct); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := jsonOf(t, r); !reflect.DeepEqual(got, direct) {
		t.Fatalf("get -o json\n got: %v\nwant: %v", got, direct)
	}
	r = opsctl(t, env, "", "get", "op-20261123-0001")
	wantCode(t, r, 0)
	for _, want := range []string{"status:                completed", "last_update_time:      20261123_101512",
		"request:               POST /v1/slices/l2vpn", `{"slice_id":"slice-1","remark":"¥ 接続テスト 🚀"}`, "response.status_code:  201"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("get has no %q:\n%s", want, r.stdout)
		}
	}

	// list, both formats, both outputs.
	r = opsctl(t, env, "", "list", "-o", "json")
	wantCode(t, r, 0)
	if got := jsonOf(t, r)["operation_ids"]; !reflect.DeepEqual(got, []any{"op-20261123-0001", "0011700000001000"}) {
		t.Fatalf("list: %v", got)
	}
	r = opsctl(t, env, "", "list")
	if want := "OPERATION_ID\nop-20261123-0001\n0011700000001000\n"; r.stdout != want {
		t.Fatalf("list table:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = opsctl(t, env, "", "list", "--format", "detail-list", "-o", "json")
	if got := ids(t, r, "operation_id"); !reflect.DeepEqual(got, []string{"op-20261123-0001", "0011700000001000"}) {
		t.Fatalf("detail-list: %v", got)
	}
	r = opsctl(t, env, "", "list", "--format", "detail-list")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "OPERATION_ID") ||
		strings.Join(strings.Fields(lines[2]), " ") != "0011700000001000 canceled 20261123_110000 20261123_110030 POST /v1/slices/l3vpn/slice-2/cps -" {
		t.Fatalf("detail-list table:\n%s", r.stdout)
	}

	// Refusals, by exit code.
	wantCode(t, opsctl(t, env, "", "get", "no-such-op"), 2)
	back := `{"operation_id":"op-20261123-0001","occurred_time":"20261123_101500","last_update_time":"20261123_101600","status":"executing","request":{"uri":"/v1/slices/l2vpn","method":"POST","body":""}}`
	r = opsctl(t, env, back, "put")
	wantCode(t, r, 3)
	if !strings.Contains(r.stderr, "409 Conflict 030007: status: executing would go back from completed") {
		t.Fatalf("backwards: %s", r)
	}
	wantCode(t, opsctl(t, env, `{"operation_id":"x"}`, "put"), 3)
	wantCode(t, opsctl(t, env, "", "get", "op-20261123-0001", "--endpoint", "http://127.0.0.1:1"), 4)
	// --endpoint wins over the environment.
	wantCode(t, opsctl(t, []string{"OPSCTL_ENDPOINT=http://127.0.0.1:1"}, "", "get", "op-20261123-0001", "--endpoint", url), 0)
}

func TestOpsctl_ICC(t *testing.T) {
	t.Parallel()
	url := startService(t)
	env := func(token string) []string { return []string{"OPSCTL_ENDPOINT=" + url, "OPSCTL_TOKEN=" + token} }
	iccOp := func(conn, phase, order, status, reception, resourceType string) string {
		d := map[string]any{"connection_id": conn, "tenant_id": tenantA, "order_type": order, "phase": phase,
			"operation_status": status, "reception_datetime": reception, "request_body": map[string]any{"connection": map[string]any{"name": "n"}}}
		if status != "processing" {
			d["commit_datetime"] = reception
		}
		if resourceType != "" {
			d["resource_type"] = resourceType
		}
		b, _ := json.Marshal(d)
		return string(b)
	}
	r := opsctl(t, env(adminToken), "", "put", "--api", "icc", "op-a80c1728-approve", "-f", "../../testdata/icc-operation.json")
	wantCode(t, r, 0)
	if !strings.HasPrefix(r.stdout, "op-a80c1728-approve created\n") || !strings.Contains(r.stdout, "operation_status:    complete") {
		t.Fatalf("put: %s", r)
	}
	r = opsctl(t, env(adminToken), "", "put", "--api", "icc", "op-a80c1728-approve", "-f", "../../testdata/icc-operation.json", "-o", "json")
	wantCode(t, r, 0)
	if got := jsonOf(t, r); got["operation_id"] != "op-a80c1728-approve" || got["tenant_id"] != tenantA {
		t.Fatalf("replace -o json: %v", got)
	}
	for _, op := range []struct{ id, body string }{
		{"i-2", iccOp(connA2, "prepare_connection", "Create", "complete", "2026-11-20 10:00:00", "tenant_connection_request")},
		{"i-3", iccOp(connA2, "update_connection", "Update", "error", "2026-11-21 10:00:00", "tenant_connection_request")},
		{"i-4", iccOp(connA1, "delete_connection", "Delete", "processing", "2026-11-22 10:00:00", "")},
	} {
		wantCode(t, opsctl(t, env(adminToken), op.body, "put", "--api", "icc", op.id), 0)
	}
	// Only an admin records.
	wantCode(t, opsctl(t, env(tokenA), iccOp(connA1, "prepare_connection", "Create", "processing", "2026-11-22 10:00:00", ""), "put", "--api", "icc", "i-5"), 3)

	all := []string{"op-a80c1728-approve", "i-2", "i-3", "i-4"}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--api", "icc"}, all},
		{[]string{"--api", "icc", "--connection-id", connA2}, []string{"i-2", "i-3"}},
		{[]string{"--api", "icc", "--order-type", "Update"}, []string{"i-3"}},
		{[]string{"--api", "icc", "--phase", "approve_connection"}, []string{"op-a80c1728-approve"}},
		{[]string{"--api", "icc", "--operation-status", "processing"}, []string{"i-4"}},
		{[]string{"--api", "icc", "--latest"}, []string{"i-3", "i-4"}},
		{[]string{"--api", "icc", "--latest", "--connection-id", connA1, "--order-type", "Create"}, []string{"op-a80c1728-approve"}},
		{[]string{"--api", "v2"}, all},
		{[]string{"--api", "v2", "--id", "i-2"}, []string{"i-2"}},
		{[]string{"--api", "v2", "--service-type", "ECL::SDExchange::TenantConnectionRequest"}, []string{"i-2", "i-3"}},
		{[]string{"--api", "v2", "--resource-type", "aws_connection"}, []string{"op-a80c1728-approve", "i-4"}},
		{[]string{"--api", "v2", "--resource-id", connA1}, []string{"op-a80c1728-approve", "i-4"}},
		{[]string{"--api", "v2", "--request-type", "Delete"}, []string{"i-4"}},
		{[]string{"--api", "v2", "--phase", "prepare_connection"}, []string{"i-2"}},
		{[]string{"--api", "v2", "--operation-status", "error"}, []string{"i-3"}},
		{[]string{"--api", "v2", "--latest"}, []string{"i-3", "i-4"}},
	} {
		r := opsctl(t, env(tokenA), "", append([]string{"list", "-o", "json"}, tt.args...)...)
		wantCode(t, r, 0)
		key := "operation_id"
		if tt.args[1] == "v2" {
			key = "id"
		}
		if got := ids(t, r, key); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("list %v: %v, want %v", tt.args, got, tt.want)
		}
	}
	r = opsctl(t, env(tokenA), "", "list", "--api", "v2", "--id", "i-3")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") !=
		"i-3 "+connA2+" tenant_connection_request Update update_connection error 2026-11-21 10:00:00 2026-11-21 10:00:00" {
		t.Fatalf("v2 table:\n%s", r.stdout)
	}
	if r := opsctl(t, env(tokenB), "", "list", "--api", "icc", "-o", "json"); len(ids(t, r, "operation_id")) != 0 {
		t.Fatalf("another tenant sees %s", r.stdout)
	}

	r = opsctl(t, env(tokenA), "", "get", "--api", "v2", "i-2")
	wantCode(t, r, 0)
	if !strings.Contains(r.stdout, "resource_type:       tenant_connection_request") {
		t.Fatalf("get v2:\n%s", r.stdout)
	}
	wantCode(t, opsctl(t, env(tokenB), "", "get", "--api", "v2", "i-2"), 2)
	r = opsctl(t, env(tokenA), "", "list", "--api", "icc", "--order-type", "Rename")
	wantCode(t, r, 3)
	if !strings.Contains(r.stderr, "order_type") {
		t.Fatalf("refusal does not name the parameter: %s", r)
	}
	wantCode(t, opsctl(t, env(""), "", "list", "--api", "icc"), 3)
	wantCode(t, opsctl(t, env("no-such-token"), "", "list", "--api", "v2"), 3)
	// --token wins over the environment.
	wantCode(t, opsctl(t, env("no-such-token"), "", "list", "--api", "v2", "--token", tokenA), 0)
}

// watcher is a running opsctl watch whose output is read line by line.
type watcher struct {
	cmd    *exec.Cmd
	lines  *bufio.Scanner
	stderr bytes.Buffer
}

func startWatch(t *testing.T, url string, args ...string) *watcher {
	t.Helper()
	w := &watcher{cmd: exec.Command(bin.opsctl, append([]string{"watch", "--endpoint", url, "--token", adminToken, "--interval", "50ms", "--for", "2m"}, args...)...)}
	out, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Stderr = &w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.lines = bufio.NewScanner(out)
	t.Cleanup(func() { _ = w.cmd.Process.Kill(); _ = w.cmd.Wait() })
	return w
}

// next waits for the watch's next line.
func (w *watcher) next(t *testing.T) string {
	t.Helper()
	if !w.lines.Scan() {
		t.Fatalf("watch printed nothing more; stderr: %s", w.stderr.String())
	}
	return w.lines.Text()
}

// exit waits for the watch to end and answers its exit code.
func (w *watcher) exit(t *testing.T) int {
	t.Helper()
	for w.lines.Scan() {
		t.Errorf("unexpected line: %s", w.lines.Text())
	}
	err := w.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestOpsctl_watch(t *testing.T) {
	t.Parallel()
	url := startService(t)
	env := []string{"OPSCTL_ENDPOINT=" + url, "OPSCTL_TOKEN=" + adminToken}
	msf := func(id, status, last, sub string) string {
		d := map[string]any{"operation_id": id, "occurred_time": "20261123_100000", "last_update_time": last, "status": status,
			"request": map[string]any{"uri": "/v1/slices/l2vpn", "method": "POST", "body": "{}"}}
		if sub != "" {
			d["sub_status"] = sub
		}
		if status == "completed" || status == "failed" {
			d["response"] = map[string]any{"status_code": 200, "body": "{}"}
		}
		b, _ := json.Marshal(d)
		return string(b)
	}
	put := func(body string, args ...string) {
		wantCode(t, opsctl(t, env, body, append([]string{"put"}, args...)...), 0)
	}

	t.Run("until completed, a line a change", func(t *testing.T) {
		put(msf("w-1", "unexecuted", "20261123_100000", ""))
		w := startWatch(t, url, "w-1")
		for _, step := range []struct{ want, next string }{
			{"w-1  unexecuted  last_update_time 20261123_100000", msf("w-1", "executing", "20261123_100001", "step 1 of 2")},
			{"w-1  executing  last_update_time 20261123_100001  step 1 of 2", msf("w-1", "executing", "20261123_100002", "step 2 of 2")},
			{"w-1  executing  last_update_time 20261123_100002  step 2 of 2", msf("w-1", "completed", "20261123_100003", "")},
			{"w-1  completed  last_update_time 20261123_100003", ""},
		} {
			if line := w.next(t); !strings.HasSuffix(line, step.want) {
				t.Fatalf("line %q, want it to end with %q", line, step.want)
			}
			if step.next != "" {
				put(step.next)
			}
		}
		if code := w.exit(t); code != 0 {
			t.Fatalf("exit %d; stderr: %s", code, w.stderr.String())
		}
	})
	t.Run("failed is exit 5", func(t *testing.T) {
		put(msf("w-2", "failed", "20261123_100000", ""))
		r := opsctl(t, env, "", "watch", "w-2", "-o", "json")
		wantCode(t, r, 5)
		if got := jsonOf(t, r); got["status"] != "failed" {
			t.Fatalf("-o json: %v", got)
		}
	})
	t.Run("not found is exit 2", func(t *testing.T) {
		wantCode(t, opsctl(t, env, "", "watch", "w-none"), 2)
	})
	t.Run("--for passing is exit 6", func(t *testing.T) {
		put(msf("w-3", "executing", "20261123_100000", ""))
		r := opsctl(t, env, "", "watch", "w-3", "--interval", "20ms", "--for", "200ms")
		wantCode(t, r, 6)
		if !strings.Contains(r.stderr, "w-3: still executing after 200ms") {
			t.Fatalf("%s", r)
		}
	})
	t.Run("the end shows at once, whatever the interval (the service's long poll)", func(t *testing.T) {
		put(msf("w-4", "executing", "20261123_100000", ""))
		w := startWatch(t, url, "w-4", "--interval", "1m")
		if line := w.next(t); !strings.HasSuffix(line, "w-4  executing  last_update_time 20261123_100000") {
			t.Fatalf("line %q", line)
		}
		put(msf("w-4", "completed", "20261123_100001", ""))
		start := time.Now()
		if line := w.next(t); !strings.HasSuffix(line, "w-4  completed  last_update_time 20261123_100001") {
			t.Fatalf("line %q", line)
		}
		// Reading every interval would take up to a minute.
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("the end showed %s after the write, with --interval 1m", d)
		}
		if code := w.exit(t); code != 0 {
			t.Fatalf("exit %d; stderr: %s", code, w.stderr.String())
		}
	})
	t.Run("ICC v2.0 until complete", func(t *testing.T) {
		icc := func(status string) string {
			d := map[string]any{"connection_id": connA1, "tenant_id": tenantA, "order_type": "Create", "phase": "prepare_connection",
				"operation_status": status, "reception_datetime": "2026-11-20 10:00:00", "request_body": map[string]any{}}
			if status != "processing" {
				d["commit_datetime"] = "2026-11-20 10:00:05"
			}
			b, _ := json.Marshal(d)
			return string(b)
		}
		put(icc("processing"), "--api", "icc", "w-icc")
		w := startWatch(t, url, "--api", "v2", "w-icc")
		if line := w.next(t); !strings.HasSuffix(line, "w-icc  processing  prepare_connection") {
			t.Fatalf("line %q", line)
		}
		put(icc("complete"), "--api", "icc", "w-icc")
		if line := w.next(t); !strings.HasSuffix(line, "w-icc  complete  prepare_connection  committed 2026-11-20 10:00:05") {
			t.Fatalf("line %q", line)
		}
		if code := w.exit(t); code != 0 {
			t.Fatalf("exit %d; stderr: %s", code, w.stderr.String())
		}
	})
}

// TestOpsctl_serverErrors: a 5xx is exit 4, and watch retries through it.
func TestOpsctl_serverErrors(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error_code":"020001","error_message":"database unreachable","data_consistency":"rolled back"}`))
			return
		}
		_, _ = w.Write([]byte(`{"operation_id":"x","occurred_time":"20261123_100000","last_update_time":"20261123_100000","status":"completed","request":{"uri":"/v1/x","method":"POST","body":""},"response":{}}`))
	}))
	t.Cleanup(srv.Close)
	env := []string{"OPSCTL_ENDPOINT=" + srv.URL}
	r := opsctl(t, env, "", "get", "x")
	wantCode(t, r, 4)
	if !strings.Contains(r.stderr, "503 Service Unavailable 020001: database unreachable") {
		t.Fatalf("%s", r)
	}
	r = opsctl(t, env, "", "watch", "x", "--interval", "10ms")
	wantCode(t, r, 0)
	if !strings.Contains(r.stderr, "retrying") || !strings.Contains(r.stdout, "x  completed") {
		t.Fatalf("%s", r)
	}
}
