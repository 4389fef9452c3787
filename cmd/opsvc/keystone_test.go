package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// keystoneEnv reads the variables scripts/keystone.sh wrote, from the file
// KEYSTONE_ENV_FILE names. Without it the Keystone tests can't run: under CI
// that fails, elsewhere it skips with a message.
func keystoneEnv(tb testing.TB) map[string]string {
	tb.Helper()
	path := os.Getenv("KEYSTONE_ENV_FILE")
	if path == "" {
		if os.Getenv("CI") != "" {
			tb.Fatal("KEYSTONE_ENV_FILE is not set; CI must test against a real Keystone")
		}
		tb.Skip("KEYSTONE_ENV_FILE is not set: run scripts/keystone.sh start and set it to .keystone/keystone.env")
	}
	f, err := os.Open(path)
	if err != nil {
		tb.Fatalf("KEYSTONE_ENV_FILE: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env
}

// ksToken logs a user in to a project and returns the token.
func ksToken(tb testing.TB, ksURL, user, password, project string) string {
	tb.Helper()
	body := fmt.Sprintf(`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":%q,"domain":{"id":"default"},"password":%q}}},"scope":{"project":{"name":%q,"domain":{"id":"default"}}}}}`,
		user, password, project)
	resp, err := http.Post(strings.TrimSuffix(ksURL, "/")+"/auth/tokens", "application/json", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusCreated {
		tb.Fatalf("Keystone login of %s: %s", user, resp.Status)
	}
	return resp.Header.Get("X-Subject-Token")
}

// ksRevoke revokes a token through Keystone's API.
func ksRevoke(tb testing.TB, ksURL, adminToken, token string) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodDelete, strings.TrimSuffix(ksURL, "/")+"/auth/tokens", nil)
	req.Header.Set("X-Auth-Token", adminToken)
	req.Header.Set("X-Subject-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		tb.Fatalf("revoke: %s", resp.Status)
	}
}

// proxy forwards TCP connections to Keystone until it is stopped, so a test
// can take Keystone away from the service, and bring it back on the same
// address, without stopping the Keystone other tests use.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func mustProxy(tb testing.TB, target string) *proxy {
	tb.Helper()
	p := &proxy{target: target, conns: map[net.Conn]bool{}}
	p.start(tb, "127.0.0.1:0")
	tb.Cleanup(p.stop)
	return p
}

func (p *proxy) start(tb testing.TB, addr string) {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *proxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

// stop refuses new connections and cuts the open ones.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// TestKeystone runs the ICC family, and the MSF admin path, against a real
// Keystone started by scripts/keystone.sh.
func TestKeystone(t *testing.T) {
	t.Parallel()
	ks := keystoneEnv(t)
	ksURL := ks["KEYSTONE_URL"]
	u, err := url.Parse(ksURL)
	if err != nil {
		t.Fatal(err)
	}
	px := mustProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = px.addr
	s := mustRunMain(t, map[string]string{
		"AUTH_TOKENS_FILE":      "",
		"KEYSTONE_URL":          viaProxy.String(),
		"KEYSTONE_USERNAME":     ks["KEYSTONE_USERNAME"],
		"KEYSTONE_PASSWORD":     ks["KEYSTONE_PASSWORD"],
		"KEYSTONE_PROJECT":      ks["KEYSTONE_PROJECT"],
		"KEYSTONE_DOMAIN":       ks["KEYSTONE_DOMAIN"],
		"KEYSTONE_CACHE_TTL":    "2s",
		"KEYSTONE_NEGATIVE_TTL": "1s",
		"KEYSTONE_TIMEOUT":      "2s",
		"MSF_ALLOWED_CIDRS":     "10.0.0.0/8",
	})
	admin := ksToken(t, ksURL, ks["KS_ADMIN_USER"], ks["KS_ADMIN_PASSWORD"], ks["KS_ADMIN_PROJECT"])
	tokA := ksToken(t, ksURL, ks["KS_TENANT_A_USER"], ks["KS_TENANT_A_PASSWORD"], ks["KS_TENANT_A_PROJECT"])
	tokB := ksToken(t, ksURL, ks["KS_TENANT_B_USER"], ks["KS_TENANT_B_PASSWORD"], ks["KS_TENANT_B_PROJECT"])
	projA, projB := ks["KS_TENANT_A_PROJECT_ID"], ks["KS_TENANT_B_PROJECT_ID"]
	if len(tokA) <= 32 {
		t.Fatalf("expected a Fernet token longer than 32 characters, got %d", len(tokA))
	}

	t.Run("admin records operations for each tenant", func(t *testing.T) {
		wantStatus(t, putICC(t, s, "ks-a1", iccOp(connA1, projA, "prepare_connection", "processing", "2026-11-23 10:00:00"), admin), 201)
		wantStatus(t, putICC(t, s, "ks-b1", iccOp(connB1, projB, "prepare_connection", "processing", "2026-11-23 10:00:01"), admin), 201)
	})
	t.Run("a tenant may not record", func(t *testing.T) {
		wantICCError(t, putICC(t, s, "ks-a2", iccOp(connA1, projA, "prepare_connection", "processing", "2026-11-23 10:00:00"), tokA), 403, "Forbidden")
	})
	t.Run("each tenant sees only its own operations", func(t *testing.T) {
		if got := listICC(t, s, "", tokA); strings.Join(got, ",") != "ks-a1" {
			t.Fatalf("tenant A sees %v", got)
		}
		if got := listICC(t, s, "", tokB); strings.Join(got, ",") != "ks-b1" {
			t.Fatalf("tenant B sees %v", got)
		}
	})
	t.Run("admin sees every tenant", func(t *testing.T) {
		if got := listICC(t, s, "", admin); strings.Join(got, ",") != "ks-a1,ks-b1" {
			t.Fatalf("admin sees %v", got)
		}
	})
	t.Run("MSF from outside the allow-list: admin token yes, tenant token no", func(t *testing.T) {
		wantStatus(t, s.do(t, "GET", "/v1/operations", nil, "X-Auth-Token", admin), 200)
		wantMSFError(t, s.do(t, "GET", "/v1/operations", nil, "X-Auth-Token", tokA), 403, "990003", "")
	})
	t.Run("a garbage token is 401", func(t *testing.T) {
		for _, tok := range []string{"garbage", strings.Repeat("gAAAAABk", 25), tokA[:len(tokA)-4] + "AAAA"} {
			wantICCError(t, s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", tok), 401, "Unauthorized")
		}
	})
	t.Run("a revoked token is refused within the cache TTL", func(t *testing.T) {
		tok := ksToken(t, ksURL, ks["KS_TENANT_A_USER"], ks["KS_TENANT_A_PASSWORD"], ks["KS_TENANT_A_PROJECT"])
		wantStatus(t, s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", tok), 200)
		ksRevoke(t, ksURL, admin, tok)
		revoked := time.Now()
		for {
			r := s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", tok)
			if r.status == 401 {
				t.Logf("refused %v after revocation (KEYSTONE_CACHE_TTL=2s)", time.Since(revoked).Round(10*time.Millisecond))
				break
			}
			wantStatus(t, r, 200)
			if time.Since(revoked) > 2*time.Second+time.Second {
				t.Fatal("a revoked token was still accepted after the cache TTL")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("Keystone unreachable: 503, never 401, and recovery", func(t *testing.T) {
		addr := px.addr
		px.stop()
		time.Sleep(2100 * time.Millisecond) // let cached validations of tokA expire
		r := s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", tokA)
		wantICCError(t, r, 503, "identity service")
		r = s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", "never-seen-before")
		wantICCError(t, r, 503, "identity service")
		if strings.Contains(string(r.body), "never-seen-before") || strings.Contains(s.logs.String(), tokA) {
			t.Fatal("a token leaked into a body or the logs")
		}
		px.start(t, addr)
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", tokA)
			if r.status == 200 {
				break
			}
			wantStatus(t, r, 503)
			if time.Now().After(deadline) {
				t.Fatal("no recovery 10 s after Keystone came back")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}
