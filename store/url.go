package store

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// databaseURL is a parsed database URL: the one place that knows its schemes.
type databaseURL struct {
	dialect    dialect
	sqlitePath string // dialectSQLite: the file, or ":memory:"
	mysql      string // dialectMySQL: the URL, for mysqlConfig
}

// errScheme is the error of a URL of no known scheme. It never echoes the URL,
// which may hold a password.
var errScheme = errors.New("want sqlite:PATH or mysql://USER:PASS@HOST:PORT/DB")

// parseURL checks dsn without connecting. A SQLite file's directory must
// exist: SQLite itself would only say "out of memory" when it does not.
func parseURL(dsn string) (databaseURL, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		switch {
		case path == "":
			return databaseURL{}, errors.New("sqlite: the path is empty")
		case strings.Contains(path, "?"):
			return databaseURL{}, errors.New("sqlite: query parameters are not supported in the path")
		case path != ":memory:":
			dir := filepath.Dir(path)
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return databaseURL{}, fmt.Errorf("sqlite: directory %q does not exist", dir)
			}
		}
		return databaseURL{dialect: dialectSQLite, sqlitePath: path}, nil
	case strings.HasPrefix(dsn, "mysql://"):
		if _, err := mysqlConfig(dsn, defaultTimeout); err != nil {
			return databaseURL{}, err
		}
		return databaseURL{dialect: dialectMySQL, mysql: dsn}, nil
	}
	return databaseURL{}, errScheme
}

// CheckURL reports what is wrong with the database URL dsn, without
// connecting, and which kind of database it names: "sqlite" or "mysql". Open
// makes the same checks.
func CheckURL(dsn string) (kind string, err error) {
	u, err := parseURL(dsn)
	if err != nil {
		return "", err
	}
	return u.dialect.String(), nil
}

// mysqlConfig turns "mysql://USER:PASS@HOST:PORT/DB?params" into a driver
// configuration. The query parameters are the driver's own; parseTime, loc and
// charset are forced because the row types and the schema depend on them.
// timeout is the dial, read and write timeout unless the URL sets them.
func mysqlConfig(dsn string, timeout time.Duration) (*mysql.Config, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// url errors quote the whole input, password included.
		return nil, errors.New("mysql: malformed URL")
	}
	if u.Host == "" {
		return nil, errors.New("mysql: no host: want mysql://USER:PASS@HOST:PORT/DB")
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" || strings.Contains(dbName, "/") {
		return nil, errors.New("mysql: must name one database: mysql://USER:PASS@HOST:PORT/DB")
	}

	q := u.Query()
	q.Set("parseTime", "true")
	q.Set("loc", "UTC")
	q.Set("charset", "utf8mb4")
	// Without a dial timeout an unreachable host blocks for the OS default
	// (minutes) when the caller's ctx has no deadline. Without a read
	// timeout a COMMIT, which the driver sends without a context, waits
	// forever on a server that stopped answering (SIGSTOP, a dead host).
	for _, p := range []string{"timeout", "readTimeout", "writeTimeout"} {
		if !q.Has(p) {
			q.Set(p, timeout.String())
		}
	}
	if !q.Has("interpolateParams") {
		// Placeholders filled in by the driver: one round trip per
		// statement instead of three (prepare, execute, close).
		q.Set("interpolateParams", "true")
	}
	// RowsAffected counts the rows a write changed (not those it merely
	// matched): the MSF upsert tells "refused" from "applied" by it.
	q.Set("clientFoundRows", "false")
	cfg, err := mysql.ParseDSN("/?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("mysql: URL parameters: %w", err)
	}
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	cfg.DBName = dbName
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	return cfg, nil
}
