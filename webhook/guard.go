package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// Guard decides which addresses webhooks may be sent to: public ones, and
// those an operator allowed (WEBHOOK_ALLOWED_CIDRS). Loopback, private,
// link-local, shared (CGNAT), unspecified, multicast and reserved addresses
// are refused, so that a subscription cannot be used to reach the service's
// own network.
type Guard struct {
	allowed  []netip.Prefix
	resolver *net.Resolver
}

// NewGuard returns a Guard that lets allowed through whatever they are.
func NewGuard(allowed []netip.Prefix) *Guard {
	return &Guard{allowed: allowed, resolver: net.DefaultResolver}
}

// blocked are the ranges netip's predicates do not name.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: may embed a private IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2002::/16"),       // 6to4: may embed a private IPv4 address
	netip.MustParsePrefix("2001::/32"),       // Teredo: likewise
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
}

// Permitted reports whether a webhook may be sent to addr.
func (g *Guard) Permitted(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, p := range g.allowed {
		if p.Contains(addr) {
			return true
		}
	}
	if !addr.IsValid() || addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() ||
		addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() || addr.IsMulticast() || addr.IsUnspecified() {
		return false
	}
	for _, p := range blocked {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}

// URLError is a subscription URL refused, and why.
type URLError struct{ Reason string }

func (e *URLError) Error() string { return e.Reason }

// resolveTimeout bounds the name lookup of CheckURL.
const resolveTimeout = 5 * time.Second

// CheckURL refuses, with a *URLError, a URL that is not http(s) with a
// host, or whose host is, or resolves to, an address Permitted refuses.
// The check is repeated at every delivery on the address connected to
// (Dialer), since the name may resolve elsewhere by then.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return &URLError{"is not a URL"}
	case u.Scheme != "http" && u.Scheme != "https":
		return &URLError{"must be an http or https URL"}
	case u.Hostname() == "":
		return &URLError{"has no host"}
	case u.User != nil:
		return &URLError{"must not carry a user name or password"}
	case u.Fragment != "":
		return &URLError{"must not have a fragment"}
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if !g.Permitted(a) {
			return &URLError{fmt.Sprintf("%s is a private, loopback, link-local or reserved address (not in WEBHOOK_ALLOWED_CIDRS)", a)}
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return &URLError{fmt.Sprintf("host %s cannot be resolved", host)}
	}
	for _, a := range addrs {
		if !g.Permitted(a) {
			return &URLError{fmt.Sprintf("host %s resolves to %s, a private, loopback, link-local or reserved address (not in WEBHOOK_ALLOWED_CIDRS)", host, a.Unmap())}
		}
	}
	return nil
}

// errAddressRefused is a connection the Guard stopped.
var errAddressRefused = errors.New("address refused: private, loopback, link-local or reserved (not in WEBHOOK_ALLOWED_CIDRS)")

// Dialer is a net.Dialer that connects only to addresses the Guard
// permits. The check runs on the address actually being connected to, after
// name resolution, so a name that resolved to a public address when the
// subscription was made and to a private one now (DNS rebinding) is refused.
func (g *Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !g.Permitted(ap.Addr()) {
				return fmt.Errorf("%s: %w", address, errAddressRefused)
			}
			return nil
		},
	}
}
