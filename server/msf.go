package server

import (
	"context"
	"net/http"
	"time"

	"example.com/opsvc/gen"
	"example.com/opsvc/store"
)

// PutOperation records an operation result notification (A1).
func (s *Server) PutOperation(ctx context.Context, req gen.PutOperationRequestObject) (gen.PutOperationResponseObject, error) {
	if req.Body == nil {
		return nil, &FieldError{Field: "body", Reason: "is required"}
	}
	if err := checkOperation(req.OperationId, req.Body); err != nil {
		return nil, err
	}
	op, err := operationFromGen(*req.Body)
	if err != nil {
		return nil, err
	}
	repeat, err := s.store.PutOperation(ctx, op)
	if err != nil {
		return nil, dbErr(err)
	}
	if repeat {
		s.metrics.writes[familyMSF][outcomeRepeat].Inc()
	} else {
		s.metrics.writes[familyMSF][outcomeAccepted].Inc()
	}
	return gen.PutOperation200Response{}, nil
}

// GetOperation answers one stored operation (A3).
func (s *Server) GetOperation(ctx context.Context, req gen.GetOperationRequestObject) (gen.GetOperationResponseObject, error) {
	op, err := s.store.GetOperation(ctx, req.OperationId)
	if err != nil {
		return nil, dbErr(err)
	}
	return operationAnswer(operationToGen(op)), nil
}

// ListOperations answers the operation ids or the operations without bodies
// (A2), streamed.
func (s *Server) ListOperations(ctx context.Context, req gen.ListOperationsRequestObject) (gen.ListOperationsResponseObject, error) {
	if req.Params.Format != nil && *req.Params.Format == gen.ListOperationsParamsFormatDetailList {
		return operationDetailList{ctx: ctx, store: s.store, writeTimeout: s.streamWriteTimeout}, nil
	}
	return operationIDList{ctx: ctx, store: s.store, writeTimeout: s.streamWriteTimeout}, nil
}

// operationIDList streams {"operation_ids": [...]}.
type operationIDList struct {
	ctx          context.Context
	store        Store
	writeTimeout time.Duration
}

func (l operationIDList) VisitListOperationsResponse(w http.ResponseWriter) error {
	st := newJSONStream(w, "operation_ids", l.writeTimeout)
	err := l.store.ListOperationIDs(l.ctx, func(id string) error { return st.add(id) })
	return st.finish(dbErr(err))
}

// operationDetailList streams {"operations": [...]} without body strings.
type operationDetailList struct {
	ctx          context.Context
	store        Store
	writeTimeout time.Duration
}

func (l operationDetailList) VisitListOperationsResponse(w http.ResponseWriter) error {
	st := newJSONStream(w, "operations", l.writeTimeout)
	err := l.store.ListOperations(l.ctx, func(op store.Operation) error {
		return st.add(operationSummaryToGen(op))
	})
	return st.finish(dbErr(err))
}
