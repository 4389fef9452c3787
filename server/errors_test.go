package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"example.com/opsvc/internal/spectest"
	"example.com/opsvc/store"
)

// One row per row of the contract's error table (section 4): error in,
// status, error_code and message out.
func TestClassify(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   string
		msg    string
	}{
		{"body is not JSON / wrong type", &FieldError{Field: "response.status_code", Reason: "value must be an integer", Syntax: true}, 400, "010001", "response.status_code: value must be an integer"},
		{"missing or invalid value", &FieldError{Field: "status", Reason: "value is not one of the allowed values"}, 400, "010002", "status: value is not one of the allowed values"},
		{"wrapped field error", fmt.Errorf("check: %w", &FieldError{Field: "operation_id", Reason: "does not match"}), 400, "010002", "operation_id: does not match"},
		{"too large", errTooLarge, 413, "010003", "body: larger than 4194304 bytes"},
		{"not allowed", errForbidden, 403, "990003", "Forbidden"},
		{"database unreachable", fmt.Errorf("put: %w", store.ErrUnavailable), 503, "020001", "database unreachable"},
		{"database unreachable at or after COMMIT", dbErr(fmt.Errorf("put: %w", store.ErrOutcomeUnknown)), 503, "020001", "database unreachable: the write may or may not have been recorded"},
		{"database failure", dbErr(errors.New("Error 1205: lock wait timeout")), 500, "020002", "database failure"},
		{"unknown operation", dbErr(fmt.Errorf("get operation %q: %w", "x", store.ErrNotFound)), 404, "030001", "operation_id: no such operation"},
		{"backwards notification", dbErr(fmt.Errorf("put: %w", &store.ConflictError{Field: "status", Reason: "executing would go back from completed"})), 409, "030007", "status: executing would go back from completed"},
		{"anything else", errors.New("boom"), 500, "990001", "internal error"},
		{"token refused", ErrUnauthenticated, 401, "990003", "Unauthorized"},
		{"identity service down", fmt.Errorf("%w: dial tcp: refused", ErrAuthUnavailable), 503, "020001", "identity service unreachable"},
		{"no route", errNoRoute, 404, "030001", "path: no such resource"},
		{"method not allowed", errNoMethod, 405, "990002", "method: not allowed on this path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := classify(tt.err)
			if r.status != tt.status || r.code != tt.code || r.message != tt.msg {
				t.Fatalf("got %d %s %q, want %d %s %q", r.status, r.code, r.message, tt.status, tt.code, tt.msg)
			}
		})
	}
}

func TestErrorBody(t *testing.T) {
	tests := []struct {
		path string
		err  error
		want string
	}{
		{"/v1/operations/x", errTooLarge, `{"error_code":"010003","error_message":"body: larger than 4194304 bytes","data_consistency":"rolled back"}`},
		{"/v1.0/icc/operations", errTooLarge, `{"cause":"body: larger than 4194304 bytes"}`},
		{"/v1.0/icc/operations", ErrUnauthenticated, `{"cause":"Unauthorized"}`},
		{"/v1.0/icc/operations/x", errForbidden, `{"cause":"Forbidden"}`},
		{"/v1.0/icc/operations", dbErr(errors.New("secret detail")), `{"cause":"Internal Server Error"}`},
		{"/v1/operations", dbErr(errors.New("secret detail")), `{"error_code":"020002","error_message":"database failure","data_consistency":"rolled back"}`},
		{"/v1/operations/x", dbErr(store.ErrUnavailable), `{"error_code":"020001","error_message":"database unreachable","data_consistency":"rolled back"}`},
		// Contract section 4: the connection broke at or after COMMIT.
		{"/v1/operations/x", dbErr(store.ErrOutcomeUnknown), `{"error_code":"020001","error_message":"database unreachable: the write may or may not have been recorded","data_consistency":"unknown"}`},
		{"/v1.0/icc/operations/x", dbErr(store.ErrOutcomeUnknown), `{"cause":"database unreachable: the write may or may not have been recorded"}`},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.err.Error(), func(t *testing.T) {
			b, _ := json.Marshal(errorBody(familyOf(tt.path), classify(tt.err), dataConsistency(tt.err)))
			if string(b) != tt.want {
				t.Fatalf("got %s, want %s", b, tt.want)
			}
		})
	}
}

// serve answers req and checks the answer against openapi.yaml.
func serve(tb testing.TB, s *Server, req *http.Request) *httptest.ResponseRecorder {
	tb.Helper()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	spectest.Check(tb, req, w.Result(), w.Body.Bytes())
	return w
}

// fakeStore fails every call with err.
type fakeStore struct{ err error }

func (f fakeStore) Ping(context.Context) error                                  { return f.err }
func (f fakeStore) PutOperation(context.Context, store.Operation) (bool, error) { return false, f.err }
func (f fakeStore) GetOperation(context.Context, string) (store.Operation, error) {
	return store.Operation{}, f.err
}
func (f fakeStore) PageOperationIDs(context.Context, store.Page, func(string) error) (*store.Cursor, error) {
	return nil, f.err
}
func (f fakeStore) PageOperations(context.Context, store.Page, func(store.Operation) error) (*store.Cursor, error) {
	return nil, f.err
}
func (f fakeStore) DeleteOperation(context.Context, string) error { return f.err }
func (f fakeStore) PutICCOperation(context.Context, store.ICCOperation) (store.ICCOperation, store.Write, error) {
	return store.ICCOperation{}, 0, f.err
}
func (f fakeStore) PageICCOperations(context.Context, store.ICCFilter, store.Page, func(store.ICCOperation) error) (*store.Cursor, error) {
	return nil, f.err
}
func (f fakeStore) DeleteICCOperation(context.Context, string) error { return f.err }
func (f fakeStore) Finished(context.Context, []string, []string) ([]string, []string, error) {
	return nil, nil, f.err
}

var _ Store = fakeStore{}

// adminTokens accepts "admin" as an admin of tenant t0.
type adminTokens struct{}

func (adminTokens) Authenticate(_ context.Context, tok string) (Principal, error) {
	if tok == "admin" {
		return Principal{TenantID: "t0", Roles: []string{"admin"}}, nil
	}
	return Principal{}, ErrUnauthenticated
}

// TestServer_databaseDown provokes, with a fake store, what a real database
// can't easily be made to do on cue: being down (503) or failing (500).
func TestServer_databaseDown(t *testing.T) {
	const put = `{"operation_id":"a","occurred_time":"20261123_100000","last_update_time":"20261123_100000","status":"executing","request":{"uri":"/x","method":"POST","body":""}}`
	const iccPut = `{"connection_id":"a80c1728-cc0c-11e6-8080-525400060300","tenant_id":"t","order_type":"Create","phase":"prepare_connection","operation_status":"processing","reception_datetime":"2026-11-23 10:00:00","request_body":{}}`
	tests := []struct {
		name       string
		storeErr   error
		method     string
		path, body string
		status     int
		want       string
	}{
		{"A1 database down", store.ErrUnavailable, "PUT", "/v1/operations/a", put, 503, `"020001"`},
		{"A2 database down", store.ErrUnavailable, "GET", "/v1/operations", "", 503, `"020001"`},
		{"A2 detail database failure", errors.New("disk I/O error"), "GET", "/v1/operations?format=detail-list", "", 500, `"020002"`},
		{"A3 database failure", errors.New("disk I/O error"), "GET", "/v1/operations/a", "", 500, `"020002"`},
		{"A1 outcome unknown", store.ErrOutcomeUnknown, "PUT", "/v1/operations/a", put, 503, `"data_consistency":"unknown"`},
		{"B1 database down", store.ErrUnavailable, "GET", "/v1.0/icc/operations", "", 503, `{"cause":"database unreachable"}`},
		{"B2 outcome unknown", store.ErrOutcomeUnknown, "PUT", "/v1.0/icc/operations/a", iccPut, 503, `{"cause":"database unreachable: the write may or may not have been recorded"}`},
		{"B2 database failure", errors.New("disk I/O error"), "PUT", "/v1.0/icc/operations/a", iccPut, 500, `{"cause":"Internal Server Error"}`},
		{"readyz database down", store.ErrUnavailable, "GET", "/readyz", "", 503, `{"status":"unavailable"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Options{Store: fakeStore{tt.storeErr}, Auth: adminTokens{}})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			req.RemoteAddr = "192.0.2.1:1234" // outside the (empty) allow-list: the admin token lets it in
			req.Header.Set("X-Auth-Token", "admin")
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			w := serve(t, s, req)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.want) {
				t.Fatalf("got %d %s, want %d with %s", w.Code, w.Body, tt.status, tt.want)
			}
			if tt.status == 500 && strings.Contains(w.Body.String(), "disk") {
				t.Fatalf("the database's error leaked into the body: %s", w.Body)
			}
		})
	}
}

func TestServer_identityServiceDown(t *testing.T) {
	s, err := New(Options{Store: fakeStore{}, Auth: downAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1.0/icc/operations", "/v1/operations"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = "192.0.2.1:1234"
		req.Header.Set("X-Auth-Token", "anything")
		w := serve(t, s, req)
		if w.Code != 503 {
			t.Fatalf("%s: got %d %s, want 503 (never 401 or 403 for an outage)", path, w.Code, w.Body)
		}
	}
}

type downAuth struct{}

func (downAuth) Authenticate(context.Context, string) (Principal, error) {
	return Principal{}, fmt.Errorf("%w: connection refused", ErrAuthUnavailable)
}
