package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"example.com/opsvc/client"
)

// fake answers every request with status and body.
func fake(t *testing.T, status int, body string) *client.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "rid-1")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The generated oneOf reads a detail-list as an empty id list, without an
// error; Client refuses an answer of the other shape.
func TestClient_listShapeIsChecked(t *testing.T) {
	const detail = `{"operations":[{"operation_id":"a","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"executing","request":{"uri":"/x","method":"POST"}}]}`
	const ids = `{"operation_ids":["a"]}`

	var union client.ListOperations200JSONResponseBody
	if err := union.UnmarshalJSON([]byte(detail)); err != nil {
		t.Fatal(err)
	}
	if l, err := union.AsOperationIDList(); err != nil || len(l.OperationIds) != 0 {
		t.Fatalf("the generated union changed (%v, %v): see if Client's layer is still needed", l, err)
	}

	ctx := context.Background()
	if _, err := fake(t, 200, detail).ListOperationIDs(ctx); err == nil || !strings.Contains(err.Error(), "no operation_ids") {
		t.Errorf("ids from a detail-list: err %v, want one", err)
	}
	if _, err := fake(t, 200, ids).ListOperationDetails(ctx); err == nil || !strings.Contains(err.Error(), "no operations") {
		t.Errorf("details from an id list: err %v, want one", err)
	}
	if got, err := fake(t, 200, ids).ListOperationIDs(ctx); err != nil || len(got) != 1 || got[0] != "a" {
		t.Errorf("ids: %v, %v", got, err)
	}
	if got, err := fake(t, 200, detail).ListOperationDetails(ctx); err != nil || len(got) != 1 || got[0].Status != client.StatusExecuting {
		t.Errorf("details: %v, %v", got, err)
	}
	if got, err := fake(t, 200, `{"operation_ids":[]}`).ListOperationIDs(ctx); err != nil || got == nil || len(got) != 0 {
		t.Errorf("an empty list: %v, %v; want an empty list", got, err)
	}
}

func TestClient_refusals(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   client.Error
		msg    string
	}{
		{"MSF", 409, `{"error_code":"030007","error_message":"status: executing would go back from completed","data_consistency":"rolled back"}`,
			client.Error{StatusCode: 409, Code: "030007", Message: "status: executing would go back from completed", DataConsistency: "rolled back", RequestID: "rid-1"},
			"409 Conflict 030007: status: executing would go back from completed"},
		{"MSF unknown outcome", 503, `{"error_code":"020001","error_message":"database unreachable","data_consistency":"unknown"}`,
			client.Error{StatusCode: 503, Code: "020001", Message: "database unreachable", DataConsistency: "unknown", RequestID: "rid-1"},
			"503 Service Unavailable 020001: database unreachable (data_consistency: unknown)"},
		{"ICC", 404, `{"cause":"operation_id: no such operation"}`,
			client.Error{StatusCode: 404, Message: "operation_id: no such operation", RequestID: "rid-1"},
			"404 Not Found: operation_id: no such operation"},
		{"not JSON", 502, `bad gateway`,
			client.Error{StatusCode: 502, Message: "bad gateway", RequestID: "rid-1"},
			"502 Bad Gateway: bad gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fake(t, tt.status, tt.body).GetOperation(context.Background(), "x")
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v, want an *Error", err)
			}
			if string(e.Body) != tt.body {
				t.Errorf("Body %q, want %q", e.Body, tt.body)
			}
			e.Body = nil
			if !reflect.DeepEqual(*e, tt.want) {
				t.Errorf("got %+v, want %+v", *e, tt.want)
			}
			if err.Error() != tt.msg {
				t.Errorf("message %q, want %q", err.Error(), tt.msg)
			}
			if client.IsNotFound(err) != (tt.status == 404) {
				t.Errorf("IsNotFound %v", client.IsNotFound(err))
			}
		})
	}
}
