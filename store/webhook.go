package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Event types a subscription may ask for.
const (
	// EventOperationTerminal: an MSF operation reached a terminal status
	// (completed, failed, canceled), once per operation.
	EventOperationTerminal = "operation.terminal"
	// EventOperationUpdated: every accepted MSF notification, repeats included.
	EventOperationUpdated = "operation.updated"
	// EventICCOperationUpdated: every accepted ICC write.
	EventICCOperationUpdated = "icc_operation.updated"
)

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
	DeliveryCanceled  = "canceled"
)

// Subscription is a receiver of webhook events.
type Subscription struct {
	// ID is "sub_" and 26 characters; CreateSubscription assigns it.
	ID  string
	URL string
	// Secret is the Standard Webhooks signing secret, "whsec_" and base64.
	Secret string
	// Events are event types (EventOperationTerminal, ...).
	Events    []string
	Filter    SubscriptionFilter
	CreatedAt time.Time
	// DisabledReason is empty while the subscription is active.
	DisabledReason string
}

// SubscriptionFilter narrows a subscription's events; its zero value
// matches every event. Every field set must match.
type SubscriptionFilter struct {
	OperationIDPrefix string   `json:"operation_id_prefix,omitempty"`
	Statuses          []string `json:"statuses,omitempty"`
	// TenantID matches ICC events of that tenant, and no MSF event.
	TenantID string `json:"tenant_id,omitempty"`
}

func (f SubscriptionFilter) isZero() bool {
	return f.OperationIDPrefix == "" && len(f.Statuses) == 0 && f.TenantID == ""
}

// matches reports whether an event about operation id, in status, of tenant
// (empty for MSF) passes the filter.
func (f SubscriptionFilter) matches(id, status, tenant string) bool {
	return strings.HasPrefix(id, f.OperationIDPrefix) &&
		(len(f.Statuses) == 0 || slices.Contains(f.Statuses, status)) &&
		(f.TenantID == "" || f.TenantID == tenant)
}

// Event is what a webhook tells: one of the event types, when its
// notification was recorded, and the operation as recorded (Operation for
// the MSF events, ICCOperation for the ICC one).
type Event struct {
	Type         string
	Time         time.Time
	Operation    *Operation
	ICCOperation *ICCOperation
}

// Delivery is one event for one subscription, in the outbox.
type Delivery struct {
	Seq int64
	// WebhookID is the webhook-id header, the same on every attempt.
	WebhookID      string
	SubscriptionID string
	EventType      string
	// OperationID is the operation the event is about.
	OperationID string
	// State is DeliveryPending, DeliveryDelivered, DeliveryFailed or
	// DeliveryCanceled.
	State     string
	Attempts  int
	CreatedAt time.Time
	// NextAttemptAt is set while pending.
	NextAttemptAt *time.Time
	LastAttemptAt *time.Time
	LastStatus    *int
	LastError     string

	// Set by ClaimDeliveries only: the body to send, and the claim that
	// FinishDeliveries must show.
	Payload []byte
	Claim   string
}

// subscriptionSet is the store's cache of the active subscriptions, by
// event type. The write path reads it without touching the database: when it
// holds no subscription for a write's events, the write costs what it did
// before webhooks existed.
type subscriptionSet struct {
	byEvent map[string][]Subscription
}

func (set *subscriptionSet) wants(types ...string) bool {
	for _, t := range types {
		if len(set.byEvent[t]) > 0 {
			return true
		}
	}
	return false
}

func newSubscriptionSet(subs []Subscription) *subscriptionSet {
	set := &subscriptionSet{byEvent: map[string][]Subscription{}}
	seen := map[string]bool{}
	for _, sub := range subs {
		// A subscription created here while a refresh read it already
		// comes twice: it is one subscriber all the same.
		if sub.DisabledReason != "" || seen[sub.ID] {
			continue
		}
		seen[sub.ID] = true
		for _, e := range sub.Events {
			set.byEvent[e] = append(set.byEvent[e], sub)
		}
	}
	return set
}

// Subscribed reports whether an active subscription to one of events is
// cached (see RefreshSubscriptions), without reading the database.
func (s *Store) Subscribed(events ...string) bool { return s.subscriptionsNow().wants(events...) }

// subscriptionsNow is the cached set; never nil.
func (s *Store) subscriptionsNow() *subscriptionSet {
	if set := s.subs.Load(); set != nil {
		return set
	}
	return &subscriptionSet{}
}

// CachedSubscription returns the active subscription id as the store's
// cache has it (see RefreshSubscriptions), without reading the database;
// false when the cache has none.
func (s *Store) CachedSubscription(id string) (Subscription, bool) {
	for _, list := range s.subscriptionsNow().byEvent {
		for _, sub := range list {
			if sub.ID == id {
				return sub, true
			}
		}
	}
	return Subscription{}, false
}

// RefreshSubscriptions reloads the cache of active subscriptions from the
// database. The store updates it itself when it creates, deletes or disables
// one; other instances on the same database learn of those changes only
// here, so the service calls it periodically (WEBHOOK_REFRESH_INTERVAL): that
// period bounds how long after a subscription is created elsewhere this
// instance still records notifications without its events.
func (s *Store) RefreshSubscriptions(ctx context.Context) error {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	subs, err := s.ListSubscriptions(ctx)
	if err != nil {
		return err
	}
	s.subs.Store(newSubscriptionSet(subs))
	return nil
}

// changeSubscriptions applies fn to the cached list (a copy) after a local
// change has committed. It holds the lock RefreshSubscriptions holds while it
// reads, so a refresh that read before the change cannot overwrite it.
func (s *Store) changeSubscriptions(fn func([]Subscription) []Subscription) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	var subs []Subscription
	seen := map[string]bool{}
	for _, list := range s.subscriptionsNow().byEvent {
		for _, sub := range list {
			if !seen[sub.ID] {
				seen[sub.ID] = true
				subs = append(subs, sub)
			}
		}
	}
	s.subs.Store(newSubscriptionSet(fn(subs)))
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID is prefix and 26 random lower-case letters and digits.
func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// CreateSubscription stores sub, active, with a new ID and CreatedAt, and
// returns it. From its return on, this store records the events of every
// write for it. It returns ErrUnavailable when the database cannot be
// reached.
func (s *Store) CreateSubscription(ctx context.Context, sub Subscription) (Subscription, error) {
	sub.ID = newID("sub_")
	sub.CreatedAt = utcSecond(s.now())
	sub.DisabledReason = ""
	sub.Events = slices.Clone(sub.Events)
	row := subscriptionRow{ID: sub.ID, URL: sub.URL, Secret: sub.Secret, Events: strings.Join(sub.Events, ","), CreatedAt: sub.CreatedAt}
	if !sub.Filter.isZero() {
		b, err := json.Marshal(sub.Filter)
		if err != nil {
			return Subscription{}, fmt.Errorf("create subscription: %w", err)
		}
		f := string(b)
		row.Filter = &f
	}
	err := s.withRetry(ctx, func(ctx context.Context) error { return s.db.WithContext(ctx).Create(&row).Error })
	if err != nil {
		return Subscription{}, fmt.Errorf("create subscription: %w", s.translate(err))
	}
	s.changeSubscriptions(func(subs []Subscription) []Subscription { return append(subs, sub) })
	return sub, nil
}

// ListSubscriptions returns every subscription, active or not, oldest
// first. It returns ErrUnavailable when the database cannot be reached.
func (s *Store) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	var subs []Subscription
	err := s.query(ctx, func(db *gorm.DB) (err error) {
		subs, err = listSubscriptions(db)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", s.translate(err))
	}
	return subs, nil
}

// listSubscriptions reads every subscription through db, oldest first.
func listSubscriptions(db *gorm.DB) ([]Subscription, error) {
	var rows []subscriptionRow
	if err := db.Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, err
	}
	subs := make([]Subscription, 0, len(rows))
	for _, r := range rows {
		sub, err := rowToSubscription(r)
		if err != nil {
			return nil, err
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

// GetSubscription returns one subscription. It returns ErrNotFound when
// there is none with id, and ErrUnavailable when the database cannot be
// reached.
func (s *Store) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	var row subscriptionRow
	err := s.query(ctx, func(db *gorm.DB) error { return db.Where("id = ?", id).Take(&row).Error })
	if errors.Is(err, gorm.ErrRecordNotFound) {
		err = ErrNotFound
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("get subscription %q: %w", id, s.translate(err))
	}
	return rowToSubscription(row)
}

func rowToSubscription(r subscriptionRow) (Subscription, error) {
	sub := Subscription{ID: r.ID, URL: r.URL, Secret: r.Secret, Events: strings.Split(r.Events, ","), CreatedAt: r.CreatedAt.UTC()}
	if r.Filter != nil {
		if err := json.Unmarshal([]byte(*r.Filter), &sub.Filter); err != nil {
			return Subscription{}, fmt.Errorf("subscription %q: filter: %w", r.ID, err)
		}
	}
	if r.DisabledReason != nil {
		sub.DisabledReason = *r.DisabledReason
	}
	return sub, nil
}

// DeleteSubscription removes a subscription and its deliveries, pending or
// not. It returns ErrNotFound when there is none with id, and ErrUnavailable
// when the database cannot be reached.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ?", id).Delete(&subscriptionRow{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return tx.Where("subscription_id = ?", id).Delete(&deliveryRow{}).Error
	})
	if err != nil {
		return fmt.Errorf("delete subscription %q: %w", id, s.translate(err))
	}
	s.changeSubscriptions(func(subs []Subscription) []Subscription {
		return slices.DeleteFunc(subs, func(sub Subscription) bool { return sub.ID == id })
	})
	return nil
}

// DisableSubscription marks a subscription inactive for reason (its receiver
// answered 410 Gone) and cancels its pending deliveries. Disabling one that
// is gone or disabled already does nothing. It returns ErrUnavailable when
// the database cannot be reached.
func (s *Store) DisableSubscription(ctx context.Context, id, reason string) error {
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		err := tx.Model(&subscriptionRow{}).Where("id = ? AND disabled_reason IS NULL", id).
			Update("disabled_reason", reason).Error
		if err != nil {
			return err
		}
		return tx.Model(&deliveryRow{}).Where("subscription_id = ? AND state = ?", id, DeliveryPending).
			Updates(map[string]any{"state": DeliveryCanceled, "claim": nil}).Error
	})
	if err != nil {
		return fmt.Errorf("disable subscription %q: %w", id, s.translate(err))
	}
	s.changeSubscriptions(func(subs []Subscription) []Subscription {
		return slices.DeleteFunc(subs, func(sub Subscription) bool { return sub.ID == id })
	})
	return nil
}

// ListDeliveries returns a subscription's latest deliveries, newest first,
// at most limit, without payloads. It returns ErrNotFound when there is no
// subscription id, and ErrUnavailable when the database cannot be reached.
func (s *Store) ListDeliveries(ctx context.Context, id string, limit int) ([]Delivery, error) {
	if _, err := s.GetSubscription(ctx, id); err != nil {
		return nil, err
	}
	var rows []deliveryRow
	err := s.query(ctx, func(db *gorm.DB) error {
		return db.Omit("payload").Where("subscription_id = ?", id).Order("seq DESC").Limit(limit).Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("list deliveries of %q: %w", id, s.translate(err))
	}
	out := make([]Delivery, len(rows))
	for i, r := range rows {
		out[i] = rowToDelivery(r)
	}
	return out, nil
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func msTimePtr(ms *int64) *time.Time {
	if ms == nil {
		return nil
	}
	t := msTime(*ms)
	return &t
}

// Subjects name what an event is about: its operation, by family. The
// events of one subject reach each subscription in order.
const (
	subjectMSF = "msf/"
	subjectICC = "icc/"
)

func rowToDelivery(r deliveryRow) Delivery {
	d := Delivery{
		Seq:            r.Seq,
		WebhookID:      r.MsgID,
		SubscriptionID: r.SubscriptionID,
		EventType:      r.EventType,
		OperationID:    strings.TrimPrefix(strings.TrimPrefix(r.Subject, subjectMSF), subjectICC),
		State:          r.State,
		Attempts:       r.Attempts,
		CreatedAt:      msTime(r.CreatedMS),
		LastAttemptAt:  msTimePtr(r.LastAttemptMS),
		LastStatus:     r.LastStatus,
		Payload:        []byte(r.Payload),
	}
	if r.State == DeliveryPending {
		d.NextAttemptAt = msTimePtr(&r.NextAttemptMS)
	}
	if r.LastError != nil {
		d.LastError = *r.LastError
	}
	if r.Claim != nil {
		d.Claim = *r.Claim
	}
	return d
}

// outbox is the INSERT of one write's deliveries: nothing when no
// subscription wants its events.
type outbox struct {
	query string
	args  []any
}

// outboxFor builds the deliveries of evs about subject for the cached
// subscriptions whose filter passes (id, status, tenant). Each event's
// payload is encoded once, whatever the number of its subscribers.
func (s *Store) outboxFor(set *subscriptionSet, subject, id, status, tenant string, evs []Event) (outbox, error) {
	var ob outbox
	n := 0
	for _, ev := range evs {
		var payload string
		for _, sub := range set.byEvent[ev.Type] {
			if !sub.Filter.matches(id, status, tenant) {
				continue
			}
			if payload == "" {
				b, err := s.encodeEvent(ev)
				if err != nil {
					return outbox{}, fmt.Errorf("encode %s event: %w", ev.Type, err)
				}
				payload = string(b)
			}
			ob.args = append(ob.args, deliveryArgs(sub.ID, ev.Type, subject, payload, ev.Time)...)
			n++
		}
	}
	if n > 0 {
		ob.query = insertDeliveriesSQL(n)
	}
	return ob, nil
}

// insertDeliveriesSQL inserts n deliveries, deliveryValues values each.
func insertDeliveriesSQL(n int) string {
	return "INSERT INTO webhook_deliveries (msg_id, subscription_id, event_type, subject, payload, state, attempts, created_ms, next_attempt_ms) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?), ", n), ", ")
}

// deliveryValues is how many values insertDeliveriesSQL takes per delivery.
const deliveryValues = 9

// deliveryArgs are insertDeliveriesSQL's values of a new delivery of an
// event at t: pending, due at once.
func deliveryArgs(subscriptionID, eventType, subject, payload string, t time.Time) []any {
	ms := t.UnixMilli()
	return []any{newID("msg_"), subscriptionID, eventType, subject, payload, DeliveryPending, 0, ms, ms}
}

// ConvertTerminalEvents writes the operation.terminal deliveries of up to
// limit MSF operations marked event_due by their terminal notification
// (putTerminalSQL), for the subscriptions whose filter passes, and
// clears the marks, in one transaction: each marked operation's event is
// written once, also while several instances convert (they skip each
// other's rows: FOR UPDATE SKIP LOCKED), and a mark is never cleared without
// its deliveries. The deliveries are written without their payload
// (laterPayload), made from the operation as stored when they are sent, so
// that an event costs the database a small row rather than a copy of the
// operation. The event's time is when the service recorded the terminal
// status (terminal_at).
//
// With a lease, the deliveries to subscriptions of operation.terminal alone
// (which no other event of the operation can precede) are written claimed
// for it, and returned with their payload, as ClaimDeliveries would return
// them: the dispatcher sends them without claiming them again. It returns
// how many operations it converted. Only MySQL marks rows: on SQLite it
// does nothing. It returns ErrUnavailable when the database cannot be
// reached.
func (s *Store) ConvertTerminalEvents(ctx context.Context, limit int, lease time.Duration) (int, []Delivery, error) {
	if s.dialect != dialectMySQL {
		return 0, nil, nil
	}
	converted, wrote := 0, false
	var claimed []Delivery
	err := s.inTx(ctx, func(tx *gorm.DB) error {
		converted, wrote, claimed = 0, false, nil
		q := tx.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		if lease <= 0 {
			q = q.Select("id", "status", "terminal_at", "updated_at")
		}
		var rows []operationRow
		if err := q.Where("event_due = 1").Limit(limit).Find(&rows).Error; err != nil || len(rows) == 0 {
			return err
		}
		// The subscriptions as the database has them, not this
		// instance's cache: one that started a moment ago, or has not
		// refreshed since another created a subscription, would drop
		// the events of the operations others marked.
		subs, err := listSubscriptions(tx)
		if err != nil {
			return err
		}
		set := newSubscriptionSet(subs)
		now := s.now()
		claim := newID("clm_")
		var args []any
		claims := map[string][]*deliveryRow{} // by subscription, those written claimed
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
			at := r.UpdatedAt
			if r.TerminalAt != nil {
				at = *r.TerminalAt
			}
			for _, sub := range set.byEvent[EventOperationTerminal] {
				if !sub.Filter.matches(r.ID, r.Status, "") {
					continue
				}
				a := deliveryArgs(sub.ID, EventOperationTerminal, subjectMSF+r.ID, laterPayload, at)
				var c any // no claim: due at once
				if lease > 0 && len(sub.Events) == 1 {
					a[deliveryValues-1] = now.Add(lease).UnixMilli() // next_attempt_ms: the lease's end
					c = claim
					claims[sub.ID] = append(claims[sub.ID], &deliveryRow{MsgID: a[0].(string), SubscriptionID: sub.ID,
						EventType: EventOperationTerminal, Subject: subjectMSF + r.ID, Payload: laterPayload,
						State: DeliveryPending, CreatedMS: at.UnixMilli(), Claim: &claim})
				}
				args = append(args, append(a, c)...)
			}
		}
		if len(args) > 0 {
			if err := tx.Exec(insertClaimedDeliveriesSQL(len(args)/(deliveryValues+1)), args...).Error; err != nil {
				return err
			}
			wrote = true
		}
		if len(claims) > 0 {
			if claimed, err = s.readClaimed(tx, claims, rows, claim); err != nil {
				return err
			}
		}
		converted = len(rows)
		return tx.Exec("UPDATE msf_operations SET event_due = 0 WHERE id IN ?", ids).Error
	})
	if err != nil {
		return 0, nil, fmt.Errorf("convert terminal events: %w", s.translate(err))
	}
	if wrote {
		s.deliveriesWritten()
	}
	return converted, claimed, nil
}

// readClaimed completes the deliveries ConvertTerminalEvents wrote claimed
// (by subscription) with their seq, read back within tx, and their payload,
// made from the operations in rows.
func (s *Store) readClaimed(tx *gorm.DB, claims map[string][]*deliveryRow, rows []operationRow, claim string) ([]Delivery, error) {
	ops := make(map[string]*operationRow, len(rows))
	for i := range rows {
		ops[subjectMSF+rows[i].ID] = &rows[i]
	}
	var out []Delivery
	for subID, ds := range claims {
		subjects := make([]string, len(ds))
		for i, d := range ds {
			subjects[i] = d.Subject
		}
		var seqs []deliveryRow
		err := tx.Select("seq", "subject").Where("subscription_id = ? AND subject IN ? AND claim = ?", subID, subjects, claim).Find(&seqs).Error
		if err != nil {
			return nil, err
		}
		bySubject := make(map[string]int64, len(seqs))
		for _, r := range seqs {
			bySubject[r.Subject] = r.Seq
		}
		for _, d := range ds {
			seq, ok := bySubject[d.Subject]
			if !ok {
				return nil, fmt.Errorf("the delivery of %s to %s written claimed is not there", d.Subject, subID)
			}
			op, err := rowToOperation(*ops[d.Subject])
			if err != nil {
				return nil, err
			}
			b, err := s.encodeEvent(Event{Type: d.EventType, Time: msTime(d.CreatedMS), Operation: &op})
			if err != nil {
				return nil, fmt.Errorf("encode %s event: %w", d.EventType, err)
			}
			d.Seq, d.Payload = seq, string(b)
			out = append(out, rowToDelivery(*d))
		}
	}
	return out, nil
}

// insertClaimedDeliveriesSQL inserts n deliveries, deliveryValues values
// each and then their claim (NULL: none).
func insertClaimedDeliveriesSQL(n int) string {
	return "INSERT INTO webhook_deliveries (msg_id, subscription_id, event_type, subject, payload, state, attempts, created_ms, next_attempt_ms, claim) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?), ", n), ", ")
}

// laterPayload is the payload of a delivery written without it
// (ConvertTerminalEvents): ClaimDeliveries makes it from the operation.
const laterPayload = ""

// defaultEventEncoding is the payload when Options.EncodeEvent is nil: the
// type, the time and the operation's id and status.
func defaultEventEncoding(ev Event) ([]byte, error) {
	data := map[string]string{}
	switch {
	case ev.Operation != nil:
		data["operation_id"], data["status"] = ev.Operation.ID, ev.Operation.Status
	case ev.ICCOperation != nil:
		data["operation_id"], data["operation_status"] = ev.ICCOperation.ID, ev.ICCOperation.OperationStatus
	}
	return json.Marshal(map[string]any{"type": ev.Type, "timestamp": ev.Time.UTC().Format(time.RFC3339), "data": data})
}

// deliveriesWritten tells the dispatcher that a commit wrote deliveries.
func (s *Store) deliveriesWritten() {
	if s.onDeliveries != nil {
		s.onDeliveries()
	}
}

// lockOperationSQL reads the stored status and last update time of one
// operation, locking its row until the transaction ends (SQLite: its one
// connection serializes writers instead).
var lockOperationSQL = map[dialect]string{
	dialectMySQL:  "SELECT status, last_update_time FROM msf_operations WHERE id = ? FOR UPDATE",
	dialectSQLite: "SELECT status, last_update_time FROM msf_operations WHERE id = ?",
}

// putOperationWithEvents is PutOperation when subscriptions want its events:
// one transaction locks the stored row, decides (checkTransition), writes
// the notification with the same statement as without subscriptions, and
// inserts its deliveries, so that an acknowledged notification always has
// its events and a refused one never does.
func (s *Store) putOperationWithEvents(ctx context.Context, op Operation, values []any, set *subscriptionSet) (repeat, wrote bool, err error) {
	tx, err := s.sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return false, false, err
	}
	defer tx.Rollback()
	var old Operation
	found := true
	err = tx.QueryRowContext(ctx, lockOperationSQL[s.dialect], op.ID).Scan(&old.Status, &old.LastUpdateTime)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		found = false
	case err != nil:
		return false, false, err
	default:
		if err := checkTransition(old, op); err != nil {
			return false, false, err
		}
	}
	res, err := tx.ExecContext(ctx, putOperationSQL[s.dialect], values...)
	if err != nil {
		return false, false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, false, err
	}
	if found && n == 0 {
		// Allowed, yet nothing changed: the stored notification again.
		return true, false, nil
	}
	if !found && n != 1 {
		// Another writer created the id since we looked (MySQL: no row to
		// lock, so nothing kept it out): our events would be wrong.
		return false, false, errRace
	}
	now := s.now()
	stored := op
	evs := []Event{{Type: EventOperationUpdated, Time: now, Operation: &stored}}
	// operation.terminal: once, when the operation first reaches a
	// terminal status; a terminal one only ever gets the same status again.
	if statusRank[op.Status] == terminalRank && (!found || statusRank[old.Status] < terminalRank) {
		evs = append(evs, Event{Type: EventOperationTerminal, Time: now, Operation: &stored})
	}
	ob, err := s.outboxFor(set, subjectMSF+op.ID, op.ID, op.Status, "", evs)
	if err != nil {
		return false, false, err
	}
	if ob.query != "" {
		if _, err := tx.ExecContext(ctx, ob.query, ob.args...); err != nil {
			return false, false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return false, false, s.writeOutcome(err)
	}
	return false, ob.query != "", nil
}

// iccOutbox writes, within tx, the deliveries of an accepted ICC write.
func (s *Store) iccOutbox(tx *gorm.DB, set *subscriptionSet, op ICCOperation) (bool, error) {
	stored := op
	evs := []Event{{Type: EventICCOperationUpdated, Time: s.now(), ICCOperation: &stored}}
	ob, err := s.outboxFor(set, subjectICC+op.ID, op.ID, op.OperationStatus, op.TenantID, evs)
	if err != nil || ob.query == "" {
		return false, err
	}
	return true, tx.Exec(ob.query, ob.args...).Error
}

// ClaimDeliveries takes up to limit deliveries that are due at now, for
// lease: until then no other claim (of this instance or another on the same
// database) takes them, and FinishDeliveries records their outcome. Of the
// pending deliveries of one operation's events to one subscription only the
// oldest is ever taken, so they are delivered in order. Each claimed
// delivery carries its payload and claim. It returns ErrUnavailable when the
// database cannot be reached.
//
// On MySQL, the due rows are found by a plain read, then locked with
// SELECT ... FOR UPDATE SKIP LOCKED and their lease written in one short
// transaction: instances claiming at once skip each other's rows instead of
// waiting, and one that finds a row leased since it looked leaves it. SQLite
// serves one process, whose one connection serializes the claims.
func (s *Store) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Delivery, error) {
	nowMS := now.UnixMilli()
	var seqs []int64
	err := s.query(ctx, func(db *gorm.DB) error {
		return db.Raw(`SELECT d.seq FROM webhook_deliveries d
			WHERE d.state = ? AND d.next_attempt_ms <= ?
			AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p`+earlierHint[s.dialect]+`
				WHERE p.subscription_id = d.subscription_id AND p.subject = d.subject
				AND p.state = ? AND p.seq < d.seq)
			ORDER BY d.next_attempt_ms, d.seq LIMIT ?`, DeliveryPending, nowMS, DeliveryPending, limit).
			Scan(&seqs).Error
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", s.translate(err))
	}
	if len(seqs) == 0 {
		return nil, nil
	}
	claim := newID("clm_")
	var claimed []int64
	err = s.inTx(ctx, func(tx *gorm.DB) error {
		claimed = nil
		q := tx.Model(&deliveryRow{}).Where("seq IN ? AND state = ? AND next_attempt_ms <= ?", seqs, DeliveryPending, nowMS)
		if s.dialect == dialectMySQL {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		if err := q.Pluck("seq", &claimed).Error; err != nil {
			return err
		}
		if len(claimed) == 0 {
			return nil
		}
		// Conditional again: whatever the locking read saw, a row leased
		// by another claim since is left alone (the rows read back below
		// are those that carry this claim).
		return tx.Model(&deliveryRow{}).Where("seq IN ? AND state = ? AND next_attempt_ms <= ?", claimed, DeliveryPending, nowMS).
			Updates(map[string]any{"claim": claim, "next_attempt_ms": nowMS + lease.Milliseconds()}).Error
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", s.translate(err))
	}
	if len(claimed) == 0 {
		return nil, nil
	}
	var rows []deliveryRow
	err = s.query(ctx, func(db *gorm.DB) error {
		return db.Where("seq IN ? AND claim = ?", claimed, claim).Order("seq").Find(&rows).Error
	})
	if err != nil {
		// Leased, not lost: they are due again when the lease ends.
		return nil, fmt.Errorf("claim deliveries: %w", s.translate(err))
	}
	rows, err = s.makePayloads(ctx, rows, claim)
	if err != nil {
		// Leased, not lost, as above.
		return nil, fmt.Errorf("claim deliveries: %w", s.translate(err))
	}
	out := make([]Delivery, len(rows))
	for i, r := range rows {
		out[i] = rowToDelivery(r)
	}
	return out, nil
}

// earlierHint makes ClaimDeliveries look for an earlier pending delivery of
// the same subject through (subscription_id, subject, seq): MariaDB chose
// (subscription_id, seq) for p.seq < d.seq, and read every older delivery
// of the subscription for each candidate (150,000 rows, 0.5 s, per claim
// of 64 under load).
var earlierHint = map[dialect]string{
	dialectMySQL:  " FORCE INDEX (webhook_deliveries_order)",
	dialectSQLite: " INDEXED BY webhook_deliveries_order",
}

// makePayloads gives the claimed rows written without their payload
// (ConvertTerminalEvents) the event made from their operation as stored now:
// a terminal operation's status no longer changes, and its event says what
// it ended with. A delivery whose operation was deleted meanwhile (DELETE;
// retention waits for the pending ones) is canceled, and left out.
func (s *Store) makePayloads(ctx context.Context, rows []deliveryRow, claim string) ([]deliveryRow, error) {
	var ids []string
	for _, r := range rows {
		if r.Payload == laterPayload {
			ids = append(ids, strings.TrimPrefix(r.Subject, subjectMSF))
		}
	}
	if len(ids) == 0 {
		return rows, nil
	}
	var ops []operationRow
	err := s.query(ctx, func(db *gorm.DB) error { return db.Where("id IN ?", ids).Find(&ops).Error })
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*operationRow, len(ops))
	for i := range ops {
		byID[ops[i].ID] = &ops[i]
	}
	kept := rows[:0]
	var gone []int64
	for _, r := range rows {
		if r.Payload != laterPayload {
			kept = append(kept, r)
			continue
		}
		row := byID[strings.TrimPrefix(r.Subject, subjectMSF)]
		if row == nil {
			gone = append(gone, r.Seq)
			continue
		}
		op, err := rowToOperation(*row)
		if err != nil {
			return nil, err
		}
		b, err := s.encodeEvent(Event{Type: r.EventType, Time: msTime(r.CreatedMS), Operation: &op})
		if err != nil {
			return nil, fmt.Errorf("encode %s event: %w", r.EventType, err)
		}
		r.Payload = string(b)
		kept = append(kept, r)
	}
	if len(gone) > 0 {
		err := s.withRetry(ctx, func(ctx context.Context) error {
			return s.db.WithContext(ctx).Model(&deliveryRow{}).Where("seq IN ? AND claim = ?", gone, claim).
				Updates(map[string]any{"state": DeliveryCanceled, "claim": nil, "last_error": "the operation was deleted before its event was sent"}).Error
		})
		if err != nil {
			return nil, err
		}
	}
	return kept, nil
}

// Attempt is the outcome of one delivery attempt, or of a decision not to
// try (Counted false: a shutdown hands the delivery back).
type Attempt struct {
	At time.Time
	// State is the delivery's state from now on.
	State string
	// NextAt is when a pending delivery is due again.
	NextAt time.Time
	// Status is the receiver's HTTP status, 0 when there was none.
	Status int
	// Error says why the attempt failed; empty when it did not.
	Error string
	// Counted is false when no request was made.
	Counted bool
}

// Finished is an attempt made on a claimed delivery (FinishDeliveries).
type Finished struct {
	Delivery Delivery
	Attempt  Attempt
}

// FinishDeliveries records attempts on claimed deliveries and ends their
// claims, in one statement: a dispatcher records the attempts of a round
// together. It reports how many were recorded; the others' claims were lost
// (their lease ran out and another dispatcher took them), and they are left
// as they are. It returns ErrUnavailable when the database cannot be
// reached.
func (s *Store) FinishDeliveries(ctx context.Context, fs []Finished) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	query, args := finishDeliveriesSQL(fs)
	var n int64
	err := s.withRetry(ctx, func(ctx context.Context) error {
		res := s.db.WithContext(ctx).Exec(query, args...)
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return 0, fmt.Errorf("finish %d deliveries: %w", len(fs), s.translate(err))
	}
	return int(n), nil
}

// truncateUTF8 is s cut to at most n bytes, at a character's start.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// finishDeliveriesSQL is FinishDeliveries' statement: each column set by a
// CASE on seq, and each row changed only while it carries its claim. An
// attempt not made (Counted false) leaves the attempt's columns as they were.
func finishDeliveriesSQL(fs []Finished) (string, []any) {
	var q strings.Builder
	var args []any
	// column sets name to then (an expression of one value) for the rows
	// value has one for; the others keep theirs. A column no row changes
	// is left out.
	column := func(name, then string, value func(Finished) (any, bool)) {
		var when strings.Builder
		for _, f := range fs {
			if v, ok := value(f); ok {
				when.WriteString(" WHEN ? THEN " + then)
				args = append(args, f.Delivery.Seq, v)
			}
		}
		if when.Len() > 0 {
			q.WriteString(name + " = CASE seq" + when.String() + " ELSE " + name + " END, ")
		}
	}
	q.WriteString("UPDATE webhook_deliveries SET ")
	column("state", "?", func(f Finished) (any, bool) { return f.Attempt.State, true })
	column("next_attempt_ms", "?", func(f Finished) (any, bool) { return f.Attempt.NextAt.UnixMilli(), true })
	counted := func(v func(Attempt) any) func(Finished) (any, bool) {
		return func(f Finished) (any, bool) { return v(f.Attempt), f.Attempt.Counted }
	}
	column("attempts", "attempts + ?", counted(func(Attempt) any { return 1 }))
	column("last_attempt_ms", "?", counted(func(a Attempt) any { return a.At.UnixMilli() }))
	column("last_status", "?", counted(func(a Attempt) any {
		if a.Status == 0 {
			return nil
		}
		return a.Status
	}))
	column("last_error", "?", counted(func(a Attempt) any {
		if a.Error == "" {
			return nil
		}
		return truncateUTF8(a.Error, 500)
	}))
	q.WriteString("claim = NULL WHERE seq IN (")
	for i, f := range fs {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("?")
		args = append(args, f.Delivery.Seq)
	}
	// Exact per row: a delivery whose claim was lost is left alone.
	q.WriteString(") AND claim = CASE seq")
	for _, f := range fs {
		q.WriteString(" WHEN ? THEN ?")
		args = append(args, f.Delivery.Seq, f.Delivery.Claim)
	}
	q.WriteString(" END")
	return q.String(), args
}

// PurgeDeliveries removes the finished deliveries (delivered, failed,
// canceled) created before t, and reports how many. The table has no index
// on created_ms (each would cost every event a write): deliveries are
// numbered (seq) in about the order they were created, so the purge finds
// the first delivery created at or after t by bisecting seq, then deletes
// below it in windows of purgeWindow seqs, each a short statement on the
// primary key, skipping stretches of pending ones. A delivery created
// before t but numbered after that one (a terminal event written late
// carries its notification's time) waits for a later purge. It returns
// ErrUnavailable when the database cannot be reached.
func (s *Store) PurgeDeliveries(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.purgeDeliveries(ctx, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("purge deliveries: %w", s.translate(err))
	}
	return n, nil
}

// purgeWindow is how many seqs one purge statement spans at most.
const purgeWindow = 5000

func (s *Store) purgeDeliveries(ctx context.Context, beforeMS int64) (int64, error) {
	var last *int64
	err := s.query(ctx, func(db *gorm.DB) error {
		return db.Raw("SELECT MAX(seq) FROM webhook_deliveries").Scan(&last).Error
	})
	if err != nil || last == nil {
		return 0, err
	}
	// end: the least seq whose next delivery (by seq) was created at or
	// after beforeMS, as if created_ms grew with seq.
	var lo, end int64 = 0, *last + 1
	for lo < end {
		mid := lo + (end-lo)/2
		var next deliveryRow
		err := s.query(ctx, func(db *gorm.DB) error {
			return db.Select("seq", "created_ms").Where("seq >= ?", mid).Order("seq").Limit(1).Find(&next).Error
		})
		if err != nil {
			return 0, err
		}
		if next.Seq != 0 && next.CreatedMS < beforeMS {
			lo = next.Seq + 1
		} else {
			end = mid
		}
	}
	var purged int64
	for from := int64(0); from < end; {
		// From the next finished delivery: what lies below it is pending
		// (or gone), however long the stretch.
		var first deliveryRow
		err := s.query(ctx, func(db *gorm.DB) error {
			return db.Select("seq").Where("seq >= ? AND seq < ? AND state <> ?", from, end, DeliveryPending).Order("seq").Limit(1).Find(&first).Error
		})
		if err != nil || first.Seq == 0 {
			return purged, err
		}
		from = first.Seq
		to := min(from+purgeWindow, end)
		err = s.withRetry(ctx, func(ctx context.Context) error {
			res := s.db.WithContext(ctx).Where("seq >= ? AND seq < ? AND state <> ? AND created_ms < ?", from, to, DeliveryPending, beforeMS).
				Delete(&deliveryRow{})
			if res.Error == nil {
				purged += res.RowsAffected
			}
			return res.Error
		})
		if err != nil {
			return purged, err
		}
		from = to
	}
	return purged, nil
}

// PendingDeliveries counts the deliveries not finished yet. It returns
// ErrUnavailable when the database cannot be reached.
func (s *Store) PendingDeliveries(ctx context.Context) (int64, error) {
	var n int64
	err := s.query(ctx, func(db *gorm.DB) error {
		return db.Model(&deliveryRow{}).Where("state = ?", DeliveryPending).Count(&n).Error
	})
	if err != nil {
		return 0, fmt.Errorf("count pending deliveries: %w", s.translate(err))
	}
	return n, nil
}

// batchUpsertMySQL is putOperationSQL for MySQL noting, in its first
// assignment (which runs before any column changes), the stored status's
// rank plus one in LAST_INSERT_ID: the OK packet's insert id then says what
// the row held before the write (0 for a new id, whose insert evaluates no
// assignment).
var batchUpsertMySQL = upsertMySQLWith("LAST_INSERT_ID((CASE status WHEN 'unexecuted' THEN 1 WHEN 'executing' THEN 2 ELSE 3 END)) > 0", false)

// insertDeliverySQL inserts one delivery.
var insertDeliverySQL = insertDeliveriesSQL(1)

// putOperationPrepared is putOperationWithEvents for MySQL with prepared
// statements, as PutOperation's own: in one transaction, the upsert notes
// the stored status's rank plus one in LAST_INSERT_ID (the OK packet's
// insert id: 0 when the id is new), so the events are decided from the
// write itself, under its row lock, without reading first; then each
// delivery is one prepared INSERT.
func (s *Store) putOperationPrepared(ctx context.Context, op Operation, values []any, set *subscriptionSet) (repeat, wrote bool, err error) {
	upsert, err := s.stmts.putNoting.get(ctx, s.sqlDB)
	if err != nil {
		return false, false, err
	}
	insert, err := s.stmts.insertDelivery.get(ctx, s.sqlDB)
	if err != nil {
		return false, false, err
	}
	tx, err := s.sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return false, false, err
	}
	defer tx.Rollback()
	res, err := tx.StmtContext(ctx, upsert).ExecContext(ctx, values...)
	if err != nil {
		return false, false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, false, err
	}
	if n == 0 {
		// Nothing changed: no event. A refusal or a repeat (unchanged).
		_ = tx.Rollback()
		if err := s.unchanged(ctx, op); err != nil {
			return false, false, err
		}
		return true, false, nil
	}
	oldRank, err := res.LastInsertId() // rank + 1 of the stored status; 0: new
	if err != nil {
		return false, false, err
	}
	now := s.now()
	stored := op
	evs := []Event{{Type: EventOperationUpdated, Time: now, Operation: &stored}}
	if statusRank[op.Status] == terminalRank && oldRank < terminalRank+1 {
		evs = append(evs, Event{Type: EventOperationTerminal, Time: now, Operation: &stored})
	}
	ob, err := s.outboxFor(set, subjectMSF+op.ID, op.ID, op.Status, "", evs)
	if err != nil {
		return false, false, err
	}
	if len(ob.args) > 0 {
		ins := tx.StmtContext(ctx, insert)
		for i := 0; i < len(ob.args); i += deliveryValues {
			if _, err := ins.ExecContext(ctx, ob.args[i:i+deliveryValues]...); err != nil {
				return false, false, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return false, false, s.writeOutcome(err)
	}
	return false, len(ob.args) > 0, nil
}
