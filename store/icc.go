package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
}

// ICCFilter selects the ICC operations ListICCOperations returns. Empty string
// fields match anything.
type ICCFilter struct {
	// TenantID is the tenant whose operations are listed; it is required
	// unless AllTenants is set.
	TenantID string
	// AllTenants lists every tenant's operations (admin) and ignores TenantID.
	AllTenants bool

	ConnectionID    string
	OrderType       string
	Phase           string
	OperationStatus string

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

// PutICCOperation records op, creating it (created is true) or replacing the
// stored operation with the same ID (created is false), and returns the record
// as stored. Replacing keeps the operation's place in the order recorded. It
// returns ErrConflict (as a *ConflictError), changing nothing, when the stored
// status is complete or error and op's status differs. Of concurrent first
// calls for one id exactly one creates. It returns ErrUnavailable when the
// database cannot be reached.
func (s *Store) PutICCOperation(ctx context.Context, op ICCOperation) (stored ICCOperation, created bool, err error) {
	if op.ID == "" {
		return ICCOperation{}, false, errors.New("put icc operation: empty id")
	}
	op.ReceptionDatetime = utcSecond(op.ReceptionDatetime)
	op.CommitDatetime = utcSecondPtr(op.CommitDatetime)
	op.RequestBody = bytes.Clone(op.RequestBody)
	now := utcSecond(s.now())

	err = s.inTx(ctx, func(tx *gorm.DB) error {
		created = false
		row := iccOperationToRow(op)
		var old iccRow
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Select("seq", "operation_status").
			Where("operation_id = ?", op.ID).
			Take(&old).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			// seq is assigned here, once: the order recorded.
			row.CreatedAt, row.UpdatedAt = now, now
			if err := tx.Create(&row).Error; err != nil {
				return err
			}
			created = true
			return nil
		case err != nil:
			return err
		}
		if err := checkICCTransition(old.OperationStatus, op.OperationStatus); err != nil {
			return err
		}
		row.UpdatedAt = now
		return tx.Model(&iccRow{}).
			Where("seq = ?", old.Seq).
			Select("*").Omit("seq", "operation_id", "created_at").
			Updates(&row).Error
	})
	if err != nil {
		return ICCOperation{}, false, fmt.Errorf("put icc operation %q: %w", op.ID, s.translate(err))
	}
	return op, created, nil
}

// iccCursor is the keyset position after the last listed ICC operation.
type iccCursor struct {
	receptionDatetime time.Time
	seq               int64
}

var iccListColumns = []string{
	"o.seq", "o.operation_id", "o.tenant_id", "o.connection_id", "o.order_type", "o.phase",
	"o.operation_status", "o.reception_datetime", "o.commit_datetime", "o.request_body",
}

// ListICCOperations calls fn with the ICC operations f selects, ordered by
// ReceptionDatetime, ties in the order each id was first recorded. It stops at
// fn's first error and returns it unchanged. It refuses a filter with neither a
// TenantID nor AllTenants, so that nobody lists every tenant by accident. It
// returns ErrUnavailable when the database cannot be reached.
func (s *Store) ListICCOperations(ctx context.Context, f ICCFilter, fn func(ICCOperation) error) error {
	if !f.AllTenants && f.TenantID == "" {
		return errors.New("list icc operations: a tenant id is required unless AllTenants is set")
	}
	var cur *iccCursor
	for {
		rows, err := s.iccBatch(ctx, f, cur)
		if err != nil {
			return fmt.Errorf("list icc operations: %w", s.translate(err))
		}
		for _, r := range rows {
			if err := fn(rowToICCOperation(r)); err != nil {
				return err
			}
		}
		if len(rows) < s.batchSize {
			return nil
		}
		last := rows[len(rows)-1]
		cur = &iccCursor{receptionDatetime: last.ReceptionDatetime, seq: last.Seq}
	}
}

// iccBatch reads, whole, the next batch of matches after cur.
func (s *Store) iccBatch(ctx context.Context, f ICCFilter, cur *iccCursor) (rows []iccRow, err error) {
	err = s.query(ctx, func(db *gorm.DB) error {
		rows, err = s.iccQuery(db, f, cur)
		return err
	})
	return rows, err
}

func (s *Store) iccQuery(db *gorm.DB, f ICCFilter, cur *iccCursor) ([]iccRow, error) {
	q := whereICCFilter(db.Table("icc_operations AS o"), "o", f)
	if f.Latest {
		// A match is the latest of its connection when no other match of
		// that connection comes after it in listing order. The subquery uses
		// the same filter, so latest means latest among the matches.
		newer := whereICCFilter(db.Table("icc_operations AS n"), "n", f).
			Select("1").
			Where("n.connection_id = o.connection_id").
			Where("(n.reception_datetime > o.reception_datetime OR (n.reception_datetime = o.reception_datetime AND n.seq > o.seq))")
		q = q.Where("NOT EXISTS (?)", newer)
	}
	if cur != nil {
		q = q.Where("(o.reception_datetime > ? OR (o.reception_datetime = ? AND o.seq > ?))",
			cur.receptionDatetime, cur.receptionDatetime, cur.seq)
	}
	var rows []iccRow
	err := q.Select(iccListColumns).
		Order("o.reception_datetime, o.seq").
		Limit(s.batchSize).
		Find(&rows).Error
	return rows, err
}

// whereICCFilter adds f's conditions on the table aliased as alias.
func whereICCFilter(q *gorm.DB, alias string, f ICCFilter) *gorm.DB {
	eq := func(q *gorm.DB, column, value string) *gorm.DB {
		return q.Where(alias+"."+column+" = ?", value)
	}
	if !f.AllTenants {
		q = eq(q, "tenant_id", f.TenantID)
	}
	if f.ConnectionID != "" {
		q = eq(q, "connection_id", f.ConnectionID)
	}
	if f.OrderType != "" {
		q = eq(q, "order_type", f.OrderType)
	}
	if f.Phase != "" {
		q = eq(q, "phase", f.Phase)
	}
	if f.OperationStatus != "" {
		q = eq(q, "operation_status", f.OperationStatus)
	}
	return q
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
	}
}

func rowToICCOperation(r iccRow) ICCOperation {
	op := ICCOperation{
		ID:                r.OperationID,
		ConnectionID:      r.ConnectionID,
		TenantID:          r.TenantID,
		OrderType:         r.OrderType,
		Phase:             r.Phase,
		OperationStatus:   r.OperationStatus,
		ReceptionDatetime: r.ReceptionDatetime.UTC(),
		CommitDatetime:    r.CommitDatetime,
		RequestBody:       []byte(r.RequestBody),
	}
	if op.CommitDatetime != nil {
		t := op.CommitDatetime.UTC()
		op.CommitDatetime = &t
	}
	return op
}
