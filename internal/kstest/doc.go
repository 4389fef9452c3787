// Package kstest is the test helper for the tests that run against the real Keystone
// started by scripts/keystone.sh: it finds that Keystone (Env), logs its test users in,
// revokes tokens, and puts a Proxy of a test's own in front of it, which the test
// switches to refuse or hang to take Keystone away from the service it runs.
//
// No test stops the shared Keystone, so the tests that use it may run in parallel, in
// one test binary and across the binaries `go test ./...` runs at once.
//
// Keystone's variables come from the file KEYSTONE_ENV_FILE names (keystone.env), or
// from the environment. Without them the tests skip, except under CI, where they fail.
//
// kstest imports nothing of ours, not even package keystone: keystone's own tests use it.
package kstest
