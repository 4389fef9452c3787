package server

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestStaticTokens(t *testing.T) {
	path := filepath.Join("..", "testdata", "tokens.json")
	tokens, err := ReadTokensFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		token  string
		tenant string
		admin  bool
		err    error
	}{
		{"admin-token", "admin", true, nil},
		{"tenant-a-token", "39852f6f42a74d2b82f7099f78d0393a", false, nil},
		{"tenant-a-toke", "", false, ErrUnauthenticated},
		{"tenant-a-token ", "", false, ErrUnauthenticated},
		{"", "", false, ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			p, err := tokens.Authenticate(context.Background(), tt.token)
			if !errors.Is(err, tt.err) || p.TenantID != tt.tenant || p.IsAdmin() != tt.admin {
				t.Fatalf("got %+v %v", p, err)
			}
		})
	}
}

func TestReadTokensFile_refusals(t *testing.T) {
	for name, content := range map[string]string{
		"not JSON":       `{"tokens": [`,
		"token missing":  `{"tokens": [{"tenant_id": "t"}]}`,
		"tenant missing": `{"tokens": [{"token": "x"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "tokens.json")
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadTokensFile(p); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestAllowedPeer(t *testing.T) {
	s := &Server{allowed: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.1.0.0/16"),
	}}
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:5000", true},
		{"127.9.9.9:1", true},
		{"[::1]:5000", true},
		{"[::ffff:127.0.0.1]:5000", true},
		{"10.1.200.3:80", true},
		{"10.2.0.1:80", false},
		{"[fe80::1%eth0]:80", false},
		{"192.0.2.1:80", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := s.allowedPeer(tt.addr); got != tt.want {
			t.Errorf("allowedPeer(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func mustPrefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}
