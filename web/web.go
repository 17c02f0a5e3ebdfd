// Package web serves the clinician dashboard; its assets are embedded in the binary.
//
// Our own files live in static/ and are committed. Third-party browser builds (MQTT.js) are
// copied into vendor/ by the web build step (`npm ci && npm run build` in web/, or `make web`)
// and embedded as well. A binary built without that step still serves the dashboard, and
// /vendor/mqtt.min.js then answers a small script that shows a banner saying how to build the
// assets, so the omission is obvious instead of a silent blank page.
//
// Every asset is loaded into memory once, with its ETag and, when worth it, a gzip copy. All
// responses carry a strict Content-Security-Policy (scripts, styles and images from our own
// origin only; WebSocket connections for MQTT; blob: workers for MQTT.js's keepalive timer)
// and are revalidated on every load (Cache-Control: no-cache with ETag), because our file
// names carry no content hash.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var staticFiles embed.FS

//go:embed all:vendor
var vendorFiles embed.FS

// contentSecurityPolicy is sent with every response. No inline script or style, no external
// origin: the page works the same on an isolated hospital network.
//
// worker-src allows blob: because MQTT.js runs its keepalive timer in a Web Worker it builds
// from a blob URL: timers on the page itself are throttled to one wake-up a minute in a tab
// hidden for a few minutes (Chrome's intensive throttling), which would miss the 30 s
// keepalive and make the broker drop a dashboard left in a background tab. A blob: URL can
// only be made by script already running in the page, which script-src 'self' keeps to our
// own files, so this opens no way in for outside code.
const contentSecurityPolicy = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; " +
	"style-src 'self'; script-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'self'; " +
	"form-action 'self'; object-src 'none'"

// mqttScript is the vendored MQTT.js browser build, loaded by index.html as a classic script.
const mqttScript = "mqtt.min.js"

// missingVendorScript replaces MQTT.js when the binary was built without the web build step.
// It runs under the same CSP, so it builds its banner with DOM calls only.
const missingVendorScript = `// Vigil: the dashboard's third-party assets were not embedded in this binary.
(function () {
  "use strict";
  var msg = "Dashboard assets not built: run ` + "`make web`" + ` (npm ci in web/) and rebuild";
  window.VIGIL_ASSETS_MISSING = msg;
  function show() {
    var el = document.createElement("div");
    el.className = "build-banner";
    el.setAttribute("role", "alert");
    el.setAttribute("data-testid", "build-banner");
    el.textContent = msg;
    el.style.cssText = "background:#b00020;color:#fff;padding:12px 16px;font:600 16px/1.4 system-ui,sans-serif;text-align:center";
    document.body.insertBefore(el, document.body.firstChild);
  }
  if (document.body) { show(); } else { document.addEventListener("DOMContentLoaded", show); }
  if (window.console) { console.error(msg); }
})();
`

// contentTypes pins the types of the files we ship, independent of the host's MIME tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".json": "application/json",
	".map":  "application/json",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".txt":  "text/plain; charset=utf-8",
}

// asset is one file ready to serve.
type asset struct {
	body        []byte
	gzipped     []byte // nil when compression does not pay
	contentType string
	etag        string
}

type handler struct {
	assets map[string]*asset // by URL path, e.g. "/js/app.js"
	built  bool              // vendor/mqtt.min.js was embedded
}

var embedded = sync.OnceValue(func() *handler {
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		panic("web: " + err.Error()) // cannot happen: the directory is embedded
	}
	vendor, err := fs.Sub(vendorFiles, "vendor")
	if err != nil {
		panic("web: " + err.Error())
	}
	h, err := newHandler(static, vendor)
	if err != nil {
		panic("web: " + err.Error())
	}
	return h
})

// Handler serves the dashboard: static/ at / (index.html for /) and the vendored browser
// builds under /vendor/. Only GET and HEAD are allowed; unknown paths answer 404.
func Handler() http.Handler { return embedded() }

// AssetsBuilt reports whether the vendored browser builds were embedded, i.e. whether the web
// build step ran before `go build`. Without them the dashboard shows a banner and has no live
// updates; callers may log a warning at start-up.
func AssetsBuilt() bool { return embedded().built }

// newHandler loads every regular file of static (served at /) and vendor (served at
// /vendor/). Names starting with "." are not served.
func newHandler(static, vendor fs.FS) (*handler, error) {
	h := &handler{assets: make(map[string]*asset)}
	if err := h.load(static, "/"); err != nil {
		return nil, fmt.Errorf("load static assets: %w", err)
	}
	if _, ok := h.assets["/index.html"]; !ok {
		return nil, fmt.Errorf("load static assets: index.html missing")
	}
	if err := h.load(vendor, "/vendor/"); err != nil {
		return nil, fmt.Errorf("load vendor assets: %w", err)
	}
	_, h.built = h.assets["/vendor/"+mqttScript]
	if !h.built {
		h.assets["/vendor/"+mqttScript] = newAsset(mqttScript, []byte(missingVendorScript))
	}
	return h, nil
}

func (h *handler) load(fsys fs.FS, prefix string) error {
	return fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		h.assets[prefix+name] = newAsset(name, body)
		return nil
	})
}

func newAsset(name string, body []byte) *asset {
	ext := path.Ext(name)
	ct, ok := contentTypes[ext]
	if !ok {
		if ct = mime.TypeByExtension(ext); ct == "" {
			ct = "application/octet-stream"
		}
	}
	sum := sha256.Sum256(body)
	a := &asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	if compressible(ct) && len(body) >= 1024 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
		_, _ = zw.Write(body)                                    // writes to a bytes.Buffer do not fail
		_ = zw.Close()
		if buf.Len() < len(body)*9/10 {
			a.gzipped = buf.Bytes()
		}
	}
	return a
}

func compressible(contentType string) bool {
	return strings.HasPrefix(contentType, "text/") ||
		strings.HasPrefix(contentType, "application/json") ||
		strings.HasPrefix(contentType, "image/svg+xml")
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if p == "/" {
		p = "/index.html"
	}
	a, ok := h.assets[p]
	if !ok {
		http.NotFound(w, r)
		return
	}
	body, etag := a.body, a.etag
	if a.gzipped != nil {
		hdr.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			body, etag = a.gzipped, strings.TrimSuffix(a.etag, `"`)+`-gz"`
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether an Accept-Encoding header value allows gzip (RFC 9110 12.5.3).
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "x-gzip" {
			continue
		}
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		return !strings.HasPrefix(q, "q=0") || strings.HasPrefix(q, "q=0.") && strings.Trim(q[4:], "0") != ""
	}
	return false
}
