package kstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// client bounds each call to Keystone: a hung Keystone fails the test, not the binary.
var client = &http.Client{Timeout: 30 * time.Second}

// Token logs user in to the Keystone of env with password, both in domain "default", and
// returns the token Keystone issues (X-Subject-Token): scoped to project, a project name
// in domain "default", or unscoped when project is "".
func Token(tb testing.TB, env map[string]string, user, password, project string) string {
	tb.Helper()
	inDefault := map[string]string{"id": "default"}
	auth := map[string]any{"identity": map[string]any{
		"methods":  []string{"password"},
		"password": map[string]any{"user": map[string]any{"name": user, "password": password, "domain": inDefault}},
	}}
	if project != "" {
		auth["scope"] = map[string]any{"project": map[string]any{"name": project, "domain": inDefault}}
	}
	body, err := json.Marshal(map[string]any{"auth": auth})
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := client.Post(endpoint(env, "/auth/tokens"), "application/json", bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("log in to Keystone as %s: %v", user, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	token := resp.Header.Get("X-Subject-Token")
	if resp.StatusCode != http.StatusCreated || token == "" {
		tb.Fatalf("log in to Keystone as %s: %s, want 201 with X-Subject-Token", user, resp.Status)
	}
	return token
}

// UserToken logs in one of keystone.env's test users, who is "TENANT_A", "TENANT_B" or
// "ADMIN", and returns a token scoped to that user's project (KS_<who>_PROJECT_ID).
func UserToken(tb testing.TB, env map[string]string, who string) string {
	tb.Helper()
	p := "KS_" + who + "_"
	if env[p+"USER"] == "" {
		tb.Fatalf("keystone.env has no %sUSER", p)
	}
	return Token(tb, env, env[p+"USER"], env[p+"PASSWORD"], env[p+"PROJECT"])
}

// Revoke revokes token (DELETE /v3/auth/tokens), authenticated by adminToken. That may be
// token itself: Keystone's token_subject rule lets a token's holder revoke it.
func Revoke(tb testing.TB, env map[string]string, adminToken, token string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodDelete, endpoint(env, "/auth/tokens"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", adminToken)
	req.Header.Set("X-Subject-Token", token)
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("revoke a token: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		tb.Fatalf("revoke a token: %s, want 204", resp.Status)
	}
}

// Stop stops the real Keystone with scripts/keystone.sh stop, and checks that it no longer
// answers. tb must hold the lock exclusive (EnvExclusive). When tb ends, Keystone is
// started again if it is still down, so the tests after tb find it running.
func Stop(tb testing.TB, env map[string]string) {
	tb.Helper()
	mustHoldExclusive(tb, "Stop")
	// Registered after EnvExclusive's release of the lock, so it runs before it.
	tb.Cleanup(func() {
		if script(env, "status") == nil {
			return
		}
		if err := start(tb, env); err != nil {
			tb.Errorf("starting Keystone again after the test: %v", err)
		}
	})
	if err := script(env, "stop"); err != nil {
		tb.Fatal(err)
	}
	// An outage the test didn't cause would prove nothing: KEYSTONE_URL must have been
	// the script's server.
	if answers(env) {
		tb.Fatalf("Keystone still answers on %s after scripts/keystone.sh stop", env["KEYSTONE_URL"])
	}
}

// Start starts the real Keystone with scripts/keystone.sh start and returns once it
// answers. tb must hold the lock exclusive (EnvExclusive).
func Start(tb testing.TB, env map[string]string) {
	tb.Helper()
	mustHoldExclusive(tb, "Start")
	if err := start(tb, env); err != nil {
		tb.Fatal(err)
	}
}

func start(tb testing.TB, env map[string]string) error {
	tb.Helper()
	t0 := time.Now()
	if err := script(env, "start"); err != nil {
		return err
	}
	// keystone.sh waits for the server already; this checks it is the one env names.
	for deadline := time.Now().Add(30 * time.Second); !answers(env); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("Keystone does not answer on %s 30s after scripts/keystone.sh start", env["KEYSTONE_URL"])
		}
	}
	tb.Logf("kstest: Keystone started in %s", time.Since(t0).Round(100*time.Millisecond))
	return nil
}

// answers says whether Keystone answers GET KEYSTONE_URL (its version document).
func answers(env map[string]string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env["KEYSTONE_URL"], nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// script runs scripts/keystone.sh cmd DIR, DIR being KEYSTONE_ENV_FILE's directory, on
// the port of KEYSTONE_URL.
func script(env map[string]string, cmd string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	path := os.Getenv("KEYSTONE_ENV_FILE")
	if path == "" {
		return errors.New("KEYSTONE_ENV_FILE is not set: scripts/keystone.sh needs its directory")
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return err
	}
	u, err := url.Parse(env["KEYSTONE_URL"])
	if err != nil {
		return fmt.Errorf("KEYSTONE_URL: %v", err)
	}
	// start waits up to 90 s for Keystone, and any start or stop waits for another's.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, filepath.Join(root, "scripts", "keystone.sh"), cmd, dir)
	c.Env = os.Environ()
	if port := u.Port(); port != "" {
		c.Env = append(c.Env, "KEYSTONE_PORT="+port)
	}
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/keystone.sh %s %s: %v\n%s", cmd, dir, err, out)
	}
	return nil
}

// repoRoot returns the directory of go.mod, walking up from the test's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// endpoint returns the URL of path under KEYSTONE_URL (which ends in /v3).
func endpoint(env map[string]string, path string) string {
	return strings.TrimSuffix(env["KEYSTONE_URL"], "/") + path
}
