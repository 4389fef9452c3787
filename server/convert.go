package server

import (
	"bytes"
	"encoding/json"
	"fmt"

	"example.com/opsvc/gen"
	"example.com/opsvc/store"
)

// This file converts between the generated API types and the store's
// records, and does nothing else.

// operationFromGen converts an A1 body. Its only refusals are times that are
// not real dates (010002).
func operationFromGen(in gen.Operation) (store.Operation, error) {
	var err error
	out := store.Operation{
		ID:        in.OperationId,
		Status:    string(in.Status),
		SubStatus: in.SubStatus,
		Request:   requestFromGen(in.Request.Uri, in.Request.Method, &in.Request.Body),
	}
	if out.OccurredTime, err = parseMSFTime("occurred_time", in.OccurredTime); err != nil {
		return store.Operation{}, err
	}
	if out.LastUpdateTime, err = parseMSFTime("last_update_time", in.LastUpdateTime); err != nil {
		return store.Operation{}, err
	}
	if out.ReservationTime, err = parseOptionalMSFTime("reservation_time", in.ReservationTime); err != nil {
		return store.Operation{}, err
	}
	if out.StartTime, err = parseOptionalMSFTime("start_time", in.StartTime); err != nil {
		return store.Operation{}, err
	}
	if in.Response != nil {
		out.Response = &store.Response{StatusCode: in.Response.StatusCode, Body: in.Response.Body}
	}
	if in.TargetClusters != nil {
		out.TargetClusters = make([]store.Cluster, 0, len(*in.TargetClusters))
		for _, c := range *in.TargetClusters {
			out.TargetClusters = append(out.TargetClusters, store.Cluster{
				ClusterID: c.ClusterId,
				Request:   requestFromGen(c.Request.Uri, c.Request.Method, &c.Request.Body),
				Response:  clusterResponseFromGen(c.Response),
			})
		}
	}
	if rb := in.Rollbacks; rb != nil {
		out.Rollbacks = &store.Rollbacks{Result: string(rb.Result)}
		if out.Rollbacks.OccurredTime, err = parseMSFTime("rollbacks.occurred_time", rb.OccurredTime); err != nil {
			return store.Operation{}, err
		}
		if rb.TargetClusters != nil {
			out.Rollbacks.TargetClusters = make([]store.Cluster, 0, len(*rb.TargetClusters))
			for _, c := range *rb.TargetClusters {
				out.Rollbacks.TargetClusters = append(out.Rollbacks.TargetClusters, store.Cluster{
					ClusterID: c.ClusterId,
					Request:   requestFromGen(c.Request.Uri, c.Request.Method, c.Request.Body),
					Response:  clusterResponseFromGen(c.Response),
				})
			}
		}
	}
	return out, nil
}

func requestFromGen(uri string, method gen.Method, body *string) store.Request {
	return store.Request{URI: uri, Method: string(method), Body: body}
}

func clusterResponseFromGen(in *gen.ClusterResponse) *store.Response {
	if in == nil {
		return nil
	}
	return &store.Response{StatusCode: in.StatusCode, Body: in.Body}
}

// operationToGen is the A3 answer: the stored record in the A1 shape, times in
// the underscore form, absent optional fields omitted.
func operationToGen(in store.Operation) gen.Operation {
	out := gen.Operation{
		OperationId:     in.ID,
		OccurredTime:    formatMSFTime(in.OccurredTime),
		LastUpdateTime:  formatMSFTime(in.LastUpdateTime),
		ReservationTime: formatOptionalMSFTime(in.ReservationTime),
		StartTime:       formatOptionalMSFTime(in.StartTime),
		Status:          gen.Status(in.Status),
		SubStatus:       in.SubStatus,
		Request: gen.OperationRequest{
			Uri:    in.Request.URI,
			Method: gen.Method(in.Request.Method),
			Body:   deref(in.Request.Body),
		},
	}
	if in.Response != nil {
		out.Response = &gen.OperationResponse{StatusCode: in.Response.StatusCode, Body: in.Response.Body}
	}
	if in.TargetClusters != nil {
		tc := make([]gen.TargetCluster, 0, len(in.TargetClusters))
		for _, c := range in.TargetClusters {
			tc = append(tc, gen.TargetCluster{
				ClusterId: c.ClusterID,
				Request: gen.OperationRequest{
					Uri:    c.Request.URI,
					Method: gen.Method(c.Request.Method),
					Body:   deref(c.Request.Body),
				},
				Response: clusterResponseToGen(c.Response),
			})
		}
		out.TargetClusters = &tc
	}
	if rb := in.Rollbacks; rb != nil {
		out.Rollbacks = &gen.Rollbacks{
			Result:       gen.RollbacksResult(rb.Result),
			OccurredTime: formatMSFTime(rb.OccurredTime),
		}
		if rb.TargetClusters != nil {
			tc := make([]gen.RollbackCluster, 0, len(rb.TargetClusters))
			for _, c := range rb.TargetClusters {
				tc = append(tc, gen.RollbackCluster{
					ClusterId: c.ClusterID,
					Request: gen.RollbackRequest{
						Uri:    c.Request.URI,
						Method: gen.Method(c.Request.Method),
						Body:   c.Request.Body,
					},
					Response: clusterResponseToGen(c.Response),
				})
			}
			out.Rollbacks.TargetClusters = &tc
		}
	}
	return out
}

func clusterResponseToGen(in *store.Response) *gen.ClusterResponse {
	if in == nil {
		return nil
	}
	return &gen.ClusterResponse{StatusCode: in.StatusCode, Body: in.Body}
}

// operationSummaryToGen is an A2 detail-list item: the operation without its
// body strings.
func operationSummaryToGen(in store.Operation) gen.OperationSummary {
	out := gen.OperationSummary{
		OperationId:     in.ID,
		OccurredTime:    formatMSFTime(in.OccurredTime),
		LastUpdateTime:  formatMSFTime(in.LastUpdateTime),
		ReservationTime: formatOptionalMSFTime(in.ReservationTime),
		StartTime:       formatOptionalMSFTime(in.StartTime),
		Status:          gen.Status(in.Status),
		SubStatus:       in.SubStatus,
		Request:         requestSummaryToGen(in.Request),
		Response:        responseSummaryToGen(in.Response),
	}
	if in.TargetClusters != nil {
		tc := clusterSummariesToGen(in.TargetClusters)
		out.TargetClusters = &tc
	}
	if rb := in.Rollbacks; rb != nil {
		out.Rollbacks = &gen.RollbacksSummary{
			Result:       gen.RollbacksSummaryResult(rb.Result),
			OccurredTime: formatMSFTime(rb.OccurredTime),
		}
		if rb.TargetClusters != nil {
			tc := clusterSummariesToGen(rb.TargetClusters)
			out.Rollbacks.TargetClusters = &tc
		}
	}
	return out
}

func requestSummaryToGen(in store.Request) gen.RequestSummary {
	return gen.RequestSummary{Uri: in.URI, Method: gen.Method(in.Method)}
}

func responseSummaryToGen(in *store.Response) *gen.ResponseSummary {
	if in == nil {
		return nil
	}
	return &gen.ResponseSummary{StatusCode: in.StatusCode}
}

func clusterSummariesToGen(in []store.Cluster) []gen.ClusterSummary {
	out := make([]gen.ClusterSummary, 0, len(in))
	for _, c := range in {
		out = append(out, gen.ClusterSummary{
			ClusterId: c.ClusterID,
			Request:   requestSummaryToGen(c.Request),
			Response:  responseSummaryToGen(c.Response),
		})
	}
	return out
}

// iccOperationFromGen converts a B2 body. Connection ids are stored in lower
// case (uuid.UUID's String), so that a filter matches whatever case a client
// used. request_body and error are stored compact, as every answer shows
// them. Its only refusals are times that are not real dates (400).
func iccOperationFromGen(id string, in gen.ICCOperationWrite) (store.ICCOperation, error) {
	out := store.ICCOperation{
		ID:              id,
		ConnectionID:    in.ConnectionId.String(),
		TenantID:        in.TenantId,
		OrderType:       string(in.OrderType),
		Phase:           string(in.Phase),
		OperationStatus: string(in.OperationStatus),
	}
	var err error
	if out.RequestBody, err = compactJSON("request_body", in.RequestBody); err != nil {
		return store.ICCOperation{}, err
	}
	if in.ResourceType != nil {
		out.ResourceType = string(*in.ResourceType)
	}
	if in.Error != nil {
		if out.Error, err = compactJSON("error", *in.Error); err != nil {
			return store.ICCOperation{}, err
		}
	}
	if out.ReceptionDatetime, err = parseICCTime("reception_datetime", in.ReceptionDatetime); err != nil {
		return store.ICCOperation{}, err
	}
	if in.CommitDatetime != nil {
		t, err := parseICCTime("commit_datetime", *in.CommitDatetime)
		if err != nil {
			return store.ICCOperation{}, err
		}
		out.CommitDatetime = &t
	}
	return out, nil
}

// iccOperationToGen is a B1 item.
func iccOperationToGen(in store.ICCOperation) (gen.ICCOperation, error) {
	out := gen.ICCOperation{
		OperationId:       in.ID,
		OrderType:         gen.OrderType(in.OrderType),
		Phase:             gen.Phase(in.Phase),
		OperationStatus:   gen.OperationStatus(in.OperationStatus),
		ReceptionDatetime: formatICCTime(in.ReceptionDatetime),
		RequestBody:       in.RequestBody,
	}
	if err := out.ConnectionId.UnmarshalText([]byte(in.ConnectionID)); err != nil {
		return gen.ICCOperation{}, fmt.Errorf("stored connection_id %q: %w", in.ConnectionID, err)
	}
	if in.CommitDatetime != nil {
		s := formatICCTime(*in.CommitDatetime)
		out.CommitDatetime = &s
	}
	return out, nil
}

// iccRecordToGen is the B2 answer: the B1 item and its tenant.
func iccRecordToGen(in store.ICCOperation) (gen.ICCOperationRecord, error) {
	item, err := iccOperationToGen(in)
	if err != nil {
		return gen.ICCOperationRecord{}, err
	}
	return gen.ICCOperationRecord{
		OperationId:       item.OperationId,
		ConnectionId:      item.ConnectionId,
		OrderType:         item.OrderType,
		Phase:             item.Phase,
		OperationStatus:   item.OperationStatus,
		ReceptionDatetime: item.ReceptionDatetime,
		CommitDatetime:    item.CommitDatetime,
		RequestBody:       item.RequestBody,
		TenantId:          in.TenantID,
	}, nil
}

// compactJSON is raw without insignificant whitespace.
func compactJSON(field string, raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, &FieldError{Field: field, Reason: "not JSON: " + err.Error(), Syntax: true}
	}
	return buf.Bytes(), nil
}

// serviceTypes is the ICC API v2.0 service type of each resource type.
var serviceTypes = map[gen.ResourceType]gen.ServiceType{
	gen.ResourceTypeAwsConnection:           gen.ServiceTypeECLSDExchangeAWSConnection,
	gen.ResourceTypeTenantConnectionRequest: gen.ServiceTypeECLSDExchangeTenantConnectionRequest,
	gen.ResourceTypeTenantConnection:        gen.ServiceTypeECLSDExchangeTenantConnection,
}

// resourceTypeOf is the resource type a service type filter selects.
func resourceTypeOf(st gen.ServiceType) gen.ResourceType {
	for rt, s := range serviceTypes {
		if s == st {
			return rt
		}
	}
	return ""
}

// emptyObject is the v2.0 error of an operation that recorded none.
var emptyObject = []byte("{}")

// iccOperationToV2 is a B3 item: the same record in ICC API v2.0's shape.
func iccOperationToV2(in store.ICCOperation) (gen.ICCOperationV2, error) {
	item, err := iccOperationToGen(in)
	if err != nil {
		return gen.ICCOperationV2{}, err
	}
	rt := gen.ResourceType(in.ResourceType)
	out := gen.ICCOperationV2{
		Id:                item.OperationId,
		ServiceType:       serviceTypes[rt],
		ResourceType:      rt,
		ResourceId:        item.ConnectionId,
		RequestType:       item.OrderType,
		Phase:             item.Phase,
		OperationStatus:   item.OperationStatus,
		ReceptionDatetime: item.ReceptionDatetime,
		CommitDatetime:    item.CommitDatetime,
		RequestBody:       item.RequestBody,
		Error:             in.Error,
		TenantId:          in.TenantID,
	}
	if out.Error == nil {
		out.Error = emptyObject
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// subscriptionToGen is a subscription as answered, without its secret.
func subscriptionToGen(in store.Subscription) gen.Subscription {
	out := gen.Subscription{
		Id:        in.ID,
		Url:       in.URL,
		CreatedAt: in.CreatedAt,
		Active:    in.DisabledReason == "",
		Events:    make([]gen.EventType, len(in.Events)),
	}
	for i, e := range in.Events {
		out.Events[i] = gen.EventType(e)
	}
	if in.DisabledReason != "" {
		out.DisabledReason = &in.DisabledReason
	}
	if f := in.Filter; f.OperationIDPrefix != "" || len(f.Statuses) > 0 || f.TenantID != "" {
		out.Filter = &gen.SubscriptionFilter{}
		if f.OperationIDPrefix != "" {
			out.Filter.OperationIdPrefix = &f.OperationIDPrefix
		}
		if len(f.Statuses) > 0 {
			out.Filter.Statuses = &f.Statuses
		}
		if f.TenantID != "" {
			out.Filter.TenantId = &f.TenantID
		}
	}
	return out
}

// deliveryToGen is a delivery as the deliveries list answers it.
func deliveryToGen(in store.Delivery) gen.Delivery {
	out := gen.Delivery{
		WebhookId:      in.WebhookID,
		EventType:      gen.EventType(in.EventType),
		OperationId:    in.OperationID,
		State:          gen.DeliveryState(in.State),
		Attempts:       in.Attempts,
		CreatedAt:      in.CreatedAt,
		LastAttemptAt:  in.LastAttemptAt,
		LastStatusCode: in.LastStatus,
		NextAttemptAt:  in.NextAttemptAt,
	}
	if in.LastError != "" {
		out.LastError = &in.LastError
	}
	return out
}
