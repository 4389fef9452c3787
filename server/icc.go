package server

import (
	"context"
	"net/http"

	"example.com/opsvc/gen"
	"example.com/opsvc/store"
)

// ListICCOperations answers the connection operation history of the token's
// tenant, or of every tenant for an admin (B1), streamed.
func (s *Server) ListICCOperations(ctx context.Context, req gen.ListICCOperationsRequestObject) (gen.ListICCOperationsResponseObject, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return nil, ErrUnauthenticated
	}
	f := store.ICCFilter{TenantID: p.TenantID, AllTenants: p.IsAdmin()}
	q := req.Params
	if q.ConnectionId != nil {
		f.ConnectionID = q.ConnectionId.String() // lower case, as stored
	}
	if q.OrderType != nil {
		f.OrderType = string(*q.OrderType)
	}
	if q.Phase != nil {
		f.Phase = string(*q.Phase)
	}
	if q.OperationStatus != nil {
		f.OperationStatus = string(*q.OperationStatus)
	}
	f.Latest = q.Latest != nil && *q.Latest == gen.True
	return iccOperationList{ctx: ctx, store: s.store, filter: f}, nil
}

// iccOperationList streams {"operations": [...]}.
type iccOperationList struct {
	ctx    context.Context
	store  Store
	filter store.ICCFilter
}

func (l iccOperationList) VisitListICCOperationsResponse(w http.ResponseWriter) error {
	st := newJSONStream(w, "operations")
	err := l.store.ListICCOperations(l.ctx, l.filter, func(op store.ICCOperation) error {
		item, err := iccOperationToGen(op)
		if err != nil {
			return err
		}
		return st.add(item)
	})
	return st.finish(dbErr(err))
}

// PutICCOperation records a connection operation (B2): 201 when created,
// 200 when replaced, with the stored item.
func (s *Server) PutICCOperation(ctx context.Context, req gen.PutICCOperationRequestObject) (gen.PutICCOperationResponseObject, error) {
	if req.Body == nil {
		return nil, &FieldError{Field: "body", Reason: "is required"}
	}
	if err := checkICCOperation(req.Body); err != nil {
		return nil, err
	}
	op, err := iccOperationFromGen(req.OperationId, *req.Body)
	if err != nil {
		return nil, err
	}
	stored, created, err := s.store.PutICCOperation(ctx, op)
	if err != nil {
		return nil, dbErr(err)
	}
	rec, err := iccRecordToGen(stored)
	if err != nil {
		return nil, err
	}
	if created {
		return gen.PutICCOperation201JSONResponse(rec), nil
	}
	return gen.PutICCOperation200JSONResponse(rec), nil
}
