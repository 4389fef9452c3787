package webhook

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The signature is the Standard Webhooks library's; this is the
// specification's test vector, which the receivers' libraries check.
func TestSignature_specVector(t *testing.T) {
	wh, err := standardwebhooks.NewWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got, err := wh.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; err != nil || got != want {
		t.Fatalf("Sign = %q, %v; want %q", got, err, want)
	}
}

func TestGuard_Permitted(t *testing.T) {
	g := NewGuard([]netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")})
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"93.184.215.14", true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", true},
		{"10.20.1.2", true}, // allowed by configuration
		{"10.21.1.2", false},
		{"127.0.0.1", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.20.1.2", true},
		{"169.254.169.254", false},
		{"fe80::1", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"fd00::1", false},
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"64:ff9b::a00:1", false},
	} {
		if got := g.Permitted(netip.MustParseAddr(c.addr)); got != c.ok {
			t.Errorf("Permitted(%s) = %v, want %v", c.addr, got, c.ok)
		}
	}
}

func TestGuard_CheckURL(t *testing.T) {
	g := NewGuard(nil)
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://93.184.215.14/hook", true},
		{"http://93.184.215.14:8443/hook?x=1", true},
		{"ftp://93.184.215.14/", false},
		{"https:///hook", false},
		{"https://user:pw@93.184.215.14/", false},
		{"http://127.0.0.1/", false},
		{"http://localhost/", false},
		{"http://[::1]:80/", false},
		{"https://93.184.215.14/#frag", false},
	} {
		err := g.CheckURL(context.Background(), c.url)
		var ue *URLError
		if (err == nil) != c.ok || (err != nil && !errors.As(err, &ue)) {
			t.Errorf("CheckURL(%s) = %v, want ok %v", c.url, err, c.ok)
		}
	}
}

func TestDispatcher_backoff(t *testing.T) {
	d := New(nil, Config{RetryMin: time.Second, RetryMax: 10 * time.Second})
	for _, c := range []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{4, 4 * time.Second, 8 * time.Second},
		{5, 5 * time.Second, 10 * time.Second},
		{40, 5 * time.Second, 10 * time.Second},
	} {
		for range 50 {
			if w := d.backoff(c.attempt); w < c.lo || w > c.hi {
				t.Fatalf("backoff(%d) = %s, want %s to %s", c.attempt, w, c.lo, c.hi)
			}
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"Mon, 30 Nov 2026 12:00:30 GMT", 30 * time.Second},
		{"Mon, 30 Nov 2026 11:00:00 GMT", 0},
	} {
		if got := parseRetryAfter(c.v, now); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", c.v, got, c.want)
		}
	}
}
