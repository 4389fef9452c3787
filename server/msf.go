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
	if msfTerminal(op) {
		s.waiters.done(waitKey{id: op.ID})
	}
	return gen.PutOperation200Response{}, nil
}

// msfTerminal reports whether op's status never changes again.
func msfTerminal(op store.Operation) bool {
	switch op.Status {
	case "completed", "failed", "canceled":
		return true
	}
	return false
}

// GetOperation answers one stored operation (A3), once terminal when the
// request asks to wait, with its ETag (304 when If-None-Match holds it) and,
// while not terminal, Retry-After.
func (s *Server) GetOperation(ctx context.Context, req gen.GetOperationRequestObject) (gen.GetOperationResponseObject, error) {
	wait, err := parseWait(req.Params.Wait)
	if err != nil {
		return nil, err
	}
	read := func(ctx context.Context) (store.Operation, error) { return s.store.GetOperation(ctx, req.OperationId) }
	op, err := await(ctx, s.waiters, waitKey{id: req.OperationId}, wait, read, msfTerminal)
	if err != nil {
		return nil, dbErr(err)
	}
	return recordAnswer{record: operationToGen(op), ifNoneMatch: req.Params.IfNoneMatch, running: !msfTerminal(op)}, nil
}

// DeleteOperation removes one operation (issue 9): 204, or 404 when unknown.
func (s *Server) DeleteOperation(ctx context.Context, req gen.DeleteOperationRequestObject) (gen.DeleteOperationResponseObject, error) {
	if err := s.store.DeleteOperation(ctx, req.OperationId); err != nil {
		return nil, dbErr(err)
	}
	s.waiters.done(waitKey{id: req.OperationId})
	return gen.DeleteOperation204Response{}, nil
}

// ListOperations answers the operation ids or the operations without bodies
// (A2), streamed; with limit, one page.
func (s *Server) ListOperations(ctx context.Context, req gen.ListOperationsRequestObject) (gen.ListOperationsResponseObject, error) {
	detail := req.Params.Format != nil && *req.Params.Format == gen.ListOperationsParamsFormatDetailList
	binding := "A2 list"
	if detail {
		binding = "A2 detail-list"
	}
	page, err := pageOf(binding, req.Params.Limit, req.Params.PageToken)
	if err != nil {
		return nil, err
	}
	l := operationList{ctx: ctx, store: s.store, page: page, pager: pager{binding, requestURLFrom(ctx)},
		writeTimeout: s.streamWriteTimeout, detail: detail}
	return l, nil
}

// operationList streams {"operation_ids": [...]}, or with detail
// {"operations": [...]} without body strings.
type operationList struct {
	ctx          context.Context
	store        Store
	page         store.Page
	pager        pager
	writeTimeout time.Duration
	detail       bool
}

func (l operationList) VisitListOperationsResponse(w http.ResponseWriter) error {
	var st *jsonStream
	var next *store.Cursor
	var err error
	if l.detail {
		st = newJSONStream(w, "operations", l.writeTimeout)
		st.hold = l.page.Limit > 0
		next, err = l.store.PageOperations(l.ctx, l.page, func(op store.Operation) error {
			return st.add(operationSummaryToGen(op))
		})
	} else {
		st = newJSONStream(w, "operation_ids", l.writeTimeout)
		st.hold = l.page.Limit > 0
		next, err = l.store.PageOperationIDs(l.ctx, l.page, func(id string) error { return st.add(id) })
	}
	return st.finishPage(dbErr(err), l.pager, next)
}
