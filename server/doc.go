// Package server is the HTTP side of the Operations Service: it implements
// gen.StrictServerInterface for both interface families, authenticates callers,
// validates every request against the embedded openapi.yaml before a handler runs,
// and turns every error into the family's error body in one place (errors.go).
//
// server imports gen and the record types and sentinel errors of store; it never
// imports gorm, and it reads no environment: cmd hands it typed values.
package server
