package store

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkStore_lists reads whole lists of 10,000 operations on SQLite,
// through the keyset loop every list shares:
//
//	go test -run '^$' -bench Store_lists -benchmem ./store/
func BenchmarkStore_lists(b *testing.B) {
	s := mustOpenDSN(b, newSQLiteDSN(b), Options{})
	ctx := context.Background()
	for i := range 10000 {
		op := newOperation(fmt.Sprintf("op-%05d", i))
		op.OccurredTime = at(i / 7)
		mustPutOperation(b, s, op)
		_, _, err := s.PutICCOperation(ctx, ICCOperation{ID: fmt.Sprintf("icc-%05d", i), TenantID: "t", ConnectionID: fmt.Sprintf("c%d", i%100),
			OrderType: "Create", Phase: "prepare_connection", OperationStatus: "complete",
			ReceptionDatetime: at(i / 3), RequestBody: []byte(`{"connection":{"name":"hoge"}}`)})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("icc", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := s.ListICCOperations(ctx, ICCFilter{TenantID: "t"}, func(ICCOperation) error { n++; return nil }); err != nil || n != 10000 {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("msf ids", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := s.ListOperationIDs(ctx, func(string) error { n++; return nil }); err != nil || n != 10000 {
				b.Fatal(n, err)
			}
		}
	})
}
