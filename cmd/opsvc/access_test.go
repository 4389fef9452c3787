package main

import (
	"net"
	"net/http"
	"testing"
)

func TestMSF_allowList(t *testing.T) {
	t.Parallel()
	// 127.0.0.1, where the tests connect from, is outside this allow-list.
	s := mustRunMain(t, map[string]string{"MSF_ALLOWED_CIDRS": "10.0.0.0/8, 192.0.2.7"})
	body := minimal("acl1", "executing", "20261123_100000")
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		hdr    []string
		status int
	}{
		{"no token", "PUT", "/v1/operations/acl1", body, nil, 403},
		{"unknown token", "PUT", "/v1/operations/acl1", body, []string{"X-Auth-Token", "nope"}, 403},
		{"tenant token", "PUT", "/v1/operations/acl1", body, []string{"X-Auth-Token", tokenA}, 403},
		{"forwarded headers are ignored", "PUT", "/v1/operations/acl1", body, []string{
			"X-Forwarded-For", "10.1.2.3", "X-Real-IP", "10.1.2.3", "Forwarded", "for=10.1.2.3"}, 403},
		{"list without a token", "GET", "/v1/operations", nil, nil, 403},
		{"get without a token", "GET", "/v1/operations/acl1", nil, nil, 403},
		{"admin token may write", "PUT", "/v1/operations/acl1", body, []string{"X-Auth-Token", adminToken}, 200},
		{"admin token may read", "GET", "/v1/operations/acl1", nil, []string{"X-Auth-Token", adminToken}, 200},
		{"admin token may list", "GET", "/v1/operations?format=detail-list", nil, []string{"X-Auth-Token", adminToken}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.do(t, tt.method, tt.path, tt.body, tt.hdr...)
			if tt.status == 403 {
				wantMSFError(t, r, 403, "990003", "")
				return
			}
			wantStatus(t, r, tt.status)
		})
	}
}

func TestMSF_allowListDefault(t *testing.T) {
	t.Parallel()
	t.Run("127.0.0.0/8 is allowed without a token", func(t *testing.T) {
		s := mustRunMain(t, nil)
		wantStatus(t, putOp(t, s, "acl2", minimal("acl2", "executing", "20261123_100000")), 200)
	})
	t.Run("::1 is allowed without a token", func(t *testing.T) {
		ln, err := net.Listen("tcp", "[::1]:0")
		if err != nil {
			t.Logf("no IPv6 loopback here (%v): checking the IPv4 default only", err)
			return
		}
		ln.Close()
		s := mustRunMain(t, map[string]string{"LISTEN_ADDR": "[::1]:0"})
		wantStatus(t, s.do(t, http.MethodGet, "/v1/operations", nil), 200)
	})
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, map[string]string{"MSF_ALLOWED_CIDRS": "10.0.0.0/8", "AUTH_TOKENS_FILE": ""})
	for _, p := range []string{"/healthz", "/readyz"} {
		r := s.do(t, http.MethodGet, p, nil)
		if r.status != 200 || string(r.body) != "{\"status\":\"ok\"}\n" {
			t.Fatalf("%s: got %s", p, r)
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Fatalf("%s: no X-Request-Id", p)
		}
	}
	t.Run("without a tokens file every ICC request is 401", func(t *testing.T) {
		wantICCError(t, s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", adminToken), 401, "Unauthorized")
	})
}
