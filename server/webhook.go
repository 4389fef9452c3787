package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"example.com/opsvc/gen"
	"example.com/opsvc/store"
)

// SubscriptionStore is what the subscription handlers need from
// persistence; *store.Store implements it.
type SubscriptionStore interface {
	CreateSubscription(ctx context.Context, sub store.Subscription) (store.Subscription, error)
	ListSubscriptions(ctx context.Context) ([]store.Subscription, error)
	GetSubscription(ctx context.Context, id string) (store.Subscription, error)
	DeleteSubscription(ctx context.Context, id string) error
	ListDeliveries(ctx context.Context, id string, limit int) ([]store.Delivery, error)
}

// URLChecker refuses webhook URLs that must not be called (webhook.Guard):
// its error says why.
type URLChecker interface {
	CheckURL(ctx context.Context, url string) error
}

// errNoSubscription is an unknown subscription id (404 030001).
var errNoSubscription = errors.New("subscription_id: no such subscription")

// subscriptionErr maps the store's ErrNotFound to errNoSubscription.
func subscriptionErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNoSubscription
	}
	return dbErr(err)
}

// adminOnly reports whether path is one that only an admin token may call,
// even from MSF_ALLOWED_CIDRS: subscriptions hold secrets and make the
// service call out.
func adminOnly(path string) bool {
	return path == "/v1/subscriptions" || strings.HasPrefix(path, "/v1/subscriptions/")
}

// secretPrefix starts every Standard Webhooks secret.
const secretPrefix = "whsec_"

// checkSecret refuses a secret whose key is not 24 to 64 bytes of base64.
func checkSecret(secret string) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil || len(key) < 24 || len(key) > 64 {
		return &FieldError{Field: "secret", Reason: "must be whsec_ and the base64 of 24 to 64 bytes"}
	}
	return nil
}

// newSecret is a new signing secret: whsec_ and 32 random bytes in base64.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return secretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// knownStatuses are the statuses a filter may name: MSF's and ICC's.
var knownStatuses = map[string]bool{
	"unexecuted": true, "executing": true, "completed": true, "failed": true, "canceled": true,
	"processing": true, "complete": true, "error": true,
}

// CreateSubscription subscribes a URL to events; the answer shows the
// secret, once.
func (s *Server) CreateSubscription(ctx context.Context, req gen.CreateSubscriptionRequestObject) (gen.CreateSubscriptionResponseObject, error) {
	if req.Body == nil {
		return nil, &FieldError{Field: "body", Reason: "is required"}
	}
	in := *req.Body
	sub := store.Subscription{URL: in.Url}
	if err := s.webhookURLs.CheckURL(ctx, in.Url); err != nil {
		return nil, &FieldError{Field: "url", Reason: err.Error()}
	}
	if in.Secret != nil {
		if err := checkSecret(*in.Secret); err != nil {
			return nil, err
		}
		sub.Secret = *in.Secret
	} else {
		sub.Secret = newSecret()
	}
	for _, e := range in.Events {
		sub.Events = append(sub.Events, string(e))
	}
	if f := in.Filter; f != nil {
		sub.Filter.OperationIDPrefix = deref(f.OperationIdPrefix)
		sub.Filter.TenantID = deref(f.TenantId)
		if f.Statuses != nil {
			for i, st := range *f.Statuses {
				if !knownStatuses[st] {
					return nil, &FieldError{Field: fmt.Sprintf("filter.statuses[%d]", i), Reason: "is not a status of an MSF or ICC operation"}
				}
			}
			sub.Filter.Statuses = *f.Statuses
		}
	}
	stored, err := s.subs.CreateSubscription(ctx, sub)
	if err != nil {
		return nil, dbErr(err)
	}
	g := subscriptionToGen(stored)
	return gen.CreateSubscription201JSONResponse{
		Id: g.Id, Url: g.Url, Events: g.Events, Filter: g.Filter, CreatedAt: g.CreatedAt,
		Active: g.Active, DisabledReason: g.DisabledReason, Secret: stored.Secret,
	}, nil
}

// ListSubscriptions answers every subscription, without secrets.
func (s *Server) ListSubscriptions(ctx context.Context, _ gen.ListSubscriptionsRequestObject) (gen.ListSubscriptionsResponseObject, error) {
	subs, err := s.subs.ListSubscriptions(ctx)
	if err != nil {
		return nil, dbErr(err)
	}
	out := gen.ListSubscriptions200JSONResponse{Subscriptions: make([]gen.Subscription, len(subs))}
	for i, sub := range subs {
		out.Subscriptions[i] = subscriptionToGen(sub)
	}
	return out, nil
}

// GetSubscription answers one subscription, without its secret.
func (s *Server) GetSubscription(ctx context.Context, req gen.GetSubscriptionRequestObject) (gen.GetSubscriptionResponseObject, error) {
	sub, err := s.subs.GetSubscription(ctx, req.SubscriptionId)
	if err != nil {
		return nil, subscriptionErr(err)
	}
	return gen.GetSubscription200JSONResponse(subscriptionToGen(sub)), nil
}

// DeleteSubscription removes a subscription and its deliveries.
func (s *Server) DeleteSubscription(ctx context.Context, req gen.DeleteSubscriptionRequestObject) (gen.DeleteSubscriptionResponseObject, error) {
	if err := s.subs.DeleteSubscription(ctx, req.SubscriptionId); err != nil {
		return nil, subscriptionErr(err)
	}
	return gen.DeleteSubscription204Response{}, nil
}

// defaultDeliveries is how many deliveries the list answers without limit.
const defaultDeliveries = 100

// ListSubscriptionDeliveries answers a subscription's latest deliveries.
func (s *Server) ListSubscriptionDeliveries(ctx context.Context, req gen.ListSubscriptionDeliveriesRequestObject) (gen.ListSubscriptionDeliveriesResponseObject, error) {
	limit := defaultDeliveries
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	ds, err := s.subs.ListDeliveries(ctx, req.SubscriptionId, limit)
	if err != nil {
		return nil, subscriptionErr(err)
	}
	out := gen.ListSubscriptionDeliveries200JSONResponse{Deliveries: make([]gen.Delivery, len(ds))}
	for i, d := range ds {
		out.Deliveries[i] = deliveryToGen(d)
	}
	return out, nil
}

// EncodeEvent is the body of a webhook (openapi.yaml, WebhookEvent): the
// type, the time, and the operation as A3 (MSF) or B2 (ICC) answers it.
// The store calls it, as store.Options.EncodeEvent, in the write's
// transaction.
func EncodeEvent(ev store.Event) ([]byte, error) {
	body := struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      any    `json:"data"`
	}{Type: ev.Type, Timestamp: ev.Time.UTC().Format(time.RFC3339Nano)}
	switch {
	case ev.Operation != nil:
		body.Data = operationToGen(*ev.Operation)
	case ev.ICCOperation != nil:
		rec, err := iccRecordToGen(*ev.ICCOperation)
		if err != nil {
			return nil, err
		}
		body.Data = rec
	default:
		return nil, errors.New("event without an operation")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// Bodies are sent as the controller sent them: <, > and & unescaped.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// unavailableSubscriptions is the SubscriptionStore of a server built
// without one: every call is 503.
type unavailableSubscriptions struct{}

func (unavailableSubscriptions) CreateSubscription(context.Context, store.Subscription) (store.Subscription, error) {
	return store.Subscription{}, store.ErrUnavailable
}

func (unavailableSubscriptions) ListSubscriptions(context.Context) ([]store.Subscription, error) {
	return nil, store.ErrUnavailable
}

func (unavailableSubscriptions) GetSubscription(context.Context, string) (store.Subscription, error) {
	return store.Subscription{}, store.ErrUnavailable
}

func (unavailableSubscriptions) DeleteSubscription(context.Context, string) error {
	return store.ErrUnavailable
}

func (unavailableSubscriptions) ListDeliveries(context.Context, string, int) ([]store.Delivery, error) {
	return nil, store.ErrUnavailable
}
