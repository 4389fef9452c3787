package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// Principal is who a token stands for: a tenant (Keystone project) and roles.
type Principal struct {
	TenantID string
	Roles    []string
}

// IsAdmin reports whether the principal holds the admin role, which sees every
// tenant's ICC operations, may record them, and may call the MSF family from
// outside MSF_ALLOWED_CIDRS.
func (p Principal) IsAdmin() bool { return slices.Contains(p.Roles, "admin") }

// Authenticator turns an X-Auth-Token into a Principal. It returns
// ErrUnauthenticated for a token it refuses and ErrAuthUnavailable when it
// cannot tell (its identity service is down).
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

type principalKey struct{}

// PrincipalFrom returns the principal that authenticated the request, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

func withPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// StaticTokens is the embedded default Authenticator: a fixed table of tokens,
// read from AUTH_TOKENS_FILE.
type StaticTokens struct {
	entries []staticToken
}

type staticToken struct {
	digest    [sha256.Size]byte
	principal Principal
}

// tokensFile is the JSON of AUTH_TOKENS_FILE.
type tokensFile struct {
	Tokens []struct {
		Token    string   `json:"token"`
		TenantID string   `json:"tenant_id"`
		Roles    []string `json:"roles"`
	} `json:"tokens"`
}

// ReadTokensFile reads a tokens file:
// {"tokens": [{"token": "...", "tenant_id": "...", "roles": ["admin"]}]}.
func ReadTokensFile(path string) (*StaticTokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f tokensFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	t := &StaticTokens{}
	for i, e := range f.Tokens {
		if e.Token == "" || e.TenantID == "" {
			return nil, fmt.Errorf("tokens file %s: tokens[%d]: token and tenant_id are required", path, i)
		}
		if strings.TrimSpace(e.TenantID) != e.TenantID {
			// MySQL ignores trailing spaces when it compares text: "A " would
			// see tenant A's operations.
			return nil, fmt.Errorf("tokens file %s: tokens[%d]: tenant_id begins or ends with white space", path, i)
		}
		t.entries = append(t.entries, staticToken{
			digest:    sha256.Sum256([]byte(e.Token)),
			principal: Principal{TenantID: e.TenantID, Roles: e.Roles},
		})
	}
	return t, nil
}

// Authenticate looks the token up. Every entry is compared, in constant time,
// on SHA-256 digests of equal length, so the time taken says nothing about
// how much of a token was right.
func (t *StaticTokens) Authenticate(_ context.Context, token string) (Principal, error) {
	d := sha256.Sum256([]byte(token))
	var found Principal
	match := 0
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
			found, match = e.principal, 1
		}
	}
	if match == 0 {
		return Principal{}, ErrUnauthenticated
	}
	return found, nil
}

// noTokens refuses every token: the service runs without AUTH_TOKENS_FILE
// and without Keystone.
type noTokens struct{}

func (noTokens) Authenticate(context.Context, string) (Principal, error) {
	return Principal{}, ErrUnauthenticated
}

const tokenHeader = "X-Auth-Token"

// authenticate is the middleware that decides who may call what, before the
// request is validated:
//   - MSF (/v1/): callers from the allow-list pass; others need an admin token,
//     else 403 990003. /v1/subscriptions needs an admin token from anywhere. Only the connection's peer address counts:
//     X-Forwarded-For, X-Real-IP and Forwarded are ignored.
//   - ICC (/v1.0/icc/): every request needs a token (401); writes need the
//     admin role (403).
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		switch familyOf(r.URL.Path) {
		case familyMSF:
			if s.allowedPeer(r.RemoteAddr) && !adminOnly(r.URL.Path) {
				return next(c)
			}
			p, err := s.principal(r)
			if errors.Is(err, ErrAuthUnavailable) {
				return err
			}
			if err != nil || !p.IsAdmin() {
				return errForbidden
			}
			c.SetRequest(r.WithContext(withPrincipal(r.Context(), p)))
		case familyICC:
			p, err := s.principal(r)
			if err != nil {
				return err
			}
			if r.Method != http.MethodGet && r.Method != http.MethodHead && !p.IsAdmin() {
				return errForbidden
			}
			c.SetRequest(r.WithContext(withPrincipal(r.Context(), p)))
		}
		return next(c)
	}
}

// principal authenticates the request's X-Auth-Token.
func (s *Server) principal(r *http.Request) (Principal, error) {
	token := r.Header.Get(tokenHeader)
	if token == "" {
		return Principal{}, ErrUnauthenticated
	}
	return s.auth.Authenticate(r.Context(), token)
}

// allowedPeer reports whether the connection's peer address is in
// MSF_ALLOWED_CIDRS.
func (s *Server) allowedPeer(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	// An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d, and a
	// link-local one may carry a zone; neither changes which network it is in.
	addr = addr.Unmap().WithZone("")
	for _, p := range s.allowed {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
