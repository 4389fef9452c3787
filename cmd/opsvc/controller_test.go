package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestMSF_realController replays testdata/msf/, notifications in the shapes
// the published MSF controller sends (pretty-printed, Gson's escapes, a
// canceled one without status_code, cluster responses {} and
// {"status_code": 202}, reservation_time and start_time), in file name
// order. Every one is accepted, and each operation reads back exactly as last
// notified, bodies byte for byte (A3), and without bodies in detail-list (A2).
func TestMSF_realController(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "msf", "*.json"))
	if err != nil || len(files) < 6 {
		t.Fatalf("testdata/msf: %d files, %v", len(files), err)
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := mustRunMain(t, map[string]string{"DATABASE_URL": b.url(t)})
			last := map[string]doc{}
			var order []string
			for _, f := range files {
				raw, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				var d doc
				if err := json.Unmarshal(raw, &d); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				id := d["operation_id"].(string)
				// The bytes of the file, as the controller sends them: no auth
				// header, application/json without a charset.
				r := s.do(t, http.MethodPut, "/v1/operations/"+id, raw)
				if r.status != http.StatusOK || len(r.body) != 0 {
					t.Fatalf("%s: got %s, want 200 with an empty body", filepath.Base(f), r)
				}
				if _, seen := last[id]; !seen {
					order = append(order, id)
				}
				last[id] = d
			}
			for _, id := range order {
				r, got := getOp(t, s, id)
				wantStatus(t, r, http.StatusOK)
				if !reflect.DeepEqual(got, last[id]) {
					t.Errorf("A3 %s\n got: %s\nwant: %v", id, r.body, last[id])
				}
			}
			r := s.do(t, http.MethodGet, "/v1/operations?format=detail-list", nil)
			wantStatus(t, r, http.StatusOK)
			var list struct{ Operations []doc }
			if err := json.Unmarshal(r.body, &list); err != nil {
				t.Fatal(err)
			}
			byID := map[string]doc{}
			for _, op := range list.Operations {
				byID[op["operation_id"].(string)] = op
			}
			for _, id := range order {
				if want := withoutBodies(last[id]); !reflect.DeepEqual(byID[id], want) {
					t.Errorf("detail-list %s\n got: %v\nwant: %v", id, byID[id], want)
				}
			}
		})
	}
}

// withoutBodies is a copy of an A1 document without any "body" member, as
// detail-list answers it.
func withoutBodies(d doc) doc {
	var strip func(v any) any
	strip = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			out := doc{}
			for k, x := range v {
				if k != "body" {
					out[k] = strip(x)
				}
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, x := range v {
				out[i] = strip(x)
			}
			return out
		}
		return v
	}
	return strip(d).(doc)
}
