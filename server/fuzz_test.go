package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	"example.com/opsvc/gen"
	"example.com/opsvc/internal/spectest"
	"example.com/opsvc/store"
)

// Fuzz targets for what clients send: the A1 and B2 bodies, the B1 and B3
// query strings and the path ids. Each drives the real handler in process,
// on a private in-memory SQLite store, with the sample tokens of
// testdata/tokens.json, and holds every answer to the contract: never a 5xx,
// every refusal in its family's format (MSF: error_code, error_message,
// data_consistency, paired as in the contract's table; ICC: {"cause"}), every
// answer described by openapi.yaml, and what was accepted reads back as sent.
//
// Their seeds (the contract's examples, testdata/ and tricky inputs) run as
// ordinary tests; `make fuzz` fuzzes each for FUZZTIME. Inputs that found a
// bug stay in testdata/fuzz/<FuzzName>/.

const (
	fuzzAdminToken = "admin-token"
	fuzzTokenA     = "tenant-a-token"
	fuzzTenantA    = "39852f6f42a74d2b82f7099f78d0393a"
)

// newFuzzServer is the real handler on a private in-memory SQLite store.
func newFuzzServer(tb testing.TB) *Server {
	tb.Helper()
	st, err := store.Open(context.Background(), "sqlite::memory:", store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	tokens, err := ReadTokensFile(filepath.Join("..", "testdata", "tokens.json"))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(Options{Store: st, Auth: tokens, AllowedCIDRs: mustPrefixes("127.0.0.0/8")})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// fuzzRequest is the request a client sends as method and target (the
// request line's), parsed by net/http as the server parses it; false when
// net/http itself would refuse it before the service sees it.
func fuzzRequest(method, target, token string, body []byte) (*http.Request, bool) {
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return nil, false // not one request-target
		}
	}
	head := method + " " + target + " HTTP/1.1\r\nHost: opsvc\r\n"
	if token != "" {
		head += "X-Auth-Token: " + token + "\r\n"
	}
	if body != nil {
		head += "Content-Type: application/json\r\n" + fmt.Sprintf("Content-Length: %d\r\n", len(body))
	}
	req, err := http.ReadRequest(bufio.NewReader(io.MultiReader(strings.NewReader(head+"\r\n"), bytes.NewReader(body))))
	if err != nil {
		return nil, false
	}
	req.RemoteAddr = "127.0.0.1:40000" // in MSF_ALLOWED_CIDRS
	return req, true
}

// fuzzAnswer is a checked answer.
type fuzzAnswer struct {
	status int
	body   []byte
	msf    msfError // a refusal on /v1/
	cause  string   // a refusal on /v1.0/icc/ and /v2.0/
}

// field is the field or parameter a 400 names: the text before ": ".
func (a fuzzAnswer) field() string {
	msg := a.cause
	if a.msf.Code != "" {
		msg = a.msf.Message
	}
	f, _, _ := strings.Cut(msg, ": ")
	return f
}

// msfCodes pairs each status with its error codes, as in the contract's
// error table (section 4).
var msfCodes = map[int][]string{
	400: {"010001", "010002"},
	403: {"990003"},
	404: {"030001"},

	409: {"030007"},
	413: {"010003"},
	500: {"020002", "990001"},
	503: {"020001"},
}

// fuzzServe answers req and fails tb unless the answer keeps the contract.
func fuzzServe(tb testing.TB, s *Server, req *http.Request) fuzzAnswer {
	tb.Helper()
	what := req.Method + " " + req.URL.RequestURI()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	a := fuzzAnswer{status: w.Code, body: w.Body.Bytes()}
	busy := w.Code == http.StatusServiceUnavailable && w.Header().Get("Retry-After") != ""
	if w.Code >= 500 && !busy {
		tb.Fatalf("%s: %d %s", what, w.Code, a.body)
	}
	if w.Code >= 400 {
		fam := familyOf(req.URL.Path)
		dec := json.NewDecoder(bytes.NewReader(a.body))
		dec.DisallowUnknownFields()
		switch fam {
		case familyMSF:
			if err := dec.Decode(&a.msf); err != nil {
				tb.Fatalf("%s: %d %s: not the MSF error format: %v", what, w.Code, a.body, err)
			}
			if !slices.Contains(msfCodes[w.Code], a.msf.Code) || a.msf.Message == "" || a.msf.DataConsistency != "rolled back" {
				tb.Fatalf("%s: %d %s: status, error_code and data_consistency do not pair as in the contract's table", what, w.Code, a.body)
			}
		case familyICC:
			var e struct{ Cause *string }
			if err := dec.Decode(&e); err != nil || e.Cause == nil || *e.Cause == "" {
				tb.Fatalf("%s: %d %s: not the ICC error format {\"cause\": ...} (%v)", what, w.Code, a.body, err)
			}
			a.cause = *e.Cause
		}
	}
	err := spectest.Validate(req, w.Result(), a.body)
	var re *routers.RouteError
	switch {
	case errors.As(err, &re) && w.Code >= 400:
		// No such path or method in openapi.yaml (a path id holding a
		// slash, an undeclared method): a refusal, whose format is
		// checked above.
	case err != nil:
		tb.Fatalf("%s: %d %s: not described by openapi.yaml: %v", what, w.Code, a.body, err)
	}
	return a
}

// fuzzDo builds and serves one request; ok is false when net/http would
// have refused it.
func fuzzDo(tb testing.TB, s *Server, method, target, token string, body []byte) (fuzzAnswer, bool) {
	tb.Helper()
	req, ok := fuzzRequest(method, target, token, body)
	if !ok {
		return fuzzAnswer{}, false
	}
	return fuzzServe(tb, s, req), true
}

// seedFiles are the contents of the files matching each pattern.
func seedFiles(tb testing.TB, patterns ...string) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, p := range patterns {
		names, err := filepath.Glob(p)
		if err != nil || len(names) == 0 {
			tb.Fatalf("no seed files match %s", p)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// specExamples are the request body examples openapi.yaml gives operationID,
// as JSON.
func specExamples(tb testing.TB, operationID string) [][]byte {
	tb.Helper()
	spec, err := gen.GetSpec()
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			if op.OperationID != operationID || op.RequestBody == nil {
				continue
			}
			for _, mt := range op.RequestBody.Value.Content {
				for _, ex := range mt.Examples {
					b, err := json.Marshal(ex.Value.Value)
					if err != nil {
						tb.Fatal(err)
					}
					out = append(out, b)
				}
			}
		}
	}
	if len(out) == 0 {
		tb.Fatalf("openapi.yaml has no request body example for %s", operationID)
	}
	return out
}

// specSchema is a schema of openapi.yaml's components.
func specSchema(tb testing.TB, name string) *openapi3.Schema {
	tb.Helper()
	spec, err := gen.GetSpec()
	if err != nil {
		tb.Fatal(err)
	}
	ref := spec.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		tb.Fatalf("openapi.yaml has no schema %s", name)
	}
	return ref.Value
}

// a1Seed is a valid notification with its request.body set to body (JSON
// text, inserted as is).
func a1Seed(id, body string) []byte {
	return []byte(`{"operation_id":"` + id + `","occurred_time":"20261123_101500","last_update_time":"20261123_101512",` +
		`"status":"executing","request":{"uri":"/v1/slices/l2vpn","method":"POST","body":` + body + `}}`)
}

// FuzzPutOperation sends A1 bodies (PUT /v1/operations/{id}, the id taken
// from the body). An accepted one must read back (A3) as sent: every string
// byte for byte, times in the underscore form, nulls and unknown fields
// absent; and sending it again must be answered 200.
func FuzzPutOperation(f *testing.F) {
	for _, b := range seedFiles(f, "../testdata/notification.json", "../testdata/msf/*.json") {
		f.Add(b)
	}
	for _, b := range specExamples(f, "PutOperation") {
		f.Add(b)
	}
	deep := strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth)
	for _, seed := range []string{
		string(a1Seed("fz-plain", `"{\"a\":1}"`)),
		string(a1Seed("fz-empty-body", `""`)),
		string(a1Seed("fz-escapes", `"\u00a5 \ud83d\ude80 \u2028 \u0000 <&> \\\" \/"`)),
		string(a1Seed("fz-lone-surrogate", `"\ud800"`)),
		string(a1Seed("fz-low-surrogate", `"x\udc00y"`)),
		string(a1Seed("fz-bad-utf8", "\"\xff\xfe\"")),
		string(a1Seed("fz-overlong", "\"\xc0\xaf\"")),
		string(a1Seed("fz-number-body", `1e400`)),
		string(a1Seed("fz-null-body", `null`)),
		`{"operation_id":"fz-deep","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"executing","request":{"uri":"/x","method":"POST","body":""},"x":` + deep + `}`,
		`{"operation_id":"fz-too-deep","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"executing","request":{"uri":"/x","method":"POST","body":""},"x":[` + deep + `]}`,
		`{"operation_id":"fz-dup","operation_id":"fz-dup2","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"executing","status":"completed","request":{"uri":"/x","method":"POST","body":"a","body":"b"},"response":{}}`,
		`{"operation_id":"fz-case","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"executing","Status":"bogus","ſtatus":"bogus","request":{"uri":"/x","method":"POST","body":"","Body":"other"}}`,
		`{"operation_id":"fz-nulls","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"canceled","request":{"uri":"/x","method":"PATCH","body":""},"response":null,"target_clusters":null,"rollbacks":null}`,
		`{"operation_id":"fz-null-sub","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"executing","sub_status":null,"request":{"uri":"/x","method":"POST","body":""}}`,
		`{"operation_id":"fz-empty","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"unexecuted","sub_status":"","request":{"uri":"","method":"DELETE","body":""},"target_clusters":[]}`,
		`{"operation_id":"fz-huge","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"completed","request":{"uri":"/x","method":"POST","body":""},"response":{"status_code":200000000000000000000000000000}}`,
		`{"operation_id":"fz-float","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"completed","request":{"uri":"/x","method":"POST","body":""},"response":{"status_code":2e2}}`,
		`{"operation_id":"fz-minus-zero","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"completed","request":{"uri":"/x","method":"POST","body":""},"response":{"status_code":-0}}`,
		`{"operation_id":"fz-clusters","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"failed","request":{"uri":"/x","method":"POST","body":""},"response":{"body":""},` +
			`"target_clusters":[{"cluster_id":"1","request":{"uri":"/c","method":"PUT","body":"{}"},"response":null},{"cluster_id":"2 x","request":{"uri":"/c","method":"PUT","body":""},"response":{}}],` +
			`"rollbacks":{"result":"none","occurred_time":"20261123 101501","target_clusters":[{"cluster_id":"1","request":{"uri":"/c","method":"DELETE","body":null},"response":{"status_code":204}}]}}`,
		`{"operation_id":"fz-times","occurred_time":"10000101_000000","last_update_time":"99991231_235959","reservation_time":"20240229 000000","start_time":"20261123_101500","status":"executing","request":{"uri":"/x","method":"POST","body":""}}`,
		`{"operation_id":"fz-bad-time","occurred_time":"20261301_000000","last_update_time":"20261123_101500","status":"executing","request":{"uri":"/x","method":"POST","body":""}}`,
		`{"operation_id":"fz-trailing","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":"executing","request":{"uri":"/x","method":"POST","body":""}} {}`,
		`{"operation_id":"fz-wrong-type","occurred_time":"20261123_101500","last_update_time":"20261123_101500","status":5,"request":{"uri":"/x","method":"POST","body":""}}`,
		`[]`, `null`, `""`, `{`, ``, "\xef\xbb\xbf{}",
	} {
		f.Add([]byte(seed))
	}
	s := newFuzzServer(f)
	schema := specSchema(f, "Operation")
	f.Fuzz(func(t *testing.T, body []byte) {
		id := fuzzBodyID(body)
		put := "/v1/operations/" + url.PathEscape(id)
		a, ok := fuzzDo(t, s, http.MethodPut, put, "", body)
		if !ok || a.status != http.StatusOK {
			return
		}
		got, _ := fuzzDo(t, s, http.MethodGet, put, "", nil)
		if got.status != http.StatusOK {
			t.Fatalf("accepted, then GET %s: %d %s", put, got.status, got.body)
		}
		sent := fuzzNormalize(schema, mustDecode(t, body))
		if back := mustDecode(t, got.body); !reflect.DeepEqual(sent, back) {
			t.Fatalf("accepted, but reads back otherwise:\nsent %s\nread %s", mustEncode(t, sent), got.body)
		}
		if again, _ := fuzzDo(t, s, http.MethodPut, put, "", body); again.status != http.StatusOK {
			t.Fatalf("accepted, then the same notification again: %d %s", again.status, again.body)
		}
	})
}

// fuzzBodyID is the body's top-level operation_id when it is a string, so
// that a valid body goes to its own path; else a fixed id.
func fuzzBodyID(body []byte) string {
	var v struct {
		ID any `json:"operation_id"`
	}
	_ = json.Unmarshal(body, &v)
	if id, ok := v.ID.(string); ok && id != "" {
		return id
	}
	return "fuzz-op"
}

func mustDecode(tb testing.TB, b []byte) any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("decode %q: %v", b, err)
	}
	return v
}

func mustEncode(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

var msfTimePattern = specPattern("MSFTime")

func specPattern(name string) string {
	spec, err := gen.GetSpec()
	if err != nil {
		panic(err)
	}
	return spec.Components.Schemas[name].Value.Pattern
}

// fuzzNormalize is what the contract says an accepted value reads back as,
// by its schema s: members the schema does not name are dropped (unknown
// fields are not stored), null members are dropped (taken as absent), and
// MSF times are in the underscore form. Everything else is as sent.
func fuzzNormalize(s *openapi3.Schema, v any) any {
	for len(s.AllOf) > 0 && len(s.Properties) == 0 && s.Items == nil && s.Pattern == "" {
		s = s.AllOf[0].Value
	}
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for name, p := range s.Properties {
			if pv, ok := v[name]; ok && pv != nil {
				out[name] = fuzzNormalize(p.Value, pv)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = fuzzNormalize(s.Items.Value, item)
		}
		return out
	case string:
		if s.Pattern == msfTimePattern {
			return strings.Replace(v, " ", "_", 1)
		}
	}
	return v
}

// b2Seed is a valid B2 body with request_body set to rb (JSON text, inserted
// as is).
func b2Seed(rb string) []byte {
	return []byte(`{"connection_id":"a80c1728-cc0c-11e6-8080-525400060300","tenant_id":"` + fuzzTenantA + `","order_type":"Create",` +
		`"phase":"prepare_connection","operation_status":"processing","reception_datetime":"2026-11-23 10:00:00","request_body":` + rb + `}`)
}

// FuzzPutICCOperation sends B2 bodies (PUT /v1.0/icc/operations/{id} with
// the admin token), each to an id of its own (a digest of the body), so that
// every answer depends on the body alone. An accepted one must be answered,
// and read back through v2.0, as sent: connection_id in lower case,
// request_body and error compact.
func FuzzPutICCOperation(f *testing.F) {
	for _, b := range seedFiles(f, "../testdata/icc-operation.json") {
		f.Add(b)
	}
	for _, b := range specExamples(f, "PutICCOperation") {
		f.Add(b)
	}
	deep := strings.Repeat(`{"a":`, MaxJSONDepth-1) + "1" + strings.Repeat("}", MaxJSONDepth-1)
	for _, seed := range [][]byte{
		b2Seed(`{}`),
		b2Seed(`{ "a" : [ 1 , 2.50 , -0 , 1e400 , 123456789012345678901234567890 ] , "b" : { } }`),
		b2Seed(`{"s":"\u00a5 \ud83d\ude80 \u2028 \u0000 <&> \\\" \/"}`),
		b2Seed(`{"s":"\ud800"}`),
		b2Seed("{\"s\":\"\xff\"}"),
		b2Seed(`{"a":1,"a":2}`),
		b2Seed(deep),
		b2Seed(`{"x":` + deep + `}`),
		b2Seed(`[]`), b2Seed(`"x"`), b2Seed(`null`), b2Seed(`1`),
		[]byte(`{"connection_id":"A80C1728-CC0C-11E6-8080-525400060300","tenant_id":"t","order_type":"Delete","phase":"delete_connection","operation_status":"error",` +
			`"reception_datetime":"2026-11-23 10:00:00","commit_datetime":"2026-11-23 10:00:01","request_body":{},"resource_type":"tenant_connection","error":{"code": 1, "message":"x"}}`),
		[]byte(`{"connection_id":"a80c1728-cc0c-11e6-8080-525400060300","tenant_id":"t","order_type":"Update","phase":"update_connection","operation_status":"complete",` +
			`"reception_datetime":"2026-11-23 10:00:00","commit_datetime":"2026-11-23 10:00:01","request_body":{},"error":{}}`),
		[]byte(`{"connection_id":"a80c1728-cc0c-11e6-8080-525400060300","tenant_id":"t","order_type":"Create","phase":"prepare_connection","operation_status":"processing",` +
			`"reception_datetime":"2026-11-23 10:00:00","commit_datetime":null,"request_body":{},"error":null,"resource_type":null}`),
		[]byte(`{"connection_id":"a80c1728-cc0c-11e6-8080-525400060300","tenant_id":"t","order_type":"Create","phase":"update_connection","operation_status":"processing",` +
			`"reception_datetime":"2026-02-30 10:00:00","request_body":{}}`),
		[]byte(`{"connection_id":"a80c1728cc0c11e68080525400060300","tenant_id":" t","order_type":"Create","phase":"prepare_connection","operation_status":"processing",` +
			`"reception_datetime":"0999-01-01 00:00:00","request_body":{}}`),
		[]byte(`[]`), []byte(`null`), []byte(`{`), []byte(``), []byte(`{} {}`),
	} {
		f.Add(seed)
	}
	s := newFuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		sum := sha256.Sum256(body)
		id := "fz-" + hex.EncodeToString(sum[:12])
		a, ok := fuzzDo(t, s, http.MethodPut, "/v1.0/icc/operations/"+id, fuzzAdminToken, body)
		if !ok || a.status >= 400 {
			return
		}
		if a.status != http.StatusCreated && a.status != http.StatusOK { // 200: the fuzzer ran this body before
			t.Fatalf("%d %s, want 201 or 200", a.status, a.body)
		}
		var sent map[string]json.RawMessage
		if err := json.Unmarshal(body, &sent); err != nil {
			t.Fatalf("accepted a body that is not a JSON object: %v", err)
		}
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(a.body, &rec); err != nil {
			t.Fatal(err)
		}
		want := func(name string, got, sent json.RawMessage) {
			t.Helper()
			if !bytes.Equal(got, sent) {
				t.Fatalf("accepted, but %s is answered %s, sent %s", name, got, sent)
			}
		}
		want("operation_id", rec["operation_id"], mustEncode(t, id))
		for _, name := range []string{"tenant_id", "order_type", "phase", "operation_status", "reception_datetime"} {
			want(name, rec[name], sent[name])
		}
		want("connection_id", rec["connection_id"], bytes.ToLower(sent["connection_id"]))
		want("commit_datetime", rec["commit_datetime"], orJSON(sent["commit_datetime"], "null"))
		want("request_body", rec["request_body"], compact(t, sent["request_body"]))

		v2, _ := fuzzDo(t, s, http.MethodGet, "/v2.0/operations/"+id, fuzzAdminToken, nil)
		if v2.status != http.StatusOK {
			t.Fatalf("accepted, then GET /v2.0/operations/%s: %d %s", id, v2.status, v2.body)
		}
		var show struct{ Operation map[string]json.RawMessage }
		if err := json.Unmarshal(v2.body, &show); err != nil {
			t.Fatal(err)
		}
		want("v2.0 request_body", show.Operation["request_body"], compact(t, sent["request_body"]))
		want("v2.0 error", show.Operation["error"], compact(t, orJSON(sent["error"], "{}")))
		want("v2.0 resource_type", show.Operation["resource_type"], orJSON(sent["resource_type"], `"aws_connection"`))
	})
}

// orJSON is raw, or def when raw is absent or null.
func orJSON(raw json.RawMessage, def string) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(def)
	}
	return raw
}

func compact(tb testing.TB, raw json.RawMessage) json.RawMessage {
	tb.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		tb.Fatalf("compact %q: %v", raw, err)
	}
	return b.Bytes()
}

// fuzzICCRecords are recorded before the list targets run: two tenants, each
// order type and status, two resource types, an error.
var fuzzICCRecords = []struct{ id, body string }{
	{"op-a80c1728-approve", ""}, // testdata/icc-operation.json
	{"op-a-prepare", `{"connection_id":"a80c1728-cc0c-11e6-8080-525400060300","tenant_id":"` + fuzzTenantA + `","order_type":"Create","phase":"prepare_connection","operation_status":"processing","reception_datetime":"2016-12-27 08:15:41","request_body":{}}`},
	{"op-a-update", `{"connection_id":"b80c1728-cc0c-11e6-8080-525400060300","tenant_id":"` + fuzzTenantA + `","order_type":"Update","phase":"update_connection","operation_status":"error","reception_datetime":"2026-11-23 10:00:00","commit_datetime":"2026-11-23 10:00:05","request_body":{"x":[1,2]},"resource_type":"tenant_connection","error":{"message":"refused"}}`},
	{"op-b-delete", `{"connection_id":"c80c1728-cc0c-11e6-8080-525400060300","tenant_id":"5f7ab9b2c4e14e2c9a1f0d3b6e8c7a90","order_type":"Delete","phase":"delete_connection","operation_status":"complete","reception_datetime":"2026-11-23 10:00:00","commit_datetime":"2026-11-23 10:00:05","request_body":{},"resource_type":"tenant_connection_request"}`},
}

// newFuzzListServer is newFuzzServer with fuzzICCRecords recorded.
func newFuzzListServer(tb testing.TB) *Server {
	tb.Helper()
	s := newFuzzServer(tb)
	for _, r := range fuzzICCRecords {
		body := []byte(r.body)
		if r.body == "" {
			body = seedFiles(tb, "../testdata/icc-operation.json")[0]
		}
		if a, _ := fuzzDo(tb, s, http.MethodPut, "/v1.0/icc/operations/"+r.id, fuzzAdminToken, body); a.status != http.StatusCreated {
			tb.Fatalf("record %s: %d %s", r.id, a.status, a.body)
		}
	}
	return s
}

// listQuerySeeds are query strings for the list targets: every parameter of
// both lists with each of its values from openapi.yaml, and tricky ones.
func listQuerySeeds(tb testing.TB, operationID string) []string {
	tb.Helper()
	spec, err := gen.GetSpec()
	if err != nil {
		tb.Fatal(err)
	}
	seeds := []string{"", "latest=true", "unknown=1", "a&b&c", "=x", "&&", "%", "%zz=1", "latest=%74rue", "latest=TRUE",
		"latest=", "latest", "latest=true&latest=false",
		"connection_id=A80C1728-CC0C-11E6-8080-525400060300", "resource_id=a80c1728cc0c11e68080525400060300",
		"connection_id={a80c1728-cc0c-11e6-8080-525400060300}", "id=op-a80c1728-approve&latest=true", "id=" + strings.Repeat("a", 129),
		"service_type=ECL%3A%3ASDExchange%3A%3ATenantConnection&resource_type=aws_connection", "phase=update_connection;latest=true",
		"order_type=Create%00", "order_type=%C3%BC", "order_type=%FF", "order_type[]=Create", "Order_Type=Create"}
	for _, item := range spec.Paths.Map() {
		for _, op := range item.Operations() {
			if op.OperationID != operationID {
				continue
			}
			for _, p := range op.Parameters {
				var values []string
				sc := p.Value.Schema.Value
				for _, e := range sc.Enum {
					values = append(values, fmt.Sprint(e))
				}
				if sc.Example != nil {
					values = append(values, fmt.Sprint(sc.Example))
				}
				for _, v := range values {
					seeds = append(seeds, p.Value.Name+"="+url.QueryEscape(v), p.Value.Name+"="+url.QueryEscape(v)+"&latest=true")
				}
				seeds = append(seeds, p.Value.Name+"=", p.Value.Name+"=x")
			}
		}
	}
	return seeds
}

// listFilters names, for each filter parameter of a list, the item member
// it selects on.
var (
	b1Filters = map[string]string{"connection_id": "connection_id", "order_type": "order_type", "phase": "phase", "operation_status": "operation_status"}
	b3Filters = map[string]string{"id": "id", "resource_id": "resource_id", "request_type": "request_type", "phase": "phase",
		"operation_status": "operation_status", "resource_type": "resource_type", "service_type": "service_type"}
)

// fuzzList fuzzes the query string of a list: a 400 names one of its
// parameters; a 200 answers only items that every filter selects, of the
// token's tenant, and with latest=true at most one item per resource.
func fuzzList(f *testing.F, path, operationID, resource string, filters map[string]string) {
	for _, q := range listQuerySeeds(f, operationID) {
		f.Add(q, false)
		f.Add(q, true)
	}
	s := newFuzzListServer(f)
	params := map[string]bool{"latest": true, "limit": true, "page_token": true}
	for p := range filters {
		params[p] = true
	}
	f.Fuzz(func(t *testing.T, query string, admin bool) {
		token := fuzzTokenA
		if admin {
			token = fuzzAdminToken
		}
		target := path
		if query != "" {
			target += "?" + query
		}
		req, ok := fuzzRequest(http.MethodGet, target, token, nil)
		if !ok {
			return
		}
		a := fuzzServe(t, s, req)
		switch a.status {
		case http.StatusOK:
		case http.StatusBadRequest:
			if !params[a.field()] {
				t.Fatalf("%s: %s: a refused query names one of its parameters", target, a.body)
			}
			return
		default:
			t.Fatalf("%s: %d %s, want 200 or 400", target, a.status, a.body)
		}
		var list struct{ Operations []map[string]any }
		if err := json.Unmarshal(a.body, &list); err != nil {
			t.Fatal(err)
		}
		q := req.URL.Query()
		seen := map[any]bool{}
		for _, item := range list.Operations {
			for p, member := range filters {
				if vs, ok := q[p]; ok && !strings.EqualFold(fmt.Sprint(item[member]), vs[0]) {
					t.Fatalf("%s: answered an item whose %s is %v: %s", target, member, item[member], a.body)
				}
			}
			if tenant, ok := item["tenant_id"]; ok && !admin && tenant != fuzzTenantA {
				t.Fatalf("%s: tenant A sees an item of tenant %v", target, tenant)
			}
			if q.Get("latest") == "true" {
				if seen[item[resource]] {
					t.Fatalf("%s: latest=true answered two items of %v: %s", target, item[resource], a.body)
				}
				seen[item[resource]] = true
			}
		}
	})
}

// FuzzListICCOperations fuzzes B1's query string (GET /v1.0/icc/operations).
func FuzzListICCOperations(f *testing.F) {
	fuzzList(f, "/v1.0/icc/operations", "ListICCOperations", "connection_id", b1Filters)
}

// FuzzListICCOperationsV2 fuzzes B3's query string (GET /v2.0/operations).
func FuzzListICCOperationsV2(f *testing.F) {
	fuzzList(f, "/v2.0/operations", "ListICCOperationsV2", "resource_id", b3Filters)
}

var operationIDPattern = regexp.MustCompile(specPattern("OperationID"))

// FuzzOperationID fuzzes the path id (the raw segment of the request
// target) of every path that takes one: A1 and A3 on /v1/operations/{id},
// B2 on /v1.0/icc/operations/{id}, B3 show on /v2.0/operations/{id} (and
// PUT there, which has no such method). An id that is valid once unescaped
// is recorded and read back under that id; any other is refused naming
// operation_id, or is no such path.
func FuzzOperationID(f *testing.F) {
	for _, id := range []string{
		"op-20261123-0001", "0011700000000000", "Op1", "op1", "a", "~._-", ".", "..", "...", strings.Repeat("a", 128), strings.Repeat("a", 129),
		"", "%41", "%2e%2e", "a%2Fb", "a/b", "a%2fb", "%", "%zz", "a%", "%FF", "%C3%BC", "ü", "a?b=c", "a;b", "a#b", "a+b", "a%20b",
		"%00", "a%252E", "%7E", "op-a80c1728-approve", "a/", "/a", "//",
	} {
		f.Add(id)
	}
	s := newFuzzServer(f)
	icc := seedFiles(f, "../testdata/icc-operation.json")[0]
	f.Fuzz(func(t *testing.T, raw string) {
		seg, _, _ := strings.Cut(raw, "?") // the rest is the query
		id, err := url.PathUnescape(seg)
		valid := err == nil && operationIDPattern.MatchString(id)
		a1 := a1Seed(id, `""`)
		if !json.Valid(a1) {
			a1 = mustEncode(t, map[string]any{"operation_id": id, "occurred_time": "20261123_101500", "last_update_time": "20261123_101512",
				"status": "executing", "request": map[string]any{"uri": "/x", "method": "POST", "body": ""}})
		}
		for _, call := range []struct {
			method, path, token string
			body                []byte
			ok                  int
		}{
			{http.MethodPut, "/v1/operations/", "", a1, http.StatusOK},
			{http.MethodGet, "/v1/operations/", "", nil, http.StatusOK},
			{http.MethodPut, "/v1.0/icc/operations/", fuzzAdminToken, icc, 0}, // 201, then 200
			{http.MethodGet, "/v2.0/operations/", fuzzTokenA, nil, http.StatusOK},
			{http.MethodPut, "/v2.0/operations/", fuzzAdminToken, icc, -1}, // no such method
		} {
			a, ok := fuzzDo(t, s, call.method, call.path+raw, call.token, call.body)
			if !ok {
				return
			}
			what := call.method + " " + call.path + raw
			switch {
			case call.ok < 0:
				if a.status != http.StatusMethodNotAllowed && a.status != http.StatusNotFound && a.status != http.StatusBadRequest {
					t.Fatalf("%s: %d %s", what, a.status, a.body)
				}
			case valid && call.ok == 0:
				if a.status != http.StatusCreated && a.status != http.StatusOK {
					t.Fatalf("%s (id %q): %d %s", what, id, a.status, a.body)
				}
			case valid:
				if a.status != call.ok {
					t.Fatalf("%s (id %q): %d %s", what, id, a.status, a.body)
				}
				if call.method == http.MethodGet {
					var got struct {
						OperationID string `json:"operation_id"`
						Operation   struct{ ID string }
					}
					if err := json.Unmarshal(a.body, &got); err != nil || (got.OperationID != id && got.Operation.ID != id) {
						t.Fatalf("%s (id %q): answered another id: %s", what, id, a.body)
					}
				}
			case a.status == http.StatusBadRequest:
				if a.field() != "operation_id" {
					t.Fatalf("%s: %s: an invalid id is refused naming operation_id", what, a.body)
				}
			case a.status != http.StatusNotFound && a.status != http.StatusMethodNotAllowed:
				t.Fatalf("%s (invalid id %q): %d %s", what, id, a.status, a.body)
			}
		}
	})
}
