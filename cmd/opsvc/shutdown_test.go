package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"example.com/opsvc/internal/spectest"
)

// TestMain removes the binary that buildOnce built, when every test is done
// with it.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.Load() {
		if bin, err := buildOnce(); err == nil {
			os.RemoveAll(filepath.Dir(bin))
		}
	}
	os.Exit(code)
}

// built says whether buildOnce ran: TestMain must not build just to remove.
var built atomic.Bool

// testVersion is the version the test binary is built with.
const testVersion = "0.0.0-test"

// buildOnce builds the service binary for the tests that run it as a process.
var buildOnce = sync.OnceValues(func() (string, error) {
	built.Store(true)
	dir, err := os.MkdirTemp("", "opsvc-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "opsvc")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+testVersion, "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// TestMain_SIGTERM runs the built binary, sends SIGTERM while a request is in
// flight, and checks that the request finishes, new connections are refused,
// and the process exits 0 with its data on disk.
func TestMain_SIGTERM(t *testing.T) {
	t.Parallel()
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "operations.db")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "LISTEN_ADDR=127.0.0.1:0", "DATABASE_URL="+dbURL, "AUTH_TOKENS_FILE=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := bufio.NewScanner(stdout)
	var addr string
	var logs strings.Builder
	for addr == "" && lines.Scan() {
		logs.WriteString(lines.Text() + "\n")
		var l struct{ Msg, Addr string }
		if json.Unmarshal(lines.Bytes(), &l) == nil && l.Msg == "listening" {
			addr = l.Addr
		}
	}
	if addr == "" {
		t.Fatalf("no listening line:\n%s", logs.String())
	}
	go func() {
		for lines.Scan() {
		}
	}()

	// A PUT whose body is half sent when SIGTERM arrives.
	body, _ := json.Marshal(minimal("inflight", "executing", "20261123_100000"))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /v1/operations/inflight HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, len(body))
	half := len(body) / 2
	if _, err := conn.Write(body[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server start reading the body
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// New connections are refused within half a second.
	deadline := time.Now().Add(500 * time.Millisecond)
	refused := false
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			refused = true
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if !refused {
		t.Fatal("new connections were still accepted 0.5 s after SIGTERM")
	}

	// The in-flight request finishes.
	if _, err := conn.Write(body[half:]); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/operations/inflight", nil)
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	spectest.Check(t, req, resp, answer)
	if resp.StatusCode != 200 {
		t.Fatalf("in-flight request: status %d", resp.StatusCode)
	}

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("exit: %v (want status 0)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the process did not exit after SIGTERM")
	}

	// What was accepted is in the database.
	s := mustRunMain(t, map[string]string{"DATABASE_URL": dbURL})
	r, _ := getOp(t, s, "inflight")
	wantStatus(t, r, 200)
}
