package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"example.com/opsvc/keystone"
	"example.com/opsvc/server"
)

// newAuthenticator picks the token mode: Keystone when KEYSTONE_URL is set,
// the static tokens file when AUTH_TOKENS_FILE is, otherwise none (every ICC
// request is 401).
func newAuthenticator(cfg Config, log *slog.Logger) (server.Authenticator, string, error) {
	switch {
	case cfg.Keystone.URL != "":
		k := cfg.Keystone
		k.Logger = log
		v, err := keystone.New(k)
		if err != nil {
			return nil, "", fmt.Errorf("KEYSTONE_URL: %w", err)
		}
		return keystoneAuth{v}, "keystone", nil
	case cfg.AuthTokensFile != "":
		t, err := server.ReadTokensFile(cfg.AuthTokensFile)
		if err != nil {
			return nil, "", fmt.Errorf("AUTH_TOKENS_FILE: %w", err)
		}
		return t, "tokens-file", nil
	}
	return nil, "none", nil
}

// keystoneAuth adapts the Keystone validator to server.Authenticator.
type keystoneAuth struct{ v *keystone.Validator }

func (a keystoneAuth) Authenticate(ctx context.Context, token string) (server.Principal, error) {
	id, err := a.v.Validate(ctx, token)
	switch {
	case errors.Is(err, keystone.ErrInvalidToken):
		return server.Principal{}, server.ErrUnauthenticated
	case err != nil:
		return server.Principal{}, fmt.Errorf("%w: %w", server.ErrAuthUnavailable, err)
	}
	return server.Principal{TenantID: id.ProjectID, Roles: id.Roles}, nil
}
