package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/opsvc/gen"
	"example.com/opsvc/internal/dbtest"
	"example.com/opsvc/internal/spectest"
)

// The reliability tests of issue 8: each provokes one fault that used to hang
// the service, lose its answer or its exit status, and checks that the answer
// now comes, in time and in the contract's format.

// Settings of the tests on a failing database, and how long an answer may
// take then: twice DATABASE_TIMEOUT (a COMMIT is bounded by the driver's read
// timeout after the context's), and room for a machine busy with -race.
const (
	testDatabaseTimeout = time.Second
	testReadyTimeout    = 500 * time.Millisecond
	answerBound         = 2*testDatabaseTimeout + 3*time.Second
	readyBound          = testReadyTimeout + 3*time.Second
)

// mustProxiedMySQL returns the URL of a new database on TEST_MYSQL_DSN's
// server, reached through a proxy that the test can make hang, refuse or cut.
func mustProxiedMySQL(t *testing.T) (string, *dbtest.Proxy) {
	t.Helper()
	if os.Getenv("TEST_MYSQL_DSN") == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("TEST_MYSQL_DSN is not set; CI runs the database fault tests")
		}
		t.Skip("TEST_MYSQL_DSN is not set: the database fault tests need MariaDB/MySQL")
	}
	u, err := url.Parse(mustMySQLDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	p := dbtest.NewProxy(t, u.Host)
	u.Host = p.Addr()
	return u.String(), p
}

// faultEnv is the service's environment on a database at dbURL, with short
// timeouts.
func faultEnv(dbURL string) map[string]string {
	return map[string]string{
		"DATABASE_URL":     dbURL,
		"DATABASE_TIMEOUT": testDatabaseTimeout.String(),
		"READY_TIMEOUT":    testReadyTimeout.String(),
	}
}

// timedClient gives up on an answer after 30 s: a hang fails the test rather
// than blocking it.
var timedClient = &http.Client{Timeout: 30 * time.Second}

// timedDo sends a request like service.do, with a bounded client, and
// returns the answer and how long it took.
func (s *service) timedDo(tb testing.TB, method, path string, body any, hdr ...string) (result, time.Duration) {
	tb.Helper()
	req := s.newRequest(tb, method, path, body, hdr...)
	start := time.Now()
	resp, err := timedClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	spectest.Check(tb, req, resp, b)
	return result{resp.StatusCode, resp.Header, b}, took
}

// within fails tb when an answer took longer than bound.
func within(tb testing.TB, what string, took, bound time.Duration) {
	tb.Helper()
	if took > bound {
		tb.Errorf("%s took %s, want at most %s", what, took.Round(time.Millisecond), bound)
	}
}

// wantUnavailable checks a 503 in the family's format: MSF 020001 with
// data_consistency, or ICC's cause.
func wantUnavailable(tb testing.TB, r result, path, consistency string) {
	tb.Helper()
	if strings.HasPrefix(path, "/v1/") {
		var e gen.MSFError
		if err := json.Unmarshal(r.body, &e); err != nil || r.status != 503 || e.ErrorCode != "020001" || string(e.DataConsistency) != consistency {
			tb.Fatalf("%s: want 503 020001 %q, got %s", path, consistency, r)
		}
		return
	}
	wantICCError(tb, r, 503, "database unreachable")
}

// TestDatabase_frozen: a database that stops answering (as under SIGSTOP) made
// requests hang 12 to 40 s and /readyz 40 s. Now each answers 503 within
// DATABASE_TIMEOUT (READY_TIMEOUT for /readyz), and the service recovers by
// itself.
func TestDatabase_frozen(t *testing.T) {
	t.Parallel()
	dbURL, p := mustProxiedMySQL(t)
	s := mustRunMain(t, faultEnv(dbURL))
	wantStatus(t, putOp(t, s, "frozen", minimal("frozen", "executing", "20261123_100000")), 200)

	p.Set(dbtest.Hang)
	// An MSF notification is one statement that commits on its own: sent
	// to a database that stopped answering, it may yet be applied when the
	// database resumes, so its outcome is unknown. An ICC write hangs at its
	// first statement, before anything could commit: rolled back.
	writes := []struct {
		path        string
		body        any
		hdr         []string
		consistency string
	}{
		{"/v1/operations/frozen", minimal("frozen", "executing", "20261123_100100"), nil, "unknown"},
		{"/v1.0/icc/operations/frozen", iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), []string{"X-Auth-Token", adminToken}, "rolled back"},
	}
	for _, w := range writes {
		r, took := s.timedDo(t, http.MethodPut, w.path, w.body, w.hdr...)
		within(t, "PUT "+w.path, took, answerBound)
		wantUnavailable(t, r, w.path, w.consistency)
	}
	r, took := s.timedDo(t, http.MethodGet, "/readyz", nil)
	within(t, "/readyz", took, readyBound)
	wantStatus(t, r, 503)
	r, took = s.timedDo(t, http.MethodGet, "/healthz", nil)
	within(t, "/healthz", took, time.Second)
	wantStatus(t, r, 200)

	p.Set(dbtest.Pass)
	wantStatus(t, putOp(t, s, "frozen", minimal("frozen", "executing", "20261123_100200")), 200)
	wantStatus(t, s.do(t, http.MethodGet, "/readyz", nil), 200)
}

// TestDatabase_outcomeUnknown: when the connection breaks after a write was
// committed or sent the write may have happened: 503 020001 says data_consistency
// "unknown" (contract section 4), not "rolled back".
func TestDatabase_outcomeUnknown(t *testing.T) {
	t.Parallel()
	dbURL, p := mustProxiedMySQL(t)
	s := mustRunMain(t, faultEnv(dbURL))

	// An MSF notification is written by one statement, which commits on its own.
	p.FailNext("INSERT INTO msf_operations", dbtest.CutAfter)
	r, _ := s.timedDo(t, http.MethodPut, "/v1/operations/unknown", minimal("unknown", "executing", "20261123_100000"))
	wantUnavailable(t, r, "/v1/operations/", "unknown")
	if !strings.Contains(string(r.body), "may or may not have been recorded") {
		t.Errorf("the message does not say the write may have happened: %s", r)
	}
	// It did happen, here: the server received the INSERT, and runs it
	// although its client is gone (on a busy machine, not at once).
	deadline := time.Now().Add(5 * time.Second)
	got, _ := getOp(t, s, "unknown")
	for got.status == http.StatusNotFound && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		got, _ = getOp(t, s, "unknown")
	}
	wantStatus(t, got, 200)

	// The COMMIT of this write: background jobs (the webhook dispatcher's
	// housekeeping) commit transactions of their own on the same proxy.
	p.FailNextAfter("INSERT INTO `icc_operations`", "COMMIT", dbtest.HangAfter)
	r, took := s.timedDo(t, http.MethodPut, "/v1.0/icc/operations/unknown",
		iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "X-Auth-Token", adminToken)
	within(t, "B2 with no answer to COMMIT", took, answerBound)
	wantICCError(t, r, 503, "may or may not have been recorded")
}

// TestStart_databaseDown: the service exited at once when the database was
// down at start. Now it serves (alive, not ready, 503 in each family's format)
// and is ready as soon as the database answers.
func TestStart_databaseDown(t *testing.T) {
	t.Parallel()
	dbURL, p := mustProxiedMySQL(t)
	p.Set(dbtest.Refuse)
	s := mustRunMain(t, faultEnv(dbURL))

	wantStatus(t, s.do(t, http.MethodGet, "/healthz", nil), 200)
	wantStatus(t, s.do(t, http.MethodGet, "/readyz", nil), 503)
	requests := []struct {
		method, path string
		body         any
	}{
		{http.MethodPut, "/v1/operations/late", minimal("late", "executing", "20261123_100000")},
		{http.MethodGet, "/v1/operations", nil},
		{http.MethodGet, "/v1/operations/late", nil},
		{http.MethodPut, "/v1.0/icc/operations/late", iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00")},
		{http.MethodGet, "/v1.0/icc/operations", nil},
	}
	for _, rq := range requests {
		r, took := s.timedDo(t, rq.method, rq.path, rq.body, "X-Auth-Token", adminToken)
		within(t, rq.method+" "+rq.path, took, answerBound)
		wantUnavailable(t, r, rq.path, "rolled back")
	}
	if !strings.Contains(s.logs.String(), "database unreachable: retrying") {
		t.Errorf("the retries are not logged:\n%s", s.logs)
	}

	p.Set(dbtest.Pass)
	deadline := time.Now().Add(30 * time.Second)
	for s.do(t, http.MethodGet, "/readyz", nil).status != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("not ready 30 s after the database came up\nlogs:\n%s", s.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantStatus(t, putOp(t, s, "late", minimal("late", "executing", "20261123_100000")), 200)
	wantStatus(t, putICC(t, s, "late", iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), adminToken), 201)
}

// runErr runs the service with env until it returns by itself (within 30 s)
// and returns its error.
func runErr(t *testing.T, env map[string]string) error {
	t.Helper()
	vars := map[string]string{"LISTEN_ADDR": "127.0.0.1:0", "AUTH_TOKENS_FILE": ""}
	for k, v := range env {
		vars[k] = v
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- run(ctx, func(k string) string { return vars[k] }, io.Discard) }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("run still runs after 30 s")
		return nil
	}
}

func TestStart_databaseDownGivesUp(t *testing.T) {
	t.Parallel()
	dbURL, p := mustProxiedMySQL(t)
	p.Set(dbtest.Refuse)
	t.Run("after DATABASE_START_TIMEOUT", func(t *testing.T) {
		env := faultEnv(dbURL)
		env["DATABASE_START_TIMEOUT"] = "2s"
		start := time.Now()
		err := runErr(t, env)
		if err == nil || !strings.Contains(err.Error(), "DATABASE_START_TIMEOUT") {
			t.Fatalf("run = %v, want an error naming DATABASE_START_TIMEOUT", err)
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Fatalf("gave up after %s, before DATABASE_START_TIMEOUT", d)
		}
	})
	t.Run("at once when DATABASE_START_TIMEOUT is 0", func(t *testing.T) {
		env := faultEnv(dbURL)
		env["DATABASE_START_TIMEOUT"] = "0"
		if err := runErr(t, env); err == nil || !strings.Contains(err.Error(), "open database") {
			t.Fatalf("run = %v, want an error", err)
		}
	})
	t.Run("at once when the password is refused", func(t *testing.T) {
		u, _ := url.Parse(mustMySQLDatabase(t))
		u.User = url.UserPassword("no-such-user", "wrong")
		start := time.Now()
		if err := runErr(t, faultEnv(u.String())); err == nil {
			t.Fatal("run = nil, want an error")
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("gave up after %s: a refused password is no reason to retry", d)
		}
	})
}

// TestClientGone: a client that gives up was logged as a server error (500
// 020002). It is 499 in the access log now, and no failure is logged.
func TestClientGone(t *testing.T) {
	t.Parallel()
	dbURL, p := mustProxiedMySQL(t)
	s := mustRunMain(t, faultEnv(dbURL))
	p.Set(dbtest.Hang)
	defer p.Set(dbtest.Pass)
	body, _ := json.Marshal(minimal("gone", "executing", "20261123_100000"))
	req, _ := http.NewRequest(http.MethodPut, s.URL+"/v1/operations/gone", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "client-gone")
	impatient := &http.Client{Timeout: 200 * time.Millisecond}
	if resp, err := impatient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the request was answered (%s) before the client gave up", resp.Status)
	}
	line := waitForLog(t, s, func(l logLine) bool { return l.Msg == "request" && l.RequestID == "client-gone" })
	if line.Status != 499 {
		t.Errorf("access log status %d, want 499", line.Status)
	}
	if strings.Contains(s.logs.String(), `"msg":"request failed"`) {
		t.Errorf("a client that went away was logged as a failure:\n%s", s.logs)
	}
}

// TestClientGone_halfClosed: a client that closes its side for writing
// after its request still reads the answer, but net/http takes the closing
// for a client gone and cancels the request; the service answered nothing,
// so net/http answered 200 in its stead, and the write had not happened.
// Now the connection is closed without an answer: the outcome is unknown to
// the client, as it is.
func TestClientGone_halfClosed(t *testing.T) {
	t.Parallel()
	dbURL, p := mustProxiedMySQL(t)
	s := mustRunMain(t, faultEnv(dbURL))
	p.Set(dbtest.Hang)
	defer p.Set(dbtest.Pass)
	body, _ := json.Marshal(minimal("half-closed", "executing", "20261123_100000"))
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /v1/operations/half-closed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(answerBound))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("got an answer to a request that was cancelled: %q", got)
	}
}

type logLine struct {
	Msg       string
	Status    int
	RequestID string `json:"request_id"`
}

// waitForLog waits up to 10 s for a log line that match accepts.
func waitForLog(t *testing.T, s *service, match func(logLine) bool) logLine {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, raw := range strings.Split(s.logs.String(), "\n") {
			var l logLine
			if json.Unmarshal([]byte(raw), &l) == nil && match(l) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no such log line after 10 s:\n%s", s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShutdown_drain: on SIGTERM /readyz answers 503 at once, for
// SHUTDOWN_DRAIN_DELAY, while requests are still served; then the listener
// closes and run returns nil (exit 0).
func TestShutdown_drain(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, map[string]string{"SHUTDOWN_DRAIN_DELAY": "1s"})
	wantStatus(t, s.do(t, http.MethodGet, "/readyz", nil), 200)
	sigterm := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()

	deadline := sigterm.Add(300 * time.Millisecond)
	for s.do(t, http.MethodGet, "/readyz", nil).status != 503 {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still 200 300 ms after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Still served while draining, on new connections too.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get(s.URL + "/v1/operations")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("A2 while draining: %v %v", resp, err)
	}
	resp.Body.Close()
	if time.Since(sigterm) > time.Second {
		t.Fatal("too slow to tell: the drain delay is over")
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("run = %v, want nil (exit 0)", err)
		}
		if d := time.Since(sigterm); d < time.Second {
			t.Fatalf("stopped %s after SIGTERM, before SHUTDOWN_DRAIN_DELAY", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return 20 s after SIGTERM")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL, "http://"), time.Second); err == nil {
		t.Fatal("connections are still accepted after the shutdown")
	}
}

// binary is the service run as a process by the tests that signal it.
type binary struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan error // the exit, once
}

// mustExecMain builds and runs the service binary with env on top of the
// test's environment, through `bash -c SHELL` when shell is set (e.g. to
// lower a limit first), and waits for its "listening" line. The process is
// killed when the test ends, if still running.
func mustExecMain(t *testing.T, shell string, env ...string) *binary {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	if shell != "" {
		cmd = exec.Command("bash", "-c", shell+` && exec "$0"`, bin)
	}
	cmd.Env = append(os.Environ(), "LISTEN_ADDR=127.0.0.1:0", "AUTH_TOKENS_FILE=",
		"DATABASE_URL=sqlite:"+t.TempDir()+"/operations.db")
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &binary{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.logs.Write(append(sc.Bytes(), '\n'))
			var l struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "listening" {
				addr <- l.Addr
			}
		}
		b.done <- cmd.Wait()
	}()
	select {
	case b.addr = <-addr:
	case err := <-b.done:
		t.Fatalf("the service exited: %v\nlogs:\n%s", err, b.logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("the service did not start\nlogs:\n%s", b.logs)
	}
	return b
}

// exit sends SIGTERM and waits up to bound for the process to exit.
func (b *binary) exit(t *testing.T, bound time.Duration) error {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-b.done:
		return err
	case <-time.After(bound):
		t.Fatalf("the process did not exit within %s of SIGTERM\nlogs:\n%s", bound, b.logs)
		return nil
	}
}

// TestShutdown_slowClient: a client sending its body slowly held the shutdown
// past SHUTDOWN_TIMEOUT, and the process then exited 1. The contract says exit
// 0: what remains after the timeout is cut, and logged.
func TestShutdown_slowClient(t *testing.T) {
	t.Parallel()
	b := mustExecMain(t, "", "SHUTDOWN_TIMEOUT=1s")
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v1/operations/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	time.Sleep(100 * time.Millisecond) // the request is in flight
	if err := b.exit(t, 15*time.Second); err != nil {
		t.Fatalf("exit: %v (want status 0)\nlogs:\n%s", err, b.logs)
	}
	if !strings.Contains(b.logs.String(), "shutdown timeout: closing the connections still open") {
		t.Errorf("what was cut is not logged:\n%s", b.logs)
	}
}

// TestConnections_limit: idle keep-alive connections used up the file
// descriptors, and new clients were no longer served. Now the service keeps
// at most MAX_CONNECTIONS (by default, what the open-file limit allows) and
// closes idle ones to make room.
func TestConnections_limit(t *testing.T) {
	t.Parallel()
	// 256 descriptors: MAX_CONNECTIONS defaults to 128.
	b := mustExecMain(t, "ulimit -n 256")
	// 300 clients each send a request and keep their connection open.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 300 {
		c, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	// A new client is served, in time.
	c := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	resp, err := c.Get("http://" + b.addr + "/healthz")
	if err != nil {
		t.Fatalf("a new client is not served: %v\nlogs:\n%.3000s", err, b.logs)
	}
	resp.Body.Close()
	t.Logf("a new client behind 300 keep-alive connections was served in %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(b.logs.String(), `"max_connections":128`) {
		t.Errorf("MAX_CONNECTIONS did not default to the open-file limit less 128:\n%.2000s", b.logs)
	}
	if err := b.exit(t, 15*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func TestConnections_limitAboveOpenFiles(t *testing.T) {
	t.Parallel()
	err := runErr(t, map[string]string{"MAX_CONNECTIONS": "100000000"})
	if err == nil || !strings.Contains(err.Error(), "MAX_CONNECTIONS") {
		t.Fatalf("run = %v, want an error naming MAX_CONNECTIONS", err)
	}
}
