package main

import (
	"fmt"
	"net/http"
	"testing"
)

// Benchmarks over real HTTP on the embedded SQLite default:
//
//	go test -run '^$' -bench . -benchtime 2000x ./cmd/opsvc/

func BenchmarkPutOperation(b *testing.B) {
	s := mustRunMain(b, nil)
	body := notification("x")
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("bench-%d", i)
		body["operation_id"] = id
		if r := putOp(b, s, id, body); r.status != http.StatusOK {
			b.Fatal(r)
		}
		i++
	}
}

func BenchmarkListICCOperations(b *testing.B) {
	s := mustRunMain(b, nil)
	for i := range 1000 {
		op := iccOp(connA1, tenantA, "update_connection", "processing", fmt.Sprintf("2026-11-23 10:%02d:%02d", i/60%60, i%60))
		if r := putICC(b, s, fmt.Sprintf("b%d", i), op, adminToken); r.status != http.StatusCreated {
			b.Fatal(r)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if ids := listICC(b, s, "?operation_status=processing", tokenA); len(ids) != 1000 {
			b.Fatalf("%d operations", len(ids))
		}
	}
}
