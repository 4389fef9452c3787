package dbtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Bounds of the waits on a private MariaDB. The first start also creates the
// data directory (mariadb-install-db, a few seconds; the script allows it 120).
const (
	startTimeout = 150 * time.Second
	stopTimeout  = 30 * time.Second
	killTimeout  = 10 * time.Second
)

// MariaDB is a private MariaDB server: its own data directory under the test's
// temporary directory, its own port on 127.0.0.1, user root without a password,
// and a database named opsvc. It is started by `scripts/mariadb.sh run`, which
// becomes mariadbd, so Pid is the server's own pid.
type MariaDB struct {
	Dir  string
	Port int

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// StartMariaDB starts a private MariaDB and returns once it answers. It stops
// the server when tb ends. Without mariadbd and mariadb-install-db it skips
// tb, except under CI, where it fails it.
func StartMariaDB(tb testing.TB) *MariaDB {
	tb.Helper()
	if _, err := exec.LookPath("mariadb-install-db"); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("CI runs the fault tests, but mariadb-install-db is missing: %v", err)
		}
		tb.Skipf("skipping: a private MariaDB needs mariadbd and mariadb-install-db (Debian: mariadb-server): %v", err)
	}
	m := &MariaDB{Dir: tb.TempDir()}
	tb.Cleanup(func() {
		if err := m.stop(); err != nil {
			tb.Errorf("stopping the private MariaDB: %v", err)
		}
	})
	// A port that was free a moment ago may be taken by the time mariadbd
	// binds it: then try another.
	var err error
	for range 3 {
		if m.Port, err = freePort(); err != nil {
			tb.Fatal(err)
		}
		if err = m.start(); err == nil {
			return m
		}
		if !strings.Contains(m.errorLog(), "Address already in use") {
			break
		}
	}
	tb.Fatalf("starting a private MariaDB: %v", err)
	return nil
}

// URL returns the service's mysql:// URL for database db (e.g. "opsvc").
func (m *MariaDB) URL(db string) string {
	return fmt.Sprintf("mysql://root:@127.0.0.1:%d/%s", m.Port, db)
}

// Addr returns host:port.
func (m *MariaDB) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port)) }

// Pid returns the pid of the running mariadbd, 0 when it does not run.
func (m *MariaDB) Pid() int {
	if m.cmd == nil || m.gone() {
		return 0
	}
	return m.cmd.Process.Pid
}

// Start starts the server again, on the same data and port, after Kill or
// Stop, and returns once it answers.
func (m *MariaDB) Start(tb testing.TB) {
	tb.Helper()
	if err := m.start(); err != nil {
		tb.Fatal(err)
	}
}

// Kill kills the server with SIGKILL, as a crash would, and waits until it is
// gone.
func (m *MariaDB) Kill(tb testing.TB) {
	tb.Helper()
	if err := m.signalAndWait(syscall.SIGKILL, killTimeout); err != nil {
		tb.Fatal(err)
	}
}

// Stop stops the server cleanly (SIGTERM) and waits until it is gone.
func (m *MariaDB) Stop(tb testing.TB) {
	tb.Helper()
	if err := m.stop(); err != nil {
		tb.Fatal(err)
	}
}

// Freeze stops the server with SIGSTOP, and returns once it is stopped: its
// connections stay open, and nothing is answered, until Thaw.
func (m *MariaDB) Freeze(tb testing.TB) {
	tb.Helper()
	if err := m.signal(syscall.SIGSTOP); err != nil {
		tb.Fatal(err)
	}
	// The signal is delivered a little later, to every thread.
	stat := fmt.Sprintf("/proc/%d/stat", m.Pid())
	for deadline := time.Now().Add(killTimeout); ; time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(stat)
		if err != nil {
			tb.Fatalf("freeze: %v", err)
		}
		// "pid (comm) S ...": the state follows the command's closing parenthesis.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'T' {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("mariadbd (pid %d) not stopped %s after SIGSTOP", m.Pid(), killTimeout)
		}
	}
}

// Thaw resumes a frozen server with SIGCONT.
func (m *MariaDB) Thaw(tb testing.TB) {
	tb.Helper()
	if err := m.signal(syscall.SIGCONT); err != nil {
		tb.Fatal(err)
	}
}

func (m *MariaDB) start() error {
	if m.Pid() != 0 {
		return errors.New("mariadbd is running already")
	}
	script, err := scriptPath()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(filepath.Join(m.Dir, "mariadbd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command("bash", script, "run", m.Dir, strconv.Itoa(m.Port))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return err
	}
	m.cmd, m.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(m.exited)

	deadline := time.Now().Add(startTimeout)
	for {
		if m.gone() {
			return fmt.Errorf("mariadbd exited while starting; %s", m.errorLog())
		}
		if err = m.ping(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = m.signalAndWait(syscall.SIGKILL, killTimeout)
			return fmt.Errorf("mariadbd does not answer on %s after %s: %v", m.Addr(), startTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ping connects as the service would and runs a query, within two seconds.
func (m *MariaDB) ping() error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "tcp", m.Addr()
	cfg.DBName = "opsvc"
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = time.Second, time.Second, time.Second
	cfg.Logger = discard{}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.QueryRowContext(ctx, "SELECT 1").Scan(new(int))
}

func (m *MariaDB) stop() error {
	if m.Pid() == 0 {
		return nil
	}
	_ = m.signal(syscall.SIGCONT) // a frozen server cannot act on SIGTERM
	if err := m.signalAndWait(syscall.SIGTERM, stopTimeout); err == nil {
		return nil
	}
	return m.signalAndWait(syscall.SIGKILL, killTimeout)
}

func (m *MariaDB) signal(sig syscall.Signal) error {
	if m.Pid() == 0 {
		return errors.New("mariadbd is not running")
	}
	return m.cmd.Process.Signal(sig)
}

func (m *MariaDB) signalAndWait(sig syscall.Signal, bound time.Duration) error {
	if err := m.signal(sig); err != nil {
		return err
	}
	select {
	case <-m.exited:
		return nil
	case <-time.After(bound):
		return fmt.Errorf("mariadbd (pid %d) still runs %s after %s", m.cmd.Process.Pid, bound, sig)
	}
}

func (m *MariaDB) gone() bool {
	select {
	case <-m.exited:
		return true
	default:
		return false
	}
}

// errorLog returns the end of the server's error log, for failure messages.
func (m *MariaDB) errorLog() string {
	var b []byte
	for _, f := range []string{"install.log", "mariadbd.out", "error.log"} {
		if c, err := os.ReadFile(filepath.Join(m.Dir, f)); err == nil {
			b = append(b, c...)
		}
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return "its logs end with:\n" + string(b)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// scriptPath finds scripts/mariadb.sh above the test's directory.
func scriptPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "mariadb.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no scripts/mariadb.sh above the test's directory")
		}
		dir = parent
	}
}

// discard silences the driver's own logger: the errors it prints come back
// as errors too.
type discard struct{}

func (discard) Print(...any) {}
