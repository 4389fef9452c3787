package keystone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"golang.org/x/sync/singleflight"
)

// refreshBefore is how long before its expiry the service's own token is replaced, so
// that a validate call never goes out with a token that expires on the way (clocks
// differ a little, too).
const refreshBefore = time.Minute

// client is the Keystone side of a Validator: the service's own authentication and the
// validate call, through gophercloud.
type client struct {
	provider *gophercloud.ProviderClient
	identity *gophercloud.ServiceClient
	auth     tokens.AuthOptions
	timeout  time.Duration
	now      func() time.Time
	log      *slog.Logger

	// authed turns true after the first successful authentication, which installs
	// gophercloud's ReauthFunc. Until then no request uses the provider, so only then
	// may openstack.AuthenticateV3 (which writes the provider's fields) run.
	authed    atomic.Bool
	authGroup singleflight.Group
}

func newClient(cfg Config) (*client, error) {
	provider, err := openstack.NewClient(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("keystone: URL %q: %w", cfg.URL, err)
	}
	// A per-request limit as well as the context's: it also covers the calls gophercloud
	// makes on its own (re-authentication after a 401).
	provider.HTTPClient = http.Client{Timeout: cfg.Timeout}
	provider.UserAgent.Prepend("opsvc-keystone")
	identity, err := openstack.NewIdentityV3(provider, gophercloud.EndpointOpts{})
	if err != nil {
		return nil, fmt.Errorf("keystone: URL %q: %w", cfg.URL, err)
	}
	return &client{
		provider: provider,
		identity: identity,
		auth: tokens.AuthOptions{
			Username:   cfg.Username,
			Password:   cfg.Password,
			DomainName: cfg.Domain,
			// Lets gophercloud keep the credentials and log in again when Keystone
			// answers 401 to the service's token (expired, revoked, keys rotated).
			AllowReauth: true,
			Scope:       tokens.Scope{ProjectName: cfg.Project, DomainName: cfg.Domain},
		},
		timeout: cfg.Timeout,
		now:     cfg.Now,
		log:     cfg.Logger,
	}, nil
}

// lookup validates token with GET /v3/auth/tokens. It satisfies lookupFunc.
func (c *client) lookup(ctx context.Context, token string) (Identity, error) {
	if err := c.ensureAuth(ctx); err != nil {
		return Identity{}, fmt.Errorf("%w: service authentication: %s", ErrUnavailable, describe(err))
	}
	r := tokens.Get(ctx, c.identity, token)
	if r.Err != nil {
		return Identity{}, classify(r.Err)
	}
	project, err := r.ExtractProject()
	if err != nil {
		return Identity{}, fmt.Errorf("%w: reading Keystone's answer: %s", ErrUnavailable, describe(err))
	}
	if project == nil || project.ID == "" {
		// Unscoped, domain-scoped and system-scoped tokens name no tenant.
		return Identity{}, fmt.Errorf("%w: token is not scoped to a project", ErrInvalidToken)
	}
	roles, err := r.ExtractRoles()
	if err != nil {
		return Identity{}, fmt.Errorf("%w: reading Keystone's answer: %s", ErrUnavailable, describe(err))
	}
	t, err := r.ExtractToken()
	if err != nil {
		return Identity{}, fmt.Errorf("%w: reading Keystone's answer: %s", ErrUnavailable, describe(err))
	}
	id := Identity{ProjectID: project.ID, Roles: make([]string, 0, len(roles)), ExpiresAt: t.ExpiresAt}
	for _, role := range roles {
		id.Roles = append(id.Roles, role.Name)
	}
	return id, nil
}

// ensureAuth makes sure the provider holds a service token that isn't about to expire.
// Concurrent callers share one attempt, which runs on a context of its own so that one
// caller giving up doesn't fail the others.
func (c *client) ensureAuth(ctx context.Context) error {
	if c.authed.Load() && !c.expiring() {
		return nil
	}
	ch := c.authGroup.DoChan("auth", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		if !c.authed.Load() {
			if err := openstack.AuthenticateV3(ctx, c.provider, &c.auth, gophercloud.EndpointOpts{}); err != nil {
				return nil, err
			}
			c.authed.Store(true)
			c.log.InfoContext(ctx, "keystone: service authenticated", "user", c.auth.Username, "project", c.auth.Scope.ProjectName)
			return nil, nil
		}
		if !c.expiring() {
			return nil, nil
		}
		// Reauthenticate goes through the ReauthFunc that AuthenticateV3 installed, under
		// gophercloud's lock, so it can't race with a 401-triggered re-authentication.
		if err := c.provider.Reauthenticate(ctx, c.provider.Token()); err != nil {
			if c.now().Before(c.tokenExpiry()) {
				// The old token still works for a while: use it, and try again next time.
				c.log.WarnContext(ctx, "keystone: refreshing the service token failed; using the current one", "error", describe(err))
				return nil, nil
			}
			return nil, err
		}
		return nil, nil
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// expiring reports whether the service token expires within refreshBefore.
func (c *client) expiring() bool {
	exp := c.tokenExpiry()
	return !exp.IsZero() && !c.now().Add(refreshBefore).Before(exp)
}

// tokenExpiry returns the expiry of the service's current token, or zero if unknown.
func (c *client) tokenExpiry() time.Time {
	r, ok := c.provider.GetAuthResult().(tokens.CreateResult)
	if !ok {
		return time.Time{}
	}
	t, err := r.ExtractToken()
	if err != nil {
		return time.Time{}
	}
	return t.ExpiresAt
}

// classify turns a failed validate call into ErrInvalidToken or ErrUnavailable.
//
// Keystone 22 answers 404 for every problem with the subject token: its token provider
// turns expired, revoked, unreadable and disabled-owner tokens into TokenNotFound. A 401
// is about the service's own token, and gophercloud has already logged in again and
// retried once, so a 401 that reaches us means the service can't authenticate: an
// outage, not a verdict on the caller's token. A 403 means the service user lacks the
// role to validate tokens, a configuration error, also not the caller's fault.
func classify(err error) error {
	var unable *gophercloud.ErrUnableToReauthenticate
	if errors.As(err, &unable) {
		return fmt.Errorf("%w: %s", ErrUnavailable, describe(err))
	}
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		switch code.Actual {
		case http.StatusNotFound:
			return fmt.Errorf("%w: Keystone does not recognize it (HTTP 404)", ErrInvalidToken)
		case http.StatusForbidden:
			return fmt.Errorf("%w: the service user may not validate tokens (HTTP 403; it needs role service or admin)", ErrUnavailable)
		}
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, describe(err))
}

// describe says what went wrong without Keystone's answer body: a 404 body quotes the
// token ("Could not find token: ..."), so gophercloud's own messages can't be logged.
func describe(err error) string {
	var unable *gophercloud.ErrUnableToReauthenticate
	if errors.As(err, &unable) {
		return "re-authentication failed: " + describe(unable.ErrReauth)
	}
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		return fmt.Sprintf("%s %s: HTTP %d", code.Method, code.URL, code.Actual)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		// Method, URL and cause (refused, timeout): the URL carries no token.
		return uerr.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err.Error()
	}
	// Anything else (a malformed answer, say) is named by type only, to be safe.
	return fmt.Sprintf("%T", err)
}
