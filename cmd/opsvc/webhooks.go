package main

import (
	"context"
	"time"

	"example.com/opsvc/server"
	"example.com/opsvc/store"
	"example.com/opsvc/webhook"
)

var (
	_ server.SubscriptionStore = (*store.Store)(nil)
	_ server.SubscriptionStore = (*lateStore)(nil)
	_ webhook.Store            = (*store.Store)(nil)
	_ webhook.Store            = (*lateStore)(nil)
	_ server.URLChecker        = (*webhook.Guard)(nil)
)

// The webhook methods of lateStore: ErrUnavailable until the database is open.

func (l *lateStore) Subscribed(events ...string) bool {
	st, err := l.get()
	return err == nil && st.Subscribed(events...)
}

func (l *lateStore) ConvertTerminalEvents(ctx context.Context, limit int, lease time.Duration) (int, []store.Delivery, error) {
	st, err := l.get()
	if err != nil {
		return 0, nil, err
	}
	return st.ConvertTerminalEvents(ctx, limit, lease)
}

func (l *lateStore) CreateSubscription(ctx context.Context, sub store.Subscription) (store.Subscription, error) {
	st, err := l.get()
	if err != nil {
		return store.Subscription{}, err
	}
	return st.CreateSubscription(ctx, sub)
}

func (l *lateStore) ListSubscriptions(ctx context.Context) ([]store.Subscription, error) {
	st, err := l.get()
	if err != nil {
		return nil, err
	}
	return st.ListSubscriptions(ctx)
}

func (l *lateStore) GetSubscription(ctx context.Context, id string) (store.Subscription, error) {
	st, err := l.get()
	if err != nil {
		return store.Subscription{}, err
	}
	return st.GetSubscription(ctx, id)
}

func (l *lateStore) DeleteSubscription(ctx context.Context, id string) error {
	st, err := l.get()
	if err != nil {
		return err
	}
	return st.DeleteSubscription(ctx, id)
}

func (l *lateStore) ListDeliveries(ctx context.Context, id string, limit int) ([]store.Delivery, error) {
	st, err := l.get()
	if err != nil {
		return nil, err
	}
	return st.ListDeliveries(ctx, id, limit)
}

func (l *lateStore) CachedSubscription(id string) (store.Subscription, bool) {
	st, err := l.get()
	if err != nil {
		return store.Subscription{}, false
	}
	return st.CachedSubscription(id)
}

func (l *lateStore) ClaimDeliveries(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.Delivery, error) {
	st, err := l.get()
	if err != nil {
		return nil, err
	}
	return st.ClaimDeliveries(ctx, now, lease, limit)
}

func (l *lateStore) FinishDeliveries(ctx context.Context, fs []store.Finished) (int, error) {
	st, err := l.get()
	if err != nil {
		return 0, err
	}
	return st.FinishDeliveries(ctx, fs)
}

func (l *lateStore) DisableSubscription(ctx context.Context, id, reason string) error {
	st, err := l.get()
	if err != nil {
		return err
	}
	return st.DisableSubscription(ctx, id, reason)
}

func (l *lateStore) RefreshSubscriptions(ctx context.Context) error {
	st, err := l.get()
	if err != nil {
		return err
	}
	return st.RefreshSubscriptions(ctx)
}

func (l *lateStore) PurgeDeliveries(ctx context.Context, before time.Time) (int64, error) {
	st, err := l.get()
	if err != nil {
		return 0, err
	}
	return st.PurgeDeliveries(ctx, before)
}
