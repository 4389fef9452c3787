package main

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// dbServer is the MariaDB/MySQL server the service and the floors run on.
type dbServer struct {
	url  *url.URL // as given, with its driver parameters
	name string   // the base database name
}

// Database names become identifiers in CREATE and DROP DATABASE.
var plainName = regexp.MustCompile(`^[A-Za-z0-9_]{1,48}$`)

// parseServer reads mysql://USER:PASS@HOST:PORT/NAME. The host must be
// 127.0.0.1 (or localhost): opsbench loads nothing but this machine.
func parseServer(raw string) (*dbServer, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "mysql" {
		// url errors quote the input, password included.
		return nil, errors.New("database URL: want mysql://USER:PASS@127.0.0.1:PORT/NAME")
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
		return nil, fmt.Errorf("database URL: host %q: opsbench only runs against 127.0.0.1", h)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if !plainName.MatchString(name) {
		return nil, fmt.Errorf("database URL: database name %q: want 1 to 48 of A-Z a-z 0-9 _", name)
	}
	return &dbServer{url: u, name: name}, nil
}

// serviceURL is the service's DATABASE_URL for database db: the URL given,
// driver parameters included, on another database.
func (s *dbServer) serviceURL(db string) string {
	u := *s.url
	u.Path = "/" + db
	return u.String()
}

// open connects to database db ("" for none) with the given driver
// parameters and at most conns connections.
func (s *dbServer) open(db string, conns int, params map[string]string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = s.url.Host
	if !strings.Contains(cfg.Addr, ":") {
		cfg.Addr += ":3306"
	}
	cfg.User = s.url.User.Username()
	cfg.Passwd, _ = s.url.User.Password()
	cfg.DBName = db
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.Timeout = 10 * time.Second
	cfg.Params = map[string]string{"charset": "utf8mb4"}
	for k, v := range params {
		switch k {
		case "interpolateParams":
			cfg.InterpolateParams = v == "true"
		default:
			cfg.Params[k] = v // a system variable, set on each connection
		}
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	d := sql.OpenDB(connector)
	d.SetMaxOpenConns(conns)
	d.SetMaxIdleConns(conns)
	d.SetConnMaxLifetime(3 * time.Minute)
	return d, nil
}

// recreate drops database db, if it exists, and creates it empty.
func recreate(ctx context.Context, admin *sql.DB, db string) error {
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	return ensureDatabase(ctx, admin, db)
}

func ensureDatabase(ctx context.Context, admin *sql.DB, db string) error {
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+db+" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	return nil
}

// serverInfo describes the database server in the report.
func serverInfo(ctx context.Context, admin *sql.DB) (string, error) {
	var version, flush string
	err := admin.QueryRowContext(ctx, "SELECT VERSION(), @@innodb_flush_log_at_trx_commit").Scan(&version, &flush)
	if err != nil {
		return "", fmt.Errorf("database server: %w", err)
	}
	return fmt.Sprintf("%s, innodb_flush_log_at_trx_commit=%s", version, flush), nil
}

// bufferPool is what the report says about innodb_buffer_pool_size.
type bufferPool struct {
	Size   int64 // in use for the measurements
	Before int64 // before this run, when it raised it
	Raised bool
	Want   int64 // what the data set needs
	Note   string
}

func (b bufferPool) String() string {
	s := "innodb_buffer_pool_size " + mib(b.Size)
	if b.Raised {
		s += fmt.Sprintf(" (raised by this run from %s with SET GLOBAL; back to the configured size when the server restarts)", mib(b.Before))
	}
	if b.Note != "" {
		s += "; " + b.Note
	}
	return s
}

func mib(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// ensureBufferPool makes sure innodb_buffer_pool_size holds want bytes, so
// that the measurements read memory, not disk. In "auto" mode it raises the
// size online (MariaDB 10.11 and MySQL 8 resize while running) when it may;
// otherwise it says how to.
func ensureBufferPool(ctx context.Context, admin *sql.DB, want int64, mode string) (bufferPool, error) {
	bp := bufferPool{Want: roundUp(want, 128<<20)}
	if err := admin.QueryRowContext(ctx, "SELECT @@innodb_buffer_pool_size").Scan(&bp.Size); err != nil {
		return bp, fmt.Errorf("read innodb_buffer_pool_size: %w", err)
	}
	if bp.Size >= bp.Want {
		return bp, nil
	}
	how := fmt.Sprintf("the data set needs about %s: run SET GLOBAL innodb_buffer_pool_size = %d (online; add it to the server's configuration to keep it)", mib(bp.Want), bp.Want)
	if mode != "auto" {
		bp.Note = "WARNING: too small, figures include disk reads; " + how
		return bp, nil
	}
	if avail := memAvailable(); avail > 0 && bp.Want > avail/2 {
		bp.Note = "WARNING: too small, and raising it would take more than half of this machine's free memory; " + how
		return bp, nil
	}
	if _, err := admin.ExecContext(ctx, "SET GLOBAL innodb_buffer_pool_size = "+strconv.FormatInt(bp.Want, 10)); err != nil {
		bp.Note = fmt.Sprintf("WARNING: too small, and raising it failed (%v); %s", err, how)
		return bp, nil
	}
	// The resize may finish after SET returns.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var size int64
		if err := admin.QueryRowContext(ctx, "SELECT @@innodb_buffer_pool_size").Scan(&size); err != nil {
			return bp, fmt.Errorf("read innodb_buffer_pool_size: %w", err)
		}
		if size >= bp.Want || time.Now().After(deadline) {
			bp.Before, bp.Size, bp.Raised = bp.Size, size, true
			return bp, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func roundUp(n, unit int64) int64 { return (n + unit - 1) / unit * unit }

// memAvailable is MemAvailable of /proc/meminfo in bytes, 0 when unknown.
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// databaseBytes is the data and index size of the given databases.
func databaseBytes(ctx context.Context, admin *sql.DB, dbs ...string) (int64, error) {
	var n sql.NullInt64
	q := "SELECT SUM(data_length + index_length) FROM information_schema.TABLES WHERE table_schema IN (?" +
		strings.Repeat(",?", len(dbs)-1) + ")"
	args := make([]any, len(dbs))
	for i, d := range dbs {
		args[i] = d
	}
	if err := admin.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("database sizes: %w", err)
	}
	return n.Int64, nil
}

// loopbackDial refuses any address but 127.0.0.1: whatever URL reaches it,
// the load generator loads this machine only.
func loopbackDial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		return nil, fmt.Errorf("opsbench only connects to 127.0.0.1, not %q", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}
