package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"example.com/opsvc/internal/spectest"
	"example.com/opsvc/store"
)

func TestCheckText(t *testing.T) {
	tests := []struct {
		name, body, field string // field "" when accepted
	}{
		{"plain", `{"a":"x","b":["y"]}`, ""},
		{"non-ASCII and emoji", `{"a":"¥ 接続 😀"}`, ""},
		{"escaped pair", `{"a":"\ud83d\ude00"}`, ""},
		{"escaped backslash before u", `{"a":"\\ud800"}`, ""},
		{"raw 0xFF in a value", "{\"a\":{\"b\":\"x\xff\"}}", "a.b"},
		{"raw 0xFF in an array", "{\"a\":[\"ok\",\"x\xff\"]}", "a[1]"},
		{"overlong slash", "{\"a\":\"\xc0\xaf\"}", "a"},
		{"CESU-8", "{\"a\":\"\xed\xa0\x80\xed\xb0\x80\"}", "a"},
		{"lone high surrogate", `{"a":"\ud800x"}`, "a"},
		{"lone high surrogate at the end", `{"a":"\uD800"}`, "a"},
		{"lone low surrogate", `{"a":[{"b":"\udfff"}]}`, "a[0].b"},
		{"high then not low", `{"a":"\ud800\u0041"}`, "a"},
		{"a bad member name", "{\"a\xff\":1}", "a\ufffd"},
		{"the body itself", "\"\xff\"", "body"},
		{"after values of every kind", "{\"n\":1,\"t\":true,\"z\":null,\"o\":{},\"l\":[1,[2]],\"s\":\"\\ud800\"}", "s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fe := checkText([]byte(tt.body))
			switch {
			case tt.field == "" && fe != nil:
				t.Fatalf("refused: %v", fe)
			case tt.field != "" && (fe == nil || fe.Field != tt.field || !fe.Syntax):
				t.Fatalf("got %+v, want a refusal naming %q", fe, tt.field)
			}
		})
	}
}

func TestCheckStructure(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		body   string
		values int
		ok     bool
	}{
		{`{}`, 1, true},
		{`{"a":[1,2,3],"b":"[[[,,,{{{"}`, 5, true},
		{`{"a":"\"[","b":1}`, 2, true},
		{deep(MaxJSONDepth), MaxJSONDepth, true},
		{deep(MaxJSONDepth + 1), 0, false},
	}
	for _, tt := range tests {
		values, err := checkStructure([]byte(tt.body))
		if (err == nil) != tt.ok || (tt.ok && values != tt.values) {
			t.Errorf("%.40s: %d values, %v", tt.body, values, err)
		}
	}
}

// blockingStore holds every write until release is closed.
type blockingStore struct {
	fakeStore
	started chan struct{}
	release chan struct{}
}

func (b *blockingStore) PutOperation(ctx context.Context, op store.Operation) (bool, error) {
	b.started <- struct{}{}
	<-b.release
	return false, nil
}

func TestReadBody_memoryBound(t *testing.T) {
	st := &blockingStore{started: make(chan struct{}, 1), release: make(chan struct{})}
	body := `{"operation_id":"op1","occurred_time":"20261123_101500","last_update_time":"20261123_101500",` +
		`"status":"executing","request":{"uri":"/x","method":"POST","body":"` + strings.Repeat("x", 1000) + `"}}`
	// Room for one such body at a time.
	s, err := New(Options{Store: st, AllowedCIDRs: mustPrefixes("127.0.0.0/8"), BodyMemory: int64(decodeCostPerByte*len(body) + 500)})
	if err != nil {
		t.Fatal(err)
	}
	put := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPut, "/v1/operations/op1", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		spectest.Check(t, req, rec.Result(), rec.Body.Bytes())
		return rec
	}
	first := make(chan int)
	go func() { first <- put().Code }()
	<-st.started // the first request holds its body's room

	start := time.Now()
	rec := put()
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" ||
		!strings.Contains(rec.Body.String(), `"error_code":"020001"`) {
		t.Fatalf("second request: %d %s (Retry-After %q)", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	if waited := time.Since(start); waited < bodyWait/2 || waited > 5*bodyWait {
		t.Errorf("answered after %v, want about %v", waited, bodyWait)
	}
	close(st.release)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("first request: %d", code)
	}
	// The room is given back when a request ends.
	if rec := put(); rec.Code != http.StatusOK {
		t.Fatalf("after the first ended: %d %s", rec.Code, rec.Body)
	}
}

// panickingStore panics on every write.
type panickingStore struct{ fakeStore }

func (panickingStore) PutOperation(context.Context, store.Operation) (bool, error) { panic("boom") }

func TestPanic_loggedOnceAsJSON(t *testing.T) {
	var logs strings.Builder
	s, err := New(Options{Store: panickingStore{}, AllowedCIDRs: mustPrefixes("127.0.0.0/8"),
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"operation_id":"op1","occurred_time":"20261123_101500","last_update_time":"20261123_101500",` +
		`"status":"executing","request":{"uri":"/x","method":"POST","body":""}}`
	req := httptest.NewRequest(http.MethodPut, "/v1/operations/op1", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	spectest.Check(t, req, rec.Result(), rec.Body.Bytes())
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"error_code":"990001"`) || strings.Contains(rec.Body.String(), "boom") {
		t.Fatalf("got %d %s", rec.Code, rec.Body)
	}
	if n := strings.Count(logs.String(), "boom"); n != 1 {
		t.Fatalf("the panic is logged %d times:\n%s", n, logs.String())
	}
}
