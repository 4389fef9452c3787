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
	ks := kstest.Env(t)
	s := mustRunMain(t, keystoneVars(ks, map[string]string{
		"KEYSTONE_CACHE_TTL":    "2s",
		"KEYSTONE_NEGATIVE_TTL": "1s",
		// Keystone's dev server answers one request at a time, every test's: on a
		// loaded machine a call may wait more than the default 5 s for its turn.
		"KEYSTONE_TIMEOUT":  "30s",
		"MSF_ALLOWED_CIDRS": "10.0.0.0/8",
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

// TestKeystone_outage takes Keystone away from one service through a proxy of its own,
// leaving the shared Keystone running. While the proxy refuses or hangs, a token the
// service has not validated gets 503, never 401 (within KEYSTONE_TIMEOUT when Keystone
// hangs), while one it validated within KEYSTONE_CACHE_TTL still gets through; once the
// proxy passes again, so does every token.
func TestKeystone_outage(t *testing.T) {
	t.Parallel()
	// What a hung call costs, and long enough for a call that waits its turn at
	// Keystone's dev server (one request at a time, every test's) on a loaded machine.
	const timeout = 10 * time.Second
	ks := kstest.Env(t)
	proxy := kstest.NewProxy(t, ks)
	s := mustRunMain(t, keystoneVars(ks, map[string]string{
		"KEYSTONE_URL":       proxy.URL(),
		"KEYSTONE_CACHE_TTL": "10m",
		"KEYSTONE_TIMEOUT":   timeout.String(),
	}))
	cached := kstest.UserToken(t, ks, "TENANT_A")
	const unseen = "never-seen-before"
	secrets := []string{cached, unseen, ks["KEYSTONE_PASSWORD"]}
	list := func(t *testing.T, token string) result {
		t.Helper()
		r := s.do(t, "GET", "/v1.0/icc/operations", nil, "X-Auth-Token", token)
		for _, secret := range secrets {
			if strings.Contains(string(r.body), secret) {
				t.Fatalf("a token leaked into a body: %s", r)
			}
		}
		return r
	}
	wantStatus(t, list(t, cached), 200)

	t.Run("Keystone refuses", func(t *testing.T) {
		proxy.Set(kstest.Refuse)
		fresh := kstest.UserToken(t, ks, "TENANT_B")
		secrets = append(secrets, fresh)
		wantICCError(t, list(t, fresh), 503, "identity service")
		wantICCError(t, list(t, unseen), 503, "identity service")
		wantStatus(t, list(t, cached), 200)
	})
	t.Run("Keystone hangs", func(t *testing.T) {
		proxy.Set(kstest.Hang)
		fresh := kstest.UserToken(t, ks, "TENANT_B")
		secrets = append(secrets, fresh)
		start := time.Now()
		wantICCError(t, list(t, fresh), 503, "identity service")
		if took := time.Since(start); took < timeout || took > 2*timeout {
			t.Errorf("503 after %s, want after KEYSTONE_TIMEOUT (%s)", took, timeout)
		}
		wantStatus(t, list(t, cached), 200)
	})
	t.Run("Keystone back", func(t *testing.T) {
		proxy.Set(kstest.Pass)
		fresh := kstest.UserToken(t, ks, "TENANT_B")
		secrets = append(secrets, fresh)
		wantStatus(t, list(t, fresh), 200)
		wantICCError(t, list(t, unseen), 401, "Unauthorized")
	})
	for _, secret := range secrets {
		if strings.Contains(s.logs.String(), secret) {
			t.Fatal("a token or the service's password leaked into the logs")
		}
	}
}
