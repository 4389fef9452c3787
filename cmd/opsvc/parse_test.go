package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sendRaw sends raw bytes on a new connection and reads the answer.
func sendRaw(t *testing.T, s *service, raw string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = io.WriteString(conn, raw) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// Requests that net/http refuses before any handler runs used to get its
// plain-text answers; they get the family's JSON error now.
func TestUnparsableRequests(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	bigHeaders := "X-Filler: " + strings.Repeat("a", 1<<20+8192) + "\r\n"
	tests := []struct {
		name, raw string
		status    int
		msfCode   string // "" for an ICC {"cause"} body
	}{
		{"malformed MSF path", "GET /v1/operations/% HTTP/1.1\r\nHost: x\r\n\r\n", 400, "010001"},
		{"malformed ICC path", "GET /v1.0/icc/operations/%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
		{"no Host header", "GET /v1/operations HTTP/1.1\r\n\r\n", 400, "010001"},
		{"MSF headers over 1 MiB", "GET /v1/operations HTTP/1.1\r\nHost: x\r\n" + bigHeaders + "\r\n", 431, "010004"},
		{"ICC headers over 1 MiB", "GET /v2.0/operations HTTP/1.1\r\nHost: x\r\n" + bigHeaders + "\r\n", 431, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := sendRaw(t, s, tt.raw)
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Request-Id") == "" {
				t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, body)
			}
			var e map[string]string
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("not JSON: %s", body)
			}
			if tt.msfCode != "" && (e["error_code"] != tt.msfCode || e["data_consistency"] != "rolled back" || e["error_message"] == "") {
				t.Fatalf("want MSF %s, got %s", tt.msfCode, body)
			}
			if tt.msfCode == "" && e["cause"] == "" {
				t.Fatalf("want an ICC cause, got %s", body)
			}
		})
	}
	t.Run("the service keeps serving", func(t *testing.T) {
		wantStatus(t, s.do(t, http.MethodGet, "/v1/operations", nil), 200)
	})
}
