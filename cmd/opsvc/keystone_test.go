package main

import (
	"strings"
	"testing"
	"time"

	"example.com/opsvc/internal/kstest"
)

// keystoneVars returns the variables that run the service in Keystone mode against the
// real Keystone of ks, with no tokens file, and with more set by more.
func keystoneVars(ks, more map[string]string) map[string]string {
	vars := map[string]string{
		"AUTH_TOKENS_FILE":  "",
		"KEYSTONE_URL":      ks["KEYSTONE_URL"],
		"KEYSTONE_USERNAME": ks["KEYSTONE_USERNAME"],
		"KEYSTONE_PASSWORD": ks["KEYSTONE_PASSWORD"],
		"KEYSTONE_PROJECT":  ks["KEYSTONE_PROJECT"],
		"KEYSTONE_DOMAIN":   ks["KEYSTONE_DOMAIN"],
	}
	for k, v := range more {
		vars[k] = v
	}
	return vars
}

// TestKeystone runs the ICC family, and the MSF admin path, against a real
// Keystone started by scripts/keystone.sh.
func TestKeystone(t *testing.T) {
	t.Parallel()
	ks := kstest.Env(t) // after t.Parallel: see kstest's package comment
	s := mustRunMain(t, keystoneVars(ks, map[string]string{
		"KEYSTONE_CACHE_TTL":    "2s",
		"KEYSTONE_NEGATIVE_TTL": "1s",
		"KEYSTONE_TIMEOUT":      "2s",
		"MSF_ALLOWED_CIDRS":     "10.0.0.0/8",
	}))
	admin := kstest.UserToken(t, ks, "ADMIN")
	tokA := kstest.UserToken(t, ks, "TENANT_A")
	tokB := kstest.UserToken(t, ks, "TENANT_B")
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
		tok := kstest.UserToken(t, ks, "TENANT_A")
		wantStatus(t, s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", tok), 200)
		kstest.Revoke(t, ks, admin, tok)
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
}

// TestKeystone_outage stops the real Keystone under the service: ICC requests get 503,
// never 401, whether their token was seen before or not, and get through again once
// Keystone is back. It holds Keystone exclusive, so it must not call t.Parallel: it runs
// before TestKeystone, which waits for the sequential tests.
func TestKeystone_outage(t *testing.T) {
	const cacheTTL = time.Second
	ks := kstest.EnvExclusive(t)
	s := mustRunMain(t, keystoneVars(ks, map[string]string{
		"KEYSTONE_CACHE_TTL":    cacheTTL.String(),
		"KEYSTONE_NEGATIVE_TTL": "1s",
		"KEYSTONE_TIMEOUT":      "2s",
	}))
	tok := kstest.UserToken(t, ks, "TENANT_A")
	const unseen = "never-seen-before"
	list := func(token string) result {
		t.Helper()
		r := s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", token)
		if strings.Contains(string(r.body), tok) || strings.Contains(string(r.body), unseen) {
			t.Fatalf("a token leaked into a body: %s", r)
		}
		return r
	}

	wantStatus(t, list(tok), 200)
	validated := time.Now()
	kstest.Stop(t, ks)
	time.Sleep(time.Until(validated.Add(cacheTTL + 100*time.Millisecond))) // tok's cache entry ends
	wantICCError(t, list(tok), 503, "identity service")
	wantICCError(t, list(unseen), 503, "identity service")

	kstest.Start(t, ks)
	back := time.Now()
	for {
		r := list(tok)
		if r.status == 200 {
			t.Logf("the token got through %s after Keystone answered again", time.Since(back).Round(10*time.Millisecond))
			break
		}
		wantICCError(t, r, 503, "identity service")
		if time.Since(back) > 30*time.Second {
			t.Fatal("no recovery 30 s after Keystone came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, secret := range []string{tok, unseen, ks["KEYSTONE_PASSWORD"]} {
		if strings.Contains(s.logs.String(), secret) {
			t.Fatal("a token or the service's password leaked into the logs")
		}
	}
}
