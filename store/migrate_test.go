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

		t.Run("a database of the previous version is upgraded with its rows", func(t *testing.T) {
			// No step has followed version 1 yet; a next step shaped like a
			// real one (a new nullable column) proves the upgrade path.
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
