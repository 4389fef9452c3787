// Package opsvc holds the files the service's binary carries: openapi.yaml,
// byte for byte, and the API reference page that renders it (apidocs/, whose
// Redoc script `make docs-assets` vendors from the npm registry). It imports
// nothing.
package opsvc

import (
	"embed"
	"io/fs"
)

// OpenAPI is openapi.yaml as committed, served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

//go:embed apidocs/index.html apidocs/redoc.standalone.js
var apidocs embed.FS

// Docs is the reference page served under /docs: index.html, and
// redoc.standalone.js, which renders openapi.yaml in the browser.
var Docs fs.FS = mustSub(apidocs, "apidocs")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
