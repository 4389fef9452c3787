package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"example.com/opsvc/gen"
	"example.com/opsvc/store"
)

func TestFieldPath(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"status"}, "status"},
		{[]string{"request", "body"}, "request.body"},
		{[]string{"target_clusters", "0", "cluster_id"}, "target_clusters[0].cluster_id"},
		{[]string{"rollbacks", "target_clusters", "12", "request", "uri"}, "rollbacks.target_clusters[12].request.uri"},
	}
	for _, tt := range tests {
		if got := fieldPath(tt.in); got != tt.want {
			t.Errorf("fieldPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseMSFTime(t *testing.T) {
	tests := []struct {
		in   string
		want string // formatted back, "" when refused
	}{
		{"20261123_101500", "20261123_101500"},
		{"20261123 101500", "20261123_101500"},
		{"20240229_235959", "20240229_235959"},
		{"20250229_000000", ""},
		{"20261301_000000", ""},
		{"20261100_000000", ""},
		{"20261123_240000", ""},
		{"20261123_236000", ""},
		{"20261123_235960", ""},
		{"20261123-101500", ""},
		{"20261123  101500", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseMSFTime("occurred_time", tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted %q", tt.in)
				}
				return
			}
			if err != nil || formatMSFTime(got) != tt.want {
				t.Fatalf("got %v %v, want %s", got, err, tt.want)
			}
		})
	}
}

func TestParseICCTime(t *testing.T) {
	for in, ok := range map[string]bool{
		"2016-12-27 08:15:41": true,
		"2024-02-29 00:00:00": true,
		"2023-02-29 00:00:00": false,
		"2016-13-27 08:15:41": false,
		"2016-12-27 24:00:00": false,
		"2016-12-27T08:15:41": false,
	} {
		got, err := parseICCTime("reception_datetime", in)
		if (err == nil) != ok {
			t.Errorf("%s: err %v, want ok=%v", in, err, ok)
		}
		if ok && formatICCTime(got) != in {
			t.Errorf("%s: formatted back as %s", in, formatICCTime(got))
		}
		if ok && got.Location() != time.UTC {
			t.Errorf("%s: not UTC", in)
		}
	}
}

func TestCheckOperation(t *testing.T) {
	resp := &gen.OperationResponse{Body: new("")} // the MSF controller's shape for a failed setup
	tests := []struct {
		name   string
		pathID string
		op     gen.Operation
		field  string // "" when accepted
	}{
		{"ids equal", "a", gen.Operation{OperationId: "a", Status: gen.StatusExecuting}, ""},
		{"ids differ", "a", gen.Operation{OperationId: "A", Status: gen.StatusExecuting}, "operation_id"},
		{"completed needs response", "a", gen.Operation{OperationId: "a", Status: gen.StatusCompleted}, "response"},
		{"failed needs response", "a", gen.Operation{OperationId: "a", Status: gen.StatusFailed}, "response"},
		{"completed with response", "a", gen.Operation{OperationId: "a", Status: gen.StatusCompleted, Response: resp}, ""},
		{"canceled needs none", "a", gen.Operation{OperationId: "a", Status: gen.StatusCanceled}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantField(t, checkOperation(tt.pathID, &tt.op), tt.field)
		})
	}
}

func TestCheckICCOperation(t *testing.T) {
	commit := "2026-11-23 10:00:00"
	tests := []struct {
		name   string
		order  gen.OrderType
		phase  gen.Phase
		status gen.OperationStatus
		commit *string
		field  string
	}{
		{"prepare is Create", gen.OrderTypeCreate, gen.PhasePrepareConnection, gen.OperationStatusProcessing, nil, ""},
		{"approve is Create", gen.OrderTypeCreate, gen.PhaseApproveConnection, gen.OperationStatusComplete, &commit, ""},
		{"disapprove is Create", gen.OrderTypeCreate, gen.PhaseDisapproveConnection, gen.OperationStatusError, &commit, ""},
		{"update is Update", gen.OrderTypeUpdate, gen.PhaseUpdateConnection, gen.OperationStatusProcessing, nil, ""},
		{"delete is Delete", gen.OrderTypeDelete, gen.PhaseDeleteConnection, gen.OperationStatusProcessing, nil, ""},
		{"prepare is not Update", gen.OrderTypeUpdate, gen.PhasePrepareConnection, gen.OperationStatusProcessing, nil, "phase"},
		{"update is not Create", gen.OrderTypeCreate, gen.PhaseUpdateConnection, gen.OperationStatusProcessing, nil, "phase"},
		{"delete is not Update", gen.OrderTypeUpdate, gen.PhaseDeleteConnection, gen.OperationStatusProcessing, nil, "phase"},
		{"complete needs commit", gen.OrderTypeCreate, gen.PhasePrepareConnection, gen.OperationStatusComplete, nil, "commit_datetime"},
		{"error needs commit", gen.OrderTypeCreate, gen.PhasePrepareConnection, gen.OperationStatusError, nil, "commit_datetime"},
		{"processing has no commit", gen.OrderTypeCreate, gen.PhasePrepareConnection, gen.OperationStatusProcessing, &commit, "commit_datetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := gen.ICCOperationWrite{OrderType: tt.order, Phase: tt.phase, OperationStatus: tt.status, CommitDatetime: tt.commit}
			wantField(t, checkICCOperation(&op), tt.field)
		})
	}
}

func wantField(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	fe, ok := err.(*FieldError)
	if !ok || fe.Field != field || fe.Syntax {
		t.Fatalf("got %v, want a 010002 FieldError on %s", err, field)
	}
}

func TestCheckTypes(t *testing.T) {
	spec, err := gen.GetSpec()
	if err != nil {
		t.Fatal(err)
	}
	operation := spec.Components.Schemas["Operation"].Value
	tests := []struct {
		name  string
		body  string
		field string // "" when every type is right
	}{
		{"all types right", `{"operation_id":"a","status":"failed","response":{"status_code":500},"target_clusters":[{"cluster_id":"1","response":{}}]}`, ""},
		{"unknown fields are not checked", `{"color":5}`, ""},
		{"null is left to the schema", `{"status":null,"rollbacks":null}`, ""},
		{"enum field as number", `{"status":5}`, "status"},
		{"time behind allOf as number", `{"occurred_time":20261123}`, "occurred_time"},
		{"integer as fraction", `{"response":{"status_code":200.0}}`, "response.status_code"},
		{"integer with exponent", `{"response":{"status_code":2e2}}`, "response.status_code"},
		{"integer as string", `{"response":{"status_code":"200"}}`, "response.status_code"},
		{"nested in an array", `{"target_clusters":[{"cluster_id":"1"},{"cluster_id":2}]}`, "target_clusters[1].cluster_id"},
		{"array as object", `{"target_clusters":{}}`, "target_clusters"},
		{"deep in rollbacks", `{"rollbacks":{"target_clusters":[{"request":{"body":1}}]}}`, "rollbacks.target_clusters[0].request.body"},
		{"the first field in name order wins", `{"sub_status":1,"operation_id":2,"status":3}`, "operation_id"},
		{"the body itself", `[]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decodeJSON([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			fe := checkTypes(operation, v)
			switch {
			case tt.field == "" && tt.body == "[]":
				if fe == nil || fe.Field != "" || !fe.Syntax {
					t.Fatalf("got %v, want a refusal of the body itself", fe)
				}
			case tt.field == "":
				if fe != nil {
					t.Fatalf("got %v, want none", fe)
				}
			case fe == nil || fe.Field != tt.field || !fe.Syntax:
				t.Fatalf("got %+v, want a type error on %s", fe, tt.field)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	for _, in := range []string{`{} {}`, `{}x`, `{"a":1`, ``, `{} []`} {
		if _, err := decodeJSON([]byte(in)); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
	for _, in := range []string{`{}`, " {\"a\": [1, 2.5e3]}\n\t ", `"x"`, `null`} {
		if _, err := decodeJSON([]byte(in)); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestExactMembers(t *testing.T) {
	props := openapi3.Schemas{"a": nil, "request_body": nil}
	tests := []struct{ name, in, want string }{
		{"text as sent, whitespace aside", `{"a": "<&> \u00a5 \u2028", "request_body": {"x": [1.50, -0, 1e400]}}`, `{"a":"<&> \u00a5 \u2028","request_body":{"x":[1.50,-0,1e400]}}`},
		{"unknown and differently cased members are dropped", `{"a":1,"A":2,"Request_Body":"x","ſ":3,"b":4}`, `{"a":1}`},
		{"the last of duplicates, as the validator saw", `{"a":1,"a":2}`, `{"a":2}`},
		{"escaped names are names", `{"\u0061":1}`, `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := exactMembers([]byte(tt.in), props)
			if err != nil || strings.TrimSpace(string(got)) != tt.want {
				t.Fatalf("got %s %v, want %s", got, err, tt.want)
			}
		})
	}
}

// recordingStore answers every B2 write as created, and keeps what it was
// given.
type recordingStore struct {
	fakeStore
	got *store.ICCOperation
}

func (r *recordingStore) PutICCOperation(_ context.Context, op store.ICCOperation) (store.ICCOperation, store.Write, error) {
	*r.got = op
	return op, store.Created, nil
}

// B2's handler decodes the body itself, with encoding/json, which matches
// member names case-insensitively: members spelled otherwise, after the ones
// the validator checked, were recorded unchecked (an operation_status
// "bogus", a request_body that is a string, a tenant_id with spaces). Found by
// FuzzPutICCOperation.
func TestServer_PutICCOperation_memberNamesAreExact(t *testing.T) {
	var got store.ICCOperation
	s, err := New(Options{Store: &recordingStore{got: &got}, Auth: adminTokens{}})
	if err != nil {
		t.Fatal(err)
	}
	const body = `{"connection_id":"a80c1728-cc0c-11e6-8080-525400060300","tenant_id":"t","order_type":"Create","phase":"prepare_connection",` +
		`"operation_status":"processing","reception_datetime":"2026-11-23 10:00:00","request_body":{"s":"<&>"},` +
		`"Operation_Status":"bogus","REQUEST_BODY":"x","Tenant_ID":" spaced ","Commit_Datetime":"2026-11-23 10:00:01","ORDER_TYPE":"Delete"}`
	req := httptest.NewRequest(http.MethodPut, "/v1.0/icc/operations/op-1", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", "admin")
	w := serve(t, s, req)
	if w.Code != http.StatusCreated {
		t.Fatalf("got %d %s, want 201", w.Code, w.Body)
	}
	if got.OperationStatus != "processing" || got.TenantID != "t" || got.OrderType != "Create" || got.CommitDatetime != nil || string(got.RequestBody) != `{"s":"<&>"}` {
		t.Fatalf("recorded %+v (request_body %s): not the validated members", got, got.RequestBody)
	}
}

// A query parameter given twice was refused by the generated binding as
// `body: Invalid format for parameter ...` (010001 on /v1/): it is a bad
// value of that parameter. Found by FuzzListICCOperations.
func TestServer_queryParameterGivenTwice(t *testing.T) {
	s, err := New(Options{Store: fakeStore{}, Auth: adminTokens{}, AllowedCIDRs: mustPrefixes("127.0.0.0/8")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target string
		status int
		want   string
	}{
		{"/v1/operations?format=list&format=detail-list", 400, `{"error_code":"010002","error_message":"format: must be given once","data_consistency":"rolled back"}`},
		{"/v1/operations?format=list&format=list", 400, `{"error_code":"010002","error_message":"format: must be given once","data_consistency":"rolled back"}`},
		{"/v1.0/icc/operations?latest=true&latest=true", 400, `{"cause":"latest: must be given once"}`},
		{"/v1.0/icc/operations?phase=update_connection&order_type=Create&order_type=Update", 400, `{"cause":"order_type: must be given once"}`},
		{"/v2.0/operations?request_type=Create&request_type=Update", 400, `{"cause":"request_type: must be given once"}`},
		{"/v2.0/operations?unknown=1&unknown=2", 200, `{"operations":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.target, nil)
			req.RemoteAddr = "127.0.0.1:1"
			req.Header.Set("X-Auth-Token", "admin")
			w := serve(t, s, req)
			if w.Code != tt.status || strings.TrimSpace(w.Body.String()) != tt.want {
				t.Fatalf("got %d %s, want %d %s", w.Code, w.Body, tt.status, tt.want)
			}
		})
	}
}

// A refused field behind allOf (the MSF times, resource_type) was answered
// "doesn't match all schemas from allOf", which says nothing of what is
// wrong. Seen in FuzzPutOperation's corpus.
func TestServer_allOfRefusalSaysWhy(t *testing.T) {
	s, err := New(Options{Store: fakeStore{}, Auth: adminTokens{}, AllowedCIDRs: mustPrefixes("127.0.0.1/32")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, body, want string }{
		{"/v1/operations/a", `{"operation_id":"a","occurred_time":"2026-11-23","last_update_time":"20261123_101500","status":"executing","request":{"uri":"/x","method":"POST","body":""}}`,
			`{"error_code":"010002","error_message":"occurred_time: string doesn't match the regular expression \"^[1-9][0-9]{7}[_ ][0-9]{6}$\"","data_consistency":"rolled back"}`},
		{"/v1.0/icc/operations/a", `{"connection_id":"a80c1728-cc0c-11e6-8080-525400060300","tenant_id":"t","order_type":"Create","phase":"prepare_connection","operation_status":"processing","reception_datetime":"2026-11-23 10:00:00","request_body":{},"resource_type":"vpn"}`,
			`{"cause":"resource_type: value is not one of the allowed values [\"aws_connection\",\"tenant_connection_request\",\"tenant_connection\"]"}`},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodPut, tt.path, strings.NewReader(tt.body))
		req.RemoteAddr = "127.0.0.1:1"
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Auth-Token", "admin")
		w := serve(t, s, req)
		if w.Code != http.StatusBadRequest || strings.TrimSpace(w.Body.String()) != tt.want {
			t.Errorf("%s: got %d %s, want 400 %s", tt.path, w.Code, w.Body, tt.want)
		}
	}
}
