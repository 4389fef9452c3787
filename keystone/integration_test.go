package keystone

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
)

// These tests run against a real Keystone started by scripts/keystone.sh. They read its
// keystone.env from KEYSTONE_ENV_FILE, or the same variables from the environment. Without
// either they skip, except under CI, where they fail: CI must never skip them.

// keystoneEnvKeys are the variables of keystone.env that the tests use.
var keystoneEnvKeys = []string{
	"KEYSTONE_URL", "KEYSTONE_USERNAME", "KEYSTONE_PASSWORD", "KEYSTONE_PROJECT",
	"KS_TENANT_A_USER", "KS_TENANT_A_PASSWORD", "KS_TENANT_A_PROJECT", "KS_TENANT_A_PROJECT_ID",
	"KS_TENANT_B_USER", "KS_TENANT_B_PASSWORD", "KS_TENANT_B_PROJECT", "KS_TENANT_B_PROJECT_ID",
	"KS_ADMIN_USER", "KS_ADMIN_PASSWORD", "KS_ADMIN_PROJECT", "KS_ADMIN_PROJECT_ID",
}

// keystoneEnv holds keystone.env's variables.
type keystoneEnv map[string]string

// config returns the service's Config from env.
func (e keystoneEnv) config() Config {
	return Config{
		URL: e["KEYSTONE_URL"], Username: e["KEYSTONE_USERNAME"], Password: e["KEYSTONE_PASSWORD"],
		Project: e["KEYSTONE_PROJECT"], Domain: e["KEYSTONE_DOMAIN"],
	}
}

// mustKeystoneEnv returns the real Keystone's variables, or skips (fails under CI).
func mustKeystoneEnv(tb testing.TB) keystoneEnv {
	tb.Helper()
	env := keystoneEnv{}
	if path := os.Getenv("KEYSTONE_ENV_FILE"); path != "" {
		env = mustReadEnvFile(tb, path)
	} else {
		for _, k := range append(keystoneEnvKeys, "KEYSTONE_DOMAIN") {
			if v, ok := os.LookupEnv(k); ok {
				env[k] = v
			}
		}
	}
	var missing []string
	for _, k := range keystoneEnvKeys {
		if env[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		what := "KEYSTONE_ENV_FILE is not set"
		if len(env) > 0 {
			what = "missing " + strings.Join(missing, ", ")
		}
		msg := fmt.Sprintf("no Keystone to test against (%s): run scripts/keystone.sh start, "+
			"then KEYSTONE_ENV_FILE=$PWD/.keystone/keystone.env go test ./keystone/", what)
		if os.Getenv("CI") != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return env
}

// mustReadEnvFile reads KEY=value lines as scripts/keystone.sh writes them (comments,
// blank lines, an optional "export " and optional quotes around the value).
func mustReadEnvFile(tb testing.TB, path string) keystoneEnv {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatalf("KEYSTONE_ENV_FILE: %v", err)
	}
	defer f.Close()
	env := keystoneEnv{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("KEYSTONE_ENV_FILE: %v", err)
	}
	return env
}

// mustToken logs in to the real Keystone as user and returns a token scoped to project,
// or an unscoped one when project is "".
func mustToken(tb testing.TB, env keystoneEnv, user, password, project string) string {
	tb.Helper()
	provider, err := openstack.NewClient(env["KEYSTONE_URL"])
	if err != nil {
		tb.Fatal(err)
	}
	identity, err := openstack.NewIdentityV3(provider, gophercloud.EndpointOpts{})
	if err != nil {
		tb.Fatal(err)
	}
	opts := tokens.AuthOptions{Username: user, Password: password, DomainName: DefaultDomain}
	if project != "" {
		opts.Scope = tokens.Scope{ProjectName: project, DomainName: DefaultDomain}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token, err := tokens.Create(ctx, identity, &opts).ExtractTokenID()
	if err != nil {
		tb.Fatalf("log in as %s: %v", user, err)
	}
	return token
}

// mustUserToken logs in as one of keystone.env's test users, who is "TENANT_A",
// "TENANT_B" or "ADMIN", and returns a token scoped to that user's project.
func mustUserToken(tb testing.TB, env keystoneEnv, who string) string {
	tb.Helper()
	p := "KS_" + who + "_"
	return mustToken(tb, env, env[p+"USER"], env[p+"PASSWORD"], env[p+"PROJECT"])
}

// mustRevoke revokes token, authenticated as its own holder (Keystone's token_subject
// rule lets a user revoke their own tokens).
func mustRevoke(tb testing.TB, env keystoneEnv, token string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodDelete, strings.TrimSuffix(env["KEYSTONE_URL"], "/")+"/auth/tokens", nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("X-Subject-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("revoke: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		tb.Fatalf("revoke: HTTP %d, want 204", resp.StatusCode)
	}
}

func TestIntegration_Validate(t *testing.T) {
	env := mustKeystoneEnv(t)
	v := mustNew(t, env.config())
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
			token:   func(t *testing.T) string { return mustUserToken(t, env, "TENANT_A") },
			project: env["KS_TENANT_A_PROJECT_ID"], role: "member", notRole: "admin", wantFresh: true,
		},
		{
			name:    "a tenant-b member's token gives tenant-b's project",
			token:   func(t *testing.T) string { return mustUserToken(t, env, "TENANT_B") },
			project: env["KS_TENANT_B_PROJECT_ID"], role: "member", notRole: "admin", wantFresh: true,
		},
		{
			name:    "the admin's token has role admin",
			token:   func(t *testing.T) string { return mustUserToken(t, env, "ADMIN") },
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
				return mustToken(t, env, env["KS_ADMIN_USER"], env["KS_ADMIN_PASSWORD"], "")
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
	env := mustKeystoneEnv(t)
	// The Validator's clock starts at the real time and moves when told: the cache entry
	// then ends exactly when the test says, with no sleeping.
	clock := &fakeClock{now: time.Now()}
	cfg := env.config()
	cfg.CacheTTL = time.Second
	cfg.Now = clock.Now
	v := mustNew(t, cfg)

	token := mustUserToken(t, env, "TENANT_A")
	if id := mustValidate(t, v, token); id.ProjectID != env["KS_TENANT_A_PROJECT_ID"] {
		t.Fatalf("project = %q, want tenant-a's", id.ProjectID)
	}
	mustRevoke(t, env, token)

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
	env := mustKeystoneEnv(t)
	v := mustNew(t, env.config())

	type minted struct{ token, project string }
	var toks []minted
	for i := range distinct {
		who := []string{"TENANT_A", "TENANT_B"}[i%2]
		toks = append(toks, minted{mustUserToken(t, env, who), env["KS_"+who+"_PROJECT_ID"]})
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
	env := mustKeystoneEnv(t)
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"Keystone unreachable (nothing listens on 127.0.0.1:1)", func(c *Config) { c.URL = "http://127.0.0.1:1/v3" }},
		{"the service's password is wrong", func(c *Config) { c.Password = "not-" + c.Password }},
	}
	token := mustUserToken(t, env, "TENANT_A")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := env.config()
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
	env := mustKeystoneEnv(t)
	cfg, err := env.config().withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	// Built as New does, keeping the client to reach the service's token.
	c, err := newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := newValidator(cfg, c.lookup)

	mustValidate(t, v, mustUserToken(t, env, "TENANT_A"))
	old := c.provider.Token()
	mustRevoke(t, env, old)

	// Keystone now answers 401 to the service's token: gophercloud logs in again and
	// the validation goes through.
	id := mustValidate(t, v, mustUserToken(t, env, "TENANT_B"))
	if id.ProjectID != env["KS_TENANT_B_PROJECT_ID"] {
		t.Fatalf("project = %q, want tenant-b's", id.ProjectID)
	}
	if c.provider.Token() == old {
		t.Fatal("the service still holds its revoked token")
	}
}

// TestIntegration_KeystoneRestart stops and restarts the real Keystone through
// scripts/keystone.sh. It takes a dozen seconds and takes Keystone away from any other
// test using it meanwhile, so it runs only when KEYSTONE_TEST_RESTART is set (and needs
// KEYSTONE_ENV_FILE, whose directory is the script's DIR). It leaves Keystone running.
func TestIntegration_KeystoneRestart(t *testing.T) {
	env := mustKeystoneEnv(t)
	envFile := os.Getenv("KEYSTONE_ENV_FILE")
	if os.Getenv("KEYSTONE_TEST_RESTART") == "" || envFile == "" {
		t.Skip("set KEYSTONE_TEST_RESTART=1 and KEYSTONE_ENV_FILE to stop and restart Keystone")
	}
	dir := filepath.Dir(envFile)
	u, err := url.Parse(env["KEYSTONE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	script := func(cmd string) error {
		c := exec.Command("../scripts/keystone.sh", cmd, dir)
		c.Env = append(os.Environ(), "KEYSTONE_PORT="+u.Port())
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("keystone.sh %s: %v\n%s", cmd, err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		if script("status") != nil {
			if err := script("start"); err != nil {
				t.Errorf("restarting Keystone after the test: %v", err)
			}
		}
	})

	v := mustNew(t, env.config())
	mustValidate(t, v, mustUserToken(t, env, "TENANT_A"))
	token := mustUserToken(t, env, "TENANT_B")

	if err := script("stop"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(context.Background(), token); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Keystone stopped: err = %v, want ErrUnavailable only", err)
	}
	start := time.Now()
	if err := script("start"); err != nil {
		t.Fatal(err)
	}
	t.Logf("keystone.sh start (restart) took %s", time.Since(start).Round(100*time.Millisecond))
	// The outage wasn't cached, and Fernet tokens outlive a restart.
	if id := mustValidate(t, v, token); id.ProjectID != env["KS_TENANT_B_PROJECT_ID"] {
		t.Fatalf("after restart: project = %q, want tenant-b's", id.ProjectID)
	}
}
