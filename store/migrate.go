package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

// The schema is written as SQL rather than derived with AutoMigrate because the
// contract fixes details GORM tags cannot say per dialect: utf8mb4_bin on id
// columns (case-sensitive ids, byte order), LONGTEXT bodies, InnoDB, and the
// index column order the list queries rely on.
//
// MySQL/MariaDB conventions: every table is InnoDB and utf8mb4 with utf8mb4_bin
// as its default collation, so every comparison and ORDER BY on text is exact
// and in byte order; id columns repeat the collation to make that visible.
// Bodies are LONGTEXT: MEDIUMTEXT stops one byte short of 4 Mi four-byte
// characters. Times are DATETIME at second precision, always UTC.
//
// SQLite: text compares with the BINARY collation (byte order) by default.
// Columns are declared DATETIME so the driver reads them back as time.Time.
//
// Both: a CHECK on ids keeps an empty id out even if a caller forgot to
// validate (MySQL enforces CHECK from 8.0.16, MariaDB from 10.2).

// migration is one schema step. Steps are applied once each, in version order,
// and schema_version records the ones applied. MySQL commits DDL as it runs it,
// so a crash can leave a step applied but unrecorded: its MySQL statements must
// be safe to run again (IF NOT EXISTS). SQLite runs each step in a transaction.
type migration struct {
	version int
	name    string
	mysql   []string
	sqlite  []string
	// data, when set, runs after the statements: data moves that SQL alone
	// cannot do. On MySQL it must be safe to run again, like the statements.
	data func(db *gorm.DB) error
}

const mysqlTableOptions = ` ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`

// migrations is the schema history; append new steps, never edit applied ones.
var migrations = []migration{
	{
		version: 1,
		name:    "msf operations and clusters, icc operations",
		mysql: []string{
			`CREATE TABLE IF NOT EXISTS msf_operations (
				id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				occurred_time DATETIME NOT NULL,
				last_update_time DATETIME NOT NULL,
				status VARCHAR(16) NOT NULL,
				sub_status VARCHAR(255) NULL,
				request_uri VARCHAR(2048) NOT NULL,
				request_method VARCHAR(8) NOT NULL,
				request_body LONGTEXT NULL,
				response_status_code INT NULL,
				response_body LONGTEXT NULL,
				target_clusters_present BOOLEAN NOT NULL,
				rollback_result VARCHAR(16) NULL,
				rollback_occurred_time DATETIME NULL,
				rollback_clusters_present BOOLEAN NOT NULL,
				created_at DATETIME NOT NULL,
				updated_at DATETIME NOT NULL,
				PRIMARY KEY (id),
				KEY msf_operations_listing (occurred_time, id),
				CONSTRAINT msf_operations_id_nonempty CHECK (id <> '')
			)` + mysqlTableOptions,
			`CREATE TABLE IF NOT EXISTS msf_clusters (
				operation_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				kind VARCHAR(8) NOT NULL,
				pos INT NOT NULL,
				cluster_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				request_uri VARCHAR(2048) NOT NULL,
				request_method VARCHAR(8) NOT NULL,
				request_body LONGTEXT NULL,
				response_status_code INT NULL,
				response_body LONGTEXT NULL,
				PRIMARY KEY (operation_id, kind, pos),
				CONSTRAINT msf_clusters_kind CHECK (kind IN ('target', 'rollback')),
				CONSTRAINT msf_clusters_cluster_id_nonempty CHECK (cluster_id <> ''),
				CONSTRAINT msf_clusters_operation FOREIGN KEY (operation_id)
					REFERENCES msf_operations (id) ON DELETE CASCADE
			)` + mysqlTableOptions,
			// Each index starts with what a B1 query fixes (tenant, then
			// connection) and ends with its order, so a tenant's list never
			// reads another tenant's rows; the last two serve admin lists.
			`CREATE TABLE IF NOT EXISTS icc_operations (
				seq BIGINT NOT NULL AUTO_INCREMENT,
				operation_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				tenant_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				connection_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				order_type VARCHAR(16) NOT NULL,
				phase VARCHAR(32) NOT NULL,
				operation_status VARCHAR(16) NOT NULL,
				reception_datetime DATETIME NOT NULL,
				commit_datetime DATETIME NULL,
				request_body LONGTEXT NOT NULL,
				created_at DATETIME NOT NULL,
				updated_at DATETIME NOT NULL,
				PRIMARY KEY (seq),
				UNIQUE KEY icc_operations_operation_id (operation_id),
				KEY icc_operations_tenant (tenant_id, reception_datetime, seq),
				KEY icc_operations_tenant_connection (tenant_id, connection_id, reception_datetime, seq),
				KEY icc_operations_reception (reception_datetime, seq),
				KEY icc_operations_connection (connection_id, reception_datetime, seq),
				CONSTRAINT icc_operations_operation_id_nonempty CHECK (operation_id <> '')
			)` + mysqlTableOptions,
		},
		sqlite: []string{
			`CREATE TABLE msf_operations (
				id TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
				occurred_time DATETIME NOT NULL,
				last_update_time DATETIME NOT NULL,
				status TEXT NOT NULL,
				sub_status TEXT NULL,
				request_uri TEXT NOT NULL,
				request_method TEXT NOT NULL,
				request_body TEXT NULL,
				response_status_code INTEGER NULL,
				response_body TEXT NULL,
				target_clusters_present BOOLEAN NOT NULL,
				rollback_result TEXT NULL,
				rollback_occurred_time DATETIME NULL,
				rollback_clusters_present BOOLEAN NOT NULL,
				created_at DATETIME NOT NULL,
				updated_at DATETIME NOT NULL
			)`,
			`CREATE INDEX msf_operations_listing ON msf_operations (occurred_time, id)`,
			`CREATE TABLE msf_clusters (
				operation_id TEXT NOT NULL REFERENCES msf_operations (id) ON DELETE CASCADE,
				kind TEXT NOT NULL CHECK (kind IN ('target', 'rollback')),
				pos INTEGER NOT NULL,
				cluster_id TEXT NOT NULL CHECK (cluster_id <> ''),
				request_uri TEXT NOT NULL,
				request_method TEXT NOT NULL,
				request_body TEXT NULL,
				response_status_code INTEGER NULL,
				response_body TEXT NULL,
				PRIMARY KEY (operation_id, kind, pos)
			)`,
			// AUTOINCREMENT: seq is never reused, so the order recorded
			// stays strictly increasing.
			`CREATE TABLE icc_operations (
				seq INTEGER PRIMARY KEY AUTOINCREMENT,
				operation_id TEXT NOT NULL UNIQUE CHECK (operation_id <> ''),
				tenant_id TEXT NOT NULL,
				connection_id TEXT NOT NULL,
				order_type TEXT NOT NULL,
				phase TEXT NOT NULL,
				operation_status TEXT NOT NULL,
				reception_datetime DATETIME NOT NULL,
				commit_datetime DATETIME NULL,
				request_body TEXT NOT NULL,
				created_at DATETIME NOT NULL,
				updated_at DATETIME NOT NULL
			)`,
			`CREATE INDEX icc_operations_tenant ON icc_operations (tenant_id, reception_datetime, seq)`,
			`CREATE INDEX icc_operations_tenant_connection ON icc_operations (tenant_id, connection_id, reception_datetime, seq)`,
			`CREATE INDEX icc_operations_reception ON icc_operations (reception_datetime, seq)`,
			`CREATE INDEX icc_operations_connection ON icc_operations (connection_id, reception_datetime, seq)`,
		},
	},
	{
		version: 2,
		name:    "msf reservation and start times, responses without a status code; icc resource type and error",
		// MySQL 8 has no ADD COLUMN IF NOT EXISTS (MariaDB has): a re-run after
		// a crash meets the columns and indexes already there, and
		// applyMigrations skips those errors (1060, 1061).
		mysql: []string{
			`ALTER TABLE msf_operations
				ADD COLUMN reservation_time DATETIME NULL,
				ADD COLUMN start_time DATETIME NULL`,
			// A response may now come without a status code (the MSF
			// controller's {"body": ""}, a cluster's {}): presence is a flag
			// of its own. Every response stored before had a status code.
			`ALTER TABLE msf_operations ADD COLUMN response_present BOOLEAN NOT NULL DEFAULT FALSE`,
			`UPDATE msf_operations SET response_present = TRUE WHERE response_status_code IS NOT NULL`,
			`ALTER TABLE msf_clusters ADD COLUMN response_present BOOLEAN NOT NULL DEFAULT FALSE`,
			`UPDATE msf_clusters SET response_present = TRUE WHERE response_status_code IS NOT NULL`,
			`ALTER TABLE icc_operations
				ADD COLUMN resource_type VARCHAR(32) NOT NULL DEFAULT 'aws_connection',
				ADD COLUMN error LONGTEXT NULL`,
			// B3 filters by resource type and request type within a tenant.
			`CREATE INDEX icc_operations_tenant_resource_type ON icc_operations (tenant_id, resource_type, reception_datetime, seq)`,
			`CREATE INDEX icc_operations_tenant_order_type ON icc_operations (tenant_id, order_type, reception_datetime, seq)`,
		},
		sqlite: []string{
			`ALTER TABLE msf_operations ADD COLUMN reservation_time DATETIME NULL`,
			`ALTER TABLE msf_operations ADD COLUMN start_time DATETIME NULL`,
			`ALTER TABLE msf_operations ADD COLUMN response_present BOOLEAN NOT NULL DEFAULT FALSE`,
			`UPDATE msf_operations SET response_present = TRUE WHERE response_status_code IS NOT NULL`,
			`ALTER TABLE msf_clusters ADD COLUMN response_present BOOLEAN NOT NULL DEFAULT FALSE`,
			`UPDATE msf_clusters SET response_present = TRUE WHERE response_status_code IS NOT NULL`,
			`ALTER TABLE icc_operations ADD COLUMN resource_type TEXT NOT NULL DEFAULT 'aws_connection'`,
			`ALTER TABLE icc_operations ADD COLUMN error TEXT NULL`,
			`CREATE INDEX icc_operations_tenant_resource_type ON icc_operations (tenant_id, resource_type, reception_datetime, seq)`,
			`CREATE INDEX icc_operations_tenant_order_type ON icc_operations (tenant_id, order_type, reception_datetime, seq)`,
		},
	},
	{
		version: 3,
		name:    "msf clusters in the operation row",
		// A notification is then one row, written in one statement.
		mysql: []string{
			`ALTER TABLE msf_operations
				ADD COLUMN clusters LONGTEXT NULL,
				ADD COLUMN cluster_bodies LONGTEXT NULL`,
		},
		sqlite: []string{
			`ALTER TABLE msf_operations ADD COLUMN clusters TEXT NULL`,
			`ALTER TABLE msf_operations ADD COLUMN cluster_bodies TEXT NULL`,
		},
		data: moveClustersIntoRows,
	},
	{
		version: 4,
		name:    "icc latest operation of each connection",
		// Filled from the operations already stored; the DELETE makes a
		// re-run after a crash start over.
		mysql: []string{
			`CREATE TABLE IF NOT EXISTS icc_latest (
				tenant_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				connection_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				seq BIGINT NOT NULL,
				reception_datetime DATETIME NOT NULL,
				PRIMARY KEY (tenant_id, connection_id),
				KEY icc_latest_tenant (tenant_id, reception_datetime, seq)
			)` + mysqlTableOptions,
			`DELETE FROM icc_latest`,
			`INSERT INTO icc_latest (tenant_id, connection_id, seq, reception_datetime)` + latestOfEachConnection,
		},
		sqlite: []string{
			`CREATE TABLE icc_latest (
				tenant_id TEXT NOT NULL,
				connection_id TEXT NOT NULL,
				seq INTEGER NOT NULL,
				reception_datetime DATETIME NOT NULL,
				PRIMARY KEY (tenant_id, connection_id)
			)`,
			`CREATE INDEX icc_latest_tenant ON icc_latest (tenant_id, reception_datetime, seq)`,
			`INSERT INTO icc_latest (tenant_id, connection_id, seq, reception_datetime)` + latestOfEachConnection,
		},
	},
	{
		version: 5,
		name:    "terminal_at: when the service recorded an operation's terminal status (retention)",
		// Operations already terminal count from their last write, the
		// closest the service's own clock knows. The index serves the
		// purge, oldest first.
		mysql: []string{
			`ALTER TABLE msf_operations ADD COLUMN terminal_at DATETIME NULL, ADD KEY msf_operations_terminal (terminal_at)`,
			`UPDATE msf_operations SET terminal_at = updated_at WHERE terminal_at IS NULL AND status IN ('completed', 'failed', 'canceled')`,
			`ALTER TABLE icc_operations ADD COLUMN terminal_at DATETIME NULL, ADD KEY icc_operations_terminal (terminal_at)`,
			`UPDATE icc_operations SET terminal_at = updated_at WHERE terminal_at IS NULL AND operation_status IN ('complete', 'error')`,
		},
		sqlite: []string{
			`ALTER TABLE msf_operations ADD COLUMN terminal_at DATETIME NULL`,
			`CREATE INDEX msf_operations_terminal ON msf_operations (terminal_at)`,
			`UPDATE msf_operations SET terminal_at = updated_at WHERE status IN ('completed', 'failed', 'canceled')`,
			`ALTER TABLE icc_operations ADD COLUMN terminal_at DATETIME NULL`,
			`CREATE INDEX icc_operations_terminal ON icc_operations (terminal_at)`,
			`UPDATE icc_operations SET terminal_at = updated_at WHERE operation_status IN ('complete', 'error')`,
		},
	},
	{
		version: 6,
		name:    "webhook subscriptions and their delivery outbox",
		// webhook_deliveries is the outbox: one row per event and
		// subscription, written in the transaction of the notification that
		// caused it. Times are Unix milliseconds, compared as numbers on both
		// dialects. Claims read (state, next_attempt_ms); the order of one
		// operation's events per subscription is checked on
		// (subscription_id, subject, seq); the visibility list reads
		// (subscription_id, seq).
		mysql: []string{
			`CREATE TABLE IF NOT EXISTS webhook_subscriptions (
				id VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				url VARCHAR(2048) NOT NULL,
				secret VARCHAR(128) NOT NULL,
				events VARCHAR(255) NOT NULL,
				filter TEXT NULL,
				created_at DATETIME NOT NULL,
				disabled_reason VARCHAR(512) NULL,
				PRIMARY KEY (id)
			)` + mysqlTableOptions,
			`CREATE TABLE IF NOT EXISTS webhook_deliveries (
				seq BIGINT NOT NULL AUTO_INCREMENT,
				msg_id VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				subscription_id VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				event_type VARCHAR(32) NOT NULL,
				subject VARCHAR(140) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
				payload LONGTEXT NOT NULL,
				state VARCHAR(16) NOT NULL,
				attempts INT NOT NULL,
				created_ms BIGINT NOT NULL,
				next_attempt_ms BIGINT NOT NULL,
				claim VARCHAR(40) NULL,
				last_attempt_ms BIGINT NULL,
				last_status INT NULL,
				last_error VARCHAR(512) NULL,
				PRIMARY KEY (seq),
				KEY webhook_deliveries_due (state, next_attempt_ms),
				KEY webhook_deliveries_order (subscription_id, subject, seq),
				KEY webhook_deliveries_subscription (subscription_id, seq)
			)` + mysqlTableOptions,
		},
		sqlite: []string{
			`CREATE TABLE IF NOT EXISTS webhook_subscriptions (
				id TEXT NOT NULL PRIMARY KEY,
				url TEXT NOT NULL,
				secret TEXT NOT NULL,
				events TEXT NOT NULL,
				filter TEXT NULL,
				created_at DATETIME NOT NULL,
				disabled_reason TEXT NULL
			)`,
			`CREATE TABLE IF NOT EXISTS webhook_deliveries (
				seq INTEGER PRIMARY KEY AUTOINCREMENT,
				msg_id TEXT NOT NULL,
				subscription_id TEXT NOT NULL,
				event_type TEXT NOT NULL,
				subject TEXT NOT NULL,
				payload TEXT NOT NULL,
				state TEXT NOT NULL,
				attempts INTEGER NOT NULL,
				created_ms INTEGER NOT NULL,
				next_attempt_ms INTEGER NOT NULL,
				claim TEXT NULL,
				last_attempt_ms INTEGER NULL,
				last_status INTEGER NULL,
				last_error TEXT NULL
			)`,
			`CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (state, next_attempt_ms)`,
			`CREATE INDEX IF NOT EXISTS webhook_deliveries_order ON webhook_deliveries (subscription_id, subject, seq)`,
			`CREATE INDEX IF NOT EXISTS webhook_deliveries_subscription ON webhook_deliveries (subscription_id, seq)`,
		},
	},
	{
		version: 7,
		name:    "event_due: MSF operations whose operation.terminal event is still to be written to the outbox",
		// Set (to 1) by the very statement that records a terminal
		// notification while operation.terminal has subscribers, so that
		// the write stays one statement; the dispatcher turns marked rows
		// into deliveries and clears the mark (ConvertTerminalEvents).
		// 0 otherwise: the index finds the few marked rows. Never NULL:
		// InnoDB rewrites a whole row (its 3 KB of bodies, in the redo
		// log) when a column goes from NULL to a value or back, and
		// changes a fixed-size one in place (about 100 bytes).
		mysql: []string{
			`ALTER TABLE msf_operations ADD COLUMN event_due TINYINT NOT NULL DEFAULT 0, ADD KEY msf_operations_event_due (event_due)`,
		},
		sqlite: []string{
			`ALTER TABLE msf_operations ADD COLUMN event_due INTEGER NOT NULL DEFAULT 0`,
			`CREATE INDEX msf_operations_event_due ON msf_operations (event_due)`,
		},
	},
}

// latestOfEachConnection selects, for icc_latest, the operation of each
// tenant's connection that no other of it follows in listing order.
const latestOfEachConnection = `
	SELECT o.tenant_id, o.connection_id, o.seq, o.reception_datetime FROM icc_operations o
	WHERE NOT EXISTS (
		SELECT 1 FROM icc_operations n
		WHERE n.tenant_id = o.tenant_id AND n.connection_id = o.connection_id
		AND (n.reception_datetime > o.reception_datetime OR (n.reception_datetime = o.reception_datetime AND n.seq > o.seq)))`

// legacyClusterRow is a row of msf_clusters, where versions 1 and 2 kept
// clusters: one row per cluster, by operation, kind and position.
type legacyClusterRow struct {
	OperationID        string  `gorm:"column:operation_id"`
	Kind               string  `gorm:"column:kind"`
	Pos                int     `gorm:"column:pos"`
	ClusterID          string  `gorm:"column:cluster_id"`
	RequestURI         string  `gorm:"column:request_uri"`
	RequestMethod      string  `gorm:"column:request_method"`
	RequestBody        *string `gorm:"column:request_body"`
	ResponsePresent    bool    `gorm:"column:response_present"`
	ResponseStatusCode *int    `gorm:"column:response_status_code"`
	ResponseBody       *string `gorm:"column:response_body"`
}

func (legacyClusterRow) TableName() string { return "msf_clusters" }

// moveClustersIntoRows copies every operation's msf_clusters rows into its
// clusters and cluster_bodies columns, then drops msf_clusters. Run again
// after a crash, it copies again whatever msf_clusters still holds.
func moveClustersIntoRows(db *gorm.DB) error {
	if !db.Migrator().HasTable("msf_clusters") {
		return nil
	}
	const batch = 500
	after := ""
	for {
		var ids []string
		err := db.Model(&operationRow{}).
			Where("(target_clusters_present OR rollback_clusters_present) AND id > ?", after).
			Order("id").Limit(batch).Pluck("id", &ids).Error
		if err != nil {
			return fmt.Errorf("move clusters: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		var rows []legacyClusterRow
		if err := db.Where("operation_id IN ?", ids).Order("operation_id, kind, pos").Find(&rows).Error; err != nil {
			return fmt.Errorf("move clusters: %w", err)
		}
		byOp := map[string]map[string][]Cluster{}
		for _, r := range rows {
			c := Cluster{ClusterID: r.ClusterID, Request: Request{URI: r.RequestURI, Method: r.RequestMethod, Body: r.RequestBody}}
			if r.ResponsePresent {
				c.Response = &Response{StatusCode: r.ResponseStatusCode, Body: r.ResponseBody}
			}
			if byOp[r.OperationID] == nil {
				byOp[r.OperationID] = map[string][]Cluster{}
			}
			byOp[r.OperationID][r.Kind] = append(byOp[r.OperationID][r.Kind], c)
		}
		for _, id := range ids {
			clusters, bodies, err := encodeClusters(byOp[id]["target"], byOp[id]["rollback"])
			if err != nil {
				return fmt.Errorf("move clusters of %q: %w", id, err)
			}
			err = db.Model(&operationRow{}).Where("id = ?", id).
				Updates(map[string]any{"clusters": clusters, "cluster_bodies": bodies}).Error
			if err != nil {
				return fmt.Errorf("move clusters of %q: %w", id, err)
			}
		}
		after = ids[len(ids)-1]
	}
	if err := db.Exec("DROP TABLE msf_clusters").Error; err != nil {
		return fmt.Errorf("move clusters: drop msf_clusters: %w", err)
	}
	return nil
}

var createSchemaVersion = map[dialect]string{
	dialectMySQL: `CREATE TABLE IF NOT EXISTS schema_version (
		version INT NOT NULL PRIMARY KEY,
		applied_at DATETIME NOT NULL
	)` + mysqlTableOptions,
	dialectSQLite: `CREATE TABLE IF NOT EXISTS schema_version (
		version INTEGER NOT NULL PRIMARY KEY,
		applied_at DATETIME NOT NULL
	)`,
}

// migrate brings the schema up to the last of steps. It refuses a database
// whose schema is newer than steps: this program would not know how to keep
// its rules.
func migrate(ctx context.Context, db *gorm.DB, d dialect, steps []migration, now func() time.Time, log *slog.Logger) error {
	db = db.WithContext(ctx)
	if d == dialectSQLite {
		// SQLite's write lock, taken first by each step's transaction,
		// keeps two processes from applying a step twice.
		return applyMigrations(db, d, steps, now, log)
	}
	// On Galera the named lock below is per node: instances starting at
	// once on different nodes may apply a step together, and all but one
	// then fail: on schema_version's key, a certification conflict, or a
	// table the other one has just created or dropped. The losers start
	// over, find the step applied, and skip it. A single server never gets
	// here twice: its lock lets one instance in at a time.
	var err error
	for attempt := 1; attempt <= 6; attempt++ {
		if err = migrateLocked(ctx, db, d, steps, now, log); err == nil || !migrationRaced(err) {
			return err
		}
		log.Warn("store: schema migration raced another instance: trying again", "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
	return err
}

// migrationRaced reports whether a failed migration may have met another
// instance applying the same step on another Galera node.
func migrationRaced(err error) bool {
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case 1050, // table already exists
			1051, // unknown table (to drop)
			1054, // unknown column
			1091, // can't drop: column or key does not exist
			1146: // table does not exist
			return true
		}
	}
	return retryable(err)
}

// migrateLocked is migrate on MySQL, under the named lock.
func migrateLocked(ctx context.Context, db *gorm.DB, d dialect, steps []migration, now func() time.Time, log *slog.Logger) error {
	// Several instances starting at once would race on the DDL; a named
	// lock, held by one pinned connection, lets one of them migrate while the
	// others wait and then find nothing to do.
	return db.Connection(func(conn *gorm.DB) error {
		// A fresh statement per call, still on the pinned connection.
		conn = conn.Session(&gorm.Session{NewDB: true})
		var dbName string
		if err := conn.Raw("SELECT DATABASE()").Scan(&dbName).Error; err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		// Lock names are server-wide and at most 64 characters.
		name := "opsvc.migrate." + dbName
		if len(name) > 64 {
			name = name[:64]
		}
		var got sql.NullInt64 // NULL on error, 0 on timeout
		if err := conn.Raw("SELECT GET_LOCK(?, 60)", name).Scan(&got).Error; err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if got.Int64 != 1 {
			return fmt.Errorf("migrate: another instance kept lock %q for 60 s", name)
		}
		// Released even if ctx ends: the lock lives as long as the session,
		// and this connection goes back to the pool.
		defer conn.WithContext(context.WithoutCancel(ctx)).Exec("DO RELEASE_LOCK(?)", name)
		return applyMigrations(conn, d, steps, now, log)
	})
}

func applyMigrations(db *gorm.DB, d dialect, steps []migration, now func() time.Time, log *slog.Logger) error {
	if err := db.Exec(createSchemaVersion[d]).Error; err != nil {
		return fmt.Errorf("migrate: create schema_version: %w", err)
	}
	latest := steps[len(steps)-1].version
	current, err := schemaVersion(db)
	if err != nil {
		return err
	}
	if current > latest {
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", current, latest)
	}
	for _, step := range steps {
		if step.version <= current {
			continue
		}
		stmts := step.sqlite
		if d == dialectMySQL {
			stmts = step.mysql
		}
		apply := func(tx *gorm.DB) error {
			if d == dialectSQLite {
				// Take the write lock before reading: a deferred transaction
				// that reads first cannot upgrade to writing while another
				// process writes, and fails at once (SQLITE_BUSY) instead of
				// waiting for busy_timeout.
				if err := tx.Exec("DELETE FROM schema_version WHERE version < 0").Error; err != nil {
					return fmt.Errorf("migrate: lock: %w", err)
				}
			}
			// Another process may have applied it since we looked.
			v, err := schemaVersion(tx)
			if err != nil || v >= step.version {
				return err
			}
			for _, stmt := range stmts {
				if err := tx.Exec(stmt).Error; err != nil && !alreadyApplied(d, err) {
					return fmt.Errorf("migrate to version %d: %w", step.version, err)
				}
			}
			if step.data != nil {
				if err := step.data(tx); err != nil {
					return fmt.Errorf("migrate to version %d: %w", step.version, err)
				}
			}
			return tx.Create(&schemaVersionRow{Version: step.version, AppliedAt: utcSecond(now())}).Error
		}
		if d == dialectSQLite {
			err = db.Transaction(apply)
		} else {
			err = apply(db)
		}
		if err != nil {
			return err
		}
		log.Info("store: schema migrated", "dialect", d.String(), "version", step.version, "step", step.name)
	}
	return nil
}

// schemaVersion returns the last applied step, 0 for an empty database.
func schemaVersion(db *gorm.DB) (int, error) {
	var v int
	if err := db.Raw("SELECT COALESCE(MAX(version), 0) FROM schema_version").Scan(&v).Error; err != nil {
		return 0, fmt.Errorf("migrate: read schema_version: %w", err)
	}
	return v, nil
}

// alreadyApplied reports whether a MySQL DDL statement failed only because
// an earlier, interrupted run of its step got that far: MySQL commits DDL as
// it runs it, and MySQL 8 (unlike MariaDB) has no ADD COLUMN IF NOT EXISTS
// or CREATE INDEX IF NOT EXISTS.
func alreadyApplied(d dialect, err error) bool {
	var myErr *mysql.MySQLError
	if d != dialectMySQL || !errors.As(err, &myErr) {
		return false
	}
	switch myErr.Number {
	case 1060, // duplicate column name
		1061: // duplicate key name
		return true
	}
	return false
}
