package keystone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// The defaults that replace Config's zero values.
const (
	// DefaultCacheTTL is Config.CacheTTL's default.
	DefaultCacheTTL = 60 * time.Second
	// DefaultNegativeTTL is Config.NegativeTTL's default.
	DefaultNegativeTTL = 5 * time.Second
	// DefaultCacheSize is Config.CacheSize's default.
	DefaultCacheSize = 10000
	// DefaultTimeout is Config.Timeout's default.
	DefaultTimeout = 5 * time.Second
	// DefaultDomain is Config.Domain's default, the domain keystone-manage bootstrap creates.
	DefaultDomain = "Default"
)

// callsPerLookup is the most Keystone calls one lookup can make: authenticate the
// service, validate, re-authenticate after a 401, validate again. The shared lookup
// gets that many Timeouts, while each call still gets at most one.
const callsPerLookup = 4

// maxTokenLen bounds what is worth sending to Keystone. Fernet tokens are under 300
// characters; a header this long is not a token, and Keystone's front end would refuse it
// with an answer we couldn't tell from an outage.
const maxTokenLen = 8192

// ErrInvalidToken is returned when Keystone refuses a token (expired, revoked, unknown,
// malformed) or the token has no project scope. The caller should answer 401.
var ErrInvalidToken = errors.New("keystone: invalid token")

// ErrUnavailable is returned when Keystone can't tell whether a token is valid: it is
// unreachable, too slow, failing (5xx), or refusing the service's own credentials. The
// caller should answer 503, never 401.
var ErrUnavailable = errors.New("keystone: unavailable")

// Config holds what the service needs to validate tokens with Keystone v3.
type Config struct {
	// URL is Keystone's identity endpoint, such as http://127.0.0.1:5000/v3.
	URL string
	// Username, Password, Project and Domain are the service's own credentials:
	// password authentication, scoped to Project. Domain (default "Default") is the
	// domain of both the user and the project.
	Username, Password, Project, Domain string

	// CacheTTL (default 60s) is the longest a validated token is trusted without asking
	// Keystone again; an entry never outlives the token's own expiry. It is also the
	// longest a revoked token may still be accepted.
	CacheTTL time.Duration
	// NegativeTTL (default 5s) is how long a refused token stays refused without asking
	// Keystone again.
	NegativeTTL time.Duration
	// CacheSize (default 10000) is the most tokens the cache holds; the least recently
	// used go first.
	CacheSize int
	// Timeout (default 5s) bounds each HTTP call to Keystone.
	Timeout time.Duration

	// Logger receives outage warnings and debug lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// withDefaults checks c and fills in its zero values.
func (c Config) withDefaults() (Config, error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("keystone: URL %q is not an http(s) URL", c.URL)
	}
	for _, f := range []struct{ name, value string }{
		{"Username", c.Username}, {"Password", c.Password}, {"Project", c.Project},
	} {
		if f.value == "" {
			return c, fmt.Errorf("keystone: %s is required", f.name)
		}
	}
	if c.CacheTTL < 0 || c.NegativeTTL < 0 || c.CacheSize < 0 || c.Timeout < 0 {
		return c, errors.New("keystone: CacheTTL, NegativeTTL, CacheSize and Timeout must not be negative")
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	return c.withCacheDefaults(), nil
}

// withCacheDefaults fills in the zero values that the cache itself needs.
func (c Config) withCacheDefaults() Config {
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Identity is what a validated token says.
type Identity struct {
	// ProjectID is the id of the project the token is scoped to: the tenant.
	ProjectID string
	// Roles are the names of the token's roles on that project, implied roles included
	// (an admin token also lists member and reader).
	Roles []string
	// ExpiresAt is when Keystone stops accepting the token.
	ExpiresAt time.Time
}

// lookupFunc asks the identity service about one token. It returns an error wrapping
// ErrInvalidToken when the token is refused and ErrUnavailable when no answer could be
// had; any other error counts as ErrUnavailable.
type lookupFunc func(ctx context.Context, token string) (Identity, error)

// Validator validates Keystone tokens through a cache. It is safe for concurrent use.
type Validator struct {
	cfg    Config
	lookup lookupFunc
	cache  *cache
	flight singleflight.Group
	calls  atomic.Int64
	stats  struct{ hits, misses, valid, invalid, unavailable atomic.Int64 }
}

// Stats are a Validator's counts since it was made, for metrics.
type Stats struct {
	// CacheHits and CacheMisses count the Validate calls answered from the
	// cache and those that were not (a malformed token counts as neither).
	CacheHits, CacheMisses int64
	// Valid, Invalid and Unavailable count the lookups that asked Keystone, by
	// answer: the token accepted, refused, or no answer (an outage). Their sum
	// is Calls.
	Valid, Invalid, Unavailable int64
}

// Stats returns the Validator's counts. It is cheap: read them when scraped.
func (v *Validator) Stats() Stats {
	return Stats{
		CacheHits: v.stats.hits.Load(), CacheMisses: v.stats.misses.Load(),
		Valid: v.stats.valid.Load(), Invalid: v.stats.invalid.Load(), Unavailable: v.stats.unavailable.Load(),
	}
}

// New returns a Validator for cfg. It doesn't contact Keystone: the service may start
// before Keystone does, so it authenticates on the first Validate and again whenever
// its own token expires or is refused.
func New(cfg Config) (*Validator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return newValidator(cfg, c.lookup), nil
}

// newValidator returns a Validator that caches the answers of lookup. Tests call it with
// a fake lookup.
func newValidator(cfg Config, lookup lookupFunc) *Validator {
	cfg = cfg.withCacheDefaults()
	return &Validator{cfg: cfg, lookup: lookup, cache: newCache(cfg.CacheSize)}
}

// Validate returns the Identity of token. It answers from the cache when it can;
// otherwise it asks Keystone, making one call for any number of concurrent Validate
// calls with the same token.
//
// It returns an error wrapping ErrInvalidToken when Keystone refuses the token or the
// token has no project scope, and one wrapping ErrUnavailable when Keystone can't tell,
// including when ctx ends first (that error also wraps ctx's error).
func (v *Validator) Validate(ctx context.Context, token string) (Identity, error) {
	if !plausible(token) {
		return Identity{}, fmt.Errorf("%w: not a token", ErrInvalidToken)
	}
	key := keyOf(token)
	if e, ok := v.cache.get(key, v.cfg.Now()); ok {
		v.stats.hits.Add(1)
		return e.answer()
	}
	v.stats.misses.Add(1)
	// The flight is keyed by the hash too: singleflight keeps its keys while calls run.
	ch := v.flight.DoChan(string(key[:]), func() (any, error) {
		e, err := v.fetch(ctx, key, token)
		return e, err
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Identity{}, r.Err
		}
		return r.Val.(entry).answer()
	case <-ctx.Done():
		return Identity{}, fmt.Errorf("%w: gave up waiting for Keystone: %w", ErrUnavailable, context.Cause(ctx))
	}
}

// Calls returns how many times the Validator has asked Keystone about a token: one per
// lookup that the cache and the sharing of concurrent lookups didn't spare. (A lookup
// that gophercloud retries after re-authenticating counts once.)
func (v *Validator) Calls() int64 { return v.calls.Load() }

// fetch asks Keystone about token on behalf of every caller waiting on the flight, and
// caches the answer unless it is an outage.
func (v *Validator) fetch(ctx context.Context, key tokenKey, token string) (entry, error) {
	// A flight for this token may have landed between our cache miss and this one.
	now := v.cfg.Now()
	if e, ok := v.cache.get(key, now); ok {
		return e, nil
	}
	// The first caller's cancellation must not fail the others waiting on this call, so
	// the call runs on a context of its own, bounded by the timeouts instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callsPerLookup*v.cfg.Timeout)
	defer cancel()

	v.calls.Add(1)
	id, err := v.lookup(ctx, token)
	now = v.cfg.Now()
	switch {
	case err == nil:
		v.stats.valid.Add(1)
		e := entry{key: key, identity: id, expires: now.Add(v.cfg.CacheTTL)}
		if !id.ExpiresAt.IsZero() && id.ExpiresAt.Before(e.expires) {
			e.expires = id.ExpiresAt
		}
		// A token already past its expiry by our clock is answered (Keystone vouched for
		// it) but not kept.
		if e.expires.After(now) {
			v.cache.put(e)
		}
		return e, nil
	case errors.Is(err, ErrInvalidToken):
		v.stats.invalid.Add(1)
		e := entry{key: key, err: err, expires: now.Add(v.cfg.NegativeTTL)}
		v.cache.put(e)
		v.cfg.Logger.DebugContext(ctx, "keystone refused a token", "reason", err.Error())
		return e, nil
	default:
		// Outages are not cached: the next request asks again, so recovery is immediate.
		v.stats.unavailable.Add(1)
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		v.cfg.Logger.WarnContext(ctx, "keystone token validation unavailable", "error", err.Error())
		return entry{}, err
	}
}

// answer returns what a cached entry says, with a copy of the roles so that callers
// can't change the cache.
func (e entry) answer() (Identity, error) {
	if e.err != nil {
		return Identity{}, e.err
	}
	id := e.identity
	id.Roles = slices.Clone(id.Roles)
	return id, nil
}

// plausible reports whether token is worth asking Keystone about: non-empty, not too
// long, and visible ASCII only. Anything else could not be sent as a header, or would
// make Keystone answer in a way we'd have to count as an outage.
func plausible(token string) bool {
	if token == "" || len(token) > maxTokenLen {
		return false
	}
	for i := 0; i < len(token); i++ {
		if token[i] < 0x21 || token[i] > 0x7e {
			return false
		}
	}
	return true
}
