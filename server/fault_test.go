package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"example.com/opsvc/store"
)

// waitingStore answers every call only when the caller's ctx ends, with its
// error, as a store does whose database stopped answering.
type waitingStore struct{ fakeStore }

func (waitingStore) Ping(ctx context.Context) error {
	<-ctx.Done()
	return fmt.Errorf("ping: %w", ctx.Err())
}

func (waitingStore) PutOperation(ctx context.Context, _ store.Operation) error {
	<-ctx.Done()
	return fmt.Errorf("put operation: %w", ctx.Err())
}

// logLines parses the JSON log lines in b.
func logLines(tb testing.TB, b *bytes.Buffer) []map[string]any {
	tb.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			tb.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// A client that goes away is not a server error: the access log says 499,
// and nothing is logged as a failure (it was 500 020002).
func TestServer_clientGoneIs499(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s, err := New(Options{Store: waitingStore{}, AllowedCIDRs: mustPrefixes("127.0.0.0/8"), Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	const put = `{"operation_id":"a","occurred_time":"20261123_100000","last_update_time":"20261123_100000","status":"executing","request":{"uri":"/x","method":"POST","body":""}}`
	req := httptest.NewRequest(http.MethodPut, "/v1/operations/a", strings.NewReader(put)).WithContext(ctx)
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "127.0.0.1:1234"
	time.AfterFunc(50*time.Millisecond, cancel)
	s.ServeHTTP(httptest.NewRecorder(), req)

	lines := logLines(t, &logs)
	if len(lines) != 1 {
		t.Fatalf("want the access log line only, got %d lines:\n%s", len(lines), logs.String())
	}
	if l := lines[0]; l["msg"] != "request" || l["status"] != float64(499) {
		t.Fatalf("want an access log line with status 499, got %s", logs.String())
	}
}

func TestServer_readyz(t *testing.T) {
	t.Parallel()
	t.Run("a database that does not answer is not ready, within the ready timeout", func(t *testing.T) {
		s, err := New(Options{Store: waitingStore{}, ReadyTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() { done <- serve(t, s, httptest.NewRequest(http.MethodGet, "/readyz", nil)) }()
		select {
		case w := <-done:
			if w.Code != 503 {
				t.Fatalf("got %d %s, want 503", w.Code, w.Body)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("/readyz did not answer within 5 s")
		}
	})
	t.Run("a draining server is not ready, and serves the rest", func(t *testing.T) {
		s, err := New(Options{Store: fakeStore{}, AllowedCIDRs: mustPrefixes("127.0.0.0/8")})
		if err != nil {
			t.Fatal(err)
		}
		if w := serve(t, s, httptest.NewRequest(http.MethodGet, "/readyz", nil)); w.Code != 200 {
			t.Fatalf("before Drain: got %d %s, want 200", w.Code, w.Body)
		}
		s.Drain()
		if w := serve(t, s, httptest.NewRequest(http.MethodGet, "/readyz", nil)); w.Code != 503 {
			t.Fatalf("after Drain: got %d %s, want 503", w.Code, w.Body)
		}
		req := httptest.NewRequest(http.MethodGet, "/v1/operations", nil)
		req.RemoteAddr = "127.0.0.1:1234"
		if w := serve(t, s, req); w.Code != 200 {
			t.Fatalf("A2 after Drain: got %d %s, want 200", w.Code, w.Body)
		}
	})
}
