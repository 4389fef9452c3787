package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// DeleteOperation removes the MSF operation id. It returns ErrNotFound when
// no operation has id, ErrUnavailable when the database cannot be reached,
// and ErrOutcomeUnknown when the connection broke after the delete was sent.
func (s *Store) DeleteOperation(ctx context.Context, id string) error {
	if s.dialect == dialectMySQL {
		// Its terminal event may still be to write (event_due), or
		// written to be made from the operation (laterPayload): a
		// transaction writes them out first, so that deleting an
		// operation never loses or empties an event.
		err := s.inTx(ctx, func(tx *gorm.DB) error {
			if err := s.keepEvents(tx, id); err != nil {
				return err
			}
			return tx.Exec("DELETE FROM msf_operations WHERE id = ?", id).Error
		})
		if err != nil {
			return fmt.Errorf("delete operation %q: %w", id, s.translate(err))
		}
		return nil
	}
	var n int64
	err := s.withRetry(ctx, func(ctx context.Context) error {
		// One statement, which commits on its own: sent, it is not
		// abandoned when ctx ends (see PutOperation).
		res, err := s.sqlDB.ExecContext(context.WithoutCancel(ctx), "DELETE FROM msf_operations WHERE id = ?", id)
		if err != nil {
			return s.writeOutcome(err)
		}
		n, err = res.RowsAffected()
		return err
	})
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete operation %q: %w", id, s.translate(err))
	}
	return nil
}

// keepEvents locks the MSF operation id, about to be deleted in tx, and
// writes what its terminal event needs from it: the event itself when it is
// still due (event_due), and the payload of its deliveries that were to be
// made from it when claimed (ConvertTerminalEvents). It returns ErrNotFound
// when there is no operation id.
func (s *Store) keepEvents(tx *gorm.DB, id string) error {
	var due []int
	if err := tx.Raw("SELECT event_due FROM msf_operations WHERE id = ? FOR UPDATE", id).Scan(&due).Error; err != nil {
		return err
	}
	if len(due) == 0 {
		return ErrNotFound
	}
	var later []deliveryRow
	// By (subscription_id, subject), the index that orders them (MySQL
	// only: keepEvents is DeleteOperation's there).
	err := tx.Raw(`SELECT d.seq, d.event_type, d.created_ms FROM webhook_subscriptions s
		JOIN webhook_deliveries d FORCE INDEX (webhook_deliveries_order) ON d.subscription_id = s.id AND d.subject = ?
		WHERE d.state = ? AND d.payload = ?`, subjectMSF+id, DeliveryPending, laterPayload).
		Scan(&later).Error
	if err != nil || (len(later) == 0 && due[0] == 0) {
		return err
	}
	var row operationRow
	if err := tx.Where("id = ?", id).Take(&row).Error; err != nil {
		return err
	}
	op, err := rowToOperation(row)
	if err != nil {
		return err
	}
	for _, d := range later {
		b, err := s.encodeEvent(Event{Type: d.EventType, Time: msTime(d.CreatedMS), Operation: &op})
		if err != nil {
			return fmt.Errorf("encode %s event: %w", d.EventType, err)
		}
		if err := tx.Model(&deliveryRow{}).Where("seq = ?", d.Seq).Update("payload", string(b)).Error; err != nil {
			return err
		}
	}
	if due[0] == 0 {
		return nil
	}
	subs, err := listSubscriptions(tx)
	if err != nil {
		return err
	}
	at := row.UpdatedAt
	if row.TerminalAt != nil {
		at = *row.TerminalAt
	}
	ob, err := s.outboxFor(newSubscriptionSet(subs), subjectMSF+id, id, op.Status, "",
		[]Event{{Type: EventOperationTerminal, Time: at, Operation: &op}})
	if err != nil || ob.query == "" {
		return err
	}
	return tx.Exec(ob.query, ob.args...).Error
}

// DeleteICCOperation removes the ICC operation id, whatever its tenant, and
// brings its connection's latest operation up to date. It returns
// ErrNotFound when no operation has id, and ErrUnavailable when the database
// cannot be reached.
func (s *Store) DeleteICCOperation(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		var old iccRow
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Select("seq", "tenant_id", "connection_id").
			Where("operation_id = ?", id).
			Take(&old).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := tx.Where("seq = ?", old.Seq).Delete(&iccRow{}).Error; err != nil {
			return err
		}
		return s.refreshLatest(tx, connectionKey{old.TenantID, old.ConnectionID})
	})
	if err != nil {
		return fmt.Errorf("delete icc operation %q: %w", id, s.translate(err))
	}
	return nil
}

// PurgeBatch is the most operations Purge removes in one transaction: each
// one locks only the rows it removes (and, for ICC operations, the latest
// markers of their connections), for a few milliseconds.
const PurgeBatch = 100

// Purged counts the operations a Purge removed.
type Purged struct {
	MSF, ICC int
	// Longest is the longest batch's write (its DELETE, or its
	// transaction for ICC operations): about how long it held its locks.
	Longest time.Duration
}

// Purge removes the operations, of both families, that have been terminal
// for longer than period (on the store's clock: see Options.Now), oldest first,
// in transactions of at most batch operations (0 means PurgeBatch), until
// none is left or ctx ends. Each batch is found through the terminal_at
// index and removed by primary key, checking terminal_at again, so that
// several instances may purge at once: a row is removed, and counted, once.
// It returns what it removed so far with its error; ErrUnavailable when the
// database cannot be reached.
func (s *Store) Purge(ctx context.Context, period time.Duration, batch int) (Purged, error) {
	if batch <= 0 {
		batch = PurgeBatch
	}
	cutoff := utcSecond(s.now().Add(-period))
	var p Purged
	for {
		n, found, err := s.purgeMSF(ctx, cutoff, batch, &p.Longest)
		p.MSF += n
		if err != nil {
			return p, fmt.Errorf("purge msf operations: %w", s.translate(err))
		}
		if !found {
			break
		}
	}
	for {
		n, found, err := s.purgeICC(ctx, cutoff, batch, &p.Longest)
		p.ICC += n
		if err != nil {
			return p, fmt.Errorf("purge icc operations: %w", s.translate(err))
		}
		if !found {
			break
		}
	}
	return p, nil
}

// purgeMSF removes one batch of MSF operations terminal before cutoff, and
// returns how many it removed, and whether it found any (another purger may
// have removed them first).
func (s *Store) purgeMSF(ctx context.Context, cutoff time.Time, batch int, longest *time.Duration) (int, bool, error) {
	var ids []string
	err := s.query(ctx, func(db *gorm.DB) error {
		return s.purgeableMSF(db.Model(&operationRow{}), cutoff).Order("terminal_at").Limit(batch).Pluck("id", &ids).Error
	})
	if err != nil || len(ids) == 0 {
		return 0, false, err
	}
	var n int64
	start := time.Now()
	err = s.withRetry(ctx, func(ctx context.Context) error {
		res := s.purgeableMSF(s.db.WithContext(ctx).Where("id IN ?", ids), cutoff).Delete(&operationRow{})
		n = res.RowsAffected
		return res.Error
	})
	*longest = max(*longest, time.Since(start))
	return int(n), true, err
}

// purgeableMSF limits q to the MSF operations that Purge may remove:
// terminal before cutoff, with their terminal event written (event_due), and
// no delivery of it pending that is still to be made from the operation
// (ConvertTerminalEvents, on MySQL only). The deliveries are looked up by
// (subscription_id, subject), the index that orders them: one more index on
// subject alone would cost every delivery written.
func (s *Store) purgeableMSF(q *gorm.DB, cutoff time.Time) *gorm.DB {
	q = q.Where("terminal_at < ? AND event_due = 0", cutoff)
	if s.dialect != dialectMySQL {
		return q
	}
	return q.Where(`NOT EXISTS (SELECT 1 FROM webhook_subscriptions s
		JOIN webhook_deliveries d FORCE INDEX (webhook_deliveries_order)
		ON d.subscription_id = s.id AND d.subject = CONCAT(?, msf_operations.id)
		WHERE d.state = ? AND d.payload = ?)`, subjectMSF, DeliveryPending, laterPayload)
}

// purgeICC is purgeMSF for ICC operations; the latest marker of each
// connection touched is brought up to date in the same transaction.
func (s *Store) purgeICC(ctx context.Context, cutoff time.Time, batch int, longest *time.Duration) (int, bool, error) {
	var found []iccRow
	err := s.query(ctx, func(db *gorm.DB) error {
		return db.Select("seq", "tenant_id", "connection_id").Where("terminal_at < ?", cutoff).
			Order("terminal_at").Limit(batch).Find(&found).Error
	})
	if err != nil || len(found) == 0 {
		return 0, false, err
	}
	seqs := make([]int64, len(found))
	keys := make([]connectionKey, len(found))
	for i, r := range found {
		seqs[i] = r.Seq
		keys[i] = connectionKey{r.TenantID, r.ConnectionID}
	}
	var n int64
	start := time.Now()
	defer func() { *longest = max(*longest, time.Since(start)) }()
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Where("seq IN ? AND terminal_at < ?", seqs, cutoff).Delete(&iccRow{})
		if res.Error != nil {
			return res.Error
		}
		n = res.RowsAffected
		if n == 0 {
			return nil
		}
		return s.refreshLatest(tx, keys...)
	})
	return int(n), true, err
}

// Finished returns those of the MSF operation ids msf, and of the ICC
// operation ids icc, that are terminal or no longer stored: what someone
// waiting for them to end wants to know. Each family is one query (per 500
// ids) by primary or unique key, however many ids. It returns
// ErrUnavailable when the database cannot be reached.
func (s *Store) Finished(ctx context.Context, msf, icc []string) (doneMSF, doneICC []string, err error) {
	doneMSF, err = s.finished(ctx, msf, "msf_operations", "id", "status IN ('unexecuted', 'executing')")
	if err != nil {
		return nil, nil, fmt.Errorf("finished: %w", s.translate(err))
	}
	doneICC, err = s.finished(ctx, icc, "icc_operations", "operation_id", "operation_status = 'processing'")
	if err != nil {
		return nil, nil, fmt.Errorf("finished: %w", s.translate(err))
	}
	return doneMSF, doneICC, nil
}

// finished reads which of ids are still running (stored and running per
// the SQL condition running), and returns the others.
func (s *Store) finished(ctx context.Context, ids []string, table, idColumn, running string) ([]string, error) {
	var done []string
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		var live []string
		err := s.query(ctx, func(db *gorm.DB) error {
			return db.Table(table).Where(idColumn+" IN ? AND "+running, chunk).Pluck(idColumn, &live).Error
		})
		if err != nil {
			return nil, err
		}
		still := make(map[string]bool, len(live))
		for _, id := range live {
			still[id] = true
		}
		for _, id := range chunk {
			if !still[id] {
				done = append(done, id)
			}
		}
	}
	return done, nil
}
