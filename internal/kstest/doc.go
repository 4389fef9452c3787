// Package kstest is the test helper for the tests that run against the real Keystone
// started by scripts/keystone.sh: it finds that Keystone, logs its test users in, revokes
// tokens, and stops and starts it.
//
// It also keeps those tests out of each other's way. `go test ./...` runs the test
// binaries of several packages at once, and a test that stops Keystone would break
// whatever test of another binary uses it at that moment. So every user of the real
// Keystone holds a readers-writer lock on a file next to keystone.env: Env takes it
// shared, EnvExclusive exclusive, and Stop and Start refuse to run without the exclusive
// hold. The lock is flock(2), which the kernel drops when a process dies, behind a
// per-process count of holders (see lock.go for why both, and for the rules that keep a
// test binary from deadlocking against itself):
//
//   - a test that uses Keystone calls Env after t.Parallel, never before: a parallel test
//     holding the lock while paused would keep an exclusive test of its binary waiting;
//   - a test that stops Keystone calls EnvExclusive and does not call t.Parallel.
//
// Keystone's variables come from the file KEYSTONE_ENV_FILE names (keystone.env), or
// from the environment. Without them the tests skip, except under CI, where they fail.
//
// kstest imports nothing of ours, not even package keystone: keystone's own tests use it.
package kstest
