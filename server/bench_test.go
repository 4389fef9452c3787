package server

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/labstack/echo/v4"

	"example.com/opsvc/store"
)

// Benchmarks of the A1 path in process, without a network:
//
//	go test -run '^$' -bench . -benchmem ./server/
//
// The notification is the one cmd/opsbench sends: 3,300 bytes of body
// strings, two target clusters and a rollback with one cluster; even
// iterations create an id, odd ones update it (executing, then completed).

// putOnly is a Store whose PutOperation does nothing. A1 calls nothing
// else; the nil Store it embeds would panic if it did.
type putOnly struct{ Store }

func (putOnly) PutOperation(context.Context, store.Operation) (bool, error) { return false, nil }

func benchBody(n int) string {
	const head, tail = `{"remark":"¥ 接続","pad":"`, `"}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// benchNotification is the A1 body for id; update makes it the second
// notification of the id.
func benchNotification(tb testing.TB, id string, update bool) []byte {
	tb.Helper()
	status, last := "executing", "20261123_101500"
	if update {
		status, last = "completed", "20261123_101501"
	}
	cluster := func(n, method string, req, resp int) map[string]any {
		return map[string]any{
			"cluster_id": n,
			"request":    map[string]any{"uri": "/v1/clusters/" + n + "/slices/" + id, "method": method, "body": benchBody(req)},
			"response":   map[string]any{"status_code": 202, "body": benchBody(resp)},
		}
	}
	b, err := json.Marshal(map[string]any{
		"operation_id":     id,
		"occurred_time":    "20261123_101500",
		"last_update_time": last,
		"status":           status,
		"request":          map[string]any{"uri": "/v1/slices/l2vpn/" + id, "method": "POST", "body": benchBody(1000)},
		"response":         map[string]any{"status_code": 201, "body": benchBody(500)},
		"target_clusters":  []any{cluster("1", "PUT", 500, 150), cluster("2", "PUT", 500, 150)},
		"rollbacks": map[string]any{
			"result":          "completed",
			"occurred_time":   "20261123_101500",
			"target_clusters": []any{cluster("1", "DELETE", 400, 100)},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func newPutRequest(id string, body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPut, "/v1/operations/"+id, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "127.0.0.1:1"
	return req
}

// BenchmarkValidator is the body check and the openapi.yaml validator alone,
// on a valid A1 body.
func BenchmarkValidator(b *testing.B) {
	validate, err := newValidator()
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Store: fakeStore{}})
	if err != nil {
		b.Fatal(err)
	}
	// Routed by Echo, as in the service: the validator finds the operation
	// from the matched route.
	e := echo.New()
	e.HTTPErrorHandler = s.errorHandler
	e.Use(s.readBody, validate)
	e.PUT("/v1/operations/:operation_id", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, newPutRequest("op-bench", []byte(`{"status":5}`)))
	if rec.Code != http.StatusBadRequest {
		b.Fatalf("an invalid body got %d %s: the validator is not in the chain", rec.Code, rec.Body)
	}
	body := benchNotification(b, "op-bench", false)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, newPutRequest("op-bench", body))
		if rec.Code != http.StatusOK {
			b.Fatalf("got %d %s", rec.Code, rec.Body)
		}
	}
}

// benchSQLite is a real SQLite store with that many subscribers of
// operation.terminal.
func benchSQLite(b *testing.B, subscribers int) Store {
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "bench.db"), store.Options{EncodeEvent: EncodeEvent})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	for range subscribers {
		_, err := st.CreateSubscription(context.Background(), store.Subscription{
			URL: "https://receiver.example/hook", Secret: newSecret(), Events: []string{store.EventOperationTerminal},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// BenchmarkServer_PutOperation is A1 through the whole Echo stack (access
// log, auth, body check, validator, handler, conversion), on a store that
// does nothing and on the real SQLite store.
func BenchmarkServer_PutOperation(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) Store
	}{
		{"fake store", func(*testing.B) Store { return putOnly{} }},
		{"sqlite store", func(b *testing.B) Store { return benchSQLite(b, 0) }},
		// With one subscriber of operation.terminal, each completed
		// notification also writes its event (encoded as the service
		// does) in the same transaction.
		{"sqlite store, 1 subscriber", func(b *testing.B) Store { return benchSQLite(b, 1) }},
	}
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			s, err := New(Options{Store: st.open(b), AllowedCIDRs: mustPrefixes("127.0.0.0/8")})
			if err != nil {
				b.Fatal(err)
			}
			// The bodies are made once; each iteration puts its id in
			// (ids have a fixed width, so the client's share stays small).
			const placeholder = "op-bench-XXXXXXXXXX"
			bodies := [2][]byte{benchNotification(b, placeholder, false), benchNotification(b, placeholder, true)}
			i := 0
			for b.Loop() {
				id := fmt.Sprintf("op-bench-%010d", i/2)
				req := newPutRequest(id, bytes.ReplaceAll(bodies[i%2], []byte(placeholder), []byte(id)))
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", id, rec.Code, rec.Body)
				}
				i++
			}
		})
	}
}

// BenchmarkServer_PutOperationParallel is A1 through the whole Echo stack
// from 32 goroutines, as opsbench's 32 connections, on SQLite and (with
// TEST_MYSQL_DSN) MariaDB/MySQL, without and with one subscriber of
// operation.terminal: the cost of the outbox on the write path.
//
//	TEST_MYSQL_DSN=mysql://root:@127.0.0.1:3306/test go test -run '^$' -bench PutOperationParallel ./server/
func BenchmarkServer_PutOperationParallel(b *testing.B) {
	dsns := map[string]func(b *testing.B) string{
		"sqlite": func(b *testing.B) string { return "sqlite:" + filepath.Join(b.TempDir(), "bench.db") },
	}
	if base := os.Getenv("TEST_MYSQL_DSN"); base != "" {
		dsns["mysql"] = func(b *testing.B) string { return benchMySQLDatabase(b, base) }
	}
	for _, backend := range []string{"sqlite", "mysql"} {
		dsn := dsns[backend]
		if dsn == nil {
			continue
		}
		for _, subscribers := range []int{0, 1} {
			b.Run(fmt.Sprintf("%s/%d subscriber", backend, subscribers), func(b *testing.B) {
				st, err := store.Open(context.Background(), dsn(b), store.Options{EncodeEvent: EncodeEvent})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { st.Close() })
				for range subscribers {
					_, err := st.CreateSubscription(context.Background(), store.Subscription{
						URL: "https://receiver.example/hook", Secret: newSecret(), Events: []string{store.EventOperationTerminal},
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				s, err := New(Options{Store: st, AllowedCIDRs: mustPrefixes("127.0.0.0/8")})
				if err != nil {
					b.Fatal(err)
				}
				const placeholder = "op-bench-XXXXXXXXXXXXXXXXXXXXXXXX"
				bodies := [2][]byte{benchNotification(b, placeholder, false), benchNotification(b, placeholder, true)}
				var writers atomic.Int64
				run := benchRuns.Add(1)
				b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					w := writers.Add(1)
					for i := 0; pb.Next(); i++ {
						id := fmt.Sprintf("op-bench-%08d-%06d-%08d", run, w, i/2)
						req := newPutRequest(id, bytes.ReplaceAll(bodies[i%2], []byte(placeholder), []byte(id)))
						rec := httptest.NewRecorder()
						s.ServeHTTP(rec, req)
						if rec.Code != http.StatusOK {
							b.Errorf("%s: %d %s", id, rec.Code, rec.Body)
							return
						}
					}
				})
			})
		}
	}
}

// benchRuns numbers the benchmark runs, whose ids must not meet.
var benchRuns atomic.Int64

// benchMySQLDatabase creates a database for one benchmark on the server of
// base (mysql://USER:PASS@HOST:PORT/DB), dropped when it ends.
func benchMySQLDatabase(b *testing.B, base string) string {
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net, cfg.Addr = "tcp", u.Host
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	name := fmt.Sprintf("opsvc_bench_%d_%d", os.Getpid(), benchRuns.Add(1))
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = db.Exec("DROP DATABASE " + name) })
	u.Path = "/" + name
	return u.String()
}
