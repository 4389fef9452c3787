package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// No Docker engine runs where the tests do, so docker-compose.yml is checked
// as YAML: the shape operators rely on.
func TestDockerCompose(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image       string
			Build       any
			Environment map[string]string
			DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
			Healthcheck struct{ Test []string }
			Volumes     []string
			Ports       []string
			Restart     string
		}
		Volumes map[string]any
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	db, svc := c.Services["mysql"], c.Services["opsvc"]
	if !strings.HasPrefix(db.Image, "mysql:8") {
		t.Errorf("mysql image: %q, want mysql:8.x", db.Image)
	}
	if len(db.Healthcheck.Test) == 0 || len(svc.Healthcheck.Test) == 0 {
		t.Error("both services need a health check")
	}
	if svc.DependsOn["mysql"].Condition != "service_healthy" {
		t.Error("opsvc must depend on mysql being healthy")
	}
	if svc.Build == nil {
		t.Error("opsvc must build from the Dockerfile")
	}
	if !strings.HasPrefix(svc.Environment["DATABASE_URL"], "mysql://") || svc.Environment["AUTH_TOKENS_FILE"] == "" {
		t.Errorf("opsvc environment: %v", svc.Environment)
	}
	mounted := false
	for _, v := range svc.Volumes {
		if strings.Contains(v, svc.Environment["AUTH_TOKENS_FILE"]) {
			mounted = true
		}
	}
	if !mounted {
		t.Error("the tokens file is not mounted")
	}
	for name, s := range c.Services {
		if s.Restart != "unless-stopped" && s.Restart != "always" {
			t.Errorf("%s: restart %q, want a policy that restarts it", name, s.Restart)
		}
	}
	// Published on the host's loopback unless told otherwise.
	if len(svc.Ports) != 1 || !strings.HasPrefix(svc.Ports[0], "${OPSVC_PUBLISH:-127.0.0.1:8080}:") {
		t.Errorf("opsvc ports %q, want 127.0.0.1:8080 by default", svc.Ports)
	}
	// No password on a command line: ps would show it.
	check := strings.Join(db.Healthcheck.Test, " ")
	if strings.Contains(check, " -p") || strings.Contains(check, "--password") || !strings.Contains(check, "MYSQL_PWD=") {
		t.Errorf("mysql health check %q passes the password on the command line", check)
	}
}

// The image's build context leaves out history, local databases, binaries and
// credentials.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{".git", "bin/", "operations.db*", "*.db", ".keystone/", "*.env"} {
		if !have[want] {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	// What the build needs is not excluded.
	for _, need := range []string{"go.mod", "go.sum", "openapi.yaml", "cmd/", "*.go"} {
		if have[need] {
			t.Errorf(".dockerignore excludes %s, which the build needs", need)
		}
	}
}

func TestHealthcheckCommand(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.URL, "http://"))
	if got := healthcheck(func(string) string { return "127.0.0.1:" + port }); got != 0 {
		t.Fatalf("ready service: exit %d", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, free, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	if got := healthcheck(func(string) string { return ":" + free }); got != 1 {
		t.Fatalf("nothing listening: exit %d, want 1", got)
	}
}
