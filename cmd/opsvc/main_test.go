package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"example.com/opsvc/gen"
	"example.com/opsvc/internal/spectest"
)

// The tokens of testdata/tokens.json, which `make run` uses too.
const (
	adminToken = "admin-token"
	tokenA     = "tenant-a-token"
	tokenB     = "tenant-b-token"
	tenantA    = "39852f6f42a74d2b82f7099f78d0393a"
	tenantB    = "5f7ab9b2c4e14e2c9a1f0d3b6e8c7a90"
)

// backend is a database the service can run on.
type backend struct {
	name string
	url  func(tb testing.TB) string // a new, empty database for one test
}

// backends lists SQLite, and MariaDB/MySQL when TEST_MYSQL_DSN is set
// (mysql://root:@127.0.0.1:3306/test). Under CI the MySQL backend is never
// skipped: a missing DSN fails the test.
func backends(tb testing.TB) []backend {
	tb.Helper()
	bs := []backend{{"sqlite", func(tb testing.TB) string {
		return "sqlite:" + filepath.Join(tb.TempDir(), "operations.db")
	}}}
	if os.Getenv("TEST_MYSQL_DSN") != "" {
		bs = append(bs, backend{"mysql", mustMySQLDatabase})
	} else if os.Getenv("CI") != "" {
		tb.Fatal("TEST_MYSQL_DSN is not set; CI must test on MariaDB/MySQL")
	} else {
		tb.Log("TEST_MYSQL_DSN is not set: testing on SQLite only")
	}
	return bs
}

// mustMySQLDatabase creates a database of its own for one test, dropped when
// the test ends, and returns its mysql:// URL.
func mustMySQLDatabase(tb testing.TB) string {
	tb.Helper()
	u, err := url.Parse(os.Getenv("TEST_MYSQL_DSN"))
	if err != nil {
		tb.Fatalf("TEST_MYSQL_DSN: %v", err)
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net, cfg.Addr = "tcp", u.Host
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "opsvc_e2e_" + hex.EncodeToString(b[:])
	if _, err := db.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4"); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE " + name); err != nil {
			tb.Errorf("drop test database: %v", err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// service is the real service, started through run.
type service struct {
	URL string
	// AdminURL is ADMIN_ADDR's, when the test set it.
	AdminURL string
	logs     *syncBuffer
	stop     func() error
}

// mustRunMain starts run on 127.0.0.1:0 with a SQLite database in a temporary
// directory and testdata/tokens.json, overridden by env, and stops it when the
// test ends. It waits for the "listening" log line to learn the address.
func mustRunMain(tb testing.TB, env map[string]string) *service {
	tb.Helper()
	vars := map[string]string{
		"LISTEN_ADDR":      "127.0.0.1:0",
		"DATABASE_URL":     "sqlite:" + filepath.Join(tb.TempDir(), "operations.db"),
		"AUTH_TOKENS_FILE": filepath.Join("..", "..", "testdata", "tokens.json"),
		"LOG_LEVEL":        "info",
	}
	for k, v := range env {
		vars[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, func(k string) string { return vars[k] }, pw)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	addr := make(chan string, 1)
	adminAddr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			logs.Write(append(line, '\n'))
			var l struct{ Msg, Addr string }
			if json.Unmarshal(line, &l) == nil && l.Msg == "listening" {
				addr <- l.Addr
			}
			if json.Unmarshal(line, &l) == nil && l.Msg == "admin listening" {
				adminAddr <- l.Addr
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	s := &service{logs: logs}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = fmt.Errorf("run did not return within 30s of cancel")
			}
		})
		return stopErr
	}
	select {
	case a := <-addr:
		s.URL = "http://" + a
		select {
		case a := <-adminAddr: // logged before the listening line
			s.AdminURL = "http://" + a
		default:
		}
	case err := <-done:
		cancel()
		tb.Fatalf("run: %v\nlogs:\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		tb.Fatalf("service did not start\nlogs:\n%s", logs)
	}
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Errorf("stop: %v", err)
		}
	})
	return s
}

// result is one answer.
type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) String() string { return fmt.Sprintf("%d %.300s", r.status, r.body) }

// do sends a request and checks the answer against openapi.yaml. body may be
// nil (none), a string or []byte (sent as is), or anything else (JSON).
// hdr is pairs of header names and values.
func (s *service) do(tb testing.TB, method, path string, body any, hdr ...string) result {
	tb.Helper()
	req, res := s.send(tb, method, path, body, hdr...)
	resp := &http.Response{StatusCode: res.status, Header: res.header}
	spectest.Check(tb, req, resp, res.body)
	return res
}

// send is do without the spec check, for answers the spec cannot describe
// (paths it does not have).
func (s *service) send(tb testing.TB, method, path string, body any, hdr ...string) (*http.Request, result) {
	tb.Helper()
	req := s.newRequest(tb, method, path, body, hdr...)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return req, result{resp.StatusCode, resp.Header, b}
}

// newRequest builds a request to the service. body may be nil (none), a
// string or []byte (sent as is), or anything else (JSON); hdr is pairs of
// header names and values.
func (s *service) newRequest(tb testing.TB, method, path string, body any, hdr ...string) *http.Request {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// wantMSFError checks an MSF refusal: status, error_code, that error_message
// names field, and data_consistency.
func wantMSFError(tb testing.TB, r result, status int, code, field string) {
	tb.Helper()
	var e gen.MSFError
	if err := json.Unmarshal(r.body, &e); err != nil || r.status != status {
		tb.Fatalf("want %d %s, got %s", status, code, r)
	}
	if e.ErrorCode != code || !strings.Contains(e.ErrorMessage, field) || e.DataConsistency != "rolled back" {
		tb.Fatalf("want %d %s naming %q, got %s", status, code, field, r)
	}
}

// wantICCError checks an ICC refusal: status and a cause containing want.
func wantICCError(tb testing.TB, r result, status int, want string) {
	tb.Helper()
	var e gen.ICCError
	if err := json.Unmarshal(r.body, &e); err != nil || r.status != status || !strings.Contains(e.Cause, want) {
		tb.Fatalf("want %d with cause containing %q, got %s", status, want, r)
	}
}

// wantStatus fails unless r has the status.
func wantStatus(tb testing.TB, r result, status int) {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("want %d, got %s", status, r)
	}
}

// syncBuffer collects log lines from the service's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// JSON documents as maps, for tests that remove or change one field.

// doc is a JSON object built from Go values.
type doc = map[string]any

// clone deep-copies a document.
func clone(d doc) doc {
	b, _ := json.Marshal(d)
	var out doc
	_ = json.Unmarshal(b, &out)
	return out
}

// edit returns a copy of d with the value at a dotted path
// ("target_clusters.0.cluster_id") set to v, or removed when v is del.
func edit(d doc, path string, v any) doc {
	out := clone(d)
	keys := strings.Split(path, ".")
	var cur any = out
	for _, k := range keys[:len(keys)-1] {
		cur = child(cur, k)
	}
	last := keys[len(keys)-1]
	switch c := cur.(type) {
	case map[string]any:
		if v == del {
			delete(c, last)
		} else {
			c[last] = v
		}
	case []any:
		i, _ := strconv.Atoi(last)
		c[i] = v
	}
	return out
}

func child(cur any, k string) any {
	switch c := cur.(type) {
	case map[string]any:
		return c[k]
	case []any:
		i, _ := strconv.Atoi(k)
		return c[i]
	}
	return nil
}

type deleteMarker struct{}

// del removes a field in edit.
var del any = deleteMarker{}
