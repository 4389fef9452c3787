package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"example.com/opsvc"
	"example.com/opsvc/gen"
)

// docsScript is the one file the /docs page loads besides /openapi.yaml.
const docsScript = "redoc.standalone.js"

// GetOpenAPI answers openapi.yaml, byte for byte.
func (s *Server) GetOpenAPI(context.Context, gen.GetOpenAPIRequestObject) (gen.GetOpenAPIResponseObject, error) {
	return gen.GetOpenAPI200ApplicationyamlResponse{Body: bytes.NewReader(opsvc.OpenAPI), ContentLength: int64(len(opsvc.OpenAPI))}, nil
}

// GetDocs answers the reference page, which renders /openapi.yaml with the
// script served by docsAsset.
func (s *Server) GetDocs(context.Context, gen.GetDocsRequestObject) (gen.GetDocsResponseObject, error) {
	page, err := fs.ReadFile(opsvc.Docs, "index.html")
	if err != nil {
		return nil, err
	}
	return gen.GetDocs200TexthtmlResponse{Body: bytes.NewReader(page), ContentLength: int64(len(page))}, nil
}

// docsAsset serves the page's script from the binary, with an ETag so that a
// browser reloading the page does not fetch its megabyte again. It is no part
// of the API, so openapi.yaml does not describe it.
func docsAsset() (echo.HandlerFunc, error) {
	js, err := fs.ReadFile(opsvc.Docs, docsScript)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(js)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("ETag", etag)
		h.Set("Cache-Control", "no-cache")
		h.Set(echo.HeaderContentType, "text/javascript; charset=utf-8")
		http.ServeContent(c.Response(), c.Request(), docsScript, time.Time{}, bytes.NewReader(js))
		return nil
	}, nil
}
