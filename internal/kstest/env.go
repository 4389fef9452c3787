package kstest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// keys are the variables of keystone.env that the tests need. KEYSTONE_DOMAIN is read
// too, but may be missing: the service defaults it.
var keys = []string{
	"KEYSTONE_URL", "KEYSTONE_USERNAME", "KEYSTONE_PASSWORD", "KEYSTONE_PROJECT",
	"KS_TENANT_A_USER", "KS_TENANT_A_PASSWORD", "KS_TENANT_A_PROJECT", "KS_TENANT_A_PROJECT_ID",
	"KS_TENANT_B_USER", "KS_TENANT_B_PASSWORD", "KS_TENANT_B_PROJECT", "KS_TENANT_B_PROJECT_ID",
	"KS_ADMIN_USER", "KS_ADMIN_PASSWORD", "KS_ADMIN_PROJECT", "KS_ADMIN_PROJECT_ID",
}

// Env returns the real Keystone's variables (those of keystone.env: KEYSTONE_URL, the
// service's credentials, and the KS_* test users). It reads the file KEYSTONE_ENV_FILE
// names or, when that is unset, the same variables from the environment. Without them it
// skips tb, or fails it under CI, which must never skip a Keystone test.
func Env(tb testing.TB) map[string]string {
	tb.Helper()
	env := map[string]string{}
	if path := os.Getenv("KEYSTONE_ENV_FILE"); path != "" {
		f, err := os.Open(path)
		if err != nil {
			tb.Fatalf("KEYSTONE_ENV_FILE: %v", err)
		}
		defer f.Close()
		if env, err = parseEnv(f); err != nil {
			tb.Fatalf("KEYSTONE_ENV_FILE %s: %v", path, err)
		}
	} else {
		for _, k := range append(keys, "KEYSTONE_DOMAIN") {
			if v, ok := os.LookupEnv(k); ok {
				env[k] = v
			}
		}
	}
	var missing []string
	for _, k := range keys {
		if env[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		what := "KEYSTONE_ENV_FILE is not set"
		if len(env) > 0 {
			what = "missing " + strings.Join(missing, ", ")
		}
		skipOrFail(tb, "no Keystone to test against ("+what+")")
	}
	return env
}

// skipOrFail skips tb with why and how to start Keystone, or fails it under CI.
func skipOrFail(tb testing.TB, why string) {
	tb.Helper()
	msg := fmt.Sprintf("%s: run scripts/keystone.sh start, then "+
		"KEYSTONE_ENV_FILE=$PWD/.keystone/keystone.env go test ./...", why)
	if os.Getenv("CI") != "" {
		tb.Fatal(msg + " (CI must never skip a Keystone test)")
	}
	tb.Skip(msg)
}

// parseEnv reads KEY=value lines as scripts/keystone.sh writes them, and as a shell
// would source them: blank lines and comments, an optional "export ", and optional
// quotes around the value.
func parseEnv(r io.Reader) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[strings.TrimSpace(k)] = v
	}
	return env, sc.Err()
}
