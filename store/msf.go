package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Operation is the result of one asynchronous MSF operation, as last notified
// through A1. Optional fields keep absent apart from empty: a nil pointer or
// nil slice is absent, a non-nil empty one was sent empty.
type Operation struct {
	// ID is 1 to 128 characters of A-Z a-z 0-9 . _ ~ -, compared case-sensitively
	// and ordered by bytes.
	ID string
	// OccurredTime and LastUpdateTime are stored in UTC at second precision.
	OccurredTime   time.Time
	LastUpdateTime time.Time
	// ReservationTime and StartTime (MSF2018B) are nil when not notified;
	// stored like OccurredTime.
	ReservationTime *time.Time
	StartTime       *time.Time
	// Status is unexecuted, executing, completed, failed or canceled.
	Status         string
	SubStatus      *string
	Request        Request
	Response       *Response
	TargetClusters []Cluster
	Rollbacks      *Rollbacks
}

// Request is the request an operation or one of its clusters sent.
type Request struct {
	URI string
	// Method is POST, PUT, DELETE or PATCH.
	Method string
	// Body is stored and returned byte for byte. It is always nil in
	// ListOperations results.
	Body *string
}

// Response is the response an operation or one of its clusters received.
// Every part of it may be absent: the MSF controller sends {"body": ""} on a
// canceled operation and {} for some clusters.
type Response struct {
	// StatusCode is nil when the notification had none.
	StatusCode *int
	// Body is always nil in ListOperations results.
	Body *string
}

// Cluster is one cluster an operation, or its rollback, addressed.
type Cluster struct {
	ClusterID string
	Request   Request
	Response  *Response
}

// Rollbacks is the rollback of an operation.
type Rollbacks struct {
	// Result is completed, failed or none.
	Result         string
	OccurredTime   time.Time
	TargetClusters []Cluster
}

// statusRank orders MSF statuses: a notification never moves to a lower rank.
var statusRank = map[string]int{
	"unexecuted": 0,
	"executing":  1,
	"completed":  2,
	"failed":     2,
	"canceled":   2,
}

// terminalRank is the rank of the statuses that never change once reached.
const terminalRank = 2

// checkTransition decides whether notification next may replace the stored
// old. Only Status and LastUpdateTime count. It returns a *ConflictError when
// next goes backwards. transitionAllowed says the same in SQL.
func checkTransition(old, next Operation) error {
	oldRank, nextRank := statusRank[old.Status], statusRank[next.Status]
	switch {
	// 030007: last_update_time never goes back.
	case next.LastUpdateTime.Before(old.LastUpdateTime):
		return &ConflictError{Field: "last_update_time", Reason: "earlier than the stored one"}
	// 030007: status only moves forward, whatever the time.
	case nextRank < oldRank:
		return &ConflictError{Field: "status", Reason: next.Status + " would go back from " + old.Status}
	// 030007: a terminal status never moves; the same one may be re-sent.
	case oldRank == terminalRank && next.Status != old.Status:
		return &ConflictError{Field: "status", Reason: next.Status + " would replace the terminal " + old.Status}
	}
	return nil
}

// operationColumns are msf_operations' columns in the order of
// operationValues.
var operationColumns = []string{
	"id", "occurred_time", "last_update_time", "reservation_time", "start_time", "status", "sub_status",
	"request_uri", "request_method", "request_body", "response_present", "response_status_code", "response_body",
	"target_clusters_present", "rollback_result", "rollback_occurred_time", "rollback_clusters_present",
	"clusters", "cluster_bodies", "terminal_at", "created_at", "updated_at",
}

func operationValues(r *operationRow) []any {
	return []any{
		r.ID, r.OccurredTime, r.LastUpdateTime, r.ReservationTime, r.StartTime, r.Status, r.SubStatus,
		r.RequestURI, r.RequestMethod, r.RequestBody, r.ResponsePresent, r.ResponseStatusCode, r.ResponseBody,
		r.TargetClustersPresent, r.RollbackResult, r.RollbackOccurredTime, r.RollbackClustersPresent,
		r.Clusters, r.ClusterBodies, r.TerminalAt, r.CreatedAt, r.UpdatedAt,
	}
}

// transitionAllowed is checkTransition as SQL, over the stored row's status
// and last_update_time and the notification's, named by new.
func transitionAllowed(new func(column string) string) string {
	rank := func(status string) string {
		return "(CASE " + status + " WHEN 'unexecuted' THEN 0 WHEN 'executing' THEN 1 ELSE 2 END)"
	}
	return "(last_update_time <= " + new("last_update_time") +
		" AND " + rank("status") + " <= " + rank(new("status")) +
		" AND (status IN ('unexecuted', 'executing') OR status = " + new("status") + "))"
}

// putOperationSQL is, per dialect, the one statement that writes a
// notification: an INSERT of operationValues that, when the id is stored
// already, replaces every column but id and created_at if and only if
// transitionAllowed and something differs. Its RowsAffected is 0 when nothing
// changed: refused, or a repeat of the stored notification.
var putOperationSQL = map[dialect]string{
	dialectMySQL:  upsertMySQL(),
	dialectSQLite: upsertSQLite(),
}

func insertOperation(columns []string) string {
	return "INSERT INTO msf_operations (" + strings.Join(columns, ", ") +
		") VALUES (?" + strings.Repeat(", ?", len(columns)-1) + ")"
}

// putTerminalSQL is putOperationSQL for MySQL, for a terminal notification
// while operation.terminal has subscribers: it takes one value more, 1, as
// event_due, and marks the row event_due when the operation is new or was
// not terminal yet, so that ConvertTerminalEvents writes its event. The
// write stays one statement, whatever the subscribers.
var putTerminalSQL = upsertMySQLWith("", true)

// upsertMySQL: MySQL has no WHERE on ON DUPLICATE KEY UPDATE, so each column
// keeps its value unless the transition is allowed. Assignments run left to
// right and later ones see earlier results: updated_at, which compares the
// stored columns with the new ones, comes first, and status and
// last_update_time, which the condition reads, come last (the condition is
// unchanged by their own update: once allowed, still allowed). updated_at
// moves only when something else does, so that a repeat changes no row.
func upsertMySQL() string { return upsertMySQLWith("", false) }

// upsertMySQLWith is upsertMySQL with note ANDed into its first
// assignment's condition, which runs before any column changes: an
// expression that is always true and records something of the stored row.
// With markDue it is putTerminalSQL.
func upsertMySQLWith(note string, markDue bool) string {
	values := func(c string) string { return "VALUES(" + c + ")" }
	ok := transitionAllowed(values)
	var same []string
	for _, c := range contentColumns() {
		same = append(same, c+" <=> VALUES("+c+")")
	}
	changed := ok + " AND NOT (" + strings.Join(same, " AND ") + ")"
	if note != "" {
		changed = note + " AND " + changed
	}
	set := []string{"updated_at = IF(" + changed + ", VALUES(updated_at), updated_at)"}
	columns := operationColumns
	if markDue {
		// Before terminal_at is set: NULL means not terminal until now.
		set = append(set, "event_due = IF("+ok+" AND terminal_at IS NULL, 1, event_due)")
		columns = append(slices.Clone(columns), "event_due")
	}
	for _, c := range operationColumns {
		switch c {
		case "id", "created_at", "updated_at", "status", "last_update_time":
			continue
		case "terminal_at":
			// A terminal notification sent again keeps the first time.
			set = append(set, c+" = IF("+ok+", IF(VALUES("+c+") IS NULL, NULL, COALESCE("+c+", VALUES("+c+"))), "+c+")")
			continue
		}
		set = append(set, c+" = IF("+ok+", VALUES("+c+"), "+c+")")
	}
	for _, c := range []string{"status", "last_update_time"} {
		set = append(set, c+" = IF("+ok+", VALUES("+c+"), "+c+")")
	}
	return insertOperation(columns) + " ON DUPLICATE KEY UPDATE " + strings.Join(set, ", ")
}

// contentColumns are the columns a notification sets: all but id and the
// stamps.
func contentColumns() []string {
	var cs []string
	for _, c := range operationColumns {
		switch c {
		case "id", "created_at", "updated_at":
			continue
		}
		cs = append(cs, c)
	}
	return cs
}

// upsertSQLite: SQLite's upsert takes a WHERE; a repeat of the stored
// notification matches no row.
func upsertSQLite() string {
	var set, same []string
	for _, c := range operationColumns {
		switch c {
		case "id", "created_at":
		case "terminal_at":
			// A terminal notification sent again keeps the first time.
			set = append(set, c+" = CASE WHEN excluded."+c+" IS NULL THEN NULL ELSE COALESCE(msf_operations."+c+", excluded."+c+") END")
		default:
			set = append(set, c+" = excluded."+c)
		}
	}
	for _, c := range contentColumns() {
		same = append(same, c+" IS excluded."+c)
	}
	return insertOperation(operationColumns) + " ON CONFLICT (id) DO UPDATE SET " + strings.Join(set, ", ") +
		" WHERE " + transitionAllowed(func(c string) string { return "excluded." + c }) +
		" AND NOT (" + strings.Join(same, " AND ") + ")"
}

// PutOperation creates the operation or replaces the stored one with the same
// ID, clusters included. It returns ErrConflict (as a *ConflictError), changing
// nothing, when op goes backwards (030007): its LastUpdateTime is before the
// stored one, its status ranks lower (unexecuted < executing < completed,
// failed, canceled), or the stored status is terminal and op's differs.
// Re-sending the stored notification succeeds and writes nothing: repeat is
// then true, and updated_at keeps its time. Concurrent calls for one id are
// serialized, so the stored record is always exactly one accepted
// notification. It returns ErrUnavailable when the database cannot be reached,
// and ErrOutcomeUnknown when the connection broke after the write was sent.
//
// A notification is one row, written by one statement (putOperationSQL) that
// inserts it or, if the transition is allowed, replaces the stored one: the
// database's row lock does the serializing, and no transaction is held open
// across round trips. Only when nothing changed is the stored row read, to
// tell a repeat from a refusal.
func (s *Store) PutOperation(ctx context.Context, op Operation) (repeat bool, err error) {
	if op.ID == "" {
		return false, errors.New("put operation: empty id")
	}
	if _, ok := statusRank[op.Status]; !ok {
		return false, fmt.Errorf("put operation %q: unknown status %q", op.ID, op.Status)
	}
	row, err := operationToRow(op)
	if err != nil {
		return false, fmt.Errorf("put operation %q: %w", op.ID, err)
	}
	row.CreatedAt = utcSecond(s.now())
	row.UpdatedAt = row.CreatedAt
	if statusRank[op.Status] == terminalRank {
		row.TerminalAt = &row.CreatedAt
	}
	values := operationValues(&row)
	// With no subscription for its events (the cache, see
	// subscriptionSet), a notification is the one statement below. Only a
	// terminal notification can cause operation.terminal: on MySQL, while
	// nobody subscribed to operation.updated, it is still one statement,
	// which marks the row for the dispatcher to write the event
	// (putTerminalSQL, ConvertTerminalEvents). Otherwise one transaction
	// writes the notification and its deliveries.
	set := s.subscriptionsNow()
	terminal := statusRank[op.Status] == terminalRank
	put, marking := &s.stmts.put, false
	switch {
	case terminal && !set.wants(EventOperationUpdated) && set.wants(EventOperationTerminal) && s.dialect == dialectMySQL:
		put, marking = &s.stmts.putTerminal, true
		values = append(values, 1) // event_due
	case set.wants(EventOperationUpdated) || (terminal && set.wants(EventOperationTerminal)):
		wrote := false
		err = s.withRetry(ctx, func(ctx context.Context) (err error) {
			if s.dialect == dialectMySQL {
				repeat, wrote, err = s.putOperationPrepared(ctx, op, values, set)
			} else {
				repeat, wrote, err = s.putOperationWithEvents(ctx, op, values, set)
			}
			return err
		})
		if err != nil {
			return false, fmt.Errorf("put operation %q: %w", op.ID, s.translate(err))
		}
		if wrote {
			s.deliveriesWritten()
		}
		return repeat, nil
	}
	changed := false
	err = s.withRetry(ctx, func(ctx context.Context) error {
		repeat = false
		if err := ctx.Err(); err != nil {
			return err
		}
		// A write, once sent, is not abandoned when ctx ends: that would
		// leave its outcome unknown for no reason. The driver's read and
		// write timeouts (Options.Timeout) bound it instead, and a
		// connection lost meanwhile is ErrOutcomeUnknown (writeOutcome).
		// Straight to database/sql: building a raw statement through GORM
		// cost a third as much CPU as running it (a profile of A1).
		stmt, err := put.get(ctx, s.sqlDB)
		if err != nil {
			return err
		}
		end := s.startSpan(ctx, "INSERT msf_operations", put.query)
		res, err := stmt.ExecContext(context.WithoutCancel(ctx), values...)
		end(err)
		if err != nil {
			return s.writeOutcome(err)
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			changed = err == nil
			return err
		}
		if err := s.unchanged(ctx, op); err != nil {
			return err
		}
		repeat = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("put operation %q: %w", op.ID, s.translate(err))
	}
	if changed && marking {
		s.deliveriesWritten() // perhaps an event due: the dispatcher looks
	}
	return repeat, nil
}

// unchanged tells why a write of op changed nothing: a refusal (a
// *ConflictError), or (MySQL) the stored notification again, unchanged (nil).
func (s *Store) unchanged(ctx context.Context, op Operation) error {
	var old operationRow
	err := s.db.WithContext(ctx).Select("status", "last_update_time").Where("id = ?", op.ID).Take(&old).Error
	if err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return errRace // removed since: try again
		}
		return err
	}
	return checkTransition(Operation{Status: old.Status, LastUpdateTime: old.LastUpdateTime}, op)
}

// writeOutcome is the error of a statement that commits on its own: when its
// connection broke after it may have reached the server, the write may have
// happened (ErrOutcomeUnknown).
func (s *Store) writeOutcome(err error) error {
	if err != nil && s.brokenAtWrite(err) {
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return err
}

// GetOperation returns the stored operation with every body. It returns
// ErrNotFound when no operation has id, and ErrUnavailable when the database
// cannot be reached.
func (s *Store) GetOperation(ctx context.Context, id string) (Operation, error) {
	var row operationRow
	err := s.query(ctx, func(db *gorm.DB) error { return db.Where("id = ?", id).Take(&row).Error })
	if errors.Is(err, gorm.ErrRecordNotFound) {
		err = ErrNotFound
	}
	if err != nil {
		return Operation{}, fmt.Errorf("get operation %q: %w", id, s.translate(err))
	}
	op, err := rowToOperation(row)
	if err != nil {
		return Operation{}, fmt.Errorf("get operation %q: %w", id, err)
	}
	return op, nil
}

// afterOperation limits q to the operations listed after c; a nil c is the
// start. The row-value form (a, b) > (?, ?) is avoided for portability.
func afterOperation(q *gorm.DB, c *Cursor) *gorm.DB {
	if c == nil {
		return q
	}
	return q.Where("(occurred_time > ? OR (occurred_time = ? AND id > ?))", c.Time, c.Time, c.ID)
}

// operationKey is the keyset position of an operation row.
func operationKey(r operationRow) Cursor { return Cursor{Time: r.OccurredTime, ID: r.ID} }

// readOperations is keyset's read for the MSF lists: the next limit rows
// after c, of columns.
func (s *Store) readOperations(columns []string) func(ctx context.Context, c *Cursor, limit int) ([]operationRow, error) {
	return func(ctx context.Context, c *Cursor, limit int) ([]operationRow, error) {
		var rows []operationRow
		err := afterOperation(s.db.WithContext(ctx).Select(columns), c).
			Order("occurred_time, id").
			Limit(limit).
			Find(&rows).Error
		return rows, err
	}
}

// ListOperationIDs calls fn with the id of every operation, as
// PageOperationIDs does with no limit.
func (s *Store) ListOperationIDs(ctx context.Context, fn func(id string) error) error {
	_, err := s.PageOperationIDs(ctx, Page{}, fn)
	return err
}

// PageOperationIDs calls fn with the id of every operation of page p,
// ordered by OccurredTime then ID (byte order), and returns the position of
// the next page, or nil when this one is the last. It stops at fn's first
// error and returns it unchanged. It returns ErrUnavailable when the database
// cannot be reached.
func (s *Store) PageOperationIDs(ctx context.Context, p Page, fn func(id string) error) (*Cursor, error) {
	next, err := keyset(ctx, s, p, s.readOperations([]string{"id", "occurred_time"}), operationKey, byTimeID,
		func(r operationRow) error { return fromFn(fn(r.ID)) })
	return next, listError("list operation ids", err)
}

// operationListColumns are the columns ListOperations reads: everything but
// the bodies, which can be megabytes each and which the detail list does not
// show.
var operationListColumns = []string{
	"id", "occurred_time", "last_update_time", "reservation_time", "start_time", "status", "sub_status",
	"request_uri", "request_method", "response_present", "response_status_code",
	"target_clusters_present", "rollback_result", "rollback_occurred_time", "rollback_clusters_present",
	"clusters",
}

// ListOperations calls fn with every operation, as PageOperations does with
// no limit.
func (s *Store) ListOperations(ctx context.Context, fn func(Operation) error) error {
	_, err := s.PageOperations(ctx, Page{}, fn)
	return err
}

// PageOperations calls fn with every operation of page p, in the order of
// PageOperationIDs, without any body: every Request.Body and Response.Body is
// nil, in clusters too. It returns the position of the next page, or nil. It
// stops at fn's first error and returns it unchanged. It returns
// ErrUnavailable when the database cannot be reached.
func (s *Store) PageOperations(ctx context.Context, p Page, fn func(Operation) error) (*Cursor, error) {
	next, err := keyset(ctx, s, p, s.readOperations(operationListColumns), operationKey, byTimeID,
		func(r operationRow) error {
			op, err := rowToOperation(r)
			if err != nil {
				return err
			}
			return fromFn(fn(op))
		})
	return next, listError("list operations", err)
}

// operationToRow normalizes op's times and encodes it as its table row.
func operationToRow(op Operation) (operationRow, error) {
	row := operationRow{
		ID:                    op.ID,
		OccurredTime:          utcSecond(op.OccurredTime),
		LastUpdateTime:        utcSecond(op.LastUpdateTime),
		ReservationTime:       utcSecondPtr(op.ReservationTime),
		StartTime:             utcSecondPtr(op.StartTime),
		Status:                op.Status,
		SubStatus:             op.SubStatus,
		RequestURI:            op.Request.URI,
		RequestMethod:         op.Request.Method,
		RequestBody:           op.Request.Body,
		TargetClustersPresent: op.TargetClusters != nil,
	}
	if op.Response != nil {
		row.ResponsePresent = true
		row.ResponseStatusCode = op.Response.StatusCode
		row.ResponseBody = op.Response.Body
	}
	var rollbackClusters []Cluster
	if rb := op.Rollbacks; rb != nil {
		row.RollbackResult = &rb.Result
		row.RollbackOccurredTime = utcSecondPtr(&rb.OccurredTime)
		row.RollbackClustersPresent = rb.TargetClusters != nil
		rollbackClusters = rb.TargetClusters
	}
	var err error
	row.Clusters, row.ClusterBodies, err = encodeClusters(op.TargetClusters, rollbackClusters)
	return row, err
}

// rowToOperation rebuilds an operation from its row. Without the body
// columns (ListOperations), every body is nil.
func rowToOperation(row operationRow) (Operation, error) {
	op := Operation{
		ID:              row.ID,
		OccurredTime:    row.OccurredTime.UTC(),
		LastUpdateTime:  row.LastUpdateTime.UTC(),
		ReservationTime: utcPtr(row.ReservationTime),
		StartTime:       utcPtr(row.StartTime),
		Status:          row.Status,
		SubStatus:       row.SubStatus,
		Request:         Request{URI: row.RequestURI, Method: row.RequestMethod, Body: row.RequestBody},
	}
	if row.ResponsePresent {
		op.Response = &Response{StatusCode: row.ResponseStatusCode, Body: row.ResponseBody}
	}
	target, rollback, err := decodeClusters(row.Clusters, row.ClusterBodies)
	if err != nil {
		return Operation{}, fmt.Errorf("operation %q: %w", row.ID, err)
	}
	if row.TargetClustersPresent {
		op.TargetClusters = target
	}
	if row.RollbackResult != nil {
		op.Rollbacks = &Rollbacks{Result: *row.RollbackResult, TargetClusters: nil}
		if row.RollbackOccurredTime != nil {
			op.Rollbacks.OccurredTime = row.RollbackOccurredTime.UTC()
		}
		if row.RollbackClustersPresent {
			op.Rollbacks.TargetClusters = rollback
		}
	}
	return op, nil
}
