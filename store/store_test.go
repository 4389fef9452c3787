package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

// The store suite runs every test on every backend: SQLite in a temp dir, and
// MySQL/MariaDB when TEST_MYSQL_DSN names a server, e.g.
// TEST_MYSQL_DSN='mysql://root:@127.0.0.1:3306/test'. Each test gets a
// database of its own, so tests run in parallel.

// backend makes new, empty databases of one kind.
type backend struct {
	name string
	// newDSN returns the DSN of a new database that is removed when tb ends.
	newDSN func(tb testing.TB) string
	// missing, when set, says what the backend needs to run here.
	missing string
}

var testBackends = []backend{
	{name: "sqlite", newDSN: newSQLiteDSN},
	mysqlBackend(),
}

func mysqlBackend() backend {
	dsn := os.Getenv("TEST_MYSQL_DSN")
	if dsn == "" {
		return backend{name: "mysql", missing: "TEST_MYSQL_DSN is not set " +
			"(e.g. TEST_MYSQL_DSN='mysql://root:@127.0.0.1:3306/test')"}
	}
	return backend{name: "mysql", newDSN: func(tb testing.TB) string { return newMySQLDSN(tb, dsn) }}
}

// forEachBackend runs test on every backend, each in a parallel subtest.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	t.Helper()
	t.Parallel()
	for _, b := range testBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			if b.missing != "" {
				if os.Getenv("CI") != "" {
					t.Fatalf("CI runs the %s backend, but %s", b.name, b.missing)
				}
				t.Skipf("skipping the %s backend: %s", b.name, b.missing)
			}
			test(t, b)
		})
	}
}

func newSQLiteDSN(tb testing.TB) string {
	return "sqlite:" + filepath.Join(tb.TempDir(), "store.db")
}

// mysqlAdmin is one connection pool, shared by all tests, that creates and
// drops their databases.
var mysqlAdmin = sync.OnceValues(func() (*sql.DB, error) {
	cfg, err := mysqlConfig(os.Getenv("TEST_MYSQL_DSN"), 10*time.Second)
	if err != nil {
		return nil, err
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(connector), nil
})

func newMySQLDSN(tb testing.TB, base string) string {
	tb.Helper()
	admin, err := mysqlAdmin()
	if err != nil {
		tb.Fatalf("TEST_MYSQL_DSN: %v", err)
	}
	name := "opsvc_t_" + randomHex(tb, 8)
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("TEST_MYSQL_DSN: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// mustOpen opens a store on a new database of backend b.
func mustOpen(tb testing.TB, b backend, opts Options) *Store {
	tb.Helper()
	return mustOpenDSN(tb, b.newDSN(tb), opts)
}

// mustOpenDSN opens a store on dsn and closes it when tb ends.
func mustOpenDSN(tb testing.TB, dsn string, opts Options) *Store {
	tb.Helper()
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func ptr[T any](v T) *T { return &v }

// t0 is the base of the times used in tests; at(n) is n seconds later.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func at(seconds int) time.Time { return t0.Add(time.Duration(seconds) * time.Second) }

// assertEqual fails tb when got and want differ, showing both as JSON, which
// tells nil from empty and shows what pointers point to.
func assertEqual[T any](tb testing.TB, what string, got, want T) {
	tb.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	tb.Errorf("%s differs:\n got %s\nwant %s", what, clippedJSON(got), clippedJSON(want))
}

func clippedJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	if len(b) > 2000 {
		return fmt.Sprintf("%s...(%d bytes)", b[:2000], len(b))
	}
	return string(b)
}

func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("unknown scheme is refused without echoing the URL", func(t *testing.T) {
		_, err := Open(ctx, "postgres://u:secret@host/db", Options{})
		if err == nil {
			t.Fatal("Open succeeded")
		}
		if got := err.Error(); strings.Contains(got, "secret") {
			t.Errorf("error %q shows the password", got)
		}
	})
	t.Run("mysql URL without a database is refused", func(t *testing.T) {
		for _, dsn := range []string{"mysql://root:@127.0.0.1:3306", "mysql://root:@127.0.0.1:3306/", "mysql:///test"} {
			if _, err := Open(ctx, dsn, Options{}); err == nil || errors.Is(err, ErrUnavailable) {
				t.Errorf("Open(%q) = %v, want a configuration error", dsn, err)
			}
		}
	})
	t.Run("unreachable mysql is ErrUnavailable", func(t *testing.T) {
		// Nothing listens on port 1.
		_, err := Open(ctx, "mysql://root:secret@127.0.0.1:1/test", Options{})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Open = %v, want ErrUnavailable", err)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q shows the password", err)
		}
	})
	t.Run("sqlite file in a missing directory is refused naming it", func(t *testing.T) {
		// SQLite itself says "out of memory".
		dsn := "sqlite:" + filepath.Join(t.TempDir(), "missing", "dir", "store.db")
		if _, err := Open(ctx, dsn, Options{}); err == nil || !strings.Contains(err.Error(), "missing/dir\" does not exist") {
			t.Fatalf("Open = %v, want the directory named", err)
		}
	})
	t.Run("sqlite file that cannot be opened is ErrUnavailable", func(t *testing.T) {
		// A directory where the file should be.
		if _, err := Open(ctx, "sqlite:"+t.TempDir(), Options{}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Open = %v, want ErrUnavailable", err)
		}
	})
	t.Run("sqlite file uses WAL, foreign keys and a busy timeout", func(t *testing.T) {
		s := mustOpenDSN(t, newSQLiteDSN(t), Options{})
		for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "5000"} {
			var got string
			if err := s.db.Raw("PRAGMA " + pragma).Scan(&got).Error; err != nil || got != want {
				t.Errorf("PRAGMA %s = %q, %v; want %q", pragma, got, err, want)
			}
		}
	})
	t.Run("sqlite in memory works", func(t *testing.T) {
		s := mustOpenDSN(t, "sqlite::memory:", Options{})
		mustPutOperation(t, s, newOperation("mem"))
		mustGetOperation(t, s, "mem")
	})
}

func TestStore_Ping(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		s := mustOpen(t, b, Options{})
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping on an open store = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Ping(ctx); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Ping after Close = %v, want ErrUnavailable", err)
		}
		if _, err := s.GetOperation(ctx, "x"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("GetOperation after Close = %v, want ErrUnavailable", err)
		}
		if _, err := s.PutOperation(ctx, newOperation("x")); !errors.Is(err, ErrUnavailable) {
			t.Errorf("PutOperation after Close = %v, want ErrUnavailable", err)
		}
	})
}

func TestStore_timestamps(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		now := at(1000)
		s := mustOpen(t, b, Options{Now: func() time.Time { return now }})
		type stamps struct {
			CreatedAt, UpdatedAt time.Time
		}
		read := func(table, where string, args ...any) stamps {
			t.Helper()
			var got stamps
			if err := s.db.Table(table).Select("created_at", "updated_at").Where(where, args...).Take(&got).Error; err != nil {
				t.Fatal(err)
			}
			return stamps{got.CreatedAt.UTC(), got.UpdatedAt.UTC()}
		}

		op, iccOp := newOperation("stamped"), newICCOperation("stamped", "tenant", connA)
		mustPutOperation(t, s, op)
		mustPutICCOperation(t, s, iccOp)
		// A repeat writes nothing: updated_at stays.
		now = at(1500)
		mustPutOperation(t, s, op)
		mustPutICCOperation(t, s, iccOp)
		want := stamps{at(1000), at(1000)}
		assertEqual(t, "msf_operations stamps after a repeat", read("msf_operations", "id = ?", "stamped"), want)
		assertEqual(t, "icc_operations stamps after a repeat", read("icc_operations", "operation_id = ?", "stamped"), want)

		now = at(2000).Add(time.Second / 2)
		op.LastUpdateTime = at(20)
		iccOp.Phase = "approve_connection"
		mustPutOperation(t, s, op)
		mustPutICCOperation(t, s, iccOp)
		want = stamps{at(1000), at(2000)}
		assertEqual(t, "msf_operations stamps", read("msf_operations", "id = ?", "stamped"), want)
		assertEqual(t, "icc_operations stamps", read("icc_operations", "operation_id = ?", "stamped"), want)
	})
}

func TestConflictError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("put operation %q: %w", "op1", &ConflictError{Field: "status", Reason: "executing would go back from completed"})
	if !errors.Is(err, ErrConflict) {
		t.Error("errors.Is(err, ErrConflict) = false")
	}
	if got, want := err.Error(), `put operation "op1": conflict: status: executing would go back from completed`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	s := &Store{}
	tests := []struct {
		name            string
		err             error
		wantUnavailable bool
	}{
		{"refused connection", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"bad connection", fmt.Errorf("query: %w", driver.ErrBadConn), true},
		{"invalid connection", mysql.ErrInvalidConn, true},
		{"server shutdown", &mysql.MySQLError{Number: 1053}, true},
		{"galera node not ready", &mysql.MySQLError{Number: 1047, Message: "WSREP has not yet prepared node for application use"}, true},
		{"galera not in the primary component", &mysql.MySQLError{Number: 1180, Message: "Error while appending streaming replication fragment(provider status: Not connected to Primary Component)"}, true},
		{"certification conflict", &mysql.MySQLError{Number: 1213}, false},
		{"syntax error", &mysql.MySQLError{Number: 1064}, false},
		{"cancelled context", context.Canceled, false},
		{"conflict", ErrConflict, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.translate(tt.err)
			if errors.Is(got, ErrUnavailable) != tt.wantUnavailable {
				t.Errorf("translate(%v) = %v, want unavailable %v", tt.err, got, tt.wantUnavailable)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("translate(%v) = %v, lost the original error", tt.err, got)
			}
		})
	}
}

// What the MySQL driver has to say goes through the store's slog logger,
// as JSON, never to stderr as text: here, the idle connection the server
// killed, which the driver finds dead and drops.
func TestStore_driverLogsThroughSlog(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		if b.name != "mysql" {
			return // SQLite's driver logs nothing
		}
		var logs lockedBuffer
		s := mustOpen(t, b, Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		ctx := context.Background()
		var dbName string
		if err := s.sqlDB.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil {
			t.Fatal(err)
		}
		admin, err := mysqlAdmin()
		if err != nil {
			t.Fatal(err)
		}
		rows, err := admin.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ?", dbName)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		for _, id := range ids {
			_, _ = admin.ExecContext(ctx, fmt.Sprintf("KILL %d", id))
		}
		// The first use finds the connection dead: either the driver's
		// check before reuse, or the ping itself (then it fails), logs it.
		_ = s.Ping(ctx)
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping after the kill: %v", err)
		}
		if len(ids) == 0 || !strings.Contains(logs.String(), `"msg":"store: mysql driver"`) {
			t.Fatalf("killed %d connections; want the driver's message as a JSON line, got:\n%s", len(ids), logs.String())
		}
	})
}

// lockedBuffer is a log destination written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestBrokenAtWrite(t *testing.T) {
	t.Parallel()
	s := &Store{dialect: dialectMySQL}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection reset at COMMIT", fmt.Errorf("commit: %w", syscall.ECONNRESET), true},
		{"galera lost the primary component at COMMIT", &mysql.MySQLError{Number: 1180}, true},
		// Refused before it ran: nothing was written.
		{"galera node not ready", &mysql.MySQLError{Number: 1047}, false},
		{"certification conflict", &mysql.MySQLError{Number: 1213}, false},
		{"dial refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
	}
	for _, tt := range tests {
		if got := s.brokenAtWrite(tt.err); got != tt.want {
			t.Errorf("%s: brokenAtWrite(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// A write that loses its race on every attempt (a certification conflict on
// Galera, each time) gives up after maxTxAttempts as ErrUnavailable, never
// as a bare database error.
func TestRetry_exhausted(t *testing.T) {
	t.Parallel()
	s := &Store{log: slog.New(slog.DiscardHandler), timeout: time.Minute}
	tests := []struct {
		name            string
		err             error
		wantAttempts    int
		wantUnavailable bool
	}{
		{"certification conflict every time", &mysql.MySQLError{Number: 1213}, maxTxAttempts, true},
		{"duplicate key every time", gorm.ErrDuplicatedKey, maxTxAttempts, true},
		{"group replication certification every time", &mysql.MySQLError{Number: 3101}, maxTxAttempts, true},
		{"syntax error", &mysql.MySQLError{Number: 1064}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts := 0
			err := s.withRetry(context.Background(), func(context.Context) error {
				attempts++
				return tt.err
			})
			if attempts != tt.wantAttempts || errors.Is(err, ErrUnavailable) != tt.wantUnavailable || !errors.Is(err, tt.err) {
				t.Errorf("after %d attempts: %v; want %d attempts, unavailable %v", attempts, err, tt.wantAttempts, tt.wantUnavailable)
			}
		})
	}
}
