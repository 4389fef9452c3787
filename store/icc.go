package store

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ICCOperation is one connection API operation of a cloud tenant, as recorded
// through B2 and listed by B1.
type ICCOperation struct {
	// ID follows the MSF operation id rules.
	ID string
	// ConnectionID is a UUID in text form.
	ConnectionID string
	// TenantID is 1 to 64 characters.
	TenantID string
	// OrderType is Create, Update or Delete.
	OrderType string
	Phase     string
	// OperationStatus is processing, complete or error.
	OperationStatus string
	// ReceptionDatetime is stored in UTC at second precision.
	ReceptionDatetime time.Time
	// CommitDatetime is nil until the operation is committed.
	CommitDatetime *time.Time
	// RequestBody is a JSON object, stored and returned byte for byte.
	RequestBody []byte
	// ResourceType is aws_connection, tenant_connection_request or
	// tenant_connection; empty means aws_connection.
	ResourceType string
	// Error is a JSON object stored and returned byte for byte, or nil when
	// the operation recorded none.
	Error []byte
}

// DefaultResourceType is the resource type of an operation recorded without one.
const DefaultResourceType = "aws_connection"

// ICCFilter selects the ICC operations ListICCOperations returns. Empty string
// fields match anything.
type ICCFilter struct {
	// TenantID is the tenant whose operations are listed; it is required
	// unless AllTenants is set.
	TenantID string
	// AllTenants lists every tenant's operations (admin) and ignores TenantID.
	AllTenants bool

	// ID selects one operation id.
	ID              string
	ConnectionID    string
	OrderType       string
	Phase           string
	OperationStatus string
	ResourceType    string

	// Latest keeps, of each connection among the matches, only its most
	// recent operation: the greatest reception time, then the one recorded
	// last.
	Latest bool
}

// iccTerminal tells the ICC statuses that never change once reached.
var iccTerminal = map[string]bool{"complete": true, "error": true}

// checkICCTransition decides whether status next may replace the stored old.
// It returns a *ConflictError when it may not.
func checkICCTransition(old, next string) error {
	// B2 409: complete or error never returns to processing, and never turns
	// into the other terminal status; the same terminal status may be re-sent.
	if iccTerminal[old] && next != old {
		return &ConflictError{Field: "operation_status", Reason: next + " would replace the terminal " + old}
	}
	return nil
}

// Write says what a write that succeeded did.
type Write int

const (
	// Created is a new record.
	Created Write = iota + 1
	// Replaced is a stored record replaced by a different one.
	Replaced
	// Repeated is a write of exactly the stored record: nothing was written.
	Repeated
)

// PutICCOperation records op, creating it (Created) or replacing the stored
// operation with the same ID (Replaced; Repeated, writing nothing, when the
// stored one is op already), and returns the record as stored. Replacing
// keeps the operation's place in the order recorded. It returns ErrConflict
// (as a *ConflictError), changing nothing, when the stored status is complete
// or error and op's status differs. Of concurrent first calls for one id
// exactly one creates. It returns ErrUnavailable when the database cannot be
// reached.
func (s *Store) PutICCOperation(ctx context.Context, op ICCOperation) (stored ICCOperation, w Write, err error) {
	if op.ID == "" {
		return ICCOperation{}, 0, errors.New("put icc operation: empty id")
	}
	op.ReceptionDatetime = utcSecond(op.ReceptionDatetime)
	op.CommitDatetime = utcSecondPtr(op.CommitDatetime)
	op.RequestBody = bytes.Clone(op.RequestBody)
	op.Error = bytes.Clone(op.Error)
	if op.ResourceType == "" {
		op.ResourceType = DefaultResourceType
	}
	now := utcSecond(s.now())
	set := s.subscriptionsNow()
	wantsEvents := set.wants(EventICCOperationUpdated)
	wrote := false

	err = s.inTx(ctx, func(tx *gorm.DB) error {
		w, wrote = 0, false
		if err := s.putICC(tx, op, now, &w); err != nil || !wantsEvents || w == Repeated {
			return err
		}
		// The deliveries commit with the write, or neither does.
		var err error
		wrote, err = s.iccOutbox(tx, set, op)
		return err
	})
	if err != nil {
		return ICCOperation{}, 0, fmt.Errorf("put icc operation %q: %w", op.ID, s.translate(err))
	}
	if wrote {
		s.deliveriesWritten()
	}
	return op, w, nil
}

// putICC is PutICCOperation's write within tx; w says what it did.
func (s *Store) putICC(tx *gorm.DB, op ICCOperation, now time.Time, w *Write) error {
	row := iccOperationToRow(op)
	var old iccRow
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
		Where("operation_id = ?", op.ID).
		Take(&old).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		// seq is assigned here, once: the order recorded.
		row.CreatedAt, row.UpdatedAt = now, now
		if iccTerminal[op.OperationStatus] {
			row.TerminalAt = &now
		}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		*w = Created
		return s.refreshLatest(tx, connectionKey{op.TenantID, op.ConnectionID})
	case err != nil:
		return err
	}
	if err := checkICCTransition(old.OperationStatus, op.OperationStatus); err != nil {
		return err
	}
	if sameICCRow(old, row) {
		*w = Repeated
		return nil
	}
	*w = Replaced
	row.UpdatedAt = now
	if iccTerminal[op.OperationStatus] {
		// A terminal status sent again keeps the first time.
		row.TerminalAt = cmp.Or(old.TerminalAt, &now)
	}
	err = tx.Model(&iccRow{}).
		Where("seq = ?", old.Seq).
		Select("*").Omit("seq", "operation_id", "created_at").
		Updates(&row).Error
	if err != nil {
		return err
	}
	// A replacement may move the operation in time, or to another
	// connection or tenant: both connections' latest may change.
	return s.refreshLatest(tx, connectionKey{old.TenantID, old.ConnectionID}, connectionKey{op.TenantID, op.ConnectionID})
}

// sameICCRow reports whether two rows of one operation hold the same record,
// stamps aside.
func sameICCRow(a, b iccRow) bool {
	timeEq := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	strEq := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.TenantID == b.TenantID && a.ConnectionID == b.ConnectionID && a.OrderType == b.OrderType &&
		a.Phase == b.Phase && a.OperationStatus == b.OperationStatus && a.ReceptionDatetime.Equal(b.ReceptionDatetime) &&
		timeEq(a.CommitDatetime, b.CommitDatetime) && a.RequestBody == b.RequestBody &&
		a.ResourceType == b.ResourceType && strEq(a.Error, b.Error)
}

// connectionKey names one connection of one tenant: icc_latest keeps the
// latest operation of each.
type connectionKey struct{ tenantID, connectionID string }

// refreshLatest brings the icc_latest rows of the given connections up to
// date within tx, after a write to their operations. The marker row is
// locked first, so writers of one connection take turns and each sees the
// others' committed operations when it looks for the latest; a connection's
// first writers race on the marker's primary key instead, and the loser's
// transaction is retried (duplicate key).
//
// On Galera the lock holds on this node only: a writer on another node sees
// neither it nor an operation committed there but not yet applied here. What
// serializes writers across nodes is certification, which compares the rows
// that transactions changed, so on Galera a marker found up to date is
// changed and changed back: a concurrent refresh of the same connection on
// another node then conflicts with this one (1213), and the loser runs again
// on the winner's rows.
func (s *Store) refreshLatest(tx *gorm.DB, keys ...connectionKey) error {
	slices.SortFunc(keys, func(a, b connectionKey) int {
		return cmp.Or(cmp.Compare(a.tenantID, b.tenantID), cmp.Compare(a.connectionID, b.connectionID))
	})
	keys = slices.Compact(keys)
	for _, k := range keys {
		var marker latestRow
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("tenant_id = ? AND connection_id = ?", k.tenantID, k.connectionID).
			Take(&marker).Error
		exists := err == nil
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		var latest iccRow
		err = tx.Select("seq", "reception_datetime").
			Where("tenant_id = ? AND connection_id = ?", k.tenantID, k.connectionID).
			Order("reception_datetime DESC, seq DESC").
			Take(&latest).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			if exists {
				err = tx.Where("tenant_id = ? AND connection_id = ?", k.tenantID, k.connectionID).Delete(&latestRow{}).Error
			} else {
				err = nil
			}
		case err != nil:
		case !exists:
			err = tx.Create(&latestRow{TenantID: k.tenantID, ConnectionID: k.connectionID,
				Seq: latest.Seq, ReceptionDatetime: latest.ReceptionDatetime}).Error
		case marker.Seq != latest.Seq || !marker.ReceptionDatetime.Equal(latest.ReceptionDatetime):
			err = tx.Model(&latestRow{}).
				Where("tenant_id = ? AND connection_id = ?", k.tenantID, k.connectionID).
				Updates(map[string]any{"seq": latest.Seq, "reception_datetime": latest.ReceptionDatetime}).Error
		case s.galera:
			// Up to date: the row goes into the write set all the same.
			for range 2 {
				err = tx.Exec("UPDATE icc_latest SET seq = -seq WHERE tenant_id = ? AND connection_id = ?", k.tenantID, k.connectionID).Error
				if err != nil {
					break
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// RebuildICCLatest recomputes icc_latest from every stored operation, in one
// transaction. The store keeps it up to date itself; this is for operations
// written behind its back (a bulk load, a restore of icc_operations alone).
// It returns ErrUnavailable when the database cannot be reached.
func (s *Store) RebuildICCLatest(ctx context.Context) error {
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec("DELETE FROM icc_latest").Error; err != nil {
			return err
		}
		return tx.Exec("INSERT INTO icc_latest (tenant_id, connection_id, seq, reception_datetime)" + latestOfEachConnection).Error
	})
	if err != nil {
		return fmt.Errorf("rebuild icc latest: %w", s.translate(err))
	}
	return nil
}

// iccListColumns are the columns a list reads, in scanICCOperations' order.
const iccListColumns = "o.seq, o.operation_id, o.tenant_id, o.connection_id, o.order_type, o.phase, " +
	"o.operation_status, o.reception_datetime, o.commit_datetime, o.request_body, o.resource_type, o.error"

// ListICCOperations calls fn with the ICC operations f selects, as
// PageICCOperations does with no limit.
func (s *Store) ListICCOperations(ctx context.Context, f ICCFilter, fn func(ICCOperation) error) error {
	_, err := s.PageICCOperations(ctx, f, Page{}, fn)
	return err
}

// PageICCOperations calls fn with the ICC operations of page p that f
// selects, ordered by ReceptionDatetime, ties in the order each id was first
// recorded, and returns the position of the next page, or nil when this one
// is the last. It stops at fn's first error and returns it unchanged. It
// refuses a filter with neither a TenantID nor AllTenants, so that nobody
// lists every tenant by accident. It returns ErrUnavailable when the
// database cannot be reached.
func (s *Store) PageICCOperations(ctx context.Context, f ICCFilter, p Page, fn func(ICCOperation) error) (*Cursor, error) {
	if !f.AllTenants && f.TenantID == "" {
		return nil, errors.New("list icc operations: a tenant id is required unless AllTenants is set")
	}
	read := func(ctx context.Context, after *Cursor, limit int) ([]listedICC, error) {
		query, args := s.iccQuery(f, after, limit)
		// Straight to database/sql: lists are the hot read path, and
		// building each query through GORM cost a third of running it.
		end := s.startSpan(ctx, "SELECT icc_operations", query)
		rows, err := s.sqlDB.QueryContext(ctx, query, args...)
		if err != nil {
			end(err)
			return nil, err
		}
		defer rows.Close()
		batch, err := scanICCOperations(rows)
		end(err)
		return batch, err
	}
	key := func(l listedICC) Cursor { return Cursor{Time: l.op.ReceptionDatetime, Seq: l.seq} }
	next, err := keyset(ctx, s, p, read, key, byTimeSeq, func(l listedICC) error { return fromFn(fn(l.op)) })
	return next, listError("list icc operations", err)
}

// iccQuery is the SQL of the batch of at most limit of f's matches after
// cur, and its arguments.
func (s *Store) iccQuery(f ICCFilter, cur *Cursor, limit int) (string, []any) {
	var q strings.Builder
	var args []any
	// by is the table whose reception_datetime and seq order the list.
	by := "o"
	q.WriteString("SELECT ")
	if f.Latest && f.latestByMarker() {
		// The latest of each connection of the tenant is an index read
		// of icc_latest, kept up to date by every write. The marker's own
		// reception time orders the list and keys the next batch; it is
		// the operation's (both are written together).
		by = "l"
		q.WriteString(strings.Replace(iccListColumns, "o.reception_datetime", "l.reception_datetime", 1))
		q.WriteString(" FROM icc_latest AS l JOIN icc_operations AS o ON o.seq = l.seq WHERE l.tenant_id = ?")
		args = append(args, f.TenantID)
		if f.ConnectionID != "" {
			q.WriteString(" AND l.connection_id = ?")
			args = append(args, f.ConnectionID)
		}
	} else {
		q.WriteString(iccListColumns)
		q.WriteString(" FROM icc_operations AS o")
		if s.dialect == dialectMySQL && !f.AllTenants {
			// A tenant's list reads a tenant-leading index. MariaDB's
			// optimizer sometimes prefers walking the all-tenant reception
			// index for the ORDER BY ... LIMIT instead, and reads most of the
			// table for a tenant whose operations come late (850 ms instead
			// of 45 ms at 1M rows).
			q.WriteString(" IGNORE INDEX (icc_operations_reception, icc_operations_connection)")
		}
		q.WriteString(" WHERE 1 = 1")
		args = writeICCFilter(&q, args, "o", f)
		if f.Latest {
			// A match is the latest of its connection when no other match
			// of that connection comes after it in listing order. The
			// subquery has the same filter: latest among the matches.
			q.WriteString(" AND NOT EXISTS (SELECT 1 FROM icc_operations AS n WHERE n.connection_id = o.connection_id" +
				" AND (n.reception_datetime > o.reception_datetime OR (n.reception_datetime = o.reception_datetime AND n.seq > o.seq))")
			args = writeICCFilter(&q, args, "n", f)
			q.WriteString(")")
		}
	}
	if cur != nil {
		fmt.Fprintf(&q, " AND (%[1]s.reception_datetime > ? OR (%[1]s.reception_datetime = ? AND %[1]s.seq > ?))", by)
		args = append(args, cur.Time, cur.Time, cur.Seq)
	}
	fmt.Fprintf(&q, " ORDER BY %[1]s.reception_datetime, %[1]s.seq LIMIT %[2]d", by, limit)
	return q.String(), args
}

// listedICC is a listed operation and its place in the order recorded.
type listedICC struct {
	op  ICCOperation
	seq int64
}

// scanICCOperations reads rows of iccListColumns. A list can be tens of
// thousands of operations: scanning each column into its own typed variable
// costs a fraction of mapping rows onto structs by reflection.
func scanICCOperations(rows *sql.Rows) ([]listedICC, error) {
	// Grown as read: most lists (one connection's latest, say) are short,
	// and a batch-sized slice is hundreds of kilobytes.
	var out []listedICC
	for rows.Next() {
		var (
			l      listedICC
			commit sql.NullTime
			errObj sql.NullString
		)
		op := &l.op
		err := rows.Scan(&l.seq, &op.ID, &op.TenantID, &op.ConnectionID, &op.OrderType, &op.Phase,
			&op.OperationStatus, &op.ReceptionDatetime, &commit, &op.RequestBody, &op.ResourceType, &errObj)
		if err != nil {
			return nil, err
		}
		op.ReceptionDatetime = op.ReceptionDatetime.UTC()
		if commit.Valid {
			t := commit.Time.UTC()
			op.CommitDatetime = &t
		}
		if errObj.Valid {
			op.Error = []byte(errObj.String)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// latestByMarker reports whether icc_latest answers f's latest: it holds the
// latest of each connection of each tenant, so it serves a tenant's list
// filtered at most by connection. Other filters pick the latest among their
// matches, and an admin's list the latest of each connection whatever its
// tenant: those are computed from icc_operations.
func (f ICCFilter) latestByMarker() bool {
	return !f.AllTenants && f.ID == "" && f.OrderType == "" && f.Phase == "" &&
		f.OperationStatus == "" && f.ResourceType == ""
}

// writeICCFilter adds f's conditions on the table aliased as alias to q,
// and their arguments to args.
func writeICCFilter(q *strings.Builder, args []any, alias string, f ICCFilter) []any {
	eq := func(column, value string) {
		if value != "" {
			q.WriteString(" AND " + alias + "." + column + " = ?")
			args = append(args, value)
		}
	}
	if !f.AllTenants {
		eq("tenant_id", f.TenantID)
	}
	eq("operation_id", f.ID)
	eq("connection_id", f.ConnectionID)
	eq("resource_type", f.ResourceType)
	eq("order_type", f.OrderType)
	eq("phase", f.Phase)
	eq("operation_status", f.OperationStatus)
	return args
}

func iccOperationToRow(op ICCOperation) iccRow {
	return iccRow{
		OperationID:       op.ID,
		TenantID:          op.TenantID,
		ConnectionID:      op.ConnectionID,
		OrderType:         op.OrderType,
		Phase:             op.Phase,
		OperationStatus:   op.OperationStatus,
		ReceptionDatetime: op.ReceptionDatetime,
		CommitDatetime:    op.CommitDatetime,
		RequestBody:       string(op.RequestBody),
		ResourceType:      op.ResourceType,
		Error:             bytesPtr(op.Error),
	}
}

func bytesPtr(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}
