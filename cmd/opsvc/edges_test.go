package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Inputs that MySQL and SQLite used to treat differently, or that came back
// altered: each is now refused at the edge, the same way on both databases,
// naming the field, and nothing is stored.
func TestEdges_sameOnEveryDatabase(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := mustRunMain(t, map[string]string{"DATABASE_URL": b.url(t)})
			msf := []struct {
				name  string
				body  any
				code  string
				field string
			}{
				{"year 0000", edit(notification("e1"), "occurred_time", "00000101_000000"), "010002", "occurred_time"},
				{"year 0999", edit(notification("e1"), "last_update_time", "09991231_235959"), "010002", "last_update_time"},
				{"rollback in year 0000", edit(notification("e1"), "rollbacks.occurred_time", "00000101 000000"), "010002", "rollbacks.occurred_time"},
				{"cluster_id of spaces", edit(notification("e1"), "target_clusters.0.cluster_id", "   "), "010002", "target_clusters[0].cluster_id"},
				{"cluster_id with a trailing space", edit(notification("e1"), "target_clusters.1.cluster_id", "2 "), "010002", "target_clusters[1].cluster_id"},
				{"raw 0xFF", strings.Replace(mustJSON(t, notification("e1")), `{\"slice_id\"`, "{\xff\\\"slice_id\\\"", 1), "010001", "request.body"},
				{"overlong encoding", strings.Replace(mustJSON(t, notification("e1")), "cluster 2 refused", "cluster \xc0\xaf refused", 1), "010001", "sub_status"},
				{"CESU-8 surrogate", strings.Replace(mustJSON(t, notification("e1")), "cluster 2 refused", "cluster \xed\xa0\x80 refused", 1), "010001", "sub_status"},
				{"lone high surrogate", strings.Replace(mustJSON(t, notification("e1")), "cluster 2 refused", `cluster \ud800 refused`, 1), "010001", "sub_status"},
				{"lone low surrogate in a cluster body", strings.Replace(mustJSON(t, notification("e1")), `"body":"{}"`, `"body":"\udc00"`, 1), "010001", "target_clusters[0].request.body"},
				{"reversed pair", strings.Replace(mustJSON(t, notification("e1")), "cluster 2 refused", `\ude00\ud83d`, 1), "010001", "sub_status"},
				{"invalid member name", strings.Replace(mustJSON(t, notification("e1")), `"sub_status"`, "\"sub\xffstatus\"", 1), "010001", "sub\ufffdstatus"},
				{"nested deeper than 32", strings.Replace(mustJSON(t, notification("e1")), `"status":"failed"`, `"status":"failed","x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40), 1), "010002", "body"},
			}
			for _, tt := range msf {
				t.Run("A1 "+tt.name, func(t *testing.T) {
					wantMSFError(t, putOp(t, s, "e1", tt.body), 400, tt.code, tt.field)
				})
			}
			t.Run("A1 nothing refused was stored", func(t *testing.T) {
				r, _ := getOp(t, s, "e1")
				wantMSFError(t, r, 404, "030001", "operation_id")
			})
			t.Run("A1 a surrogate pair and year 1000 are stored exactly", func(t *testing.T) {
				body := strings.Replace(mustJSON(t, notification("e2")), "cluster 2 refused", `rocket \ud83d\ude80 \\ud800 done`, 1)
				body = strings.Replace(body, "20261123_101500", "10000101_000000", 1)
				wantStatus(t, putOp(t, s, "e2", body), 200)
				_, got := getOp(t, s, "e2")
				if got["sub_status"] != `rocket 🚀 \ud800 done` || got["occurred_time"] != "10000101_000000" {
					t.Fatalf("got %v %v", got["sub_status"], got["occurred_time"])
				}
			})

			icc := []struct {
				name, field string
				body        any
			}{
				{"year 0000", "reception_datetime", edit(iccOp(connA1, tenantA, "prepare_connection", "complete", "2026-11-23 10:00:00"), "reception_datetime", "0000-01-01 00:00:00")},
				{"commit in year 0000", "commit_datetime", edit(iccOp(connA1, tenantA, "prepare_connection", "complete", "2026-11-23 10:00:00"), "commit_datetime", "0000-01-01 00:00:00")},
				{"tenant with trailing spaces", "tenant_id", iccOp(connA1, tenantA+"  ", "prepare_connection", "processing", "2026-11-23 10:00:00")},
				{"tenant with a leading space", "tenant_id", iccOp(connA1, " "+tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00")},
				{"lone surrogate in request_body", "request_body.connection.name",
					strings.Replace(mustJSON(t, iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00")), `"hoge"`, `"ho\ud800ge"`, 1)},
				{"raw 0xFF in request_body", "request_body.connection.name",
					strings.Replace(mustJSON(t, iccOp(connA1, tenantA, "prepare_connection", "processing", "2026-11-23 10:00:00")), `"hoge"`, "\"ho\xffge\"", 1)},
			}
			for _, tt := range icc {
				t.Run("B2 "+tt.name, func(t *testing.T) {
					wantICCError(t, putICC(t, s, "e3", tt.body, adminToken), 400, tt.field)
				})
			}
			t.Run("B2 nothing refused was stored", func(t *testing.T) {
				r := s.do(t, http.MethodGet, "/v2.0/operations/e3", nil, "X-Auth-Token", adminToken)
				wantStatus(t, r, 404)
			})
		})
	}
}

// mustJSON is d as JSON text, for tests that edit the text itself.
func mustJSON(tb testing.TB, d doc) string {
	tb.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
