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
	PageOperationIDs(ctx context.Context, p store.Page, fn func(id string) error) (*store.Cursor, error)
	PageOperations(ctx context.Context, p store.Page, fn func(store.Operation) error) (*store.Cursor, error)
	DeleteOperation(ctx context.Context, id string) error
	PutICCOperation(ctx context.Context, op store.ICCOperation) (stored store.ICCOperation, w store.Write, err error)
	PageICCOperations(ctx context.Context, f store.ICCFilter, p store.Page, fn func(store.ICCOperation) error) (*store.Cursor, error)
	DeleteICCOperation(ctx context.Context, id string) error
	Finished(ctx context.Context, msf, icc []string) (doneMSF, doneICC []string, err error)
}
