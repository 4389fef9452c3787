package keystone

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/opsvc/internal/kstest"
)

// These tests run against the real Keystone started by scripts/keystone.sh, found by
// kstest: they skip without it, except under CI, where they fail. None stops it.

// configOf returns the service's Config from keystone.env's variables.
func configOf(env map[string]string) Config {
	return Config{
		URL: env["KEYSTONE_URL"], Username: env["KEYSTONE_USERNAME"], Password: env["KEYSTONE_PASSWORD"],
		Project: env["KEYSTONE_PROJECT"], Domain: env["KEYSTONE_DOMAIN"],
		Timeout: keystoneTurn,
	}
}

// keystoneTurn is the Timeout of tests that don't test it. Keystone's dev server answers
// one request at a time, every test's: on a loaded machine (two shared cores) a call that
// comes in a burst, like TestIntegration_ThousandValidationsTenTokens's ten, was seen to
// wait more than the default 5 s for its turn.
const keystoneTurn = 30 * time.Second

func TestIntegration_Validate(t *testing.T) {
	env := kstest.Env(t)
	v := mustNew(t, configOf(env))
	tests := []struct {
		name      string
		token     func(t *testing.T) string
		project   string
		role      string // a role the identity must hold
		notRole   string // a role it must not hold
		wantErr   error
		wantFresh bool // Keystone's Fernet tokens are about 180 characters
	}{
		{
			name:    "a tenant-a member's token gives tenant-a's project and role member",
			token:   func(t *testing.T) string { return kstest.UserToken(t, env, "TENANT_A") },
			project: env["KS_TENANT_A_PROJECT_ID"], role: "member", notRole: "admin", wantFresh: true,
		},
		{
			name:    "a tenant-b member's token gives tenant-b's project",
			token:   func(t *testing.T) string { return kstest.UserToken(t, env, "TENANT_B") },
			project: env["KS_TENANT_B_PROJECT_ID"], role: "member", notRole: "admin", wantFresh: true,
		},
		{
			name:    "the admin's token has role admin",
			token:   func(t *testing.T) string { return kstest.UserToken(t, env, "ADMIN") },
			project: env["KS_ADMIN_PROJECT_ID"], role: "admin", wantFresh: true,
		},
		{
			name:    "a garbage token is invalid",
			token:   func(t *testing.T) string { return fernetLike(t) },
			wantErr: ErrInvalidToken,
		},
		{
			name: "an unscoped token is invalid: it names no tenant",
			token: func(t *testing.T) string {
				return kstest.Token(t, env, env["KS_ADMIN_USER"], env["KS_ADMIN_PASSWORD"], "")
			},
			wantErr: ErrInvalidToken,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token(t)
			id, err := v.Validate(context.Background(), token)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), token) {
					t.Fatalf("the error quotes the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			t.Logf("token of %d characters: project %s, roles %v, expires %s", len(token), id.ProjectID, id.Roles, id.ExpiresAt.Format(time.RFC3339))
			if id.ProjectID != tt.project {
				t.Errorf("project = %q, want %q", id.ProjectID, tt.project)
			}
			if !slices.Contains(id.Roles, tt.role) {
				t.Errorf("roles = %v, want %q among them", id.Roles, tt.role)
			}
			if tt.notRole != "" && slices.Contains(id.Roles, tt.notRole) {
				t.Errorf("roles = %v, want no %q", id.Roles, tt.notRole)
			}
			if !id.ExpiresAt.After(time.Now()) {
				t.Errorf("expires at %s, in the past", id.ExpiresAt)
			}
			if tt.wantFresh && len(token) < 180 {
				t.Errorf("token of %d characters; a Fernet token has about 180", len(token))
			}
		})
	}
}

func TestIntegration_RevokedTokenRefusedOnceCacheEntryEnds(t *testing.T) {
	env := kstest.Env(t)
	// The Validator's clock starts at the real time and moves when told: the cache entry
	// then ends exactly when the test says, with no sleeping.
	clock := &fakeClock{now: time.Now()}
	cfg := configOf(env)
	cfg.CacheTTL = time.Second
	cfg.Now = clock.Now
	v := mustNew(t, cfg)

	token := kstest.UserToken(t, env, "TENANT_A")
	if id := mustValidate(t, v, token); id.ProjectID != env["KS_TENANT_A_PROJECT_ID"] {
		t.Fatalf("project = %q, want tenant-a's", id.ProjectID)
	}
	kstest.Revoke(t, env, token, token) // as its own holder

	clock.Advance(999 * time.Millisecond)
	if _, err := v.Validate(context.Background(), token); err != nil {
		t.Fatalf("within CacheTTL the cached answer stands, got %v", err)
	}
	if got := v.Calls(); got != 1 {
		t.Fatalf("Calls() = %d within CacheTTL, want 1", got)
	}

	clock.Advance(time.Millisecond)
	if _, err := v.Validate(context.Background(), token); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("after CacheTTL: err = %v, want ErrInvalidToken", err)
	}
	if got := v.Calls(); got != 2 {
		t.Fatalf("Calls() = %d after CacheTTL, want 2", got)
	}
}

func TestIntegration_ThousandValidationsTenTokens(t *testing.T) {
	const requests, distinct, workers = 1000, 10, 20
	env := kstest.Env(t)
	v := mustNew(t, configOf(env))

	type minted struct{ token, project string }
	var toks []minted
	for i := range distinct {
		who := []string{"TENANT_A", "TENANT_B"}[i%2]
		toks = append(toks, minted{kstest.UserToken(t, env, who), env["KS_"+who+"_PROJECT_ID"]})
	}

	start := time.Now()
	jobs := make(chan int)
	errs := make(chan error, requests)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				m := toks[i%distinct]
				id, err := v.Validate(context.Background(), m.token)
				if err == nil && id.ProjectID != m.project {
					err = fmt.Errorf("project %q, want %q", id.ProjectID, m.project)
				}
				errs <- err
			}
		})
	}
	for i := range requests {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
	}
	t.Logf("%d validations over %d real tokens (%d workers) in %s: %d Keystone validate calls",
		requests, distinct, workers, time.Since(start).Round(time.Millisecond), v.Calls())
	if got := v.Calls(); got != distinct {
		t.Fatalf("Calls() = %d, want %d", got, distinct)
	}
}

func TestIntegration_Outages(t *testing.T) {
	env := kstest.Env(t)
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"Keystone unreachable (nothing listens on 127.0.0.1:1)", func(c *Config) { c.URL = "http://127.0.0.1:1/v3" }},
		{"the service's password is wrong", func(c *Config) { c.Password = "not-" + c.Password }},
	}
	token := kstest.UserToken(t, env, "TENANT_A")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := configOf(env)
			tt.change(&cfg)
			v := mustNew(t, cfg)
			_, err := v.Validate(context.Background(), token)
			if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrUnavailable and not ErrInvalidToken", err)
			}
		})
	}
}

func TestIntegration_ServiceTokenRevoked(t *testing.T) {
	env := kstest.Env(t)
	cfg, err := configOf(env).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	// Built as New does, keeping the client to reach the service's token.
	c, err := newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := newValidator(cfg, c.lookup)

	mustValidate(t, v, kstest.UserToken(t, env, "TENANT_A"))
	old := c.provider.Token()
	kstest.Revoke(t, env, old, old) // as its own holder

	// Keystone now answers 401 to the service's token: gophercloud logs in again and
	// the validation goes through.
	id := mustValidate(t, v, kstest.UserToken(t, env, "TENANT_B"))
	if id.ProjectID != env["KS_TENANT_B_PROJECT_ID"] {
		t.Fatalf("project = %q, want tenant-b's", id.ProjectID)
	}
	if c.provider.Token() == old {
		t.Fatal("the service still holds its revoked token")
	}
}

// TestIntegration_KeystoneOutage takes Keystone away from one Validator through a proxy
// of its own. While it refuses or hangs, a token not in the cache is ErrUnavailable,
// never ErrInvalidToken (a hung call within Timeout), and cached answers, accepted or
// refused, stand until their TTL ends; the first call once it passes again goes through,
// since an outage is not cached.
func TestIntegration_KeystoneOutage(t *testing.T) {
	t.Parallel()
	env := kstest.Env(t)
	proxy := kstest.NewProxy(t, env)
	clock := &fakeClock{now: time.Now()}
	cfg := configOf(env)
	cfg.URL = proxy.URL()
	cfg.CacheTTL, cfg.NegativeTTL = time.Minute, time.Minute
	// What a hung call costs, and so less than keystoneTurn; still long enough for a
	// call that waits its turn while another test's burst is served.
	cfg.Timeout = 10 * time.Second
	cfg.Now = clock.Now
	v := mustNew(t, cfg)

	cached := kstest.UserToken(t, env, "TENANT_A")
	mustValidate(t, v, cached)
	refused := fernetLike(t)
	wantErr := func(t *testing.T, token string, want error) time.Duration {
		t.Helper()
		start := time.Now()
		_, err := v.Validate(context.Background(), token)
		if !errors.Is(err, want) || (want == ErrUnavailable && errors.Is(err, ErrInvalidToken)) {
			t.Fatalf("err = %v, want %v only", err, want)
		}
		return time.Since(start)
	}
	wantErr(t, refused, ErrInvalidToken)

	for _, tt := range []struct {
		name string
		mode kstest.Mode
	}{{"Keystone refuses", kstest.Refuse}, {"Keystone hangs", kstest.Hang}} {
		t.Run(tt.name, func(t *testing.T) {
			proxy.Set(tt.mode)
			took := wantErr(t, kstest.UserToken(t, env, "TENANT_B"), ErrUnavailable)
			if tt.mode == kstest.Hang && (took < cfg.Timeout || took > 2*cfg.Timeout) {
				t.Errorf("a hung Keystone was given up on after %s, want Timeout (%s)", took, cfg.Timeout)
			}
			calls := v.Calls()
			mustValidate(t, v, cached)
			wantErr(t, refused, ErrInvalidToken)
			if got := v.Calls(); got != calls {
				t.Fatalf("the cached answers asked Keystone: Calls() %d, then %d", calls, got)
			}
		})
	}
	t.Run("cached answers end with their TTL, outage or not", func(t *testing.T) {
		proxy.Set(kstest.Refuse)
		clock.Advance(time.Minute)
		wantErr(t, cached, ErrUnavailable)
		wantErr(t, refused, ErrUnavailable)
	})
	t.Run("Keystone back", func(t *testing.T) {
		proxy.Set(kstest.Pass)
		if id := mustValidate(t, v, cached); id.ProjectID != env["KS_TENANT_A_PROJECT_ID"] {
			t.Fatalf("project = %q, want tenant-a's", id.ProjectID)
		}
		wantErr(t, refused, ErrInvalidToken)
	})
}
