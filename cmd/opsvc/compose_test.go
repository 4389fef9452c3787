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

// docker-compose.galera.yml (README: Scaling out) is checked the same way:
// three Galera nodes with the durable flush settings, one instance on each of
// two nodes, and a load balancer that asks their /readyz.
func TestDockerComposeGalera(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.galera.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image       string
			Build       any
			Command     []string
			Environment map[string]string
			DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
			Healthcheck struct{ Test []string }
		}
		Configs map[string]struct{ Content string }
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("docker-compose.galera.yml: %v", err)
	}
	cnf := c.Configs["galera-cnf"].Content
	for _, want := range []string{"wsrep_on=ON", "innodb_flush_log_at_trx_commit=1", "sync_binlog=1", "binlog_format=ROW", "innodb_autoinc_lock_mode=2"} {
		if !strings.Contains(cnf, want+"\n") {
			t.Errorf("galera-cnf lacks %s", want)
		}
	}
	bootstraps := 0
	for _, name := range []string{"galera1", "galera2", "galera3"} {
		n := c.Services[name]
		if !strings.HasPrefix(n.Image, "mariadb:") || !strings.Contains(strings.Join(n.Healthcheck.Test, " "), "--galera_online") {
			t.Errorf("%s: image %q, health check %v", name, n.Image, n.Healthcheck.Test)
		}
		for _, arg := range n.Command {
			if arg == "--wsrep-new-cluster" {
				bootstraps++
			}
		}
	}
	if bootstraps != 1 {
		t.Errorf("%d nodes bootstrap a new cluster, want exactly 1", bootstraps)
	}
	nodes := map[string]bool{}
	for _, name := range []string{"opsvc1", "opsvc2"} {
		s := c.Services[name]
		u := s.Environment["DATABASE_URL"]
		host, _, _ := strings.Cut(u[strings.LastIndex(u, "@")+1:], ":")
		if s.Build == nil || !strings.HasPrefix(u, "mysql://") || s.DependsOn[host].Condition != "service_healthy" {
			t.Errorf("%s: build %v, DATABASE_URL %q, depends on %v", name, s.Build, u, s.DependsOn)
		}
		nodes[host] = true
		if s.Environment["AUTH_TOKENS_FILE"] == "" || len(s.Healthcheck.Test) == 0 {
			t.Errorf("%s: environment %v, health check %v", name, s.Environment, s.Healthcheck.Test)
		}
	}
	if len(nodes) != 2 {
		t.Errorf("the instances use nodes %v, want two different ones", nodes)
	}
	if lb := c.Configs["haproxy-cfg"].Content; !strings.Contains(lb, "GET /readyz") {
		t.Errorf("the load balancer does not ask /readyz:\n%s", lb)
	}
}
