package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"example.com/opsvc/store"
)

// The data sets are loaded once (ICC operations directly by SQL, MSF ones
// through the store), into the tables the
// service's own migrations created, and reused by later runs. A marker row in
// opsbench_dataset says which data set a table holds ("loading" while it is
// loaded); a table whose marker or row count does not match is emptied and
// loaded again, and one with rows but no marker is left alone. Inserts name their columns, so columns that later
// migrations add take their defaults.

const createMarker = `CREATE TABLE IF NOT EXISTS opsbench_dataset (
	name VARCHAR(32) NOT NULL PRIMARY KEY,
	spec VARCHAR(255) NOT NULL,
	row_count BIGINT NOT NULL,
	loaded_at DATETIME NOT NULL
) ENGINE=InnoDB`

// loaded reports whether table holds the data set spec, all rows of it. It
// refuses a table that holds rows opsbench did not load (no marker): the
// load would empty it, and it may be someone's data.
func loaded(ctx context.Context, db *sql.DB, dbName, name, spec, table string, rows int64) (bool, error) {
	if _, err := db.ExecContext(ctx, createMarker); err != nil {
		return false, err
	}
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		return false, err
	}
	var got string
	err := db.QueryRowContext(ctx, "SELECT spec FROM opsbench_dataset WHERE name = ?", name).Scan(&got)
	switch {
	case errors.Is(err, sql.ErrNoRows) && n > 0:
		return false, fmt.Errorf("%s.%s holds %d rows that opsbench did not load: give opsbench a database of its own (BENCH_DATABASE_URL)", dbName, table, n)
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	return got == spec && n == rows, nil
}

// claimAndEmpty marks data set name as being loaded, so that a load cut
// short is still known as opsbench's, and empties tables, in order, on one
// connection (foreign key checks off, so that TRUNCATE works).
func claimAndEmpty(ctx context.Context, db *sql.DB, name string, tables ...string) error {
	if err := markLoaded(ctx, db, name, "loading", 0); err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION foreign_key_checks = 0"); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SET SESSION foreign_key_checks = 1")
	for _, t := range tables {
		if _, err := conn.ExecContext(ctx, "TRUNCATE TABLE "+t); err != nil {
			return err
		}
	}
	return nil
}

func markLoaded(ctx context.Context, db *sql.DB, name, spec string, rows int64) error {
	_, err := db.ExecContext(ctx, "REPLACE INTO opsbench_dataset (name, spec, row_count, loaded_at) VALUES (?, ?, ?, ?)",
		name, spec, rows, time.Now().UTC().Truncate(time.Second))
	return err
}

// insertRows writes rows into table in multi-row INSERTs of at most batch
// rows, in the transaction tx.
func insertRows(ctx context.Context, tx *sql.Tx, table string, columns []string, rows [][]any, batch int) error {
	one := "(?" + strings.Repeat(",?", len(columns)-1) + ")"
	head := "INSERT INTO " + table + " (" + strings.Join(columns, ", ") + ") VALUES "
	for len(rows) > 0 {
		n := min(batch, len(rows))
		args := make([]any, 0, n*len(columns))
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		q := head + one + strings.Repeat(","+one, n-1)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
		rows = rows[n:]
	}
	return nil
}

// iccDataset is the B1/B3 data set: tenants, each with connections, each
// with ops operations.
type iccDataset struct {
	tenants, connections, ops int
}

// dataEpoch is where the generated times start.
var dataEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (d iccDataset) rows() int64 { return int64(d.tenants) * int64(d.connections) * int64(d.ops) }

func (d iccDataset) spec() string {
	return fmt.Sprintf("icc v2: %d tenants x %d connections x %d operations", d.tenants, d.connections, d.ops)
}

// tenantID is the id of tenant t. Tenant 0 is tenant-a of
// testdata/tokens.json, so that its token sees a tenant of the data set;
// the others are hex strings of 8, 32 or 64 characters.
func (d iccDataset) tenantID(t int) string {
	if t == 0 {
		return "39852f6f42a74d2b82f7099f78d0393a"
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "opsbench tenant %d", t))
	id := hex.EncodeToString(sum[:])
	switch t % 10 {
	case 8:
		return id[:8]
	case 9:
		return id
	}
	return id[:32]
}

// token is the X-Auth-Token of tenant t (a member, not an admin).
func (d iccDataset) token(t int) string { return fmt.Sprintf("opsbench-tenant-%04d", t) }

// rng is the generator of connection c of tenant t: the data set is the
// same on every machine and every load.
func (d iccDataset) rng(t, c int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(t), uint64(c)))
}

// connectionID is the id of connection c of tenant t: a version 4 UUID in
// lower case, as the service stores them.
func (d iccDataset) connectionID(t, c int) string {
	return uuidFrom(d.rng(t, c))
}

func uuidFrom(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

var iccColumns = []string{
	"operation_id", "tenant_id", "connection_id", "order_type", "phase", "operation_status",
	"reception_datetime", "commit_datetime", "request_body", "created_at", "updated_at",
}

// tenantRows generates the operations of tenant t, in iccColumns order. A
// connection is prepared, approved, updated and deleted; its operations come
// minutes to a day apart, its first at a random second of 2025, so reception
// times are mostly distinct and seldom equal. Statuses are a mix: 80%
// complete, 15% error, 5% still processing (no commit time).
func (d iccDataset) tenantRows(t int, now time.Time) [][]any {
	tenant := d.tenantID(t)
	rows := make([][]any, 0, d.connections*d.ops)
	for c := range d.connections {
		r := d.rng(t, c)
		conn := uuidFrom(r)
		exchange := uuidFrom(r)
		at := dataEpoch.Add(time.Duration(r.IntN(365*24*3600)) * time.Second)
		for k := range d.ops {
			order, phase := "Update", "update_connection"
			switch {
			case k == 0:
				order, phase = "Create", "prepare_connection"
			case k == 1:
				order, phase = "Create", "approve_connection"
			case k == d.ops-1 && d.ops > 2:
				order, phase = "Delete", "delete_connection"
			}
			status := "complete"
			var commit *time.Time
			switch x := r.IntN(100); {
			case x < 5:
				status = "processing"
			case x < 20:
				status = "error"
			}
			if status != "processing" {
				ct := at.Add(time.Duration(1+r.IntN(600)) * time.Second)
				commit = &ct
			}
			body := fmt.Sprintf(`{"connection":{"aws_account_id":"%012d","bandwidth":"%d","exchange_point_id":"%s","name":"conn-%d-%d","qos_type":"Guarantee","tenant_id":"%s"}}`,
				r.Int64N(1e12), 50*(1+r.IntN(20)), exchange, t, c, tenant)
			rows = append(rows, []any{
				fmt.Sprintf("op-%s-%d", conn, k), tenant, conn, order, phase, status,
				at, commit, body, now, now,
			})
			at = at.Add(time.Duration(60+r.IntN(24*3600)) * time.Second)
		}
	}
	return rows
}

// loadICC loads the ICC data set into icc_operations unless it is there,
// then has the store rebuild its latest markers from them.
func loadICC(ctx context.Context, db *sql.DB, dbName string, st *store.Store, d iccDataset, progress io.Writer) error {
	ok, err := loaded(ctx, db, dbName, "icc", d.spec(), "icc_operations", d.rows())
	if err != nil {
		return err
	}
	if ok {
		var markers int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM icc_latest").Scan(&markers); err != nil {
			return err
		}
		if markers == int64(d.tenants*d.connections) {
			return nil
		}
		return st.RebuildICCLatest(ctx)
	}
	fmt.Fprintf(progress, "loading the ICC data set (%s, %d rows) into icc_operations...\n", d.spec(), d.rows())
	start := time.Now()
	if err := claimAndEmpty(ctx, db, "icc", "icc_operations"); err != nil {
		return fmt.Errorf("empty icc_operations: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	err = parallel(ctx, loaders, d.tenants, func(ctx context.Context, t int) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := insertRows(ctx, tx, "icc_operations", iccColumns, d.tenantRows(t, now), 1000); err != nil {
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		return fmt.Errorf("load icc_operations: %w", err)
	}
	if err := st.RebuildICCLatest(ctx); err != nil {
		return err
	}
	if err := markLoaded(ctx, db, "icc", d.spec(), d.rows()); err != nil {
		return err
	}
	fmt.Fprintf(progress, "loaded %d ICC operations in %s\n", d.rows(), time.Since(start).Round(time.Second))
	return nil
}

// loaders is how many transactions load at once.
const loaders = 3

// loadTimeout bounds each statement of the load step's store.
const loadTimeout = 10 * time.Minute

// parallel calls fn(0) to fn(n-1) from workers goroutines and returns the
// first error.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					errc <- err
					cancel()
					return
				}
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return ctx.Err()
	}
}

// msfDataset is the A2 data set: operations with two target clusters each,
// and a rollback cluster on one in ten, with bodies, as A1 stores them.
type msfDataset struct{ ops int }

func (d msfDataset) spec() string { return fmt.Sprintf("msf v3: %d operations", d.ops) }

// msfWriters is how many goroutines write the MSF data set.
const msfWriters = 8

// loadMSF loads the MSF data set unless it is there. It writes through the
// store, which alone knows how a notification's clusters are kept.
func loadMSF(ctx context.Context, db *sql.DB, dbName string, st *store.Store, d msfDataset, progress io.Writer) error {
	ok, err := loaded(ctx, db, dbName, "msf", d.spec(), "msf_operations", int64(d.ops))
	if err != nil || ok {
		return err
	}
	fmt.Fprintf(progress, "loading the MSF data set (%s) into msf_operations...\n", d.spec())
	start := time.Now()
	if err := claimAndEmpty(ctx, db, "msf", "msf_operations"); err != nil {
		return fmt.Errorf("empty msf tables: %w", err)
	}
	err = parallel(ctx, msfWriters, msfWriters, func(ctx context.Context, w int) error {
		for i := w; i < d.ops; i += msfWriters {
			if _, err := st.PutOperation(ctx, msfOperation(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load msf operations: %w", err)
	}
	if err := markLoaded(ctx, db, "msf", d.spec(), int64(d.ops)); err != nil {
		return err
	}
	fmt.Fprintf(progress, "loaded %d MSF operations in %s\n", d.ops, time.Since(start).Round(time.Second))
	return nil
}

// msfOperation is operation i of the MSF data set: completed, two target
// clusters, and a rollback cluster on one in ten, with bodies.
func msfOperation(i int) store.Operation {
	id := fmt.Sprintf("a2-%07d", i)
	occurred := dataEpoch.Add(time.Duration(i) * time.Second)
	text := func(n int) *string { s := bodyText(n, i); return &s }
	code := func(c int) *int { return &c }
	op := store.Operation{
		ID: id, OccurredTime: occurred, LastUpdateTime: occurred.Add(5 * time.Second), Status: "completed",
		Request:  store.Request{URI: "/v1/slices/l2vpn/" + id, Method: "POST", Body: text(600)},
		Response: &store.Response{StatusCode: code(201), Body: text(200)},
	}
	for pos := range 2 {
		n := fmt.Sprint(pos + 1)
		op.TargetClusters = append(op.TargetClusters, store.Cluster{ClusterID: n,
			Request:  store.Request{URI: "/v1/clusters/" + n + "/slices/" + id, Method: "PUT", Body: text(300)},
			Response: &store.Response{StatusCode: code(202), Body: text(80)}})
	}
	if i%10 == 9 {
		op.Rollbacks = &store.Rollbacks{Result: "completed", OccurredTime: occurred.Add(3 * time.Second),
			TargetClusters: []store.Cluster{{ClusterID: "1",
				Request:  store.Request{URI: "/v1/clusters/1/slices/" + id, Method: "DELETE", Body: text(200)},
				Response: &store.Response{StatusCode: code(200), Body: text(60)}}}}
	}
	return op
}

// bodyText is a body string of n bytes: JSON text, as controllers send,
// with some non-ASCII.
func bodyText(n, seed int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":"%08d","remark":"¥ 接続 ok","items":[`, seed)
	for i := 0; b.Len() < n-12; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"k":"v%d"}`, (seed+i)%1000)
	}
	b.WriteString("]}")
	s := b.String()
	for len(s) < n {
		s += " "
	}
	return s
}

// warm reads every index of tables once, so that the measurements find the
// data set in the buffer pool.
func warm(ctx context.Context, db *sql.DB, dbName string, tables ...string) error {
	for _, t := range tables {
		rows, err := db.QueryContext(ctx,
			"SELECT DISTINCT index_name FROM information_schema.STATISTICS WHERE table_schema = ? AND table_name = ?", dbName, t)
		if err != nil {
			return err
		}
		var indexes []string
		for rows.Next() {
			var ix string
			if err := rows.Scan(&ix); err != nil {
				rows.Close()
				return err
			}
			indexes = append(indexes, ix)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, ix := range indexes {
			var n int64
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t+" FORCE INDEX (`"+ix+"`)").Scan(&n); err != nil {
				return fmt.Errorf("warm %s.%s: %w", t, ix, err)
			}
		}
	}
	return nil
}

// writeTokens writes a tokens file to dir: the tokens of base (the
// service's sample file) and a member token for each tenant of d.
func writeTokens(base, dir string, d iccDataset) (string, error) {
	b, err := os.ReadFile(base)
	if err != nil {
		return "", fmt.Errorf("-tokens: %w", err)
	}
	var f struct {
		Tokens []map[string]any `json:"tokens"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return "", fmt.Errorf("-tokens %s: %w", base, err)
	}
	for t := range d.tenants {
		f.Tokens = append(f.Tokens, map[string]any{"token": d.token(t), "tenant_id": d.tenantID(t), "roles": []string{"member"}})
	}
	out, err := json.Marshal(f)
	if err != nil {
		return "", err
	}
	path := dir + "/tokens.json"
	return path, os.WriteFile(path, out, 0o600)
}
