// Package keystone validates OpenStack Keystone (identity v3) tokens for the service, with
// a bounded cache in front of Keystone.
//
// A Validator authenticates to Keystone as the service's own user (password, scoped to a
// project) and asks Keystone about each caller's token with GET /v3/auth/tokens
// (X-Subject-Token). The answer is an Identity: the token's project id, role names and
// expiry. Keystone 22's default policy lets a token with the "service" role on any
// project validate other users' tokens (identity:validate_token: "rule:admin_required or
// (role:reader and system_scope:all) or rule:service_role or rule:token_subject"), so
// the service user needs "service", not "admin".
//
// Errors say who is at fault. ErrInvalidToken means Keystone refused the token; the
// caller should answer 401. ErrUnavailable means Keystone could not tell (unreachable,
// slow, failing, or refusing the service's own credentials); the caller should answer
// 503 and must never treat it as a refusal. Neither tokens nor Keystone's answer bodies
// (which may quote the token) appear in errors or logs.
//
// The package imports nothing of ours, so cmd can wire it into server through an
// adapter and tests can use it alone.
package keystone
