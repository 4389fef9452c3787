package kstest

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestProxy(t *testing.T) {
	var conns atomic.Int64 // connections the target got
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	target.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	target.Start()
	defer target.Close()
	p := NewProxy(t, map[string]string{"KEYSTONE_URL": target.URL + "/v3"})

	// One client keeps its connection between requests, as a Keystone client may.
	client := &http.Client{Timeout: 300 * time.Millisecond}
	get := func() (string, error) {
		resp, err := client.Get(p.URL() + "/auth/tokens")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	wantPass := func(what string) {
		t.Helper()
		if got, err := get(); err != nil || got != "/v3/auth/tokens" {
			t.Fatalf("%s: got %q, %v; want the target's answer", what, got, err)
		}
	}
	wantFail := func(what string) time.Duration {
		t.Helper()
		start := time.Now()
		if got, err := get(); err == nil {
			t.Fatalf("%s: got %q, want an error", what, got)
		}
		return time.Since(start)
	}

	wantPass("pass")
	wantPass("pass, the same connection again")

	p.Set(Hang)
	if took := wantFail("hang, on the open connection"); took < client.Timeout {
		t.Fatalf("hang: failed after %s, before the client's timeout", took)
	}
	before := conns.Load()
	wantFail("hang, on a new connection")
	if conns.Load() != before {
		t.Fatal("hang: a new connection reached the target; a single-threaded Keystone would wait on it")
	}

	p.Set(Refuse)
	if took := wantFail("refuse"); took >= client.Timeout {
		t.Fatalf("refuse: failed after %s, want at once", took)
	}

	p.Set(Pass)
	wantPass("pass again")
}
