package web

import (
	"io/fs"
	"net/http"
)

// NewHandlerFS builds a handler over the given trees, so tests can stand in for an unbuilt
// vendor/ directory.
func NewHandlerFS(static, vendor fs.FS) (http.Handler, error) {
	h, err := newHandler(static, vendor)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// AcceptsGzip exposes acceptsGzip to the tests.
var AcceptsGzip = acceptsGzip
