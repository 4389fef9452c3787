package main

import (
	"log/slog"

	"example.com/opsvc/server"
)

func newAuthenticator(cfg Config, log *slog.Logger) (server.Authenticator, string, error) {
	if cfg.AuthTokensFile == "" {
		return nil, "none", nil
	}
	t, err := server.ReadTokensFile(cfg.AuthTokensFile)
	if err != nil {
		return nil, "", err
	}
	return t, "tokens-file", nil
}
