package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
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

func (waitingStore) PutOperation(ctx context.Context, _ store.Operation) (bool, error) {
	<-ctx.Done()
	return false, fmt.Errorf("put operation: %w", ctx.Err())
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
	rec := httptest.NewRecorder()
	// The connection is aborted (net/http recovers http.ErrAbortHandler),
	// so that net/http does not answer 200 in the handler's stead.
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Fatalf("recovered %v, want http.ErrAbortHandler", p)
			}
		}()
		s.ServeHTTP(rec, req)
	}()
	if rec.Body.Len() != 0 {
		t.Fatalf("an answer was written: %s", rec.Body)
	}

	lines := logLines(t, &logs)
	if len(lines) != 1 {
		t.Fatalf("want the access log line only, got %d lines:\n%s", len(lines), logs.String())
	}
	if l := lines[0]; l["msg"] != "request" || l["status"] != float64(499) {
		t.Fatalf("want an access log line with status 499, got %s", logs.String())
	}
}

// slowBody is a request body whose client ran past the server's read
// deadline: net/http fails the read and cancels the request's context.
type slowBody struct{ cancel context.CancelFunc }

func (b slowBody) Read([]byte) (int, error) {
	b.cancel()
	return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
}

// A body not received within the read timeout is answered 400 010001 even
// though net/http cancelled the request's context: the client is still there
// (it was answered nothing, so net/http said 200).
func TestServer_slowBodyIs400(t *testing.T) {
	t.Parallel()
	s, err := New(Options{Store: fakeStore{}, AllowedCIDRs: mustPrefixes("127.0.0.0/8")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequest(http.MethodPut, "/v1/operations/a", io.NopCloser(slowBody{cancel})).WithContext(ctx)
	req.ContentLength = 100
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "127.0.0.1:1234"
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != 400 || !strings.Contains(w.Body.String(), `"010001"`) || !strings.Contains(w.Body.String(), "read timeout") {
		t.Fatalf("got %d %s, want 400 010001 naming the read timeout", w.Code, w.Body)
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
