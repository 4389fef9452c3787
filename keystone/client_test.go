package keystone

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run the gophercloud side against a fake Keystone on 127.0.0.1: what each
// answer of GET /v3/auth/tokens becomes, and how the service's own token is obtained,
// refreshed and replaced.

// subject is the fake Keystone's answer about one subject token.
type subject struct {
	status int
	body   string
}

// fakeKeystone answers POST and GET /v3/auth/tokens the way Keystone 22 does, including
// a 404 body that quotes the subject token.
type fakeKeystone struct {
	mu       sync.Mutex
	password string
	now      func() time.Time
	ttl      time.Duration       // lifetime of the service tokens it issues
	issued   map[string]struct{} // service tokens still accepted
	subjects map[string]subject
	down     bool          // every request gets 503
	stall    chan struct{} // when set, requests wait for it to close
	auths    int           // POST /v3/auth/tokens
	requests int           // every request
}

func newFakeKeystone(password string, now func() time.Time) *fakeKeystone {
	return &fakeKeystone{
		password: password, now: now, ttl: time.Hour,
		issued: map[string]struct{}{}, subjects: map[string]subject{},
	}
}

func (k *fakeKeystone) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.requests++
	stall, down := k.stall, k.down
	k.mu.Unlock()
	if stall != nil {
		<-stall
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if down {
		http.Error(w, `{"error":{"code":503,"title":"Service Unavailable"}}`, http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path != "/v3/auth/tokens" {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPost:
		k.issue(w, r)
	case http.MethodGet:
		k.validate(w, r)
	default:
		http.Error(w, "method", http.StatusMethodNotAllowed)
	}
}

func (k *fakeKeystone) issue(w http.ResponseWriter, r *http.Request) {
	k.auths++
	var req struct {
		Auth struct {
			Identity struct {
				Password struct {
					User struct {
						Name     string `json:"name"`
						Password string `json:"password"`
					} `json:"user"`
				} `json:"password"`
			} `json:"identity"`
			Scope struct {
				Project struct {
					Name string `json:"name"`
				} `json:"project"`
			} `json:"scope"`
		} `json:"auth"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Auth.Identity.Password.User.Password != k.password {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}`)
		return
	}
	tok := fmt.Sprintf("svc-%d", k.auths)
	k.issued[tok] = struct{}{}
	w.Header().Set("X-Subject-Token", tok)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"token":{"expires_at":%q,"project":{"id":"svc-project","name":%q},"roles":[{"name":"service"}],"catalog":[]}}`,
		k.now().Add(k.ttl).UTC().Format(time.RFC3339Nano), req.Auth.Scope.Project.Name)
}

func (k *fakeKeystone) validate(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if _, ok := k.issued[r.Header.Get("X-Auth-Token")]; !ok {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}`)
		return
	}
	tok := r.Header.Get("X-Subject-Token")
	s, ok := k.subjects[tok]
	if !ok {
		s = subject{http.StatusNotFound, fmt.Sprintf(`{"error":{"code":404,"message":"Could not find token: %s","title":"Not Found"}}`, tok)}
	}
	w.WriteHeader(s.status)
	fmt.Fprint(w, s.body)
}

func (k *fakeKeystone) set(f func(k *fakeKeystone)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f(k)
}

func (k *fakeKeystone) counts() (auths, requests int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.auths, k.requests
}

// mustFakeKeystone starts k on 127.0.0.1 and returns a Config pointing at it.
func mustFakeKeystone(tb testing.TB, k *fakeKeystone) Config {
	tb.Helper()
	srv := httptest.NewServer(k)
	tb.Cleanup(srv.Close)
	return Config{URL: srv.URL + "/v3", Username: "opsvc", Password: k.password, Project: "service"}
}

// mustNew is New that fails the test on error.
func mustNew(tb testing.TB, cfg Config) *Validator {
	tb.Helper()
	v, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return v
}

// fernetLike returns a random token as long as a Fernet token.
func fernetLike(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 136)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return "gAAAAA" + base64.RawURLEncoding.EncodeToString(b)
}

func tokenBody(scope string, expires time.Time) string {
	return fmt.Sprintf(`{"token":{"expires_at":%q,%s"roles":[{"id":"r1","name":"member"},{"id":"r2","name":"reader"}],"user":{"id":"u1","name":"alice"}}}`,
		expires.UTC().Format(time.RFC3339Nano), scope)
}

func TestValidator_KeystoneAnswers(t *testing.T) {
	expires := time.Now().Add(time.Hour).Truncate(time.Second)
	tests := []struct {
		name    string
		answer  *subject // nil: the fake's default 404 quoting the token
		want    Identity
		wantErr error
	}{
		{
			name:   "a project-scoped token gives its project, roles and expiry",
			answer: &subject{200, tokenBody(`"project":{"id":"p-123","name":"tenant-a","domain":{"id":"default"}},`, expires)},
			want:   Identity{ProjectID: "p-123", Roles: []string{"member", "reader"}, ExpiresAt: expires},
		},
		{name: "an unknown token (404) is invalid", wantErr: ErrInvalidToken},
		{
			name:    "a domain-scoped token is invalid: it names no tenant",
			answer:  &subject{200, tokenBody(`"domain":{"id":"default","name":"Default"},`, expires)},
			wantErr: ErrInvalidToken,
		},
		{name: "an unscoped token is invalid", answer: &subject{200, tokenBody("", expires)}, wantErr: ErrInvalidToken},
		{
			name:    "403: the service may not validate, which is no verdict on the token",
			answer:  &subject{403, `{"error":{"code":403,"message":"You are not authorized to perform the requested action: identity:validate_token."}}`},
			wantErr: ErrUnavailable,
		},
		{name: "500 is an outage", answer: &subject{500, `{"error":{"code":500}}`}, wantErr: ErrUnavailable},
		{name: "503 is an outage", answer: &subject{503, `{"error":{"code":503}}`}, wantErr: ErrUnavailable},
		{name: "an unreadable answer is an outage", answer: &subject{200, `{"token": [`}, wantErr: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := fernetLike(t)
			k := newFakeKeystone("secret", time.Now)
			if tt.answer != nil {
				k.subjects[token] = *tt.answer
			}
			var logs bytes.Buffer
			cfg := mustFakeKeystone(t, k)
			cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			v := mustNew(t, cfg)

			id, err := v.Validate(context.Background(), token)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), token) {
					t.Fatalf("the error quotes the token: %v", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if id.ProjectID != tt.want.ProjectID || strings.Join(id.Roles, ",") != strings.Join(tt.want.Roles, ",") || !id.ExpiresAt.Equal(tt.want.ExpiresAt) {
					t.Fatalf("got %+v, want %+v", id, tt.want)
				}
			}
			if strings.Contains(logs.String(), token) {
				t.Fatalf("the logs quote the token: %s", logs.String())
			}
		})
	}
}

func TestNew_DoesNotNeedKeystone(t *testing.T) {
	k := newFakeKeystone("secret", time.Now)
	k.down = true
	cfg := mustFakeKeystone(t, k)
	v := mustNew(t, cfg)
	if _, requests := k.counts(); requests != 0 {
		t.Fatalf("New made %d requests to Keystone, want none", requests)
	}

	token := fernetLike(t)
	k.set(func(k *fakeKeystone) {
		k.subjects[token] = subject{200, tokenBody(`"project":{"id":"p-1"},`, time.Now().Add(time.Hour))}
	})
	if _, err := v.Validate(context.Background(), token); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Keystone down: err = %v, want ErrUnavailable", err)
	}
	k.set(func(k *fakeKeystone) { k.down = false })
	if id := mustValidate(t, v, token); id.ProjectID != "p-1" {
		t.Fatalf("Keystone back: project %q, want p-1", id.ProjectID)
	}
}

func TestValidator_ServiceAuthentication(t *testing.T) {
	tests := []struct {
		name string
		// between runs after a first successful validation, with the clock at hand.
		between   func(k *fakeKeystone, clock *fakeClock)
		wantErr   error
		wantAuths int // logins to Keystone in all
	}{
		{
			name:      "the service logs in once for many validations",
			between:   func(*fakeKeystone, *fakeClock) {},
			wantAuths: 1,
		},
		{
			name:      "a rejected service token is replaced and the call retried",
			between:   func(k *fakeKeystone, _ *fakeClock) { clear(k.issued) },
			wantAuths: 2,
		},
		{
			name:      "a service token about to expire is replaced before use",
			between:   func(_ *fakeKeystone, c *fakeClock) { c.Advance(time.Hour - 30*time.Second) },
			wantAuths: 2,
		},
		{
			name: "a failed refresh keeps using the current token while it lasts",
			between: func(k *fakeKeystone, c *fakeClock) {
				k.password = "changed"
				c.Advance(time.Hour - 30*time.Second)
			},
			wantAuths: 2,
		},
		{
			name: "a service that can't log in again gets ErrUnavailable, not ErrInvalidToken",
			between: func(k *fakeKeystone, _ *fakeClock) {
				k.password = "changed"
				clear(k.issued)
			},
			wantErr:   ErrUnavailable,
			wantAuths: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The fake Keystone's clock is the Validator's: both start now, so that the
			// tokens' expiry makes sense to gophercloud as well.
			clock := &fakeClock{now: time.Now()}
			k := newFakeKeystone("secret", clock.Now)
			cfg := mustFakeKeystone(t, k)
			cfg.Now = clock.Now
			cfg.CacheTTL = time.Second
			v := mustNew(t, cfg)

			first, second := fernetLike(t), fernetLike(t)
			k.set(func(k *fakeKeystone) {
				for _, tok := range []string{first, second} {
					k.subjects[tok] = subject{200, tokenBody(`"project":{"id":"p-1"},`, clock.Now().Add(2*time.Hour))}
				}
			})
			mustValidate(t, v, first)
			k.set(func(k *fakeKeystone) { tt.between(k, clock) })
			_, err := v.Validate(context.Background(), second)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr != nil && errors.Is(err, ErrInvalidToken)) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if auths, _ := k.counts(); auths != tt.wantAuths {
				t.Fatalf("Keystone saw %d logins, want %d", auths, tt.wantAuths)
			}
		})
	}
}

func TestValidator_Outages(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(tb testing.TB) Config
	}{
		{
			name: "nothing listens",
			cfg: func(testing.TB) Config {
				return Config{URL: "http://127.0.0.1:1/v3", Username: "opsvc", Password: "secret", Project: "service"}
			},
		},
		{
			name: "Keystone answers slower than Timeout",
			cfg: func(tb testing.TB) Config {
				k := newFakeKeystone("secret", time.Now)
				k.stall = make(chan struct{})
				cfg := mustFakeKeystone(tb, k)
				// Registered after the server's Close, so it runs first and lets Close finish.
				tb.Cleanup(func() { close(k.stall) })
				cfg.Timeout = 50 * time.Millisecond
				return cfg
			},
		},
		{
			name: "Keystone answers 503",
			cfg: func(tb testing.TB) Config {
				k := newFakeKeystone("secret", time.Now)
				k.down = true
				return mustFakeKeystone(tb, k)
			},
		},
		{
			name: "the service's password is refused",
			cfg: func(tb testing.TB) Config {
				cfg := mustFakeKeystone(tb, newFakeKeystone("secret", time.Now))
				cfg.Password = "wrong"
				return cfg
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustNew(t, tt.cfg(t))
			for i := range 2 {
				_, err := v.Validate(context.Background(), fernetLike(t))
				if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
					t.Fatalf("attempt %d: err = %v, want ErrUnavailable only", i, err)
				}
			}
		})
	}
}
