package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"example.com/opsvc/store"
)

// Store is what the dispatcher needs from persistence; *store.Store
// implements it.
type Store interface {
	Subscribed(events ...string) bool
	ConvertTerminalEvents(ctx context.Context, limit int, lease time.Duration) (int, []store.Delivery, error)
	ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.Delivery, error)
	FinishDeliveries(ctx context.Context, fs []store.Finished) (int, error)
	GetSubscription(ctx context.Context, id string) (store.Subscription, error)
	CachedSubscription(id string) (store.Subscription, bool)
	DisableSubscription(ctx context.Context, id, reason string) error
	RefreshSubscriptions(ctx context.Context) error
	PurgeDeliveries(ctx context.Context, before time.Time) (int64, error)
}

// Config tunes a Dispatcher; zero fields take the defaults named.
type Config struct {
	// Timeout bounds one request to a receiver, connection included: 10 s.
	Timeout time.Duration
	// RetryPeriod is how long an event is retried after it was recorded:
	// 24 h. After it the delivery has failed for good.
	RetryPeriod time.Duration
	// RetryMin and RetryMax bound the wait between attempts, which doubles
	// from RetryMin with each failure, with jitter: 5 s and 1 h.
	RetryMin, RetryMax time.Duration
	// PollInterval is how often the outbox is looked at when nothing woke
	// the dispatcher: 1 s. Writes of this instance wake it at once.
	PollInterval time.Duration
	// RoundInterval is the shortest time between two rounds (each records
	// the attempts made since the last, writes the terminal events due and
	// claims deliveries): 200 ms. Under load a round then does a batch of
	// each, not one statement per event.
	RoundInterval time.Duration
	// RefreshInterval is how often the store's cache of subscriptions is
	// reloaded, to learn of those created or deleted by other instances: 5 s.
	RefreshInterval time.Duration
	// Retention is how long finished deliveries are kept: 7 days.
	Retention time.Duration
	// Concurrency is the most requests in flight at once: 64.
	Concurrency int
	// Guard checks every address connected to; nil refuses every
	// private, loopback and link-local address.
	Guard  *Guard
	Logger *slog.Logger
}

// Stats counts what a dispatcher did since it started. A metrics exporter
// can read it (Dispatcher.Stats) and publish each field as a counter.
type Stats struct {
	// Delivered is the deliveries answered 2xx.
	Delivered int64
	// Retried is the attempts that failed and are to be tried again.
	Retried int64
	// Failed is the deliveries given up: no 2xx within RetryPeriod, or 410.
	Failed int64
	// Canceled is the deliveries dropped because their subscription was
	// deleted or disabled first.
	Canceled int64
	// Disabled is the subscriptions disabled by a 410 Gone.
	Disabled int64
}

// Dispatcher delivers the outbox's events to their subscribers. Several
// dispatchers, in several instances on one database, share the work: each
// delivery is claimed by one of them at a time (store.ClaimDeliveries).
type Dispatcher struct {
	st     Store
	cfg    Config
	log    *slog.Logger
	client *http.Client
	wake   chan struct{} // a round of claims
	marked chan struct{} // a round of conversions (Wake)
	// ahead is the most deliveries claimed and not yet attempted, in
	// flight or waiting for a request slot: claims are transactions, so
	// each takes a batch, not one per freed slot.
	ahead int
	lease time.Duration
	// Run's: the request slots, the deliveries claimed and not attempted
	// yet, and the goroutines sending them.
	slots       chan struct{}
	outstanding atomic.Int64
	sending     sync.WaitGroup
	// lastPurge is Run's: when old deliveries were last purged.
	lastPurge time.Time

	mu       sync.Mutex
	finished []store.Finished // attempts made, to record in the next round

	delivered, retried, failed, canceled, disabled atomic.Int64
}

// New returns a dispatcher of st's outbox; Run starts it.
func New(st Store, cfg Config) *Dispatcher {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, 10*time.Second)
	def(&cfg.RetryPeriod, 24*time.Hour)
	def(&cfg.RetryMin, 5*time.Second)
	def(&cfg.RetryMax, time.Hour)
	def(&cfg.PollInterval, time.Second)
	def(&cfg.RoundInterval, 200*time.Millisecond)
	def(&cfg.RefreshInterval, 5*time.Second)
	def(&cfg.Retention, 7*24*time.Hour)
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Guard == nil {
		cfg.Guard = NewGuard(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	transport := &http.Transport{
		// Never through a proxy: the Guard must see the receiver's address.
		Proxy:                 nil,
		DialContext:           cfg.Guard.Dialer(cfg.Timeout).DialContext,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   cfg.Concurrency,
		IdleConnTimeout:       time.Minute,
		ForceAttemptHTTP2:     true,
	}
	return &Dispatcher{
		st:  st,
		cfg: cfg,
		log: cfg.Logger,
		client: &http.Client{
			Transport: transport,
			Timeout:   cfg.Timeout,
			// A redirect is not followed (it could lead anywhere): the
			// 3xx is the attempt's answer, a failure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		wake:   make(chan struct{}, 1),
		marked: make(chan struct{}, 1),
		ahead:  claimAhead * cfg.Concurrency,
		// A claim outlives the longest wait for a slot and the attempt
		// after it by far: another dispatcher takes a delivery over only
		// from one that died.
		lease: (claimAhead+1)*cfg.Timeout + 5*time.Second,
	}
}

// claimAhead is how many deliveries per request slot a dispatcher claims
// at most.
const claimAhead = 4

// Wake makes the dispatcher look at the outbox now: the store calls it
// after committing deliveries, or marks for them.
func (d *Dispatcher) Wake() {
	select {
	case d.marked <- struct{}{}:
	default:
	}
	d.poke()
}

// poke starts a round soon (no sooner than RoundInterval after the last).
func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Stats returns the counters so far.
func (d *Dispatcher) Stats() Stats {
	return Stats{
		Delivered: d.delivered.Load(),
		Retried:   d.retried.Load(),
		Failed:    d.failed.Load(),
		Canceled:  d.canceled.Load(),
		Disabled:  d.disabled.Load(),
	}
}

// Run delivers until ctx ends, then waits for the attempts in flight, which
// are cut, and hands their deliveries back (due at once) for the next start
// or another instance.
//
// It works in rounds, at most one every RoundInterval: a round records the
// attempts made since the last one (one statement for all) and claims due
// deliveries (one transaction for up to claimAhead per request slot), each
// then sent on its own goroutine as a slot frees. Beside it, rounds of
// conversions write the terminal events of the operations marked since
// (convert): both wait on the database, each with its batch.
func (d *Dispatcher) Run(ctx context.Context) {
	d.slots = make(chan struct{}, d.cfg.Concurrency)
	var converting sync.WaitGroup
	defer func() {
		converting.Wait()
		d.sending.Wait()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		d.record(fctx)
	}()
	converting.Add(1)
	go func() {
		defer converting.Done()
		d.convert(ctx)
	}()
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	var lastRefresh time.Time
	claims := trouble{fail: "webhook: cannot read the outbox", ok: "webhook: the outbox can be read again"}
	for {
		began := time.Now()
		housekept := false
		if time.Since(lastRefresh) >= d.cfg.RefreshInterval {
			lastRefresh = time.Now()
			d.housekeep(ctx)
			housekept = true
		}
		// Recorded first: a delivery of an operation holds back the next
		// event of that operation until its attempt is recorded.
		d.record(ctx)
		// Without a subscription (as this instance knows them) there is
		// nothing to deliver but what another instance, or a subscription
		// deleted since, left: looked for at housekeeping only, so that an
		// idle instance asks the database nothing.
		active := housekept || d.st.Subscribed(store.EventOperationTerminal, store.EventOperationUpdated, store.EventICCOperationUpdated)
		room := d.room()
		var claimed []store.Delivery
		if active && room >= d.ahead/2 {
			var err error
			claimed, err = d.st.ClaimDeliveries(ctx, time.Now(), d.lease, room)
			claims.report(ctx, d.log, err)
		}
		d.start(ctx, claimed)
		if len(claimed) == room {
			d.poke() // more may be due
		}
		if !d.pause(ctx, began, poll.C) {
			return
		}
	}
}

// room is how many more deliveries may be claimed now.
func (d *Dispatcher) room() int { return d.ahead - int(d.outstanding.Load()) }

// start makes an attempt at each claimed delivery, each on its own goroutine
// as a request slot frees. Those still waiting for one when ctx ends are
// handed back.
func (d *Dispatcher) start(ctx context.Context, claimed []store.Delivery) {
	d.outstanding.Add(int64(len(claimed)))
	for _, dl := range claimed {
		d.sending.Add(1)
		go func() {
			defer d.sending.Done()
			defer d.poke() // its attempt to record; the next event of its operation may be due
			defer d.outstanding.Add(-1)
			select {
			case d.slots <- struct{}{}:
			case <-ctx.Done():
				d.finish(dl, store.Attempt{State: store.DeliveryPending, NextAt: time.Now()})
				return
			}
			d.deliver(ctx, dl)
			<-d.slots
		}()
	}
}

// convert writes, in rounds of at most convertBatch, the terminal events of
// the operations marked by notifications recorded in one statement
// (store.ConvertTerminalEvents): when this instance marked some, while
// batches come full, and at every RefreshInterval (those of other
// instances, which may have stopped). While there is room, the deliveries
// it writes come claimed, and are sent at once.
func (d *Dispatcher) convert(ctx context.Context) {
	poll := time.NewTicker(d.cfg.RefreshInterval)
	defer poll.Stop()
	converts := trouble{fail: "webhook: cannot write terminal events to the outbox", ok: "webhook: terminal events are written to the outbox again"}
	more := true
	for {
		began := time.Now()
		if more || d.st.Subscribed(store.EventOperationTerminal) {
			limit, lease := convertBatch, time.Duration(0)
			if room := d.room(); room >= d.ahead/2 {
				limit, lease = room, d.lease
			}
			n, claimed, err := d.st.ConvertTerminalEvents(ctx, limit, lease)
			converts.report(ctx, d.log, err)
			d.start(ctx, claimed)
			more = err == nil && n == limit
			if more {
				d.Wake()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-d.marked:
		case <-poll.C:
			more = true
		}
		if !d.pause(ctx, began, nil) {
			return
		}
	}
}

// trouble logs a step that keeps failing once, and once more when it works
// again, rather than at every round.
type trouble struct {
	fail, ok string // the messages
	failing  bool
}

// report notes the step's latest outcome; an error because ctx ended is
// not the step's.
func (t *trouble) report(ctx context.Context, log *slog.Logger, err error) {
	switch {
	case err != nil && ctx.Err() == nil && !t.failing:
		log.Warn(t.fail, "error", err)
		t.failing = true
	case err == nil && t.failing:
		log.Info(t.ok)
		t.failing = false
	}
}

// pause waits for the next round: for a wake (or a tick of poll) unless
// one came already, then for the rest of RoundInterval since began, so that
// what woke it gathers company. It reports false when ctx ended.
func (d *Dispatcher) pause(ctx context.Context, began time.Time, poll <-chan time.Time) bool {
	if poll != nil {
		select {
		case <-ctx.Done():
			return false
		case <-d.wake:
		case <-poll:
		}
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d.cfg.RoundInterval - time.Since(began)):
		return true
	}
}

// finish notes an attempt on a claimed delivery, recorded with the others of
// the round (record).
func (d *Dispatcher) finish(dl store.Delivery, a store.Attempt) {
	d.mu.Lock()
	d.finished = append(d.finished, store.Finished{Delivery: dl, Attempt: a})
	d.mu.Unlock()
}

// record writes the attempts noted since the last round. Those it cannot
// write now stay for the next round; their deliveries are leased meanwhile,
// so nobody else sends them again.
func (d *Dispatcher) record(ctx context.Context) {
	d.mu.Lock()
	fs := d.finished
	d.finished = nil
	d.mu.Unlock()
	if len(fs) == 0 {
		return
	}
	n, err := d.st.FinishDeliveries(ctx, fs)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			d.log.Warn("webhook: recording attempts", "attempts", len(fs), "error", err)
		}
		d.mu.Lock()
		d.finished = append(fs, d.finished...)
		d.mu.Unlock()
	case n < len(fs):
		d.log.Warn("webhook: claims lost before their attempts were recorded (their leases ended): they will be sent again",
			"attempts", len(fs), "lost", len(fs)-n)
	}
}

// convertBatch is how many marked operations a round converts to events at
// most.
const convertBatch = 200

// purgeInterval is how often finished deliveries past the retention are
// deleted.
const purgeInterval = time.Minute

// housekeep reloads the store's subscription cache and, once in a while,
// purges old deliveries.
func (d *Dispatcher) housekeep(ctx context.Context) {
	if err := d.st.RefreshSubscriptions(ctx); err != nil && ctx.Err() == nil {
		d.log.Debug("webhook: refreshing subscriptions", "error", err)
	}
	if time.Since(d.lastPurge) < purgeInterval {
		return
	}
	d.lastPurge = time.Now()
	if _, err := d.st.PurgeDeliveries(ctx, time.Now().Add(-d.cfg.Retention)); err != nil && ctx.Err() == nil {
		d.log.Debug("webhook: purging deliveries", "error", err)
	}
}

// maxAnswer is the most of a receiver's answer read (and thrown away).
const maxAnswer = 64 << 10

// deliver makes one attempt at dl and records its outcome.
func (d *Dispatcher) deliver(ctx context.Context, dl store.Delivery) {
	// Recorded even when ctx has ended: the outcome of an attempt made is
	// worth keeping, and a delivery handed back is due at once.
	finish := func(a store.Attempt) { d.finish(dl, a) }
	// The cache first: it is the store's own, refreshed every
	// RefreshInterval. A subscription it lacks may be one created through
	// another instance since: the database says.
	sub, ok := d.st.CachedSubscription(dl.SubscriptionID)
	var err error
	if !ok {
		sub, err = d.st.GetSubscription(ctx, dl.SubscriptionID)
	}
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && sub.DisabledReason != ""):
		d.canceled.Add(1)
		finish(store.Attempt{State: store.DeliveryCanceled, NextAt: time.Now()})
		return
	case err != nil:
		finish(store.Attempt{State: store.DeliveryPending, NextAt: time.Now().Add(d.cfg.RetryMin)})
		return
	}

	now := time.Now()
	status, retryAfter, err := d.send(ctx, sub, dl, now)
	if ctx.Err() != nil {
		// Shutting down: not the receiver's fault, not counted.
		finish(store.Attempt{State: store.DeliveryPending, NextAt: time.Now()})
		return
	}
	a := store.Attempt{At: now, Status: status, Counted: true, NextAt: now}
	switch {
	case err == nil && status >= 200 && status < 300:
		a.State = store.DeliveryDelivered
		d.delivered.Add(1)
		finish(a)
		return
	case err == nil && status == http.StatusGone:
		a.State, a.Error = store.DeliveryFailed, "410 Gone: subscription disabled"
		d.failed.Add(1)
		// Recorded now, not with the round's: disabling cancels the
		// subscription's pending deliveries, this one too until then.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := d.st.FinishDeliveries(fctx, []store.Finished{{Delivery: dl, Attempt: a}}); err != nil {
			d.log.Warn("webhook: recording an attempt", "webhook_id", dl.WebhookID, "error", err)
		}
		reason := fmt.Sprintf("the receiver answered 410 Gone at %s", now.UTC().Format(time.RFC3339))
		if err := d.st.DisableSubscription(context.WithoutCancel(ctx), sub.ID, reason); err != nil {
			d.log.Warn("webhook: disabling a subscription", "subscription_id", sub.ID, "error", err)
			return
		}
		d.disabled.Add(1)
		d.log.Warn("webhook: subscription disabled", "subscription_id", sub.ID, "reason", reason)
		return
	case err != nil:
		a.Error = err.Error()
	default:
		a.Error = "answered " + strconv.Itoa(status)
	}
	wait := d.backoff(dl.Attempts + 1)
	if retryAfter > 0 {
		wait = retryAfter
	}
	if now.Add(wait).After(dl.CreatedAt.Add(d.cfg.RetryPeriod)) {
		a.State = store.DeliveryFailed
		d.failed.Add(1)
		finish(a)
		d.log.Warn("webhook delivery failed for good", "subscription_id", sub.ID, "webhook_id", dl.WebhookID,
			"event_type", dl.EventType, "operation_id", dl.OperationID, "attempts", dl.Attempts+1,
			"last_status", status, "last_error", a.Error, "since", dl.CreatedAt.Format(time.RFC3339))
		return
	}
	a.State, a.NextAt = store.DeliveryPending, now.Add(wait)
	d.retried.Add(1)
	finish(a)
	d.log.Debug("webhook: attempt failed", "subscription_id", sub.ID, "webhook_id", dl.WebhookID,
		"attempt", dl.Attempts+1, "status", status, "error", a.Error, "retry_in", wait.String())
}

// send POSTs the event, signed, and returns the answer's status and, for
// 429 and 503, its Retry-After.
func (d *Dispatcher) send(ctx context.Context, sub store.Subscription, dl store.Delivery, now time.Time) (int, time.Duration, error) {
	wh, err := standardwebhooks.NewWebhook(sub.Secret)
	if err != nil {
		return 0, 0, fmt.Errorf("secret: %w", err)
	}
	sig, err := wh.Sign(dl.WebhookID, now, dl.Payload)
	if err != nil {
		return 0, 0, fmt.Errorf("sign: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(dl.Payload))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "opsvc-webhooks/1")
	req.Header.Set(standardwebhooks.HeaderWebhookID, dl.WebhookID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, sig)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	var retryAfter time.Duration
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return resp.StatusCode, retryAfter, nil
}

// parseRetryAfter reads Retry-After, in seconds or as an HTTP date; 0 when
// absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// backoff is the wait before attempt n+1 after n failed: RetryMin doubled
// n-1 times, at most RetryMax, less a random part of up to half, so that
// the retries of many events do not come in step.
func (d *Dispatcher) backoff(n int) time.Duration {
	wait := d.cfg.RetryMin
	for i := 1; i < n && wait < d.cfg.RetryMax; i++ {
		wait *= 2
	}
	wait = min(wait, d.cfg.RetryMax)
	return wait/2 + rand.N(wait/2+1)
}
