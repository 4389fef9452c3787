package server

import (
	"context"

	"example.com/opsvc/store"
)

// Store is what the handlers need from persistence. *store.Store implements
// it; tests may inject a fake to provoke failures (a database that is down).
type Store interface {
	Ping(ctx context.Context) error
	PutOperation(ctx context.Context, op store.Operation) (repeat bool, err error)
	GetOperation(ctx context.Context, id string) (store.Operation, error)
	ListOperationIDs(ctx context.Context, fn func(id string) error) error
	ListOperations(ctx context.Context, fn func(store.Operation) error) error
	PutICCOperation(ctx context.Context, op store.ICCOperation) (stored store.ICCOperation, w store.Write, err error)
	ListICCOperations(ctx context.Context, f store.ICCFilter, fn func(store.ICCOperation) error) error
}
