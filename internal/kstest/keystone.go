package kstest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
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

// endpoint returns the URL of path under KEYSTONE_URL (which ends in /v3).
func endpoint(env map[string]string, path string) string {
	return strings.TrimSuffix(env["KEYSTONE_URL"], "/") + path
}
