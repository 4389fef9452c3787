package main

import (
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it keeps the spans it is sent.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces, application/x-protobuf", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	var req coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			o.spans = append(o.spans, ss.GetSpans()...)
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (o *otlpReceiver) all() []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*tracepb.Span(nil), o.spans...)
}

func TestTracing_otlp(t *testing.T) {
	t.Parallel()
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	s := mustRunMain(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL})

	// The caller's trace is continued.
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	parent := "traceparent"
	wantStatus(t, s.do(t, http.MethodPut, "/v1/operations/op-t1", minimal("op-t1", "executing", "20261123_100100"),
		parent, "00-"+traceID+"-00f067aa0ba902b7-01", "X-Request-Id", "req-t1"), 200)
	body := iccOp("a80c1728-cc0c-11e6-8080-525400060300", tenantA, "approve_connection", "complete", "2016-12-27 08:15:41")
	wantStatus(t, putICC(t, s, "op-t2", body, adminToken), 201)
	wantStatus(t, s.do(t, http.MethodGet, "/v1.0/icc/operations", nil, "X-Auth-Token", tokenA), 200)
	if err := s.stop(); err != nil { // flushes the spans
		t.Fatal(err)
	}

	spans := recv.all()
	byName := map[string][]*tracepb.Span{}
	for _, sp := range spans {
		byName[sp.GetName()] = append(byName[sp.GetName()], sp)
	}
	one := func(name string) *tracepb.Span {
		t.Helper()
		if len(byName[name]) == 0 {
			names := []string{}
			for n := range byName {
				names = append(names, n)
			}
			t.Fatalf("no span %q among %q", name, names)
		}
		return byName[name][0]
	}
	put := one("PUT /v1/operations/:operation_id")
	if got := hex.EncodeToString(put.GetTraceId()); got != traceID {
		t.Errorf("A1 span trace id %s, want the caller's %s", got, traceID)
	}
	if put.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("A1 span kind %v", put.GetKind())
	}
	// The statements are children of their request.
	insert := one("INSERT msf_operations")
	if string(insert.GetParentSpanId()) != string(put.GetSpanId()) || string(insert.GetTraceId()) != string(put.GetTraceId()) {
		t.Error("INSERT msf_operations is not a child of the A1 request's span")
	}
	b2 := one("PUT /v1.0/icc/operations/:operation_id")
	tx := one("transaction")
	if string(tx.GetParentSpanId()) != string(b2.GetSpanId()) {
		t.Error("the B2 transaction is not a child of its request's span")
	}
	var gormStatements int
	for _, sp := range spans {
		if string(sp.GetParentSpanId()) == string(tx.GetSpanId()) {
			gormStatements++
			for _, a := range sp.GetAttributes() {
				if a.GetKey() == "db.query.text" && strings.Contains(a.GetValue().GetStringValue(), tenantA) {
					t.Errorf("a statement's text holds a value: %s", a.GetValue().GetStringValue())
				}
			}
		}
	}
	if gormStatements < 2 {
		t.Errorf("%d statements in the B2 transaction, want a SELECT and an INSERT at least", gormStatements)
	}
	list := one("GET /v1.0/icc/operations")
	listed := false
	for _, sel := range byName["SELECT icc_operations"] {
		listed = listed || string(sel.GetParentSpanId()) == string(list.GetSpanId())
	}
	if !listed {
		t.Error("no SELECT icc_operations span is a child of the B1 request's span")
	}

	// The access line carries the request id and the trace id.
	found := false
	for _, line := range strings.Split(s.logs.String(), "\n") {
		var l struct {
			Msg, Path, RequestID, TraceID string
		}
		if json.Unmarshal([]byte(line), &struct {
			Msg       *string `json:"msg"`
			Path      *string `json:"path"`
			RequestID *string `json:"request_id"`
			TraceID   *string `json:"trace_id"`
		}{&l.Msg, &l.Path, &l.RequestID, &l.TraceID}) == nil && l.Msg == "request" && l.Path == "/v1/operations/op-t1" {
			found = l.RequestID == "req-t1" && l.TraceID == traceID
		}
	}
	if !found {
		t.Errorf("no access line for op-t1 with request_id req-t1 and trace_id %s:\n%.3000s", traceID, s.logs)
	}
}

// Without OTEL_EXPORTER_OTLP_ENDPOINT there is no tracer: no span is made
// and log lines have no trace id, even for a request that carries one.
func TestTracing_offByDefault(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	wantStatus(t, s.do(t, http.MethodGet, "/readyz", nil, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), 200)
	if strings.Contains(s.logs.String(), "trace_id") || !strings.Contains(s.logs.String(), `"tracing":false`) {
		t.Errorf("tracing without OTEL_EXPORTER_OTLP_ENDPOINT:\n%s", s.logs)
	}
}
