package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"example.com/opsvc/gen"
	"example.com/opsvc/store"
)

// ListICCOperations answers the connection operation history of the token's
// tenant, or of every tenant for an admin (B1), streamed.
func (s *Server) ListICCOperations(ctx context.Context, req gen.ListICCOperationsRequestObject) (gen.ListICCOperationsResponseObject, error) {
	f, err := tenantFilter(ctx)
	if err != nil {
		return nil, err
	}
	q := req.Params
	f.ConnectionID = uuidValue(q.ConnectionId)
	f.OrderType = value(q.OrderType)
	f.Phase = value(q.Phase)
	f.OperationStatus = value(q.OperationStatus)
	f.Latest = value(q.Latest) == "true"
	pg := pager{iccBinding("B1", f), requestURLFrom(ctx)}
	page, err := pageOf(pg.binding, q.Limit, q.PageToken)
	if err != nil {
		return nil, err
	}
	return iccOperationList{ctx: ctx, store: s.store, filter: f, page: page, pager: pg, writeTimeout: s.streamWriteTimeout}, nil
}

// iccBinding is what a page token of an ICC list is bound to: the list and
// its whole filter, the caller's tenant scope included.
func iccBinding(list string, f store.ICCFilter) string {
	return fmt.Sprintf("%s %q", list, fmt.Sprintf("%+v", f))
}

// tenantFilter is the filter that scopes a list to what the caller may see:
// the token's tenant, or every tenant for an admin.
func tenantFilter(ctx context.Context) (store.ICCFilter, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return store.ICCFilter{}, ErrUnauthenticated
	}
	return store.ICCFilter{TenantID: p.TenantID, AllTenants: p.IsAdmin()}, nil
}

// iccOperationList streams {"operations": [...]}.
type iccOperationList struct {
	ctx          context.Context
	store        Store
	filter       store.ICCFilter
	page         store.Page
	pager        pager
	writeTimeout time.Duration
}

func (l iccOperationList) VisitListICCOperationsResponse(w http.ResponseWriter) error {
	st := newJSONStream(w, "operations", l.writeTimeout)
	st.hold = l.page.Limit > 0
	next, err := l.store.PageICCOperations(l.ctx, l.filter, l.page, func(op store.ICCOperation) error {
		return st.addJSON(func(b []byte) []byte { return appendICCItem(b, op) })
	})
	return st.finishPage(dbErr(err), l.pager, next)
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
	stored, w, err := s.store.PutICCOperation(ctx, op)
	if err != nil {
		return nil, dbErr(err)
	}
	if w == store.Repeated {
		s.metrics.writes[familyICC][outcomeRepeat].Inc()
	} else {
		s.metrics.writes[familyICC][outcomeAccepted].Inc()
	}
	if iccTerminal(stored) {
		s.waiters.done(waitKey{icc: true, id: stored.ID})
	}
	rec, err := iccRecordToGen(stored)
	if err != nil {
		return nil, err
	}
	if w == store.Created {
		return iccRecordAnswer{http.StatusCreated, rec}, nil
	}
	return iccRecordAnswer{http.StatusOK, rec}, nil
}

// ListICCOperationsV2 answers the same history in ICC API v2.0's shape (B3),
// with B1's scoping, order and latest rule, streamed.
func (s *Server) ListICCOperationsV2(ctx context.Context, req gen.ListICCOperationsV2RequestObject) (gen.ListICCOperationsV2ResponseObject, error) {
	f, err := tenantFilter(ctx)
	if err != nil {
		return nil, err
	}
	q := req.Params
	f.ID = value(q.Id)
	f.ConnectionID = uuidValue(q.ResourceId)
	f.OrderType = value(q.RequestType)
	f.Phase = value(q.Phase)
	f.OperationStatus = value(q.OperationStatus)
	f.ResourceType = value(q.ResourceType)
	f.Latest = value(q.Latest) == "true"
	exclusive := false
	if q.ServiceType != nil {
		// Each service type has one resource type.
		rt := string(resourceTypeOf(*q.ServiceType))
		exclusive = f.ResourceType != "" && f.ResourceType != rt
		f.ResourceType = rt
	}
	pg := pager{iccBinding("B3", f), requestURLFrom(ctx)}
	page, err := pageOf(pg.binding, q.Limit, q.PageToken)
	if err != nil {
		return nil, err
	}
	if exclusive {
		return iccOperationV2List{}, nil // the two filters exclude each other
	}
	return iccOperationV2List{ctx: ctx, store: s.store, filter: f, page: page, pager: pg, writeTimeout: s.streamWriteTimeout}, nil
}

// value is a query parameter's value, "" (any, to a filter) when absent.
func value[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}

// uuidValue is a UUID parameter in lower case, as ids are stored.
func uuidValue(p *openapi_types.UUID) string {
	if p == nil {
		return ""
	}
	return p.String()
}

// iccOperationV2List streams {"operations": [...]} in the v2.0 shape. Its
// zero value is the empty list.
type iccOperationV2List struct {
	ctx          context.Context
	store        Store
	filter       store.ICCFilter
	page         store.Page
	pager        pager
	writeTimeout time.Duration
}

func (l iccOperationV2List) VisitListICCOperationsV2Response(w http.ResponseWriter) error {
	st := newJSONStream(w, "operations", l.writeTimeout)
	if l.store == nil {
		return st.finish(nil)
	}
	st.hold = l.page.Limit > 0
	next, err := l.store.PageICCOperations(l.ctx, l.filter, l.page, func(op store.ICCOperation) error {
		return st.addJSON(func(b []byte) []byte { return appendICCItemV2(b, op) })
	})
	return st.finishPage(dbErr(err), l.pager, next)
}

// GetICCOperationV2 answers one operation in the v2.0 shape (B3 show), once
// terminal when the request asks to wait, with its ETag (304 when
// If-None-Match holds it) and, while not terminal, Retry-After. An id of
// another tenant is answered 404 like an unknown one, so that ids are never
// revealed across tenants.
func (s *Server) GetICCOperationV2(ctx context.Context, req gen.GetICCOperationV2RequestObject) (gen.GetICCOperationV2ResponseObject, error) {
	f, err := tenantFilter(ctx)
	if err != nil {
		return nil, err
	}
	wait, err := parseWait(req.Params.Wait)
	if err != nil {
		return nil, err
	}
	f.ID = req.OperationId
	read := func(ctx context.Context) (store.ICCOperation, error) {
		var found *store.ICCOperation
		_, err := s.store.PageICCOperations(ctx, f, store.Page{}, func(op store.ICCOperation) error {
			found = &op
			return nil
		})
		if err == nil && found == nil {
			err = store.ErrNotFound
		}
		if err != nil {
			return store.ICCOperation{}, err
		}
		return *found, nil
	}
	op, err := await(ctx, s.waiters, waitKey{icc: true, id: req.OperationId}, wait, read, iccTerminal)
	if err != nil {
		return nil, dbErr(err)
	}
	item, err := iccOperationToV2(op)
	if err != nil {
		return nil, err
	}
	return recordAnswer{record: gen.ICCOperationV2Show{Operation: item}, ifNoneMatch: req.Params.IfNoneMatch, running: !iccTerminal(op)}, nil
}

// iccTerminal reports whether op's status never changes again.
func iccTerminal(op store.ICCOperation) bool {
	return op.OperationStatus == "complete" || op.OperationStatus == "error"
}

// DeleteICCOperationV2 removes one operation (issue 9; admin only): 204, or
// 404 when unknown.
func (s *Server) DeleteICCOperationV2(ctx context.Context, req gen.DeleteICCOperationV2RequestObject) (gen.DeleteICCOperationV2ResponseObject, error) {
	if _, err := tenantFilter(ctx); err != nil {
		return nil, err
	}
	if err := s.store.DeleteICCOperation(ctx, req.OperationId); err != nil {
		return nil, dbErr(err)
	}
	s.waiters.done(waitKey{icc: true, id: req.OperationId})
	return gen.DeleteICCOperationV2204Response{}, nil
}
