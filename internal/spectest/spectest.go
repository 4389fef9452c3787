// Package spectest checks, in tests, that a response is one openapi.yaml
// describes: its status is declared for the operation, and its headers and
// body match the declared schema. The request validator cannot check
// responses (oapi-codegen issue #1038), so the tests do.
package spectest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"example.com/opsvc/gen"
)

func init() {
	// /docs answers HTML, which kin-openapi has no decoder for; its schema is
	// a string.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

var router = sync.OnceValues(func() (routers.Router, error) {
	spec, err := gen.GetSpec()
	if err != nil {
		return nil, err
	}
	spec.Servers = nil
	return gorillamux.NewRouter(spec)
})

// Check fails the test unless resp, the answer to req, is described by
// openapi.yaml. body is resp's body, already read.
func Check(tb testing.TB, req *http.Request, resp *http.Response, body []byte) {
	tb.Helper()
	if err := Validate(req, resp, body); err != nil {
		tb.Errorf("%s %s -> %d: response not described by openapi.yaml: %v\nbody: %.500s",
			req.Method, req.URL.RequestURI(), resp.StatusCode, err, body)
	}
}

// Validate returns why resp is not described by openapi.yaml, or nil.
func Validate(req *http.Request, resp *http.Response, body []byte) error {
	r, err := router()
	if err != nil {
		return err
	}
	// Route on a copy without the body: only method and URL matter.
	rr := req.Clone(context.Background())
	rr.Body = http.NoBody
	route, params, err := r.FindRoute(rr)
	if err != nil {
		return err
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    rr,
			PathParams: params,
			Route:      route,
		},
		Status: resp.StatusCode,
		Header: resp.Header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	return openapi3filter.ValidateResponse(context.Background(), in)
}
