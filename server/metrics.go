package server

import (
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Write outcomes, the outcome label of opsvc_writes_total.
type outcome int

const (
	outcomeAccepted         outcome = iota // stored: created or changed
	outcomeRepeat                          // the stored record sent again: nothing written
	outcomeRefusedBackwards                // 409: it would move the record backwards (030007)
	outcomeRefusedInvalid                  // 400 or 413: refused before the store
	outcomeFailed                          // 5xx: not stored (or, 503 unknown, perhaps stored)
	outcomeCount
)

var outcomeNames = [outcomeCount]string{"accepted", "repeat", "refused_backwards", "refused_invalid", "failed"}

var familyNames = map[family]string{familyMSF: "msf", familyICC: "icc"}

// routeUnmatched is the route label of requests that matched no route.
const routeUnmatched = "unmatched"

// metrics are the server's Prometheus metrics. Every label value is known in
// advance or bounded: the route label is Echo's route template (c.Path()),
// never the raw path, so ids never become labels; the method is one of
// knownMethods or "other".
//
// A request costs two atomic adds (in flight) and one histogram observation:
// the observers of each route, method and status are made once, on first use,
// and found again without allocating (WithLabelValues would hash and allocate
// on every call).
type metrics struct {
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	writes   map[family]*[outcomeCount]prometheus.Counter
	// routes maps a route template to its observers; read-only once built.
	routes    map[string]*routeObservers
	unmatched *routeObservers
}

// knownMethods are the method label's values besides "other".
var knownMethods = [...]string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost,
	http.MethodDelete, http.MethodPatch, http.MethodOptions, "other"}

func methodIndex(m string) int {
	for i, k := range knownMethods[:len(knownMethods)-1] {
		if m == k {
			return i
		}
	}
	return len(knownMethods) - 1
}

// routeObservers are one route's duration observers, per method and status,
// made on first use.
type routeObservers struct {
	vec      prometheus.ObserverVec // curried with the route
	byMethod [len(knownMethods)]atomic.Pointer[statusObservers]
}

type statusObservers struct {
	vec      prometheus.ObserverVec // curried with the route and method
	byStatus [600]atomic.Pointer[observer]
}

type observer struct{ prometheus.Observer }

func (r *routeObservers) observe(method string, status int, seconds float64) {
	mi := methodIndex(method)
	so := r.byMethod[mi].Load()
	if so == nil {
		so = &statusObservers{vec: r.vec.MustCurryWith(prometheus.Labels{"method": knownMethods[mi]})}
		if !r.byMethod[mi].CompareAndSwap(nil, so) {
			so = r.byMethod[mi].Load()
		}
	}
	if status < 0 || status >= len(so.byStatus) {
		status = 0
	}
	o := so.byStatus[status].Load()
	if o == nil {
		o = &observer{so.vec.WithLabelValues(strconv.Itoa(status))}
		so.byStatus[status].Store(o)
	}
	o.Observe(seconds)
}

// newMetrics makes the server's metrics and registers them with reg (none
// when reg is nil).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "opsvc_http_request_duration_seconds",
			Help: "Time from a request's arrival to the end of its answer, by route template, method and status (499: the client went away).",
			// From 1 ms (a cached read) to 10 s (a database timeout);
			// a whole streamed list may take longer and lands in +Inf.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opsvc_http_requests_in_flight",
			Help: "Requests being served.",
		}),
		writes: map[family]*[outcomeCount]prometheus.Counter{},
		routes: map[string]*routeObservers{},
	}
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "opsvc_writes_total",
		Help: "Writes (A1 PUT /v1/operations/{id}, B2 PUT /v1.0/icc/operations/{id}) by family (msf, icc) and outcome: accepted, repeat (the stored record again: nothing written), refused_backwards (409), refused_invalid (400, 413), failed (5xx).",
	}, []string{"family", "outcome"})
	for f, name := range familyNames {
		var cs [outcomeCount]prometheus.Counter
		for o := range outcomeCount {
			cs[o] = writes.WithLabelValues(name, outcomeNames[o])
		}
		m.writes[f] = &cs
	}
	m.unmatched = m.route(routeUnmatched)
	if reg != nil {
		reg.MustRegister(m.duration, m.inFlight, writes)
	}
	return m
}

// route returns the observers of a route template, made if new. Only New
// calls it, before serving.
func (m *metrics) route(path string) *routeObservers {
	r, ok := m.routes[path]
	if !ok {
		r = &routeObservers{vec: m.duration.MustCurryWith(prometheus.Labels{"route": path})}
		m.routes[path] = r
	}
	return r
}

// addRoutes makes the observers of every route of e.
func (m *metrics) addRoutes(e *echo.Echo) {
	for _, r := range e.Routes() {
		m.route(r.Path)
	}
}

// observe records one answered request; route is its template.
func (m *metrics) observe(route, method string, status int, seconds float64) {
	r, ok := m.routes[route]
	if !ok {
		r = m.unmatched
	}
	r.observe(method, status, seconds)
}

// writeRoutes are the route templates of the two writes, by family.
var writeRoutes = map[string]family{
	"/v1/operations/:operation_id":       familyMSF,
	"/v1.0/icc/operations/:operation_id": familyICC,
}

// countRefusal counts a write answered with an error status.
func (m *metrics) countRefusal(c echo.Context, status int) {
	if c.Request().Method != http.MethodPut {
		return
	}
	f, ok := writeRoutes[c.Path()]
	if !ok {
		return
	}
	switch {
	case status == http.StatusConflict:
		m.writes[f][outcomeRefusedBackwards].Inc()
	case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge:
		m.writes[f][outcomeRefusedInvalid].Inc()
	case status >= 500:
		m.writes[f][outcomeFailed].Inc()
	}
}
