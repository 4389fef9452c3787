// Package webhook delivers the Operations Service's events to subscribers
// as signed webhooks (Standard Webhooks: webhook-id, webhook-timestamp,
// webhook-signature): a Dispatcher takes deliveries from the store's
// durable outbox, POSTs them, retries with exponential backoff and jitter,
// and records each attempt; a Guard keeps webhooks away from private,
// loopback and link-local addresses.
//
// webhook imports the record types of store; it never imports server, gen
// or gorm, and it reads no environment: cmd hands it typed values.
package webhook
