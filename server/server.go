package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"example.com/opsvc/gen"
	"example.com/opsvc/webhook"
)

var _ gen.StrictServerInterface = (*Server)(nil)

// Options are what New needs. Store is required; a nil Auth refuses every
// token; a nil Logger discards.
type Options struct {
	Store        Store
	Auth         Authenticator
	AllowedCIDRs []netip.Prefix
	Logger       *slog.Logger
	// BodyMemory bounds the memory that request bodies being read and
	// decoded may take at once, in bytes of estimated decode cost; 0 means
	// DefaultBodyMemory. A request that finds no room within a second is
	// answered 503 with Retry-After.
	BodyMemory int64
	// StreamWriteTimeout bounds each write of a streamed list to a client
	// that has stopped reading; 0 means DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration
	// ReadyTimeout bounds /readyz's database ping; 0 means 1 s. A database
	// slower than that is not ready.
	ReadyTimeout time.Duration
	// Metrics, when set, gets the server's Prometheus metrics
	// (opsvc_http_*, opsvc_writes_total).
	Metrics prometheus.Registerer
	// Tracer, when set, makes a span of each request, continuing the
	// caller's trace (W3C traceparent). nil: no tracing, at no cost.
	Tracer trace.Tracer
	// WaitPoll is how often, while requests wait for operations to end
	// (wait=), the database is asked whether another instance ended them;
	// 0 means DefaultWaitPoll.
	WaitPoll time.Duration
	// Subscriptions keeps webhook subscriptions; nil answers 503 to
	// /v1/subscriptions.
	Subscriptions SubscriptionStore
	// WebhookURLs checks subscription URLs; nil refuses private, loopback
	// and link-local targets (webhook.NewGuard(nil)).
	WebhookURLs URLChecker
}

const defaultReadyTimeout = time.Second

// Server is the Operations Service's HTTP handler.
type Server struct {
	store        Store
	auth         Authenticator
	allowed      []netip.Prefix
	log          *slog.Logger
	readyTimeout time.Duration
	draining     atomic.Bool
	bodies       *bodyBudget
	// streamWriteTimeout is Options.StreamWriteTimeout.
	streamWriteTimeout time.Duration
	waiters            *waiters
	echo               *echo.Echo
	metrics            *metrics
	tracer             trace.Tracer
	subs               SubscriptionStore
	webhookURLs        URLChecker
}

// New wires the middleware and the generated routes:
// request id and access log, panic recovery, authentication, the 4 MiB body
// limit and JSON check, the openapi.yaml validator, then the handler.
func New(o Options) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("server: a Store is required")
	}
	s := &Server{store: o.Store, auth: o.Auth, allowed: o.AllowedCIDRs, log: o.Logger, readyTimeout: o.ReadyTimeout}
	if s.readyTimeout <= 0 {
		s.readyTimeout = defaultReadyTimeout
	}
	if s.auth == nil {
		s.auth = noTokens{}
	}
	s.subs, s.webhookURLs = o.Subscriptions, o.WebhookURLs
	if s.subs == nil {
		s.subs = unavailableSubscriptions{}
	}
	if s.webhookURLs == nil {
		s.webhookURLs = webhook.NewGuard(nil)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if o.BodyMemory <= 0 {
		o.BodyMemory = DefaultBodyMemory
	}
	s.bodies = newBodyBudget(o.BodyMemory)
	s.streamWriteTimeout = o.StreamWriteTimeout
	s.metrics = newMetrics(o.Metrics)
	s.tracer = o.Tracer
	s.waiters = newWaiters(s.store, o.WaitPoll, s.log)
	validate, err := newValidator()
	if err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	recover := middleware.RecoverWithConfig(middleware.RecoverConfig{
		// Logged once, as JSON, by the error handler (the panic becomes
		// the 500's error); Echo's own logger would print it again as text.
		DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			return fmt.Errorf("panic: %w\n%s", err, stack)
		},
	})
	e.Use(s.accessLog, recover, s.authenticate, s.readBody, validate)
	gen.RegisterHandlers(e, gen.NewStrictHandler(s, []gen.StrictMiddlewareFunc{keepURL}))
	script, err := docsAsset()
	if err != nil {
		return nil, err
	}
	e.GET("/docs/"+docsScript, script)
	// After every route: it reads their templates.
	s.metrics.addRoutes(e)
	s.echo = e
	return s, nil
}

// ServeHTTP serves a request. HEAD is served wherever GET is: the request is
// routed, authenticated and validated as the GET it stands for, and
// net/http, which still sees HEAD, sends the headers without the body (RFC
// 9110 9.3.2). Echo routes HEAD only where a route says so, and openapi.yaml
// declares no HEAD operations.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		get := *r // net/http keeps r, whose Method must stay HEAD
		get.Method = http.MethodGet
		r, w = &get, headResponse{w}
	}
	if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
		s.healthz(w, r)
		return
	}
	s.echo.ServeHTTP(w, r)
}

// healthzBody is the liveness answer, which never changes.
var healthzBody = []byte(`{"status":"ok"}` + "\n")

// healthz answers a liveness probe without the middleware: probes come every
// few seconds from every orchestrator and load balancer, the answer depends
// on nothing, and a line in the access log for each would drown the rest.
// It still carries X-Request-Id, as every answer does.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	method := r.Method
	if _, ok := w.(headResponse); ok {
		method = http.MethodHead
	}
	defer func() { s.metrics.observe("/healthz", method, http.StatusOK, time.Since(start).Seconds()) }()
	h := w.Header()
	h.Set(requestIDHeader, requestIDFor(r.Header.Get(requestIDHeader)))
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(healthzBody)
}

// Healthz answers while the process serves requests.
func (s *Server) Healthz(context.Context, gen.HealthzRequestObject) (gen.HealthzResponseObject, error) {
	return gen.Healthz200JSONResponse{Status: gen.HealthStatusOk}, nil
}

// Readyz answers 200 when the database answers within the ready timeout, 503
// otherwise, and 503 once the server drains.
func (s *Server) Readyz(ctx context.Context, _ gen.ReadyzRequestObject) (gen.ReadyzResponseObject, error) {
	if s.draining.Load() {
		return gen.Readyz503JSONResponse{Status: gen.HealthStatusUnavailable}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "not ready", "error", err)
		return gen.Readyz503JSONResponse{Status: gen.HealthStatusUnavailable}, nil
	}
	return gen.Readyz200JSONResponse{Status: gen.HealthStatusOk}, nil
}

// Drain makes /readyz answer 503 from now on, so that load balancers stop
// sending requests here before the service stops. Every other request is
// served as before, except that requests waiting for an operation to end
// (wait=) are answered at once, and new ones do not wait: shutting down
// does not wait for them.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.waiters.stop()
}

const requestIDHeader = "X-Request-Id"

// A client's own X-Request-Id is kept when it is short and plain, so logs
// can be matched across services; anything else is replaced.
var plainRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// headResponse is the answer to a HEAD request served as a GET.
type headResponse struct{ http.ResponseWriter }

// Unwrap lets http.ResponseController reach the connection.
func (h headResponse) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// accessLog gives every request an id (X-Request-Id) and writes one JSON log
// line when it ends: method, path, status (499 when the client went away
// first), duration, bytes, request id and peer (and the trace id when
// tracing), and aborted when the connection was cut mid-answer. It never logs
// headers (tokens) or bodies. It also counts the request in the metrics and,
// with a Tracer, makes its span.
//
// Why not Echo's RequestID and RequestLoggerWithConfig: RequestID takes the
// client's X-Request-Id whatever it holds (any length, any bytes, into our
// logs), and RequestLogger logs after the handler returns, so a request cut
// short by a panic (an aborted stream) would have no line.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		s.metrics.inFlight.Inc()
		id := requestIDFor(c.Request().Header.Get(requestIDHeader))
		c.Set(requestIDHeader, id)
		c.Response().Header().Set(requestIDHeader, id)
		var span trace.Span
		if s.tracer != nil {
			span = s.startSpan(c, id)
		}
		aborted := true
		// Deferred, so that a request cut short by a panic (an aborted
		// stream) still has its line.
		defer func() {
			r := c.Request()
			method := r.Method
			if _, ok := c.Response().Writer.(headResponse); ok {
				method = http.MethodHead
			}
			status := c.Response().Status
			elapsed := time.Since(start)
			s.metrics.inFlight.Dec()
			s.metrics.observe(c.Path(), method, status, elapsed.Seconds())
			attrs := []any{
				"method", method,
				"path", r.URL.Path,
				"status", status,
				"bytes", c.Response().Size,
				"duration_ms", float64(elapsed.Microseconds()) / 1000,
				"request_id", id,
				"peer", r.RemoteAddr,
			}
			if aborted {
				attrs = append(attrs, "aborted", true)
			}
			if span != nil {
				span.SetAttributes(attribute.Int("http.response.status_code", status))
				if aborted {
					span.SetAttributes(attribute.Bool("opsvc.aborted", true))
				}
				if status >= 500 {
					span.SetStatus(codes.Error, http.StatusText(status))
				}
				span.End()
			}
			s.log.InfoContext(r.Context(), "request", attrs...)
		}()
		if err := next(c); err != nil {
			c.Error(err)
		}
		aborted = false
		return nil
	}
}

// startSpan starts the request's span, as a child of the caller's trace
// when the request carries a W3C traceparent, and puts it in the request's
// context, where the store's spans and the log lines find it.
func (s *Server) startSpan(c echo.Context, requestID string) trace.Span {
	r := c.Request()
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	route := c.Path()
	if route == "" {
		route = routeUnmatched
	}
	ctx, span := s.tracer.Start(ctx, r.Method+" "+route,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("http.route", route),
			attribute.String("url.path", r.URL.Path),
			attribute.String("opsvc.request_id", requestID),
		))
	c.SetRequest(r.WithContext(ctx))
	return span
}

func requestID(c echo.Context) string {
	id, _ := c.Get(requestIDHeader).(string)
	return id
}

// requestIDFor is the request id of a request that came with id: its own
// when plain, else a new one.
func requestIDFor(id string) string {
	if plainRequestID.MatchString(id) {
		return id
	}
	return newRequestID()
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
