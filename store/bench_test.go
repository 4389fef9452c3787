package store

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// Benchmarks of the A1 write on every backend (MariaDB/MySQL with
// TEST_MYSQL_DSN):
//
//	TEST_MYSQL_DSN=mysql://root:@127.0.0.1:3306/test go test -run '^$' -bench PutOperationWorkload -benchmem ./store/
//
// (BenchmarkStore_PutOperation, in msf_test.go, replaces 100 ids on SQLite.)
// The notification is the one cmd/opsbench sends: 3,300 bytes of body
// strings, two target clusters and a rollback with one cluster. Calls
// alternate: a new id (executing), then an update of it (completed).

func benchBody(n int) *string {
	const head, tail = `{"remark":"¥ 接続","pad":"`, `"}`
	s := head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	return &s
}

func benchOperation(id string, update bool) Operation {
	op := Operation{
		ID:             id,
		OccurredTime:   at(0),
		LastUpdateTime: at(0),
		Status:         "executing",
		Request:        Request{URI: "/v1/slices/l2vpn/" + id, Method: "POST", Body: benchBody(1000)},
		Response:       &Response{StatusCode: ptr(201), Body: benchBody(500)},
	}
	if update {
		op.Status, op.LastUpdateTime = "completed", at(1)
	}
	cluster := func(n, method string, req, resp int) Cluster {
		return Cluster{
			ClusterID: n,
			Request:   Request{URI: "/v1/clusters/" + n + "/slices/" + id, Method: method, Body: benchBody(req)},
			Response:  &Response{StatusCode: ptr(202), Body: benchBody(resp)},
		}
	}
	op.TargetClusters = []Cluster{cluster("1", "PUT", 500, 150), cluster("2", "PUT", 500, 150)}
	op.Rollbacks = &Rollbacks{Result: "completed", OccurredTime: at(0), TargetClusters: []Cluster{cluster("1", "DELETE", 400, 100)}}
	return op
}

func BenchmarkStore_PutOperationWorkload(b *testing.B) {
	for _, be := range testBackends {
		b.Run(be.name, func(b *testing.B) {
			if be.missing != "" {
				b.Skipf("skipping the %s backend: %s", be.name, be.missing)
			}
			for _, subscribers := range []int{0, 1} {
				name := "no subscriber"
				if subscribers > 0 {
					name = "1 subscriber (operation.terminal)"
				}
				b.Run(name, func(b *testing.B) { benchPutWorkload(b, be, subscribers) })
			}
		})
	}
}

// benchRuns numbers the calls of the benchmark functions, whose ids must
// not meet those of an earlier call on the same store.
var benchRuns atomic.Int64

// benchPutWorkload is the A1 workload on a fresh store with that many
// subscribers of operation.terminal: with one, every second write (the
// completed one) also writes an event to the outbox, in one transaction.
func benchPutWorkload(b *testing.B, be backend, subscribers int) {
	s := mustOpen(b, be, Options{})
	for range subscribers {
		_, err := s.CreateSubscription(context.Background(), Subscription{
			URL: "https://receiver.example/hook", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=",
			Events: []string{EventOperationTerminal},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("one writer", func(b *testing.B) {
		// Each call of this function (-count, b.N rounds) has ids of its own.
		run := benchRuns.Add(1)
		i := 0
		for b.Loop() {
			mustPutOperation(b, s, benchOperation(fmt.Sprintf("serial-%d-%d", run, i/2), i%2 == 1))
			i++
		}
	})
	// As many writers as opsbench's connections. On SQLite the one
	// connection serializes them.
	b.Run("32 writers", func(b *testing.B) {
		b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
		var writers atomic.Int64
		run := benchRuns.Add(1)
		b.RunParallel(func(pb *testing.PB) {
			w := writers.Add(1)
			for i := 0; pb.Next(); i++ {
				op := benchOperation(fmt.Sprintf("parallel-%d-%d-%d", run, w, i/2), i%2 == 1)
				if _, err := s.PutOperation(context.Background(), op); err != nil {
					b.Error(err) // not Fatal: this is not the benchmark's goroutine
					return
				}
			}
		})
	})
}
