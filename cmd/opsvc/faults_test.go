package main

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"example.com/opsvc/internal/dbtest"
)

// The fault scenarios of issue 8 ("nothing acknowledged is ever lost, nothing
// hangs"): the service under a load of A1 and B2 writes, on a private MariaDB
// that each scenario kills, freezes, starts late, or while the service itself
// gets SIGTERM. Each prints its figures (go test -v) and checks that every
// write answered 2xx is stored exactly as last acknowledged. `make faults`
// runs them (OPSVC_FAULTS=1); CI runs `make faults` after `make test`.

// Settings of the scenarios, and the bounds they check.
const (
	scenarioDatabaseTimeout = 2 * time.Second
	scenarioReadyTimeout    = time.Second
	scenarioWorkers         = 8
	// The longest an answer may take while the database fails: twice
	// DATABASE_TIMEOUT (a COMMIT the database never answers is bounded by the
	// driver's read timeout, after the context's) and room for -race.
	scenarioAnswerBound = 2*scenarioDatabaseTimeout + 3*time.Second
	scenarioReadyBound  = scenarioReadyTimeout + 3*time.Second
	// How long the service may take to serve again once the database does:
	// its connections notice at their next use, and a start-up retry waits
	// at most 10 s.
	scenarioRecoverBound = 30 * time.Second
)

func faultScenario(t *testing.T) {
	t.Helper()
	// They take about 45 s: a developer's make test leaves them to make
	// faults, but under CI they run with the rest, never skipped.
	if os.Getenv("OPSVC_FAULTS") == "" && os.Getenv("CI") == "" {
		t.Skip("the fault scenarios run with make faults (OPSVC_FAULTS=1), and always under CI")
	}
}

func scenarioEnv(m *dbtest.MariaDB) map[string]string {
	return map[string]string{
		"DATABASE_URL":     m.URL("opsvc"),
		"DATABASE_TIMEOUT": scenarioDatabaseTimeout.String(),
		"READY_TIMEOUT":    scenarioReadyTimeout.String(),
	}
}

// outage is a database failure in the middle of a load: fail makes it, heal
// ends it.
type outage struct {
	name       string
	fail, heal func(tb testing.TB)
}

func TestFault_databaseKilled(t *testing.T) {
	faultScenario(t)
	m := dbtest.StartMariaDB(t)
	runOutage(t, m, outage{"kill -9 mariadbd, then start it again", m.Kill, m.Start})
}

func TestFault_databaseFrozen(t *testing.T) {
	faultScenario(t)
	m := dbtest.StartMariaDB(t)
	runOutage(t, m, outage{"SIGSTOP mariadbd, then SIGCONT", m.Freeze, m.Thaw})
}

// runOutage runs the load on a service on m for 3 s, makes the outage for
// 5 s, ends it, and checks that the service answered in time throughout,
// said 503 (and /readyz 503) during the outage, recovered by itself, and lost
// no acknowledged write.
func runOutage(t *testing.T, m *dbtest.MariaDB, o outage) {
	began := time.Now()
	s := mustRunMain(t, scenarioEnv(m))
	load := startWriteLoad(s.URL, "load", scenarioWorkers)
	ready := startReadyProbe(s.URL)
	time.Sleep(3 * time.Second)

	// Once fail returns the database is gone (or stopped): from then on no
	// write can succeed until heal.
	o.fail(t)
	failedAt := time.Now()
	time.Sleep(5 * time.Second)
	// The database may answer before heal returns (a restarted server takes
	// connections before the helper's check): the outage ends when heal
	// begins, the recovery is counted from when it returns.
	healing := time.Now()
	o.heal(t)
	healedAt := time.Now()
	recoveredAt := load.waitAckAfter(t, healedAt, scenarioRecoverBound)
	time.Sleep(2 * time.Second)
	load.stop()
	readyAnswers := ready.stop()

	answers := load.snapshot()
	all := statsOf(answers, func(loadAnswer) bool { return true })
	// Sent and answered in the outage. (Sent in it and answered after it,
	// a write may well succeed: it waited for the database, in time.)
	inOutage := func(a loadAnswer) bool { return a.sent.After(failedAt) && a.sent.Add(a.took).Before(healing) }
	during := statsOf(answers, inOutage)
	readyDuring := statsOf(readyAnswers, inOutage)
	readyAll := statsOf(readyAnswers, func(loadAnswer) bool { return true })
	var readyAgain time.Duration
	for _, a := range readyAnswers {
		if a.sent.After(healedAt) && a.status == 200 {
			readyAgain = a.sent.Add(a.took).Sub(healedAt)
			break
		}
	}
	c := load.check(t, s.URL)

	t.Logf("scenario: %s, on a load of A1 and B2 writes from %d clients", o.name, scenarioWorkers)
	t.Logf("  DATABASE_TIMEOUT %s, READY_TIMEOUT %s; outage %s, then %s to bring the database back",
		scenarioDatabaseTimeout, scenarioReadyTimeout, healing.Sub(failedAt).Round(time.Millisecond), healedAt.Sub(healing).Round(time.Millisecond))
	t.Logf("  all writes:                    %s", all)
	t.Logf("  writes answered in the outage: %s", during)
	t.Logf("  /readyz answered in the outage: %s", readyDuring)
	t.Logf("  /readyz throughout:            %s", readyAll)
	t.Logf("  time to recover: first write acknowledged %s after the database was back; /readyz 200 after %s",
		recoveredAt.Sub(healedAt).Round(time.Millisecond), readyAgain.Round(time.Millisecond))
	t.Logf("  ids %d, with an acknowledged write %d; acknowledged writes lost: %d; writes answered \"rolled back\" but stored: %d",
		c.ids, c.acked, c.lost, c.refusedStored)
	t.Logf("  scenario run time %s", time.Since(began).Round(100*time.Millisecond))

	for _, p := range c.problems {
		t.Error(p)
	}
	if all.longest > scenarioAnswerBound {
		t.Errorf("a write took %s, want at most %s", all.longest, scenarioAnswerBound)
	}
	if readyAll.longest > scenarioReadyBound {
		t.Errorf("/readyz took %s, want at most %s", readyAll.longest, scenarioReadyBound)
	}
	for kind := range during.byKind {
		if !strings.HasPrefix(kind, "503") {
			t.Errorf("in the outage, %d writes were answered %s; want 503 only", during.byKind[kind], kind)
		}
	}
	if during.byKind["503 rolled back"]+during.byKind["503 unknown"] == 0 {
		t.Error("no write was answered 503 in the outage")
	}
	if readyDuring.n == 0 || readyDuring.byKind["503 rolled back"] != readyDuring.n {
		t.Errorf("/readyz in the outage: %s, want 503 only", readyDuring)
	}
	if readyAgain == 0 {
		t.Error("/readyz never said 200 again")
	}
}

func TestFault_startDatabaseDown(t *testing.T) {
	faultScenario(t)
	began := time.Now()
	m := dbtest.StartMariaDB(t)
	m.Stop(t)
	s := mustRunMain(t, scenarioEnv(m))

	wantStatus(t, s.do(t, http.MethodGet, "/healthz", nil), 200)
	wantStatus(t, s.do(t, http.MethodGet, "/readyz", nil), 503)
	r, took := s.timedDo(t, http.MethodPut, "/v1/operations/late", minimal("late", "executing", "20261123_100000"))
	within(t, "A1 with the database down", took, scenarioAnswerBound)
	wantUnavailable(t, r, "/v1/operations/", "rolled back")
	r, took = s.timedDo(t, http.MethodPut, "/v1.0/icc/operations/late",
		iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00"), "X-Auth-Token", adminToken)
	within(t, "B2 with the database down", took, scenarioAnswerBound)
	wantUnavailable(t, r, "/v1.0/icc/", "rolled back")

	time.Sleep(3 * time.Second)
	m.Start(t)
	upAt := time.Now()
	var readyAfter time.Duration
	for {
		if s.do(t, http.MethodGet, "/readyz", nil).status == 200 {
			readyAfter = time.Since(upAt)
			break
		}
		if time.Since(upAt) > scenarioRecoverBound {
			t.Fatalf("not ready %s after the database started\nlogs:\n%s", scenarioRecoverBound, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	load := startWriteLoad(s.URL, "load", scenarioWorkers)
	time.Sleep(2 * time.Second)
	load.stop()
	all := statsOf(load.snapshot(), func(loadAnswer) bool { return true })
	c := load.check(t, s.URL)
	retries := strings.Count(s.logs.String(), "database unreachable: retrying")

	t.Logf("scenario: start the service with the database down, start the database 3 s later")
	t.Logf("  while down: /healthz 200, /readyz 503, A1 and B2 503 (MSF 020001, ICC cause); %d retries logged", retries)
	t.Logf("  ready %s after the database started", readyAfter.Round(time.Millisecond))
	t.Logf("  then writes: %s; acknowledged writes lost: %d", all, c.lost)
	t.Logf("  scenario run time %s", time.Since(began).Round(100*time.Millisecond))
	for _, p := range c.problems {
		t.Error(p)
	}
	if all.byKind["200"]+all.byKind["201"] != all.n {
		t.Errorf("writes after the database started: %s, want 2xx only", all)
	}
}

// TestFault_sigtermUnderLoad sends SIGTERM to the service binary under load.
// Clients act as a load balancer would: they stop sending once /readyz says
// 503, which it does at once for SHUTDOWN_DRAIN_DELAY. Every write sent must
// be answered 2xx, the process must exit 0, and a new process on the same
// database must hold every acknowledged write and go on serving.
func TestFault_sigtermUnderLoad(t *testing.T) {
	faultScenario(t)
	began := time.Now()
	m := dbtest.StartMariaDB(t)
	env := []string{"DATABASE_URL=" + m.URL("opsvc"), "DATABASE_TIMEOUT=" + scenarioDatabaseTimeout.String(),
		"AUTH_TOKENS_FILE=../../testdata/tokens.json", "SHUTDOWN_DRAIN_DELAY=1s"}
	b := mustExecMain(t, "", env...)
	url := "http://" + b.addr
	load := startWriteLoad(url, "load", scenarioWorkers)
	// The load balancer: /readyz every 50 ms; on 503 no new request is sent.
	lbDone := make(chan struct{})
	var drainSeen time.Time
	go func() {
		defer close(lbDone)
		c := &http.Client{Timeout: 5 * time.Second}
		for {
			resp, err := c.Get(url + "/readyz")
			if err != nil || resp.StatusCode != 200 {
				drainSeen = time.Now()
				load.paused.Store(true)
				return
			}
			resp.Body.Close()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	time.Sleep(3 * time.Second)
	sigterm := time.Now()
	exitErr := b.exit(t, 60*time.Second)
	exited := time.Now()
	<-lbDone
	load.stop()

	answers := load.snapshot()
	all := statsOf(answers, func(loadAnswer) bool { return true })
	inFlight := statsOf(answers, func(a loadAnswer) bool { return a.sent.Before(sigterm) && a.sent.Add(a.took).After(sigterm) })
	afterSigterm := statsOf(answers, func(a loadAnswer) bool { return a.sent.After(sigterm) })
	failed := all.n - all.byKind["200"] - all.byKind["201"]

	// A new process on the same database.
	b2 := mustExecMain(t, "", env...)
	c := load.check(t, "http://"+b2.addr)
	more := startWriteLoad("http://"+b2.addr, "more", 2)
	time.Sleep(time.Second)
	more.stop()
	after := statsOf(more.snapshot(), func(loadAnswer) bool { return true })
	if err := b2.exit(t, 60*time.Second); err != nil {
		t.Errorf("the second process: exit %v", err)
	}

	t.Logf("scenario: SIGTERM to the service under a load of A1 and B2 writes from %d clients; SHUTDOWN_DRAIN_DELAY 1s", scenarioWorkers)
	t.Logf("  clients saw /readyz 503 %s after SIGTERM and stopped sending", drainSeen.Sub(sigterm).Round(time.Millisecond))
	t.Logf("  all writes: %s; failed: %d", all, failed)
	t.Logf("  in flight at SIGTERM: %s; sent after it (while draining): %s", inFlight, afterSigterm)
	t.Logf("  exit: %v, %s after SIGTERM", exitErr, exited.Sub(sigterm).Round(time.Millisecond))
	t.Logf("  restarted: acknowledged writes lost %d of %d ids; then %s", c.lost, c.ids, after)
	t.Logf("  scenario run time %s", time.Since(began).Round(100*time.Millisecond))

	if exitErr != nil {
		t.Errorf("exit: %v, want status 0\nlogs:\n%s", exitErr, b.logs)
	}
	if failed != 0 {
		t.Errorf("%d writes failed around SIGTERM, want 0", failed)
	}
	if inFlight.n == 0 {
		t.Error("no write was in flight at SIGTERM: the scenario proves nothing")
	}
	for _, p := range c.problems {
		t.Error(p)
	}
	if after.n == 0 || after.byKind["200"]+after.byKind["201"] != after.n {
		t.Errorf("the restarted service: %s, want 2xx only", after)
	}
}
