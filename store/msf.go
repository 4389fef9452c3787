package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
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
type Response struct {
	StatusCode int
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

// clusterInsertBatch is how many clusters one INSERT writes: a row binds
// about ten values.
const clusterInsertBatch = 1000

// statusRank orders MSF statuses: a notification never moves to a lower rank.
var statusRank = map[string]int{
	"unexecuted": 0,
	"executing":  1,
	"completed":  2,
	"failed":     2,
	"canceled":   2,
}

// checkTransition decides whether notification next may replace the stored
// old. Only Status and LastUpdateTime count. It returns a *ConflictError when
// next goes backwards.
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
	case oldRank == statusRank["completed"] && next.Status != old.Status:
		return &ConflictError{Field: "status", Reason: next.Status + " would replace the terminal " + old.Status}
	}
	return nil
}

// PutOperation creates the operation or replaces the stored one with the same
// ID, clusters included. It returns ErrConflict (as a *ConflictError), changing
// nothing, when op goes backwards (030007): its LastUpdateTime is before the
// stored one, its status ranks lower (unexecuted < executing < completed,
// failed, canceled), or the stored status is terminal and op's differs.
// Re-sending the stored notification succeeds. Concurrent calls for one id are
// serialized, so the stored record is always exactly one accepted
// notification. It returns ErrUnavailable when the database cannot be reached.
func (s *Store) PutOperation(ctx context.Context, op Operation) error {
	if op.ID == "" {
		return errors.New("put operation: empty id")
	}
	if _, ok := statusRank[op.Status]; !ok {
		return fmt.Errorf("put operation %q: unknown status %q", op.ID, op.Status)
	}
	now := utcSecond(s.now())
	row, clusters := operationToRows(op)
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		var old operationRow
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Select("id", "status", "last_update_time").
			Where("id = ?", row.ID).
			Take(&old).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			row.CreatedAt, row.UpdatedAt = now, now
			if err := tx.Create(&row).Error; err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			stored := Operation{Status: old.Status, LastUpdateTime: old.LastUpdateTime}
			next := Operation{Status: row.Status, LastUpdateTime: row.LastUpdateTime}
			if err := checkTransition(stored, next); err != nil {
				return err
			}
			row.UpdatedAt = now
			// Select("*") writes every column, NULLs and false included:
			// the notification replaces the record as a whole.
			if err := tx.Model(&operationRow{ID: row.ID}).Select("*").Omit("id", "created_at").Updates(&row).Error; err != nil {
				return err
			}
			if err := tx.Where("operation_id = ?", row.ID).Delete(&clusterRow{}).Error; err != nil {
				return err
			}
		}
		if len(clusters) == 0 {
			return nil
		}
		// A 4 MiB notification may list tens of thousands of clusters: more
		// placeholders than one statement may bind (MySQL 65,535, SQLite 32,766).
		return tx.CreateInBatches(&clusters, clusterInsertBatch).Error
	})
	if err != nil {
		return fmt.Errorf("put operation %q: %w", op.ID, s.translate(err))
	}
	return nil
}

// GetOperation returns the stored operation with every body. It returns
// ErrNotFound when no operation has id, and ErrUnavailable when the database
// cannot be reached.
func (s *Store) GetOperation(ctx context.Context, id string) (Operation, error) {
	var op Operation
	// One transaction, so the operation and its clusters come from the same
	// notification even while another replaces it.
	err := s.inReadTx(ctx, func(tx *gorm.DB) error {
		var row operationRow
		if err := tx.Where("id = ?", id).Take(&row).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrNotFound
			}
			return err
		}
		var clusters []clusterRow
		if err := tx.Where("operation_id = ?", id).Order("kind, pos").Find(&clusters).Error; err != nil {
			return err
		}
		op = rowsToOperation(row, clusters)
		return nil
	})
	if err != nil {
		return Operation{}, fmt.Errorf("get operation %q: %w", id, s.translate(err))
	}
	return op, nil
}

// operationCursor is the keyset position after the last listed operation.
type operationCursor struct {
	occurredTime time.Time
	id           string
}

// where limits q to the operations listed after c; a nil c is the start.
// The row-value form (a, b) > (?, ?) is avoided for portability.
func (c *operationCursor) where(q *gorm.DB) *gorm.DB {
	if c == nil {
		return q
	}
	return q.Where("(occurred_time > ? OR (occurred_time = ? AND id > ?))", c.occurredTime, c.occurredTime, c.id)
}

// ListOperationIDs calls fn with the id of every operation, ordered by
// OccurredTime then ID (byte order). It stops at fn's first error and returns
// it unchanged. It returns ErrUnavailable when the database cannot be reached.
func (s *Store) ListOperationIDs(ctx context.Context, fn func(id string) error) error {
	var cur *operationCursor
	for {
		var rows []operationRow
		// Find reads the whole batch and closes the rows before fn runs,
		// so no connection is held while a slow client reads.
		err := s.query(ctx, func(db *gorm.DB) error {
			return cur.where(db.Select("id", "occurred_time")).
				Order("occurred_time, id").
				Limit(s.batchSize).
				Find(&rows).Error
		})
		if err != nil {
			return fmt.Errorf("list operation ids: %w", s.translate(err))
		}
		for _, r := range rows {
			if err := fn(r.ID); err != nil {
				return err
			}
		}
		if len(rows) < s.batchSize {
			return nil
		}
		last := rows[len(rows)-1]
		cur = &operationCursor{occurredTime: last.OccurredTime, id: last.ID}
	}
}

// Columns read by ListOperations: everything but the bodies, which can be
// megabytes each and which the detail list does not show.
var (
	operationListColumns = []string{
		"id", "occurred_time", "last_update_time", "status", "sub_status",
		"request_uri", "request_method", "response_status_code",
		"target_clusters_present", "rollback_result", "rollback_occurred_time", "rollback_clusters_present",
	}
	clusterListColumns = []string{
		"operation_id", "kind", "pos", "cluster_id",
		"request_uri", "request_method", "response_status_code",
	}
)

// ListOperations calls fn with every operation, in the order of
// ListOperationIDs, without any body: every Request.Body and Response.Body is
// nil, in clusters too. It stops at fn's first error and returns it unchanged.
// It returns ErrUnavailable when the database cannot be reached.
func (s *Store) ListOperations(ctx context.Context, fn func(Operation) error) error {
	var cur *operationCursor
	for {
		ops, err := s.operationBatch(ctx, cur)
		if err != nil {
			return fmt.Errorf("list operations: %w", s.translate(err))
		}
		for _, op := range ops {
			if err := fn(op); err != nil {
				return err
			}
		}
		if len(ops) < s.batchSize {
			return nil
		}
		last := ops[len(ops)-1]
		cur = &operationCursor{occurredTime: last.OccurredTime, id: last.ID}
	}
}

// operationBatch reads the next batch of operations after cur with their
// clusters, without bodies. The two queries share a transaction so that each
// operation and its clusters come from the same notification.
func (s *Store) operationBatch(ctx context.Context, cur *operationCursor) ([]Operation, error) {
	var ops []Operation
	err := s.inReadTx(ctx, func(tx *gorm.DB) error {
		var rows []operationRow
		err := cur.where(tx.Select(operationListColumns)).
			Order("occurred_time, id").
			Limit(s.batchSize).
			Find(&rows).Error
		if err != nil || len(rows) == 0 {
			return err
		}
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		var clusters []clusterRow
		err = tx.Select(clusterListColumns).
			Where("operation_id IN ?", ids).
			Order("operation_id, kind, pos").
			Find(&clusters).Error
		if err != nil {
			return err
		}
		byOp := make(map[string][]clusterRow, len(rows))
		for _, c := range clusters {
			byOp[c.OperationID] = append(byOp[c.OperationID], c)
		}
		ops = make([]Operation, len(rows))
		for i, r := range rows {
			ops[i] = rowsToOperation(r, byOp[r.ID])
		}
		return nil
	})
	return ops, err
}

// operationToRows normalizes op's times and splits it into its table rows.
func operationToRows(op Operation) (operationRow, []clusterRow) {
	row := operationRow{
		ID:                    op.ID,
		OccurredTime:          utcSecond(op.OccurredTime),
		LastUpdateTime:        utcSecond(op.LastUpdateTime),
		Status:                op.Status,
		SubStatus:             op.SubStatus,
		RequestURI:            op.Request.URI,
		RequestMethod:         op.Request.Method,
		RequestBody:           op.Request.Body,
		TargetClustersPresent: op.TargetClusters != nil,
	}
	if op.Response != nil {
		row.ResponseStatusCode = &op.Response.StatusCode
		row.ResponseBody = op.Response.Body
	}
	clusters := clusterRows(op.ID, kindTarget, op.TargetClusters, nil)
	if rb := op.Rollbacks; rb != nil {
		row.RollbackResult = &rb.Result
		row.RollbackOccurredTime = utcSecondPtr(&rb.OccurredTime)
		row.RollbackClustersPresent = rb.TargetClusters != nil
		clusters = clusterRows(op.ID, kindRollback, rb.TargetClusters, clusters)
	}
	return row, clusters
}

func clusterRows(opID, kind string, cs []Cluster, rows []clusterRow) []clusterRow {
	for i, c := range cs {
		r := clusterRow{
			OperationID:   opID,
			Kind:          kind,
			Pos:           i,
			ClusterID:     c.ClusterID,
			RequestURI:    c.Request.URI,
			RequestMethod: c.Request.Method,
			RequestBody:   c.Request.Body,
		}
		if c.Response != nil {
			r.ResponseStatusCode = &c.Response.StatusCode
			r.ResponseBody = c.Response.Body
		}
		rows = append(rows, r)
	}
	return rows
}

// rowsToOperation rebuilds an operation; clusters must be ordered by kind and
// position.
func rowsToOperation(row operationRow, clusters []clusterRow) Operation {
	op := Operation{
		ID:             row.ID,
		OccurredTime:   row.OccurredTime.UTC(),
		LastUpdateTime: row.LastUpdateTime.UTC(),
		Status:         row.Status,
		SubStatus:      row.SubStatus,
		Request:        Request{URI: row.RequestURI, Method: row.RequestMethod, Body: row.RequestBody},
	}
	if row.ResponseStatusCode != nil {
		op.Response = &Response{StatusCode: *row.ResponseStatusCode, Body: row.ResponseBody}
	}
	if row.TargetClustersPresent {
		op.TargetClusters = clustersOfKind(clusters, kindTarget)
	}
	if row.RollbackResult != nil {
		op.Rollbacks = &Rollbacks{Result: *row.RollbackResult}
		if row.RollbackOccurredTime != nil {
			op.Rollbacks.OccurredTime = row.RollbackOccurredTime.UTC()
		}
		if row.RollbackClustersPresent {
			op.Rollbacks.TargetClusters = clustersOfKind(clusters, kindRollback)
		}
	}
	return op
}

// clustersOfKind returns a non-nil slice: the caller asks only for lists that
// were sent, possibly empty.
func clustersOfKind(rows []clusterRow, kind string) []Cluster {
	cs := []Cluster{}
	for _, r := range rows {
		if r.Kind != kind {
			continue
		}
		c := Cluster{
			ClusterID: r.ClusterID,
			Request:   Request{URI: r.RequestURI, Method: r.RequestMethod, Body: r.RequestBody},
		}
		if r.ResponseStatusCode != nil {
			c.Response = &Response{StatusCode: *r.ResponseStatusCode, Body: r.ResponseBody}
		}
		cs = append(cs, c)
	}
	return cs
}
