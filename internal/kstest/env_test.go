package kstest

import (
	"maps"
	"runtime"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"keystone.sh's lines", "# Written by scripts/keystone.sh\nKEYSTONE_URL=http://127.0.0.1:5000/v3\n\nKS_ADMIN_USER=admin\n",
			map[string]string{"KEYSTONE_URL": "http://127.0.0.1:5000/v3", "KS_ADMIN_USER": "admin"}},
		{"export and quotes", "export A=\"x y\"\nB='z'\n  C = \"\n", map[string]string{"A": "x y", "B": "z", "C": ` "`}},
		{"a value with = in it", "P=a=b\n", map[string]string{"P": "a=b"}},
		{"a line without = is ignored", "garbage\nA=1\n", map[string]string{"A": "1"}},
		{"an empty value", "A=\n", map[string]string{"A": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEnv(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEnv_WithoutKeystone(t *testing.T) {
	for _, k := range append(keys, "KEYSTONE_ENV_FILE", "KEYSTONE_DOMAIN") {
		t.Setenv(k, "")
	}
	for ci, want := range map[string]string{"": "skipped", "true": "failed"} {
		t.Setenv("CI", ci)
		if got := envOutcome(t); got != want {
			t.Errorf("CI=%q: Env %s, want %s", ci, got, want)
		}
	}
}

// envOutcome runs Env on a fake TB, in a goroutine of its own since Skip and Fatal end
// theirs, and says what Env did: "returned", "skipped" or "failed".
func envOutcome(t *testing.T) string {
	tb := &outcomeTB{TB: t, outcome: "returned"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Env(tb)
	}()
	<-done
	return tb.outcome
}

type outcomeTB struct {
	testing.TB
	outcome string
}

func (tb *outcomeTB) Helper()               {}
func (tb *outcomeTB) Skip(...any)           { tb.outcome = "skipped"; runtime.Goexit() }
func (tb *outcomeTB) Fatal(...any)          { tb.outcome = "failed"; runtime.Goexit() }
func (tb *outcomeTB) Fatalf(string, ...any) { tb.outcome = "failed"; runtime.Goexit() }
