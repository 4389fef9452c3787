// Package gen holds the code generated from openapi.yaml: the models, the Echo strict server
// interface and the embedded spec. Nothing here is edited by hand; run `make generate`.
// It imports nothing of this module.
package gen

//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../openapi.yaml
