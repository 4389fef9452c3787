package kstest

import (
	"maps"
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

func TestEnv_SkipsWithoutKeystone(t *testing.T) {
	for _, k := range append(keys, "KEYSTONE_ENV_FILE", "KEYSTONE_DOMAIN", "CI") {
		t.Setenv(k, "")
	}
	for name, env := range map[string]func(testing.TB) map[string]string{"Env": Env, "EnvExclusive": EnvExclusive} {
		var sub *testing.T
		t.Run(name, func(t *testing.T) {
			sub = t
			env(t)
			t.Error("did not skip")
		})
		if !sub.Skipped() {
			t.Errorf("%s did not skip", name)
		}
	}
}
