package store

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

func mustSchemaVersion(tb testing.TB, s *Store) int {
	tb.Helper()
	v, err := schemaVersion(s.db)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// mustWriteSample stores one MSF and one ICC operation and returns them.
func mustWriteSample(tb testing.TB, s *Store) (Operation, ICCOperation) {
	tb.Helper()
	op := withClusters(newOperation("kept"), "c", 2)
	op.Rollbacks = &Rollbacks{Result: "none", OccurredTime: at(3), TargetClusters: []Cluster{}}
	mustPutOperation(tb, s, op)
	icc := newICCOperation("kept-icc", "tenant", connA)
	mustPutICCOperation(tb, s, icc)
	return op, icc
}

func mustFindSample(tb testing.TB, s *Store, op Operation, icc ICCOperation) {
	tb.Helper()
	assertEqual(tb, "operation", mustGetOperation(tb, s, op.ID), op)
	assertEqual(tb, "icc operations", mustListICCOperations(tb, s, ICCFilter{TenantID: icc.TenantID}), []ICCOperation{icc})
}

func TestOpen_migration(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		latest := migrations[len(migrations)-1].version

		t.Run("re-opening keeps the rows and the schema version", func(t *testing.T) {
			dsn := b.newDSN(t)
			s := mustOpenDSN(t, dsn, Options{})
			op, icc := mustWriteSample(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = mustOpenDSN(t, dsn, Options{})
			mustFindSample(t, s, op, icc)
			if v := mustSchemaVersion(t, s); v != latest {
				t.Errorf("schema version = %d, want %d", v, latest)
			}
			// The order recorded continues after the existing rows.
			next := newICCOperation("after-reopen", icc.TenantID, connA)
			mustPutICCOperation(t, s, next)
			got := iccIDs(mustListICCOperations(t, s, ICCFilter{TenantID: icc.TenantID}))
			assertEqual(t, "ids", got, []string{icc.ID, next.ID})
		})

		t.Run("instances opening a new database at once all succeed", func(t *testing.T) {
			dsn := b.newDSN(t)
			errs := make(chan error, 3)
			for range cap(errs) {
				go func() {
					s, err := Open(ctx, dsn, Options{})
					if err == nil {
						s.Close()
					}
					errs <- err
				}()
			}
			for range cap(errs) {
				if err := <-errs; err != nil {
					t.Errorf("Open: %v", err)
				}
			}
			s := mustOpenDSN(t, dsn, Options{})
			if v := mustSchemaVersion(t, s); v != latest {
				t.Errorf("schema version = %d, want %d", v, latest)
			}
		})

		t.Run("running the migrations again changes nothing", func(t *testing.T) {
			s := mustOpen(t, b, Options{})
			op, icc := mustWriteSample(t, s)
			for range 2 {
				if err := migrate(ctx, s.db, s.dialect, migrations, s.now, slog.New(slog.DiscardHandler)); err != nil {
					t.Fatalf("migrate: %v", err)
				}
			}
			mustFindSample(t, s, op, icc)
			if v := mustSchemaVersion(t, s); v != latest {
				t.Errorf("schema version = %d, want %d", v, latest)
			}
		})

		// MySQL commits DDL as it runs it: a crash between a step's last
		// statement and its schema_version row leaves the step applied but
		// not recorded. (SQLite applies and records a step in one transaction.)
		t.Run("a step applied but not recorded runs again", func(t *testing.T) {
			s := mustOpen(t, b, Options{})
			if s.dialect != dialectMySQL {
				return
			}
			op, icc := mustWriteSample(t, s)
			if err := s.db.Exec("DELETE FROM schema_version WHERE version = ?", latest).Error; err != nil {
				t.Fatal(err)
			}
			if err := migrate(ctx, s.db, s.dialect, migrations, s.now, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			mustFindSample(t, s, op, icc)
			if v := mustSchemaVersion(t, s); v != latest {
				t.Errorf("schema version = %d, want %d", v, latest)
			}
		})

		t.Run("a version 1 database keeps its rows in version 2", func(t *testing.T) {
			dsn := b.newDSN(t)
			v1, err := open(ctx, dsn, Options{}, migrations[:1])
			if err != nil {
				t.Fatalf("open at version 1: %v", err)
			}
			// Rows as version 1 wrote them: a response was a status code
			// (NULL: no response), ICC operations had no resource type.
			stmts := []string{
				`INSERT INTO msf_operations (id, occurred_time, last_update_time, status, request_uri, request_method,
					request_body, response_status_code, response_body, target_clusters_present, rollback_clusters_present,
					created_at, updated_at)
				VALUES ('with-response', '2026-03-14 15:09:26', '2026-03-14 15:09:27', 'completed', '/a', 'POST',
					'{}', 201, '{"id":1}', TRUE, FALSE, '2026-03-14 15:09:27', '2026-03-14 15:09:27'),
				('no-response', '2026-03-14 15:09:28', '2026-03-14 15:09:28', 'executing', '/a', 'POST',
					'{}', NULL, NULL, FALSE, FALSE, '2026-03-14 15:09:28', '2026-03-14 15:09:28')`,
				`INSERT INTO msf_clusters (operation_id, kind, pos, cluster_id, request_uri, request_method, request_body,
					response_status_code, response_body)
				VALUES ('with-response', 'target', 0, '1', '/c', 'POST', '{}', 202, NULL),
				('with-response', 'target', 1, '2', '/c', 'POST', '{}', NULL, NULL)`,
				`INSERT INTO icc_operations (operation_id, tenant_id, connection_id, order_type, phase, operation_status,
					reception_datetime, commit_datetime, request_body, created_at, updated_at)
				VALUES ('icc-v1', 'tenant', '` + connA + `', 'Create', 'prepare_connection', 'processing',
					'2026-03-14 15:09:26', NULL, '{"connection":{}}', '2026-03-14 15:09:26', '2026-03-14 15:09:26')`,
			}
			for _, stmt := range stmts {
				if err := v1.db.Exec(stmt).Error; err != nil {
					t.Fatalf("write version 1 rows: %v", err)
				}
			}
			v1.Close()

			s := mustOpenDSN(t, dsn, Options{})
			if v := mustSchemaVersion(t, s); v != latest {
				t.Errorf("schema version = %d, want %d", v, latest)
			}
			want := Operation{
				ID: "with-response", OccurredTime: at(0), LastUpdateTime: at(1), Status: "completed",
				Request:  Request{URI: "/a", Method: "POST", Body: ptr("{}")},
				Response: &Response{StatusCode: ptr(201), Body: ptr(`{"id":1}`)},
				TargetClusters: []Cluster{
					{ClusterID: "1", Request: Request{URI: "/c", Method: "POST", Body: ptr("{}")}, Response: &Response{StatusCode: ptr(202)}},
					{ClusterID: "2", Request: Request{URI: "/c", Method: "POST", Body: ptr("{}")}},
				},
			}
			assertEqual(t, "operation with a response", mustGetOperation(t, s, "with-response"), want)
			assertEqual(t, "operation without a response", mustGetOperation(t, s, "no-response"), Operation{
				ID: "no-response", OccurredTime: at(2), LastUpdateTime: at(2), Status: "executing",
				Request: Request{URI: "/a", Method: "POST", Body: ptr("{}")},
			})
			icc := newICCOperation("icc-v1", "tenant", connA)
			icc.RequestBody = []byte(`{"connection":{}}`)
			assertEqual(t, "icc operation", mustListICCOperations(t, s, ICCFilter{TenantID: "tenant"}), []ICCOperation{icc})
			// icc_latest (version 4) is filled from the rows already there.
			assertEqual(t, "latest", iccIDs(mustListICCOperations(t, s, ICCFilter{TenantID: "tenant", Latest: true})), []string{"icc-v1"})
		})

		t.Run("a database of the previous version is upgraded with its rows", func(t *testing.T) {
			// A next step shaped like a real one (a new nullable column)
			// proves the upgrade path from the latest version.
			next := migration{
				version: latest + 1,
				name:    "test: note on msf operations",
				mysql:   []string{`ALTER TABLE msf_operations ADD COLUMN note VARCHAR(64) NULL`},
				sqlite:  []string{`ALTER TABLE msf_operations ADD COLUMN note TEXT NULL`},
			}
			dsn := b.newDSN(t)
			s := mustOpenDSN(t, dsn, Options{})
			op, icc := mustWriteSample(t, s)

			steps := append(append([]migration{}, migrations...), next)
			if err := migrate(ctx, s.db, s.dialect, steps, s.now, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatalf("migrate to version %d: %v", next.version, err)
			}
			if v := mustSchemaVersion(t, s); v != next.version {
				t.Errorf("schema version = %d, want %d", v, next.version)
			}
			mustFindSample(t, s, op, icc)
			var notes int64
			if err := s.db.Table("msf_operations").Where("note IS NULL").Count(&notes).Error; err != nil || notes != 1 {
				t.Errorf("new column: %d NULL notes, %v", notes, err)
			}
			s.Close()

			t.Run("and this program then refuses the newer schema", func(t *testing.T) {
				_, err := Open(ctx, dsn, Options{})
				if err == nil || !strings.Contains(err.Error(), "newer") {
					t.Fatalf("Open = %v, want a refusal of the newer schema", err)
				}
			})
		})
	})
}
