package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"example.com/opsvc/internal/spectest"
)

// notification is a complete, valid A1 body: a failed multi-cluster
// operation with a rollback, every optional field present.
func notification(id string) doc {
	return doc{
		"operation_id":     id,
		"occurred_time":    "20261123_101500",
		"last_update_time": "20261123_101512",
		"reservation_time": "20261123_101400",
		"start_time":       "20261123_101501",
		"status":           "failed",
		"sub_status":       "cluster 2 refused",
		"request":          doc{"uri": "/v1/slices/l2vpn", "method": "POST", "body": `{"slice_id":"slice-1"}`},
		"response":         doc{"status_code": 500, "body": `{"error_code":"990001"}`},
		"target_clusters": []any{
			doc{"cluster_id": "1", "request": doc{"uri": "/v1/slices/l2vpn", "method": "POST", "body": "{}"},
				"response": doc{"status_code": 201, "body": "{}"}},
			doc{"cluster_id": "2", "request": doc{"uri": "/v1/slices/l2vpn", "method": "POST", "body": "{}"}},
		},
		"rollbacks": doc{
			"result":        "completed",
			"occurred_time": "20261123_101511",
			"target_clusters": []any{
				doc{"cluster_id": "1", "request": doc{"uri": "/v1/slices/l2vpn/slice-1", "method": "DELETE"},
					"response": doc{"status_code": 204}},
			},
		},
	}
}

// minimal is a valid A1 body with only the required fields.
func minimal(id, status, lastUpdate string) doc {
	return doc{
		"operation_id":     id,
		"occurred_time":    "20261123_100000",
		"last_update_time": lastUpdate,
		"status":           status,
		"request":          doc{"uri": "/v1/slices/l2vpn", "method": "PUT", "body": "{}"},
	}
}

func putOp(tb testing.TB, s *service, id string, body any) result {
	tb.Helper()
	return s.do(tb, http.MethodPut, "/v1/operations/"+id, body)
}

func getOp(tb testing.TB, s *service, id string) (result, doc) {
	tb.Helper()
	r := s.do(tb, http.MethodGet, "/v1/operations/"+id, nil)
	var d doc
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &d); err != nil {
			tb.Fatalf("GET %s: %v", id, err)
		}
	}
	return r, d
}

func TestMSF_PutOperation_refusals(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		// 010002: each required field missing.
		{"operation_id missing", edit(notification("op1"), "operation_id", del), 400, "010002", "operation_id"},
		{"occurred_time missing", edit(notification("op1"), "occurred_time", del), 400, "010002", "occurred_time"},
		{"last_update_time missing", edit(notification("op1"), "last_update_time", del), 400, "010002", "last_update_time"},
		{"status missing", edit(notification("op1"), "status", del), 400, "010002", "status"},
		{"request missing", edit(notification("op1"), "request", del), 400, "010002", "request"},
		{"request.uri missing", edit(notification("op1"), "request.uri", del), 400, "010002", "request.uri"},
		{"request.method missing", edit(notification("op1"), "request.method", del), 400, "010002", "request.method"},
		{"request.body missing", edit(notification("op1"), "request.body", del), 400, "010002", "request.body"},
		{"target cluster_id missing", edit(notification("op1"), "target_clusters.1.cluster_id", del), 400, "010002", "target_clusters[1].cluster_id"},
		{"target request missing", edit(notification("op1"), "target_clusters.0.request", del), 400, "010002", "target_clusters[0].request"},
		{"target request.body missing", edit(notification("op1"), "target_clusters.0.request.body", del), 400, "010002", "target_clusters[0].request.body"},
		{"rollbacks.result missing", edit(notification("op1"), "rollbacks.result", del), 400, "010002", "rollbacks.result"},
		{"rollbacks.occurred_time missing", edit(notification("op1"), "rollbacks.occurred_time", del), 400, "010002", "rollbacks.occurred_time"},
		{"rollback cluster request.uri missing", edit(notification("op1"), "rollbacks.target_clusters.0.request.uri", del), 400, "010002", "rollbacks.target_clusters[0].request.uri"},
		{"response missing while failed", edit(notification("op1"), "response", del), 400, "010002", "response"},
		{"response missing while completed", edit(edit(notification("op1"), "response", del), "status", "completed"), 400, "010002", "response"},
		{"required field null", edit(notification("op1"), "status", nil), 400, "010002", "status"},
		{"request.body null", edit(notification("op1"), "request.body", nil), 400, "010002", "request.body"},
		{"response null", edit(notification("op1"), "response", nil), 400, "010002", "response"},
		{"sub_status null", edit(notification("op1"), "sub_status", nil), 400, "010002", "sub_status"},
		{"cluster status_code null", edit(notification("op1"), "target_clusters.0.response.status_code", nil), 400, "010002", "target_clusters[0].response.status_code"},
		// 010002: enums.
		{"status not in enum", edit(notification("op1"), "status", "done"), 400, "010002", "status"},
		{"method not in enum", edit(notification("op1"), "request.method", "GET"), 400, "010002", "request.method"},
		{"cluster method not in enum", edit(notification("op1"), "target_clusters.0.request.method", "post"), 400, "010002", "target_clusters[0].request.method"},
		{"rollbacks.result not in enum", edit(notification("op1"), "rollbacks.result", "partial"), 400, "010002", "rollbacks.result"},
		// 010002: times.
		{"month 13", edit(notification("op1"), "occurred_time", "20261301_000000"), 400, "010002", "occurred_time"},
		{"February 30", edit(notification("op1"), "last_update_time", "20260230_120000"), 400, "010002", "last_update_time"},
		{"hour 24", edit(notification("op1"), "last_update_time", "20261123_240000"), 400, "010002", "last_update_time"},
		{"minute 60", edit(notification("op1"), "occurred_time", "20261123_106000"), 400, "010002", "occurred_time"},
		{"ISO form", edit(notification("op1"), "occurred_time", "2026-11-23T10:15:00Z"), 400, "010002", "occurred_time"},
		{"no separator", edit(notification("op1"), "occurred_time", "20261123101500"), 400, "010002", "occurred_time"},
		{"rollback time impossible", edit(notification("op1"), "rollbacks.occurred_time", "20261131_000000"), 400, "010002", "rollbacks.occurred_time"},
		// 010002: limits.
		{"uri over 2048", edit(notification("op1"), "request.uri", long(2049)), 400, "010002", "request.uri"},
		{"sub_status over 255", edit(notification("op1"), "sub_status", long(256)), 400, "010002", "sub_status"},
		{"cluster_id over 64", edit(notification("op1"), "target_clusters.0.cluster_id", long(65)), 400, "010002", "target_clusters[0].cluster_id"},
		{"cluster_id empty", edit(notification("op1"), "target_clusters.0.cluster_id", ""), 400, "010002", "target_clusters[0].cluster_id"},
		{"status_code 99", edit(notification("op1"), "response.status_code", 99), 400, "010002", "response.status_code"},
		{"status_code 600", edit(notification("op1"), "response.status_code", 600), 400, "010002", "response.status_code"},
		{"id mismatch", edit(notification("op1"), "operation_id", "op2"), 400, "010002", "operation_id"},
		{"body id with bad characters", edit(notification("op1"), "operation_id", "op/1"), 400, "010002", "operation_id"},
		// 010001: not JSON, wrong types.
		{"malformed JSON", `{"operation_id": "op1",`, 400, "010001", "body"},
		{"JSON followed by more", `{"operation_id": "op1"} {}`, 400, "010001", "body"},
		{"not an object", `["op1"]`, 400, "010001", "body"},
		{"status_code as string", edit(notification("op1"), "response.status_code", "500"), 400, "010001", "response.status_code"},
		{"status_code not an integer", edit(notification("op1"), "response.status_code", 200.5), 400, "010001", "response.status_code"},
		{"body as object", edit(notification("op1"), "request.body", doc{"a": 1}), 400, "010001", "request.body"},
		{"target_clusters as object", edit(notification("op1"), "target_clusters", doc{}), 400, "010001", "target_clusters"},
		{"sub_status as number", edit(notification("op1"), "sub_status", 3), 400, "010001", "sub_status"},
		// 010001 wins over the field's enum, pattern or range: the type is checked first.
		{"status as number", edit(notification("op1"), "status", 5), 400, "010001", "status"},
		{"method as number", edit(notification("op1"), "request.method", 1), 400, "010001", "request.method"},
		{"operation_id as number", edit(notification("op1"), "operation_id", 1), 400, "010001", "operation_id"},
		{"occurred_time as number", edit(notification("op1"), "occurred_time", 20261123), 400, "010001", "occurred_time"},
		{"reservation_time as boolean", edit(notification("op1"), "reservation_time", true), 400, "010001", "reservation_time"},
		{"status_code 200.0", edit(notification("op1"), "response.status_code", json.RawMessage("200.0")), 400, "010001", "response.status_code"},
		{"status_code as string beyond the range", edit(notification("op1"), "response.status_code", "999"), 400, "010001", "response.status_code"},
		{"cluster_id as number", edit(notification("op1"), "target_clusters.1.cluster_id", 2), 400, "010001", "target_clusters[1].cluster_id"},
		{"cluster response as string", edit(notification("op1"), "target_clusters.0.response", "202"), 400, "010001", "target_clusters[0].response"},
		{"rollbacks as array", edit(notification("op1"), "rollbacks", []any{}), 400, "010001", "rollbacks"},
		{"rollback result as number", edit(notification("op1"), "rollbacks.result", 0), 400, "010001", "rollbacks.result"},
		{"type error beside a missing field", edit(edit(notification("op1"), "status", del), "request.uri", 7), 400, "010001", "request.uri"},
		{"type error beside a bad enum", edit(edit(notification("op1"), "status", "done"), "sub_status", 7), 400, "010001", "sub_status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := putOp(t, s, "op1", tt.body)
			wantMSFError(t, r, tt.status, tt.code, tt.field)
		})
	}
	t.Run("nothing refused was stored", func(t *testing.T) {
		r, _ := getOp(t, s, "op1")
		wantMSFError(t, r, 404, "030001", "operation_id")
	})
}

func TestMSF_PutOperation_pathAndBody(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	t.Run("empty body", func(t *testing.T) {
		wantMSFError(t, putOp(t, s, "op1", ""), 400, "010002", "body")
	})
	t.Run("path id with bad characters", func(t *testing.T) {
		wantMSFError(t, putOp(t, s, "op%201", notification("op 1")), 400, "010002", "operation_id")
	})
	t.Run("path id over 128 characters", func(t *testing.T) {
		id := strings.Repeat("a", 129)
		wantMSFError(t, putOp(t, s, id, notification(id)), 400, "010002", "operation_id")
	})
	t.Run("128 characters of every allowed kind", func(t *testing.T) {
		id := strings.Repeat("Az09._~-", 16)
		wantStatus(t, putOp(t, s, id, notification(id)), 200)
		r, d := getOp(t, s, id)
		wantStatus(t, r, 200)
		if d["operation_id"] != id {
			t.Fatalf("got %v", d["operation_id"])
		}
	})
	t.Run("Content-Type not JSON", func(t *testing.T) {
		b, _ := json.Marshal(notification("op1"))
		r := s.do(t, http.MethodPut, "/v1/operations/op1", string(b), "Content-Type", "text/plain")
		wantMSFError(t, r, 400, "010001", "Content-Type")
	})
	t.Run("Content-Type with a charset", func(t *testing.T) {
		b, _ := json.Marshal(minimal("cs1", "executing", "20261123_100000"))
		r := s.do(t, http.MethodPut, "/v1/operations/cs1", string(b), "Content-Type", "application/json; charset=utf-8")
		wantStatus(t, r, 200)
	})
	t.Run("format not in enum", func(t *testing.T) {
		wantMSFError(t, s.do(t, http.MethodGet, "/v1/operations?format=full", nil), 400, "010002", "format")
	})
	t.Run("empty format", func(t *testing.T) {
		wantMSFError(t, s.do(t, http.MethodGet, "/v1/operations?format=", nil), 400, "010002", "format")
	})
	t.Run("unknown operation", func(t *testing.T) {
		wantMSFError(t, s.do(t, http.MethodGet, "/v1/operations/nope", nil), 404, "030001", "operation_id")
	})
	t.Run("ids are case-sensitive", func(t *testing.T) {
		wantStatus(t, putOp(t, s, "Case1", minimal("Case1", "executing", "20261123_100000")), 200)
		wantMSFError(t, s.do(t, http.MethodGet, "/v1/operations/case1", nil), 404, "030001", "operation_id")
	})
	t.Run("unknown path under /v1/", func(t *testing.T) {
		_, r := s.send(t, http.MethodGet, "/v1/nothing", nil)
		wantMSFError(t, r, 404, "030001", "path")
	})
	t.Run("method not allowed", func(t *testing.T) {
		// DELETE is served since issue 9.
		_, r := s.send(t, http.MethodPost, "/v1/operations/op1", nil)
		wantMSFError(t, r, 405, "990002", "method")
		if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "PUT") || !strings.Contains(allow, "DELETE") {
			t.Errorf("Allow: %q", allow)
		}
	})
	t.Run("a repeated query parameter is named", func(t *testing.T) {
		wantMSFError(t, s.do(t, http.MethodGet, "/v1/operations?format=list&format=detail-list", nil), 400, "010002", "format")
	})
}

func TestMSF_PutOperation_roundTrip(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	t.Run("every field comes back, times in underscore form", func(t *testing.T) {
		in := edit(edit(notification("rt1"), "occurred_time", "20261123 101500"), "rollbacks.occurred_time", "20261123 101511")
		wantStatus(t, putOp(t, s, "rt1", in), 200)
		r, got := getOp(t, s, "rt1")
		wantStatus(t, r, 200)
		want := notification("rt1")
		if !reflect.DeepEqual(clone(got), clone(want)) {
			t.Fatalf("stored record differs\n got: %v\nwant: %v", got, want)
		}
	})
	t.Run("absent optional fields stay absent, empty lists stay empty", func(t *testing.T) {
		in := minimal("rt2", "executing", "20261123_100000")
		wantStatus(t, putOp(t, s, "rt2", in), 200)
		r, got := getOp(t, s, "rt2")
		wantStatus(t, r, 200)
		if !reflect.DeepEqual(got, clone(in)) {
			t.Fatalf("got %s", r.body)
		}
		if strings.Contains(string(r.body), "null") {
			t.Fatalf("absent fields must be omitted, got %s", r.body)
		}
		in = edit(edit(minimal("rt3", "executing", "20261123_100000"), "target_clusters", []any{}),
			"rollbacks", doc{"result": "none", "occurred_time": "20261123_100000", "target_clusters": []any{}})
		wantStatus(t, putOp(t, s, "rt3", in), 200)
		_, got = getOp(t, s, "rt3")
		if !reflect.DeepEqual(got, clone(in)) {
			t.Fatalf("got %v, want %v", got, in)
		}
	})
	t.Run("null where the seed allows it is taken as absent", func(t *testing.T) {
		in := notification("nul1")
		in = edit(in, "target_clusters.1.response", nil)
		in = edit(in, "target_clusters.0.response.body", nil)
		in = edit(in, "rollbacks.target_clusters.0.request.body", nil)
		wantStatus(t, putOp(t, s, "nul1", in), 200)
		want := notification("nul1")
		want = edit(want, "target_clusters.0.response.body", del)
		_, got := getOp(t, s, "nul1")
		if !reflect.DeepEqual(got, clone(want)) {
			t.Fatalf("got %v\nwant %v", got, want)
		}
		in = edit(edit(minimal("nul2", "executing", "20261123_100000"), "target_clusters", nil), "rollbacks", nil)
		wantStatus(t, putOp(t, s, "nul2", in), 200)
		r, got := getOp(t, s, "nul2")
		if !reflect.DeepEqual(got, clone(minimal("nul2", "executing", "20261123_100000"))) || strings.Contains(string(r.body), "null") {
			t.Fatalf("got %s", r.body)
		}
		in = edit(notification("nul3"), "rollbacks.target_clusters", nil)
		wantStatus(t, putOp(t, s, "nul3", in), 200)
		_, got = getOp(t, s, "nul3")
		if _, ok := got["rollbacks"].(map[string]any)["target_clusters"]; ok {
			t.Fatalf("rollbacks.target_clusters: want absent, got %v", got["rollbacks"])
		}
	})
	t.Run("unknown fields are ignored and not stored", func(t *testing.T) {
		in := edit(edit(minimal("rt4", "executing", "20261123_100000"), "color", "blue"), "request.extra", 1)
		wantStatus(t, putOp(t, s, "rt4", in), 200)
		r, _ := getOp(t, s, "rt4")
		if strings.Contains(string(r.body), "color") || strings.Contains(string(r.body), "extra") {
			t.Fatalf("unknown fields were stored: %s", r.body)
		}
	})
	t.Run("a put answers an empty 200", func(t *testing.T) {
		r := putOp(t, s, "rt5", minimal("rt5", "unexecuted", "20261123_100000"))
		if r.status != 200 || len(r.body) != 0 {
			t.Fatalf("got %s", r)
		}
	})
}

func TestMSF_PutOperation_neverBackwards(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	completed := func(id, last, body string) doc {
		d := minimal(id, "completed", last)
		d["response"] = doc{"status_code": 200, "body": body}
		return d
	}
	tests := []struct {
		name   string
		stored doc
		next   doc
		status int
	}{
		{"older last_update_time is refused", minimal("x", "executing", "20261123_100010"), minimal("x", "executing", "20261123_100009"), 409},
		{"lower status is refused even when later", minimal("x", "executing", "20261123_100010"), minimal("x", "unexecuted", "20261123_100011"), 409},
		{"terminal to executing is refused", completed("x", "20261123_100010", "{}"), minimal("x", "executing", "20261123_100011"), 409},
		{"terminal to another terminal is refused", completed("x", "20261123_100010", "{}"), edit(completed("x", "20261123_100011", "{}"), "status", "failed"), 409},
		{"canceled to completed is refused", minimal("x", "canceled", "20261123_100010"), completed("x", "20261123_100011", "{}"), 409},
		{"repeat is accepted", completed("x", "20261123_100010", "{}"), completed("x", "20261123_100010", "{}"), 200},
		{"same time, higher status replaces", minimal("x", "executing", "20261123_100010"), completed("x", "20261123_100010", "{}"), 200},
		{"same status, later time replaces", minimal("x", "executing", "20261123_100010"), edit(minimal("x", "executing", "20261123_100011"), "sub_status", "50%"), 200},
		{"terminal re-sent with new content replaces", completed("x", "20261123_100010", "{}"), completed("x", "20261123_100012", `{"id":"1"}`), 200},
		{"unexecuted to executing", minimal("x", "unexecuted", "20261123_100010"), minimal("x", "executing", "20261123_100011"), 200},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, c := context.Background(), s.client(t, "")
			id := fmt.Sprintf("nb%d", i)
			stored, next := edit(tt.stored, "operation_id", id), edit(tt.next, "operation_id", id)
			if err := c.PutOperationJSON(ctx, id, jsonBody(t, stored)); err != nil {
				t.Fatal(err)
			}
			err := c.PutOperationJSON(ctx, id, jsonBody(t, next))
			want := next
			if tt.status == 409 {
				wantClientError(t, err, 409, "030007")
				want = stored
			} else if err != nil {
				t.Fatalf("want %d, got %v", tt.status, err)
			}
			op, err := c.GetOperation(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got := asDoc(t, op); !reflect.DeepEqual(got, clone(want)) {
				t.Fatalf("stored record\n got: %v\nwant: %v", got, want)
			}
		})
	}
}

// TestMSF_backends runs, on every database, what depends on the database:
// byte-for-byte text, concurrency, ordering and streaming.
func TestMSF_backends(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := mustRunMain(t, map[string]string{"DATABASE_URL": b.url(t)})
			t.Run("1 MiB body with emoji, Japanese, yen and escaped quotes round-trips", func(t *testing.T) {
				unit := `{\"name\":\"接続テスト🚀\",\"price\":\"¥1,000\",\"path\":\"C:\\dir\"} ` + "日本語😀¥\\\"'<>&\t\n"
				text := strings.Repeat(unit, (1<<20)/len(unit)+1)
				in := notification("big1")
				in = edit(in, "request.body", text)
				in = edit(in, "target_clusters.0.response.body", text)
				wantStatus(t, putOp(t, s, "big1", in), 200)
				r, got := getOp(t, s, "big1")
				wantStatus(t, r, 200)
				if got["request"].(map[string]any)["body"] != text {
					t.Fatal("request.body did not round-trip byte for byte")
				}
				cl := got["target_clusters"].([]any)[0].(map[string]any)["response"].(map[string]any)["body"]
				if cl != text {
					t.Fatal("target_clusters[0].response.body did not round-trip byte for byte")
				}
			})
			t.Run("concurrent notifications for one id never interleave", func(t *testing.T) {
				const n = 24
				bodies := make([]doc, n)
				for i := range bodies {
					d := notification("race")
					d["last_update_time"] = fmt.Sprintf("20261123_1016%02d", i%10)
					d["sub_status"] = fmt.Sprintf("writer %d", i)
					clusters := []any{}
					for c := 0; c <= i%4; c++ {
						clusters = append(clusters, doc{"cluster_id": fmt.Sprintf("w%d-c%d", i, c),
							"request": doc{"uri": "/v1/x", "method": "POST", "body": fmt.Sprint(i)}})
					}
					d["target_clusters"] = clusters
					bodies[i] = d
				}
				var wg sync.WaitGroup
				statuses := make([]int, n)
				for i := range bodies {
					wg.Add(1)
					go func() {
						defer wg.Done()
						statuses[i] = putOp(t, s, "race", bodies[i]).status
					}()
				}
				wg.Wait()
				_, got := getOp(t, s, "race")
				matched := false
				for i, st := range statuses {
					if st != 200 && st != 409 {
						t.Fatalf("writer %d: status %d", i, st)
					}
					if st == 200 && reflect.DeepEqual(got, clone(bodies[i])) {
						matched = true
					}
				}
				if !matched {
					t.Fatalf("stored record is not one of the accepted notifications: %v", got)
				}
			})
			t.Run("lists are ordered by occurred_time then id, in byte order", func(t *testing.T) {
				ids := []struct{ id, occurred string }{
					{"list-b", "20250101_000000"}, {"list-B", "20250101_000000"}, {"list-a", "20250101_000000"},
					{"list-0", "20250102_000000"}, {"list-z", "20241231_235959"},
				}
				ctx, c := context.Background(), s.client(t, "")
				for _, x := range ids {
					d := edit(minimal(x.id, "executing", "20250105_000000"), "occurred_time", x.occurred)
					if err := c.PutOperationJSON(ctx, x.id, jsonBody(t, d)); err != nil {
						t.Fatal(err)
					}
				}
				list, err := c.ListOperationIDs(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var mine []string
				for _, id := range list {
					if strings.HasPrefix(id, "list-") {
						mine = append(mine, id)
					}
				}
				want := []string{"list-z", "list-B", "list-a", "list-b", "list-0"}
				if !reflect.DeepEqual(mine, want) {
					t.Fatalf("got %v, want %v", mine, want)
				}
				r := s.do(t, http.MethodGet, "/v1/operations?format=list", nil)
				r2 := s.do(t, http.MethodGet, "/v1/operations", nil)
				if string(r2.body) != string(r.body) {
					t.Fatalf("format=list is not the default: %s", r2.body)
				}
			})
			t.Run("detail-list has every operation without bodies", func(t *testing.T) {
				ctx, c := context.Background(), s.client(t, "")
				if err := c.PutOperationJSON(ctx, "detail1", jsonBody(t, notification("detail1"))); err != nil {
					t.Fatal(err)
				}
				list, err := c.ListOperationDetails(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				var found doc
				for _, op := range list {
					ids = append(ids, op.OperationId)
					if op.OperationId == "detail1" {
						found = asDoc(t, op)
					}
				}
				idList, err := c.ListOperationIDs(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(ids, idList) {
					t.Fatalf("detail-list order %v differs from list %v", ids, idList)
				}
				want := notification("detail1")
				for _, p := range []string{"request.body", "response.body", "target_clusters.0.request.body",
					"target_clusters.0.response.body", "target_clusters.1.request.body"} {
					want = edit(want, p, del)
				}
				want = edit(want, "rollbacks.target_clusters.0", doc{"cluster_id": "1",
					"request": doc{"uri": "/v1/slices/l2vpn/slice-1", "method": "DELETE"}, "response": doc{"status_code": 204}})
				if !reflect.DeepEqual(found, clone(want)) {
					t.Fatalf("detail item\n got: %v\nwant: %v", found, want)
				}
			})
		})
	}
}

func TestMSF_emptyLists(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	for q, want := range map[string]string{"": `{"operation_ids":[]}`, "?format=detail-list": `{"operations":[]}`} {
		r := s.do(t, http.MethodGet, "/v1/operations"+q, nil)
		if r.status != 200 || strings.TrimSpace(string(r.body)) != want {
			t.Fatalf("GET /v1/operations%s: got %s", q, r)
		}
	}
	// The client answers empty lists, not nil, and no error.
	ctx, c := context.Background(), s.client(t, "")
	if ids, err := c.ListOperationIDs(ctx); err != nil || ids == nil || len(ids) != 0 {
		t.Fatalf("ListOperationIDs: %v, %v", ids, err)
	}
	if ops, err := c.ListOperationDetails(ctx); err != nil || ops == nil || len(ops) != 0 {
		t.Fatalf("ListOperationDetails: %v, %v", ops, err)
	}
}

func TestMSF_bodyLimit(t *testing.T) {
	t.Parallel()
	s := mustRunMain(t, nil)
	// padded returns an A1 body of exactly n bytes.
	padded := func(tb testing.TB, n int) []byte {
		d := minimal("big", "executing", "20261123_100000")
		d["request"].(doc)["body"] = ""
		b, _ := json.Marshal(d)
		pad := n - len(b)
		d["request"].(doc)["body"] = strings.Repeat("a", pad)
		b, _ = json.Marshal(d)
		if len(b) != n {
			tb.Fatalf("built %d bytes, want %d", len(b), n)
		}
		return b
	}
	t.Run("exactly 4 MiB is accepted", func(t *testing.T) {
		wantStatus(t, putOp(t, s, "big", padded(t, 4<<20)), 200)
	})
	t.Run("4 MiB and one byte is 413", func(t *testing.T) {
		wantMSFError(t, putOp(t, s, "big", padded(t, 4<<20+1)), 413, "010003", "body")
	})
	t.Run("chunked bodies are counted the same way", func(t *testing.T) {
		for n, want := range map[int]int{4 << 20: 200, 4<<20 + 1: 413} {
			req, err := http.NewRequest(http.MethodPut, s.URL+"/v1/operations/big", struct{ io.Reader }{bytes.NewReader(padded(t, n))})
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if req.ContentLength != 0 {
				t.Fatalf("length is known (%d): the body would not be sent chunked", req.ContentLength)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			spectest.Check(t, req, resp, body)
			if resp.StatusCode != want {
				t.Fatalf("%d bytes chunked: got %d %s", n, resp.StatusCode, body)
			}
		}
	})
}
