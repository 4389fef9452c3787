package server

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"example.com/opsvc/store"
)

// encodeLikeJSON is what encoding/json writes for v, as the lists did before
// they encoded items by hand.
func encodeLikeJSON(t *testing.T, v any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func TestAppendICCItem(t *testing.T) {
	commit := time.Date(2016, 12, 27, 8, 39, 55, 0, time.UTC)
	base := store.ICCOperation{
		ID:                "op-1",
		ConnectionID:      "a80c1728-cc0c-11e6-8080-525400060300",
		TenantID:          "39852f6f42a74d2b82f7099f78d0393a",
		OrderType:         "Create",
		Phase:             "approve_connection",
		OperationStatus:   "complete",
		ReceptionDatetime: time.Date(2016, 12, 27, 8, 15, 41, 0, time.UTC),
		CommitDatetime:    &commit,
		RequestBody:       []byte(`{"connection":{"name":"hoge","n":1.50,"s":"<&>\u2028"}}`),
		ResourceType:      "aws_connection",
	}
	tests := []struct {
		name   string
		modify func(*store.ICCOperation)
	}{
		{"complete", func(*store.ICCOperation) {}},
		{"processing, no commit", func(op *store.ICCOperation) { op.OperationStatus, op.CommitDatetime = "processing", nil }},
		{"an error object", func(op *store.ICCOperation) {
			op.OperationStatus, op.Error = "error", []byte(`{"code":"E1","detail":{"a":[1,2]}}`)
		}},
		{"tenant_connection_request", func(op *store.ICCOperation) { op.ResourceType = "tenant_connection_request" }},
		{"tenant_connection", func(op *store.ICCOperation) { op.ResourceType = "tenant_connection" }},
		{"a tenant id that needs escaping", func(op *store.ICCOperation) {
			op.TenantID = "q\"b\\s/<&>\x01\x1f\t\n\r\b\f é 接続 😀 \u2028\u2029 \xff\xfe end"
		}},
		{"a reception time not in UTC", func(op *store.ICCOperation) {
			op.ReceptionDatetime = op.ReceptionDatetime.In(time.FixedZone("JST", 9*3600))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := base
			tt.modify(&op)
			item, err := iccOperationToGen(op)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(appendICCItem(nil, op)), encodeLikeJSON(t, item); got != want {
				t.Errorf("B1 item\n got: %s\nwant: %s", got, want)
			}
			v2, err := iccOperationToV2(op)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(appendICCItemV2(nil, op)), encodeLikeJSON(t, v2); got != want {
				t.Errorf("B3 item\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func BenchmarkAppendICCItem(b *testing.B) {
	op := store.ICCOperation{
		ID: "op-1", ConnectionID: "a80c1728-cc0c-11e6-8080-525400060300", TenantID: "39852f6f42a74d2b82f7099f78d0393a",
		OrderType: "Create", Phase: "approve_connection", OperationStatus: "processing",
		ReceptionDatetime: time.Date(2016, 12, 27, 8, 15, 41, 0, time.UTC),
		RequestBody:       bytes.Repeat([]byte(`{"connection":{"name":"hoge"}}`), 1),
	}
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		buf = appendICCItem(buf[:0], op)
	}
}
