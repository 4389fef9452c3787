package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/glebarez/sqlite"
	"github.com/go-sql-driver/mysql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	gormmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	sqlite3 "modernc.org/sqlite/lib"
)

// Options tunes a Store. The zero value is ready to use.
type Options struct {
	// Logger receives migration and retry messages; nil discards them.
	Logger *slog.Logger
	// Now stamps created_at and updated_at; nil means time.Now.
	Now func() time.Time
	// BatchSize is the number of rows per keyset batch in the List methods;
	// 0 means 1000.
	BatchSize int
	// Timeout bounds each call's database work: a write's whole transaction,
	// a read, each batch of a list, a ping. Past it the call fails with
	// ErrUnavailable. On MySQL it is also the driver's dial, read and write
	// timeout (unless the URL sets timeout, readTimeout or writeTimeout), which
	// is what bounds a COMMIT: so a call whose database stops answering during
	// its COMMIT may take up to twice Timeout. 0 means 5 s.
	Timeout time.Duration
	// Tracer, when set, makes a span of each statement and transaction, a
	// child of the span in the call's ctx. nil: no tracing, at no cost.
	Tracer trace.Tracer
	// EncodeEvent makes a webhook event's payload; nil means a minimal one
	// (type, timestamp, the operation's id and status).
	EncodeEvent func(Event) ([]byte, error)
	// OnDeliveries, when set, is called after each commit that wrote
	// webhook deliveries, so a dispatcher can take them at once.
	OnDeliveries func()
}

const (
	defaultBatchSize = 1000
	defaultTimeout   = 5 * time.Second
)

// dialect is the SQL flavour behind a Store.
type dialect int

const (
	dialectSQLite dialect = iota
	dialectMySQL          // MySQL 8 and MariaDB 10.11+: only what both have
)

func (d dialect) String() string {
	if d == dialectMySQL {
		return "mysql"
	}
	return "sqlite"
}

// Store keeps operations in a SQL database. It is safe for concurrent use.
type Store struct {
	db        *gorm.DB
	sqlDB     *sql.DB
	dialect   dialect
	log       *slog.Logger
	now       func() time.Time
	batchSize int
	timeout   time.Duration
	tracer    trace.Tracer
	closed    atomic.Bool

	// subs caches the active webhook subscriptions (see subscriptionSet);
	// subsMu serializes its refreshes and local changes.
	subs         atomic.Pointer[subscriptionSet]
	subsMu       sync.Mutex
	encodeEvent  func(Event) ([]byte, error)
	onDeliveries func()

	// galera is set when the MySQL server is a Galera cluster node
	// (wsrep_on), found once at Open: Ping then also asks whether the node
	// is in the primary component and synced, and the ICC writes make every
	// connection marker they check part of their write set (refreshLatest).
	// A single server pays nothing for either.
	galera bool
	// stmts are the statements of the MSF write, prepared on first use.
	stmts struct {
		put            preparedStmt // putOperationSQL
		putTerminal    preparedStmt // putTerminalSQL (MySQL)
		putNoting      preparedStmt // batchUpsertMySQL (MySQL)
		insertDelivery preparedStmt // insertDeliverySQL
	}

	// ddl, when set, is a pool of its own for the schema migration, without
	// the per-call timeout (see openMySQL); Open closes it when done.
	ddl *gorm.DB
}

// Open connects to the database named by dsn and creates or upgrades its schema
// without losing data. dsn is "sqlite:PATH" (an embedded SQLite file, created if
// missing; "sqlite::memory:" for a private in-memory database) or
// "mysql://USER:PASS@HOST:PORT/DB", whose query parameters are passed to the
// go-sql-driver/mysql driver. Open returns ErrUnavailable when the database
// cannot be reached. The schema migration is bounded by ctx only: on a large
// table it may take long.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	return open(ctx, dsn, opts, migrations)
}

// open is Open with the schema brought up to the last of steps only, so that
// migration tests can write a database as an older version left it.
func open(ctx context.Context, dsn string, opts Options, steps []migration) (*Store, error) {
	s := &Store{
		log:       opts.Logger,
		now:       opts.Now,
		batchSize: opts.BatchSize,
		timeout:   opts.Timeout,
		tracer:    opts.Tracer,

		encodeEvent:  opts.EncodeEvent,
		onDeliveries: opts.OnDeliveries,
	}
	if s.encodeEvent == nil {
		s.encodeEvent = defaultEventEncoding
	}
	s.stmts.putTerminal.query = putTerminalSQL
	s.stmts.putNoting.query = batchUpsertMySQL
	s.stmts.insertDelivery.query = insertDeliverySQL
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.batchSize <= 0 {
		s.batchSize = defaultBatchSize
	}
	if s.timeout <= 0 {
		s.timeout = defaultTimeout
	}

	cfg := &gorm.Config{
		// Duplicate keys come back as gorm.ErrDuplicatedKey on every backend,
		// which the write retry relies on.
		TranslateError: true,
		// GORM's own logger would print SQL with its arguments, bodies
		// included, and log every error a second time; the caller logs errors.
		Logger: logger.Discard,
		// Single-statement writes need no transaction of their own; the
		// multi-statement ones open theirs explicitly (inTx).
		SkipDefaultTransaction: true,
		// Open pings with its ctx instead.
		DisableAutomaticPing: true,
	}

	u, err := parseURL(dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.dialect = u.dialect
	s.stmts.put.query = putOperationSQL[s.dialect]
	if u.dialect == dialectSQLite {
		err = s.openSQLite(ctx, u.sqlitePath, cfg)
	} else {
		err = s.openMySQL(ctx, u.mysql, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", s.dialect, s.translate(err))
	}
	ddl := s.db
	if s.ddl != nil {
		ddl = s.ddl
		defer closeGORM(s.ddl)
	}
	if err := migrate(ctx, ddl, s.dialect, steps, s.now, s.log); err != nil {
		s.sqlDB.Close()
		return nil, fmt.Errorf("open %s store: %w", s.dialect, s.translate(err))
	}
	if steps[len(steps)-1].version >= webhookVersion {
		if err := s.RefreshSubscriptions(ctx); err != nil {
			s.sqlDB.Close()
			return nil, fmt.Errorf("open %s store: %w", s.dialect, err)
		}
	}
	return s, nil
}

// webhookVersion is the schema version that has the webhook tables.
const webhookVersion = 6

func closeGORM(db *gorm.DB) {
	if sqlDB, err := db.DB(); err == nil {
		sqlDB.Close()
	}
}

func (s *Store) openSQLite(ctx context.Context, path string, cfg *gorm.Config) error {
	q := url.Values{}
	// Another process holding a lock makes us wait, not fail at once; first,
	// so that it covers the pragmas below.
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "foreign_keys(1)")
	// A fixed text format with the offset; all times are UTC, so the text
	// compares in time order in the keyset WHERE clauses. It must come last:
	// the driver stops reading parameters after it.
	q.Add("_time_format", "sqlite")

	sqlDB, err := sql.Open(sqlite.DriverName, path+"?"+q.Encode())
	if err != nil {
		return err
	}
	// One connection: GORM's SQLite dialect drops clause.Locking (SQLite has
	// no SELECT ... FOR UPDATE), so the single connection is what serializes
	// the read-check-write transactions. It also keeps a ":memory:" database
	// alive, which exists only as long as its connection.
	sqlDB.SetMaxOpenConns(1)
	sqlDB.SetMaxIdleConns(1)
	sqlDB.SetConnMaxLifetime(0)
	sqlDB.SetConnMaxIdleTime(0)
	if err := s.openGORM(ctx, sqlDB, sqlite.Dialector{Conn: sqlDB}, cfg); err != nil {
		return err
	}
	if err := enableWAL(ctx, sqlDB); err != nil {
		sqlDB.Close()
		return err
	}
	return nil
}

// enableWAL switches the database to write-ahead logging, which lets readers
// in other processes (a backup, the sqlite3 shell) work while we write. The
// mode is stored in the file, so it is set once here rather than per
// connection. Processes creating the file at the same moment can make the
// switch fail with SQLITE_BUSY without waiting for busy_timeout: retry it.
func enableWAL(ctx context.Context, sqlDB *sql.DB) error {
	var err error
	for range 50 {
		var mode string // "wal"; "memory" for an in-memory database
		err = sqlDB.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode)
		var liteErr *gosqlite.Error
		if !errors.As(err, &liteErr) || liteErr.Code()&0xff != sqlite3.SQLITE_BUSY {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return err
}

func (s *Store) openMySQL(ctx context.Context, dsn string, cfg *gorm.Config) error {
	mcfg, err := mysqlConfig(dsn, s.timeout)
	if err != nil {
		return err
	}
	// The driver's errors come back to us as errors, which the caller logs;
	// its own logger would print them a second time, on stderr.
	mcfg.Logger = driverLogger{s.log}
	connector, err := mysql.NewConnector(mcfg)
	if err != nil {
		return err
	}
	// Under the default REPEATABLE READ, a locking read of an id not yet
	// stored takes a gap lock, and writers creating ids in the same gap (new
	// ids at the end of the index, typically) deadlock on their inserts.
	// Under READ COMMITTED a missing row locks nothing and the unique key
	// stops a second creator of one id (duplicate key, retried). It is set
	// once per connection, not per transaction: SET TRANSACTION before each
	// one would cost a round trip every time.
	session := &sessionConnector{Connector: connector, init: "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"}
	sqlDB := sql.OpenDB(session)
	// MariaDB closes a connection idle for wait_timeout (8 h by default, often
	// lowered by operators) and proxies or NAT drop idle ones sooner; a
	// connection that died in the pool fails the next query. Retiring
	// connections after 3 minutes keeps us well under those limits.
	sqlDB.SetConnMaxLifetime(3 * time.Minute)
	sqlDB.SetConnMaxIdleTime(time.Minute)
	// Sized by make bench (A1, 32 clients, 2 cores): 8 connections gave
	// 0.67x the plain-SQL floor, 20 and 32 both 0.78x.
	sqlDB.SetMaxOpenConns(20)
	// As many idle as open: under load, a connection returned to a full
	// idle pool is closed and the next request dials a new one (TCP,
	// authentication, session setup), which cost more than the write.
	sqlDB.SetMaxIdleConns(20)

	if err := s.openGORM(ctx, sqlDB, gormmysql.New(gormmysql.Config{Conn: sqlDB}), cfg); err != nil {
		return err
	}
	if s.galera, err = wsrepOn(ctx, sqlDB); err != nil {
		sqlDB.Close()
		return err
	}
	if _, set := mcfg.Params["wsrep_sync_wait"]; s.galera && !set {
		// Behind a load balancer a client's next request may reach
		// another instance on another node, which applies the write sets
		// of the others a little after they commit: a read there may not
		// see the client's own write yet. wsrep_sync_wait=1 makes each read
		// (and the locking reads of the ICC writes, which then lose fewer
		// certification races) wait until this node has applied every
		// write committed in the cluster before it began. The URL's
		// wsrep_sync_wait=0 turns that off.
		session.galera.Store(true)
		// The connection Open pinged with was set up without it.
		sqlDB.SetMaxIdleConns(0)
		sqlDB.SetMaxIdleConns(20)
	}

	// The migration waits up to 60 s for another instance's lock, and a
	// schema change on a large table may take minutes: it gets a pool of its
	// own without the read and write timeouts, bounded by Open's ctx alone.
	ddlCfg := mcfg.Clone()
	ddlCfg.ReadTimeout, ddlCfg.WriteTimeout = 0, 0
	ddlConnector, err := mysql.NewConnector(ddlCfg)
	if err != nil {
		sqlDB.Close()
		return err
	}
	ddlDB := sql.OpenDB(ddlConnector)
	if s.ddl, err = gorm.Open(gormmysql.New(gormmysql.Config{Conn: ddlDB, SkipInitializeWithVersion: true}), cfg); err != nil {
		ddlDB.Close()
		sqlDB.Close()
		return err
	}
	return nil
}

// driverLogger sends what the MySQL driver would print to the store's
// logger, at debug level.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) {
	l.log.Debug("store: mysql driver", "message", fmt.Sprint(v...))
}

// openGORM checks that sqlDB answers, within ctx, and puts GORM on top of it.
// The ping comes first because both dialects query the server version
// without a context while GORM opens.
func (s *Store) openGORM(ctx context.Context, sqlDB *sql.DB, d gorm.Dialector, cfg *gorm.Config) error {
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return err
	}
	db, err := gorm.Open(d, cfg)
	if err != nil {
		sqlDB.Close()
		return err
	}
	if s.tracer != nil {
		if err := s.registerTracing(db); err != nil {
			sqlDB.Close()
			return err
		}
	}
	s.db, s.sqlDB = db, sqlDB
	return nil
}

// DB is the connection pool, for its statistics (sql.DB.Stats): Prometheus'
// collectors.NewDBStatsCollector reads them. Statements go through the
// Store's methods.
func (s *Store) DB() *sql.DB { return s.sqlDB }

// wsrepOn reports whether the server replicates with Galera: MariaDB says
// wsrep_on ON on a cluster node and OFF on a single server, MySQL has no such
// variable.
func wsrepOn(ctx context.Context, sqlDB *sql.DB) (bool, error) {
	var name, value string
	err := sqlDB.QueryRowContext(ctx, "SHOW VARIABLES LIKE 'wsrep_on'").Scan(&name, &value)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return strings.EqualFold(value, "ON"), err
}

// Close closes the database. Calls made after Close return ErrUnavailable.
func (s *Store) Close() error {
	s.closed.Store(true)
	err := s.sqlDB.Close()
	if errors.Is(err, driver.ErrBadConn) {
		// A connection the database (or the network) had already closed
		// could not close its prepared statements: it is gone all the same.
		return nil
	}
	return err
}

// Ping checks that the database answers. It returns ErrUnavailable when it
// does not, within ctx and Options.Timeout, or when the store is closed.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("ping: %w", ErrUnavailable)
	}
	ping := s.sqlDB.PingContext
	if s.galera {
		ping = s.galeraReady
	}
	err := s.bounded(ctx, ping)
	if err != nil {
		return fmt.Errorf("ping: %w", s.translate(err))
	}
	return nil
}

// errNodeNotReady is a Galera node that answers but refuses queries (error
// 1047) or is catching up: outside the primary component, joining, donating.
var errNodeNotReady = errors.New("galera node not ready")

// galeraReady is Ping on a Galera node: one that lost the primary component
// still answers a ping and SELECT 1, but refuses every query on a table, so
// it is ready only when wsrep_ready is ON and its state is Synced.
func (s *Store) galeraReady(ctx context.Context) error {
	rows, err := s.sqlDB.QueryContext(ctx,
		"SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_local_state_comment', 'wsrep_cluster_status')")
	if err != nil {
		return err
	}
	defer rows.Close()
	status := map[string]string{}
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return err
		}
		status[strings.ToLower(name)] = value
	}
	if err := rows.Err(); err != nil {
		return err
	}
	ready, state, cluster := status["wsrep_ready"], status["wsrep_local_state_comment"], status["wsrep_cluster_status"]
	if !strings.EqualFold(ready, "ON") || state != "Synced" || cluster != "Primary" {
		return fmt.Errorf("%w: %w: wsrep_ready %s, state %s, cluster %s", ErrUnavailable, errNodeNotReady, ready, state, cluster)
	}
	return nil
}

// errTimeout is the cause of a call cut short by Options.Timeout.
var errTimeout = errors.New("no answer in time")

// bounded runs fn with ctx limited to Options.Timeout. When that limit, not
// the caller's ctx, ended the call, the error is ErrUnavailable: a database
// that does not answer in time is as good as unreachable. An ErrOutcomeUnknown
// from fn is kept as it is.
func (s *Store) bounded(ctx context.Context, fn func(ctx context.Context) error) error {
	bctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errTimeout)
	defer cancel()
	err := fn(bctx)
	if err != nil && ctx.Err() == nil && context.Cause(bctx) == errTimeout && !errors.Is(err, ErrOutcomeUnknown) {
		return fmt.Errorf("%w: %w within %s: %w", ErrUnavailable, errTimeout, s.timeout, err)
	}
	return err
}

// query runs fn, one read outside a transaction, on the database bounded by
// Options.Timeout.
func (s *Store) query(ctx context.Context, fn func(db *gorm.DB) error) error {
	return s.bounded(ctx, func(ctx context.Context) error { return fn(s.db.WithContext(ctx)) })
}

// translate turns a driver error into ErrUnavailable when it means the
// database cannot be reached. Sentinels, context errors and other database
// errors pass through unchanged.
func (s *Store) translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrUnavailable):
		return err
	case errors.As(err, new(*net.OpError)):
		// A dial, read or write failed. Checked first: a network timeout
		// matches context.DeadlineExceeded too.
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Checked before net.Error, which context.DeadlineExceeded satisfies.
		return err
	case s.closed.Load(), unreachable(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// unreachable reports whether err says the database server cannot be reached
// or the connection to it broke.
func unreachable(err error) bool {
	var netErr net.Error
	var myErr *mysql.MySQLError
	var liteErr *gosqlite.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &myErr):
		switch myErr.Number {
		case 1040, // too many connections
			1053, // server shutdown in progress
			1927, // MariaDB: connection was killed
			1047, // Galera: WSREP has not yet prepared node for application use
			1180: // Galera: error during commit (not connected to Primary Component)
			return true
		}
	case errors.As(err, &liteErr):
		switch liteErr.Code() & 0xff { // primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_CANTOPEN:
			return true
		}
	}
	return false
}

// errRace is a write that found the record changed under it by another
// writer between two of its statements; it is tried again.
var errRace = errors.New("the record changed during the write")

// errContended is a write that lost its race every time it was tried.
var errContended = errors.New("concurrent writers")

// Writes are tried this many times in all when they lose a race; on Galera,
// where a write also loses to every write of the same rows committed on the
// other nodes meanwhile, more (make galera-test gave up on about 1 write in
// 2,000 with 10, on ids written by 8 clients through 2 nodes at once). Either
// way Options.Timeout bounds the whole.
const (
	maxTxAttempts     = 10
	maxGaleraAttempts = 30
)

// withRetry runs fn, and runs it again when it lost a race to another writer
// (see retryable); fn must therefore reset anything it reports to the caller.
// The whole, retries included, is bounded by Options.Timeout.
//
// The loop is written out rather than taken from a backoff library
// (cenkalti/backoff and the like): what it must get right is which errors are
// retried (retryable, a few lines) and that the whole stays within ctx and
// Options.Timeout, which bounded already does; the waits themselves are one
// line, and a library would add a dependency and a second notion of "give
// up" (its own elapsed-time limit) beside ctx.
func (s *Store) withRetry(ctx context.Context, fn func(ctx context.Context) error) error {
	return s.bounded(ctx, func(ctx context.Context) error { return s.retry(ctx, fn) })
}

func (s *Store) retry(ctx context.Context, fn func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !retryable(err) {
			return err
		}
		if attempt == maxTxAttempts && !s.galera || attempt == maxGaleraAttempts {
			// Still losing after every attempt: the rows are too hot for
			// now, which is a busy database, not a broken one.
			return fmt.Errorf("%w: %w: still conflicting after %d attempts: %w", ErrUnavailable, errContended, attempt, err)
		}
		s.log.DebugContext(ctx, "store: retrying", "attempt", attempt, "error", err)
		// Growing, jittered waits keep the losers of one race from
		// colliding again in step.
		wait := time.Millisecond + rand.N(time.Duration(min(2<<attempt, 200))*time.Millisecond)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// inTx runs fn in one write transaction, retried and bounded as withRetry
// does. Any error rolls the transaction back, except a broken connection at
// COMMIT, which is ErrOutcomeUnknown.
//
// On MySQL a connection whose ROLLBACK or COMMIT failed is closed rather
// than returned to the pool: the server may still hold the transaction open
// on it (a Galera node outside the primary component refuses both with 1047),
// and the next transaction's BEGIN on that connection would commit it, long
// after its caller was told it was rolled back. Closing the session rolls it
// back for good.
func (s *Store) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.withRetry(ctx, func(ctx context.Context) (err error) {
		if s.tracer != nil {
			var span trace.Span
			ctx, span = s.tracer.Start(ctx, "transaction", trace.WithAttributes(attribute.String("db.system.name", s.dialect.String())))
			defer func() {
				if err != nil {
					span.RecordError(err)
					span.SetStatus(codes.Error, "transaction failed")
				}
				span.End()
			}()
		}
		if s.dialect != dialectMySQL {
			return s.db.WithContext(ctx).Transaction(fn)
		}
		return s.db.WithContext(ctx).Connection(func(db *gorm.DB) error {
			unsure, err := s.runTx(db, fn)
			if conn, ok := db.Statement.ConnPool.(*sql.Conn); ok && unsure {
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
			return err
		})
	})
}

// runTx runs fn in a transaction on db's one connection. unsure is set when
// that connection may still hold the transaction open: its ROLLBACK or
// COMMIT failed.
func (s *Store) runTx(db *gorm.DB, fn func(tx *gorm.DB) error) (unsure bool, err error) {
	tx := db.Begin()
	if tx.Error != nil {
		return false, tx.Error
	}
	done := false
	defer func() {
		if !done { // fn panicked
			tx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		done = true
		rbErr := tx.Rollback().Error
		return rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone), err
	}
	done = true
	if err := tx.Commit().Error; err != nil {
		if s.brokenAtWrite(err) {
			err = fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
		return true, err
	}
	return false, nil
}

// brokenAtWrite reports whether a failed COMMIT, or a failed statement that
// commits on its own, leaves the outcome unknown: the connection broke or the
// server stopped answering (the driver's read timeout) after the statement
// may have reached it. A statement that database/sql never sent because ctx
// had ended returns ctx's error, and one whose connection could not even be
// made (a dial error, or driver.ErrBadConn) never reached the server. SQLite has no connection to lose; a write it
// refuses is rolled back.
func (s *Store) brokenAtWrite(err error) bool {
	if s.dialect != dialectMySQL || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var opErr *net.OpError
	var connErr *connectError
	if errors.As(err, &connErr) || (errors.As(err, &opErr) && opErr.Op == "dial") {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) {
		// database/sql's word for a statement the driver knows it never
		// sent (it tried other connections, then gave up).
		return false
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) && myErr.Number == 1047 {
		// A Galera node outside the primary component refuses the
		// statement before running it.
		return false
	}
	return unreachable(err)
}

// retryable reports whether err means the transaction lost a race and may
// succeed if run again. On MySQL two first writes of one id both find no row
// to lock; the second one's insert then fails with a duplicate key (or, should
// gap locks be in play, a deadlock) and, run again, finds the first one's row.
// On Galera a transaction that lost certification to a write committed on
// another node fails with 1213 too, at any of its statements or at COMMIT,
// and the server has rolled it back: nothing of it is committed, whatever a
// later COMMIT says, so no statement error may ever be swallowed inside a
// transaction (GORM's Transaction rolls back on fn's error).
func retryable(err error) bool {
	if errors.Is(err, gorm.ErrDuplicatedKey) || errors.Is(err, errRace) {
		return true
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case 1213, // deadlock found when trying to get lock
			1205, // lock wait timeout exceeded
			1020, // MariaDB 11.6+ innodb_snapshot_isolation: record changed since last read
			3101: // MySQL Group Replication: rolled back at COMMIT by certification
			return true
		}
	}
	return false
}

// utcSecond is the precision every stored time has.
func utcSecond(t time.Time) time.Time {
	return t.UTC().Truncate(time.Second)
}

// utcPtr is t in UTC, for optional times read back.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// utcSecondPtr is utcSecond for optional times.
func utcSecondPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := utcSecond(*t)
	return &u
}

// sessionConnector runs a statement on each new connection before the pool
// hands it out, and on a Galera node, once known, one more.
type sessionConnector struct {
	driver.Connector
	init   string
	galera atomic.Bool
}

// galeraInit is the Galera node's extra session setting (see openMySQL).
const galeraInit = "SET SESSION wsrep_sync_wait = 1"

func (c *sessionConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, &connectError{err}
	}
	execer, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, errors.New("mysql: connection cannot execute statements")
	}
	if _, err := execer.ExecContext(ctx, c.init, nil); err != nil {
		conn.Close()
		return nil, &connectError{err}
	}
	if c.galera.Load() {
		if _, err := execer.ExecContext(ctx, galeraInit, nil); err != nil {
			conn.Close()
			return nil, &connectError{err}
		}
	}
	return conn, nil
}

// connectError is a failure to open a connection: whatever the statement
// that needed it, it was never sent.
type connectError struct{ err error }

func (e *connectError) Error() string { return "connect: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// preparedStmt is a statement prepared on the store's pool on first use;
// database/sql prepares it again on each connection that runs it. Executing
// a prepared statement is one round trip, as an interpolated one is, but the
// server parses the statement once per connection rather than once per call,
// and the driver sends the bodies as they are rather than escaping them into
// the text (make bench, A1: see README, Performance). Once prepared, get is
// one atomic load: no lookup by the statement's text on the write path.
type preparedStmt struct {
	query string
	mu    sync.Mutex // held while preparing
	stmt  atomic.Pointer[sql.Stmt]
}

func (p *preparedStmt) get(ctx context.Context, db *sql.DB) (*sql.Stmt, error) {
	if stmt := p.stmt.Load(); stmt != nil {
		return stmt, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if stmt := p.stmt.Load(); stmt != nil {
		return stmt, nil
	}
	stmt, err := db.PrepareContext(ctx, p.query)
	if err != nil {
		return nil, err
	}
	p.stmt.Store(stmt)
	return stmt, nil
}
