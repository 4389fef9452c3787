package keystone

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// These tests exercise the cache in front of Keystone with a fake lookup and a fake
// clock: no network.

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// answer is what the fake backend says about a token.
type answer struct {
	id  Identity
	err error
}

func valid(project string, expiresIn time.Duration) answer {
	return answer{id: Identity{ProjectID: project, Roles: []string{"member", "reader"}, ExpiresAt: t0.Add(expiresIn)}}
}

var (
	refused = answer{err: fmt.Errorf("%w: test refusal", ErrInvalidToken)}
	outage  = answer{err: fmt.Errorf("%w: test outage", ErrUnavailable)}
)

// fakeBackend is a lookupFunc with scripted answers. Each token's answers are used in
// order and the last one repeats; unknown tokens are refused. When gate is set, lookups
// wait for it to close and record their context's state once it has.
type fakeBackend struct {
	mu      sync.Mutex
	answers map[string][]answer
	gate    chan struct{}
	entered chan struct{}
	ctxErrs []error
}

func (b *fakeBackend) lookup(ctx context.Context, token string) (Identity, error) {
	if b.entered != nil {
		b.entered <- struct{}{}
	}
	if b.gate != nil {
		<-b.gate
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ctxErrs = append(b.ctxErrs, ctx.Err())
	as, ok := b.answers[token]
	if !ok || len(as) == 0 {
		return Identity{}, refused.err
	}
	a := as[0]
	if len(as) > 1 {
		b.answers[token] = as[1:]
	}
	return a.id, a.err
}

// mustValidator returns a Validator over backend with cfg, on clock.
func mustValidator(tb testing.TB, cfg Config, backend *fakeBackend, clock *fakeClock) *Validator {
	tb.Helper()
	if clock != nil {
		cfg.Now = clock.Now
	}
	if backend.answers == nil {
		backend.answers = map[string][]answer{}
	}
	return newValidator(cfg, backend.lookup)
}

func TestValidator_Cache(t *testing.T) {
	type step struct {
		after   time.Duration // the clock moves this much first
		token   string
		project string // the project wanted; "" when an error is wanted
		wantErr error
		calls   int64 // Calls() wanted after the step
	}
	tests := []struct {
		name    string
		cfg     Config
		answers map[string][]answer
		steps   []step
	}{
		{
			name:    "a second request is answered from the cache",
			answers: map[string][]answer{"tok-a": {valid("A", time.Hour)}},
			steps: []step{
				{token: "tok-a", project: "A", calls: 1},
				{token: "tok-a", project: "A", calls: 1},
			},
		},
		{
			name:    "distinct tokens are distinct entries",
			answers: map[string][]answer{"tok-a": {valid("A", time.Hour)}, "tok-b": {valid("B", time.Hour)}},
			steps: []step{
				{token: "tok-a", project: "A", calls: 1},
				{token: "tok-b", project: "B", calls: 2},
				{token: "tok-a", project: "A", calls: 2},
				{token: "tok-b", project: "B", calls: 2},
			},
		},
		{
			name:    "an entry lives CacheTTL when the token outlives it",
			cfg:     Config{CacheTTL: time.Minute},
			answers: map[string][]answer{"tok-a": {valid("A", time.Hour)}},
			steps: []step{
				{token: "tok-a", project: "A", calls: 1},
				{after: 59 * time.Second, token: "tok-a", project: "A", calls: 1},
				{after: time.Second, token: "tok-a", project: "A", calls: 2},
			},
		},
		{
			name: "an entry ends with the token when it expires before CacheTTL",
			cfg:  Config{CacheTTL: time.Minute},
			// Keystone refuses it once expired: the cache must not answer for it.
			answers: map[string][]answer{"tok-a": {valid("A", 10*time.Second), refused}},
			steps: []step{
				{token: "tok-a", project: "A", calls: 1},
				{after: 9 * time.Second, token: "tok-a", project: "A", calls: 1},
				{after: time.Second, token: "tok-a", wantErr: ErrInvalidToken, calls: 2},
			},
		},
		{
			name:    "a token already expired by our clock is answered but not cached",
			answers: map[string][]answer{"tok-a": {valid("A", -time.Second)}},
			steps: []step{
				{token: "tok-a", project: "A", calls: 1},
				{token: "tok-a", project: "A", calls: 2},
			},
		},
		{
			name:    "a refusal is cached for NegativeTTL, then Keystone is asked again",
			cfg:     Config{NegativeTTL: 5 * time.Second},
			answers: map[string][]answer{"tok-bad": {refused, valid("A", time.Hour)}},
			steps: []step{
				{token: "tok-bad", wantErr: ErrInvalidToken, calls: 1},
				{after: 4 * time.Second, token: "tok-bad", wantErr: ErrInvalidToken, calls: 1},
				{after: time.Second, token: "tok-bad", project: "A", calls: 2},
			},
		},
		{
			name:    "an outage is not cached",
			answers: map[string][]answer{"tok-a": {outage, outage, valid("A", time.Hour)}},
			steps: []step{
				{token: "tok-a", wantErr: ErrUnavailable, calls: 1},
				{token: "tok-a", wantErr: ErrUnavailable, calls: 2},
				{token: "tok-a", project: "A", calls: 3},
				{token: "tok-a", project: "A", calls: 3},
			},
		},
		{
			name:    "an error of no known kind counts as an outage",
			answers: map[string][]answer{"tok-a": {{err: errors.New("boom")}, valid("A", time.Hour)}},
			steps: []step{
				{token: "tok-a", wantErr: ErrUnavailable, calls: 1},
				{token: "tok-a", project: "A", calls: 2},
			},
		},
		{
			name: "the size bound evicts the least recently used entry",
			cfg:  Config{CacheSize: 2},
			answers: map[string][]answer{
				"tok-a": {valid("A", time.Hour)}, "tok-b": {valid("B", time.Hour)}, "tok-c": {valid("C", time.Hour)},
			},
			steps: []step{
				{token: "tok-a", project: "A", calls: 1},
				{token: "tok-b", project: "B", calls: 2},
				{token: "tok-a", project: "A", calls: 2}, // a is now the most recently used
				{token: "tok-c", project: "C", calls: 3}, // evicts b
				{token: "tok-a", project: "A", calls: 3},
				{token: "tok-b", project: "B", calls: 4},
			},
		},
		{
			name: "what can't be a token is refused without asking Keystone",
			steps: []step{
				{token: "", wantErr: ErrInvalidToken, calls: 0},
				{token: "tok with space", wantErr: ErrInvalidToken, calls: 0},
				{token: "tok\nnewline", wantErr: ErrInvalidToken, calls: 0},
				{token: "tök", wantErr: ErrInvalidToken, calls: 0},
				{token: string(make([]byte, maxTokenLen+1)), wantErr: ErrInvalidToken, calls: 0},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			v := mustValidator(t, tt.cfg, &fakeBackend{answers: tt.answers}, clock)
			for i, s := range tt.steps {
				clock.Advance(s.after)
				id, err := v.Validate(context.Background(), s.token)
				if s.wantErr != nil {
					if !errors.Is(err, s.wantErr) {
						t.Fatalf("step %d: err = %v, want %v", i, err, s.wantErr)
					}
				} else if err != nil || id.ProjectID != s.project {
					t.Fatalf("step %d: got (%q, %v), want project %q", i, id.ProjectID, err, s.project)
				}
				if got := v.Calls(); got != s.calls {
					t.Fatalf("step %d: Calls() = %d, want %d", i, got, s.calls)
				}
			}
		})
	}
}

func TestValidator_CacheSizeIsBounded(t *testing.T) {
	const size, tokens = 100, 1000
	backend := &fakeBackend{answers: map[string][]answer{}}
	for i := range tokens {
		backend.answers[fmt.Sprintf("tok-%d", i)] = []answer{valid("A", time.Hour)}
	}
	v := mustValidator(t, Config{CacheSize: size}, backend, newFakeClock())
	for i := range tokens {
		mustValidate(t, v, fmt.Sprintf("tok-%d", i))
	}
	if got := v.cache.len(); got != size {
		t.Fatalf("cache holds %d entries, want %d", got, size)
	}
	// The most recent are still there; the oldest are gone.
	mustValidate(t, v, fmt.Sprintf("tok-%d", tokens-1))
	if got := v.Calls(); got != tokens {
		t.Fatalf("Calls() = %d after a recent token, want %d", got, tokens)
	}
	mustValidate(t, v, "tok-0")
	if got := v.Calls(); got != tokens+1 {
		t.Fatalf("Calls() = %d after an evicted token, want %d", got, tokens+1)
	}
}

func TestValidator_RolesAreCopies(t *testing.T) {
	v := mustValidator(t, Config{}, &fakeBackend{answers: map[string][]answer{"tok-a": {valid("A", time.Hour)}}}, newFakeClock())
	id := mustValidate(t, v, "tok-a")
	id.Roles[0] = "admin"
	if again := mustValidate(t, v, "tok-a"); again.Roles[0] != "member" {
		t.Fatalf("a caller changed the cached roles: %v", again.Roles)
	}
}

func TestValidator_ConcurrentMissMakesOneCall(t *testing.T) {
	const callers = 100
	backend := &fakeBackend{
		answers: map[string][]answer{"tok-a": {valid("A", time.Hour)}},
		gate:    make(chan struct{}),
		entered: make(chan struct{}, callers),
	}
	v := mustValidator(t, Config{}, backend, newFakeClock())

	var started, done sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			id, err := v.Validate(context.Background(), "tok-a")
			if err == nil && id.ProjectID != "A" {
				err = fmt.Errorf("project %q", id.ProjectID)
			}
			errs <- err
		}()
	}
	started.Wait()
	<-backend.entered
	// Give the other callers time to join the flight before it lands. The count below
	// holds either way: late callers find the answer in the cache.
	for range 100 {
		runtime.Gosched()
	}
	close(backend.gate)
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
	}
	if got := v.Calls(); got != 1 {
		t.Fatalf("Calls() = %d for %d concurrent callers, want 1", got, callers)
	}
}

func TestValidator_CancelledCallerDoesNotPoisonOthers(t *testing.T) {
	backend := &fakeBackend{
		answers: map[string][]answer{"tok-a": {valid("A", time.Hour)}},
		gate:    make(chan struct{}),
		entered: make(chan struct{}, 1),
	}
	v := mustValidator(t, Config{}, backend, newFakeClock())

	// The first caller starts the lookup, then gives up.
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := v.Validate(ctx, "tok-a")
		first <- err
	}()
	<-backend.entered

	// A second caller waits on the same lookup.
	second := make(chan error, 1)
	go func() {
		id, err := v.Validate(context.Background(), "tok-a")
		if err == nil && id.ProjectID != "A" {
			err = fmt.Errorf("project %q", id.ProjectID)
		}
		second <- err
	}()

	cancel()
	err := <-first
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cancelled caller: err = %v, want context.Canceled and ErrUnavailable", err)
	}

	close(backend.gate)
	if err := <-second; err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if backend.ctxErrs[0] != nil {
		t.Fatalf("the shared lookup's context ended with the first caller: %v", backend.ctxErrs[0])
	}
	// The answer was cached for everyone.
	mustValidate(t, v, "tok-a")
	if got := v.Calls(); got != 1 {
		t.Fatalf("Calls() = %d, want 1", got)
	}
}

func TestValidator_ThousandRequestsTenTokens(t *testing.T) {
	const requests, distinct, workers = 1000, 10, 50
	backend := &fakeBackend{answers: map[string][]answer{}}
	for i := range distinct {
		backend.answers[fmt.Sprintf("tok-%d", i)] = []answer{valid(fmt.Sprintf("P%d", i), time.Hour)}
	}
	v := mustValidator(t, Config{}, backend, newFakeClock())

	jobs := make(chan int)
	errs := make(chan error, requests)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				n := i % distinct
				id, err := v.Validate(context.Background(), fmt.Sprintf("tok-%d", n))
				if err == nil && id.ProjectID != fmt.Sprintf("P%d", n) {
					err = fmt.Errorf("tok-%d: project %q", n, id.ProjectID)
				}
				errs <- err
			}
		})
	}
	for i := range requests {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
	}
	t.Logf("%d requests over %d distinct tokens (%d workers): %d backend calls", requests, distinct, workers, v.Calls())
	if got := v.Calls(); got != distinct {
		t.Fatalf("Calls() = %d, want %d", got, distinct)
	}
}

func TestConfig_withDefaults(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:5000/v3", Username: "u", Password: "p", Project: "service"}
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr bool
	}{
		{"complete", func(*Config) {}, false},
		{"no URL", func(c *Config) { c.URL = "" }, true},
		{"URL without scheme", func(c *Config) { c.URL = "127.0.0.1:5000/v3" }, true},
		{"no username", func(c *Config) { c.Username = "" }, true},
		{"no password", func(c *Config) { c.Password = "" }, true},
		{"no project", func(c *Config) { c.Project = "" }, true},
		{"negative TTL", func(c *Config) { c.CacheTTL = -time.Second }, true},
		{"negative size", func(c *Config) { c.CacheSize = -1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			got, err := c.withDefaults()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (got.Domain != DefaultDomain || got.CacheTTL != DefaultCacheTTL ||
				got.NegativeTTL != DefaultNegativeTTL || got.CacheSize != DefaultCacheSize || got.Timeout != DefaultTimeout) {
				t.Fatalf("defaults not applied: %+v", got)
			}
		})
	}
}

func mustValidate(tb testing.TB, v *Validator, token string) Identity {
	tb.Helper()
	id, err := v.Validate(context.Background(), token)
	if err != nil {
		tb.Fatalf("Validate: %v", err)
	}
	return id
}

func TestValidator_Stats(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	backend := &fakeBackend{answers: map[string][]answer{
		"tok-a": {valid("A", time.Hour)},
		"tok-o": {outage},
	}}
	v := mustValidator(t, Config{}, backend, clock)
	ctx := context.Background()
	for _, tok := range []string{"tok-a", "tok-a", "tok-x", "tok-x", "tok-o", "tok-o", "bad token"} {
		_, _ = v.Validate(ctx, tok)
	}
	// tok-a: a miss then a hit; tok-x: refused, then the refusal from the
	// cache; tok-o: two outages, never cached; "bad token" is not asked about.
	want := Stats{CacheHits: 2, CacheMisses: 4, Valid: 1, Invalid: 1, Unavailable: 2}
	if got := v.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
	if v.Calls() != want.Valid+want.Invalid+want.Unavailable {
		t.Fatalf("Calls = %d, want the lookups' sum", v.Calls())
	}
}
