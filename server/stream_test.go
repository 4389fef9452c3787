package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/opsvc/internal/spectest"
	"example.com/opsvc/store"
)

// manyIDs lists n ids; half way through it records how many bytes the client
// had already been sent, and it fails at the end when fail is set.
type manyIDs struct {
	fakeStore
	n       int
	fail    bool
	sent    func() int
	sentMid int
}

func (m *manyIDs) PageOperationIDs(_ context.Context, _ store.Page, fn func(string) error) (*store.Cursor, error) {
	for i := range m.n {
		if i == m.n/2 {
			m.sentMid = m.sent()
		}
		if err := fn(fmt.Sprintf("op-%08d", i)); err != nil {
			return nil, err
		}
	}
	if m.fail {
		return nil, errors.New("connection lost mid-list")
	}
	return nil, nil
}

func TestListOperations_streams(t *testing.T) {
	rec := httptest.NewRecorder()
	st := &manyIDs{n: 100000, sent: func() int { return rec.Body.Len() }}
	// serve's recorder can't be watched mid-way, so this test checks the
	// spec itself, after the fact.
	s, err := New(Options{Store: st, AllowedCIDRs: mustPrefixes("127.0.0.0/8")})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/operations", nil)
	req.RemoteAddr = "127.0.0.1:1"
	s.ServeHTTP(rec, req)
	spectest.Check(t, req, rec.Result(), rec.Body.Bytes())
	if rec.Code != 200 {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	// Half the ids were written to the client before the store had produced
	// the rest: the list is not built in memory first.
	if st.sentMid < 500000 {
		t.Fatalf("only %d bytes were sent half way through a 1.5 MB list", st.sentMid)
	}
	var got struct {
		OperationIDs []string `json:"operation_ids"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.OperationIDs) != st.n {
		t.Fatalf("decoded %d ids, err %v", len(got.OperationIDs), err)
	}
}

// lockedBuffer is a log destination written from the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestListOperations_failureMidStreamAborts(t *testing.T) {
	st := &manyIDs{n: 20000, fail: true, sent: func() int { return 0 }}
	var logs lockedBuffer
	s, err := New(Options{Store: st, AllowedCIDRs: mustPrefixes("127.0.0.0/8"), Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/v1/operations")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || err == nil {
		t.Fatalf("status %d, read error %v: a cut list must not look complete", resp.StatusCode, err)
	}
	// The request cut short still has its access line (written in a defer),
	// once, marked aborted; the error is logged once too.
	ts.Close() // waits for the handler to return
	var access, failed int
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		switch m["msg"] {
		case "request":
			access++
			if m["aborted"] != true || m["status"] != float64(200) {
				t.Errorf("access line %s, want status 200 and aborted", l)
			}
		case "error after response started":
			failed++
		}
	}
	if access != 1 || failed != 1 {
		t.Errorf("%d access lines and %d error lines, want 1 and 1:\n%s", access, failed, logs.String())
	}
}

func TestListOperations_failureBeforeFirstBytesIsAnError(t *testing.T) {
	st := &manyIDs{n: 10, fail: true, sent: func() int { return 0 }}
	s, err := New(Options{Store: st, AllowedCIDRs: mustPrefixes("127.0.0.0/8")})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/operations", nil)
	req.RemoteAddr = "127.0.0.1:1"
	rec := serve(t, s, req)
	if rec.Code != 500 {
		t.Fatalf("got %d %s, want 500 020002", rec.Code, rec.Body)
	}
}

var _ Store = (*manyIDs)(nil)

func TestJSONStream_compact(t *testing.T) {
	tests := []struct {
		items []any
		want  string
	}{
		{nil, `{"operations":[]}` + "\n"},
		{[]any{"a"}, `{"operations":["a"]}` + "\n"},
		{[]any{"a", map[string]string{"b": "<&>"}, 3}, `{"operations":["a",{"b":"<&>"},3]}` + "\n"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		st := newJSONStream(rec, "operations", 0)
		for _, v := range tt.items {
			if err := st.add(v); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.finish(nil); err != nil {
			t.Fatal(err)
		}
		if got := rec.Body.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestHealthz(t *testing.T) {
	var logs strings.Builder
	s, err := New(Options{Store: fakeStore{}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"probe-1", "not plain!"} {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Header.Set("X-Request-Id", id)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		spectest.Check(t, req, rec.Result(), rec.Body.Bytes())
		if rec.Code != 200 || rec.Body.String() != "{\"status\":\"ok\"}\n" {
			t.Fatalf("got %d %q", rec.Code, rec.Body)
		}
		got := rec.Header().Get("X-Request-Id")
		if (id == "probe-1") != (got == id) || got == "" {
			t.Errorf("X-Request-Id %q for %q", got, id)
		}
	}
	if logs.Len() != 0 {
		t.Errorf("liveness probes were logged: %s", logs.String())
	}
}

// endlessIDs lists ids until fn fails, then says so on done.
type endlessIDs struct {
	fakeStore
	done chan error
}

func (e *endlessIDs) PageOperationIDs(_ context.Context, _ store.Page, fn func(string) error) (*store.Cursor, error) {
	for i := 0; ; i++ {
		if err := fn(fmt.Sprintf("op-%012d", i)); err != nil {
			e.done <- err
			return nil, err
		}
	}
}

func TestListOperations_clientStopsReading(t *testing.T) {
	st := &endlessIDs{done: make(chan error, 1)}
	s, err := New(Options{Store: st, AllowedCIDRs: mustPrefixes("127.0.0.0/8"), StreamWriteTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/operations")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The client reads nothing more: once the socket buffers are full, the
	// stream's next write waits for the deadline and the list is abandoned.
	select {
	case err := <-st.done:
		if err == nil {
			t.Fatal("the list ended without an error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the list is still being written to a client that stopped reading")
	}
}
