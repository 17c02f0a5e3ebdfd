package web_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vigilhq/vigil/web"
)

const missingMessage = "Dashboard assets not built: run `make web` (npm ci in web/) and rebuild"

func get(t *testing.T, h http.Handler, method, target string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func checkSecurityHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q; want nosniff", got)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'self'",
		"connect-src 'self' ws: wss:",
		"img-src 'self' data:",
		"style-src 'self'",
		"script-src 'self'",
		"worker-src 'self' blob:",
		"frame-ancestors 'none'",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy = %q; want it to contain %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("Content-Security-Policy = %q; want no unsafe- source", csp)
	}
}

func TestIndex(t *testing.T) {
	for _, target := range []string{"/", "/index.html"} {
		t.Run(target, func(t *testing.T) {
			res := get(t, web.Handler(), http.MethodGet, target, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: status %d; want 200", target, res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q; want text/html; charset=utf-8", got)
			}
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control = %q; want no-cache", got)
			}
			if res.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
			checkSecurityHeaders(t, res)
			b := body(t, res)
			for _, want := range []string{`src="vendor/mqtt.min.js"`, `type="module" src="js/app.js"`, `href="app.css"`} {
				if !strings.Contains(b, want) {
					t.Errorf("index.html lacks %s", want)
				}
			}
		})
	}
}

func TestContentTypes(t *testing.T) {
	tests := []struct {
		target, want string
	}{
		{"/app.css", "text/css; charset=utf-8"},
		{"/js/app.js", "text/javascript; charset=utf-8"},
		{"/js/views/ward.js", "text/javascript; charset=utf-8"},
		{"/favicon.svg", "image/svg+xml"},
		{"/vendor/mqtt.min.js", "text/javascript; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			res := get(t, web.Handler(), http.MethodGet, tt.target, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: status %d; want 200", tt.target, res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != tt.want {
				t.Errorf("GET %s: Content-Type = %q; want %q", tt.target, got, tt.want)
			}
			checkSecurityHeaders(t, res)
		})
	}
}

func TestNotFound(t *testing.T) {
	for _, target := range []string{
		"/nope.js",
		"/js/",
		"/js",
		"/static/index.html",
		"/web.go",
		"/vendor/",
		"/vendor/.gitkeep",
		"/vendor/nope.js",
		"/../web.go",
		"/js/../../web.go",
		"/api/v1/unknown",
	} {
		t.Run(target, func(t *testing.T) {
			res := get(t, web.Handler(), http.MethodGet, target, nil)
			if res.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s: status %d; want 404", target, res.StatusCode)
			}
			checkSecurityHeaders(t, res)
		})
	}
}

func TestMethods(t *testing.T) {
	res := get(t, web.Handler(), http.MethodHead, "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Errorf("HEAD /: status %d; want 200", res.StatusCode)
	}
	if b := body(t, res); b != "" {
		t.Errorf("HEAD /: body of %d bytes; want none", len(b))
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		res := get(t, web.Handler(), m, "/", nil)
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /: status %d; want 405", m, res.StatusCode)
		}
		if got := res.Header.Get("Allow"); got != "GET, HEAD" {
			t.Errorf("%s /: Allow = %q; want GET, HEAD", m, got)
		}
	}
}

func TestConditionalGet(t *testing.T) {
	res := get(t, web.Handler(), http.MethodGet, "/js/app.js", nil)
	etag := res.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	res = get(t, web.Handler(), http.MethodGet, "/js/app.js", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("GET with If-None-Match %s: status %d; want 304", etag, res.StatusCode)
	}
}

func TestGzip(t *testing.T) {
	plain := get(t, web.Handler(), http.MethodGet, "/app.css", nil)
	want := body(t, plain)
	if plain.Header.Get("Content-Encoding") != "" {
		t.Fatalf("Content-Encoding = %q without Accept-Encoding; want none", plain.Header.Get("Content-Encoding"))
	}
	res := get(t, web.Handler(), http.MethodGet, "/app.css", http.Header{"Accept-Encoding": {"br, gzip"}})
	if got := res.Header.Get("Content-Encoding"); got != "gzip" {
		t.Fatalf("Content-Encoding = %q; want gzip", got)
	}
	if got := res.Header.Get("Vary"); got != "Accept-Encoding" {
		t.Errorf("Vary = %q; want Accept-Encoding", got)
	}
	if res.Header.Get("ETag") == plain.Header.Get("ETag") {
		t.Error("gzip and identity responses share an ETag")
	}
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		t.Fatalf("gzip.NewReader: %v", err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	if string(got) != want {
		t.Error("gunzipped body differs from the plain one")
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"br, gzip, deflate", true},
		{"GZIP", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"gzip;q=0.5", true},
		{"gzip;q=1", true},
		{"deflate, br", false},
		{"x-gzip", true},
	}
	for _, tt := range tests {
		if got := web.AcceptsGzip(tt.header); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v; want %v", tt.header, got, tt.want)
		}
	}
}

var minimalStatic = fstest.MapFS{
	"index.html": {Data: []byte("<!doctype html><title>t</title>")},
}

func TestMissingVendorFallback(t *testing.T) {
	h, err := web.NewHandlerFS(minimalStatic, fstest.MapFS{".gitkeep": {Data: nil}})
	if err != nil {
		t.Fatalf("NewHandlerFS: %v", err)
	}
	res := get(t, h, http.MethodGet, "/vendor/mqtt.min.js", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d; want 200", res.StatusCode)
	}
	if got := res.Header.Get("Content-Type"); got != "text/javascript; charset=utf-8" {
		t.Errorf("Content-Type = %q; want text/javascript; charset=utf-8", got)
	}
	checkSecurityHeaders(t, res)
	if b := body(t, res); !strings.Contains(b, missingMessage) {
		t.Errorf("fallback script lacks %q:\n%s", missingMessage, b)
	}
	if res := get(t, h, http.MethodGet, "/vendor/.gitkeep", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /vendor/.gitkeep: status %d; want 404", res.StatusCode)
	}
}

func TestVendorServed(t *testing.T) {
	const script = "var mqtt = {connect: function () {}};\n"
	h, err := web.NewHandlerFS(minimalStatic, fstest.MapFS{"mqtt.min.js": {Data: []byte(script)}})
	if err != nil {
		t.Fatalf("NewHandlerFS: %v", err)
	}
	res := get(t, h, http.MethodGet, "/vendor/mqtt.min.js", nil)
	if got := body(t, res); got != script {
		t.Errorf("GET /vendor/mqtt.min.js = %q; want %q", got, script)
	}
}

func TestNewHandlerNeedsIndex(t *testing.T) {
	if _, err := web.NewHandlerFS(fstest.MapFS{"app.css": {Data: []byte("")}}, fstest.MapFS{}); err == nil {
		t.Error("NewHandlerFS without index.html: no error; want one")
	}
}

// TestEmbeddedVendor checks the binary's own /vendor/mqtt.min.js against AssetsBuilt: the real
// MQTT.js when the web build step ran, the banner script otherwise.
func TestEmbeddedVendor(t *testing.T) {
	res := get(t, web.Handler(), http.MethodGet, "/vendor/mqtt.min.js", nil)
	b := body(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d; want 200", res.StatusCode)
	}
	if web.AssetsBuilt() {
		if strings.Contains(b, missingMessage) {
			t.Error("AssetsBuilt() but the fallback script is served")
		}
		if !strings.Contains(b, "mqtt") || len(b) < 10000 {
			t.Errorf("AssetsBuilt() but /vendor/mqtt.min.js (%d bytes) does not look like MQTT.js", len(b))
		}
	} else if !strings.Contains(b, missingMessage) {
		t.Error("assets not built but the fallback script is not served")
	}
}

var (
	htmlRef   = regexp.MustCompile(`(?:src|href)="([^"#:]+)"`)
	importRef = regexp.MustCompile(`(?m)^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'`)
)

// TestReferencesResolve catches a renamed or misspelt asset, which no compiler would: every
// file that index.html names and every module that a module imports is served.
func TestReferencesResolve(t *testing.T) {
	h := web.Handler()
	check := func(from, ref string) {
		t.Helper()
		target := path.Join(path.Dir("/"+from), ref)
		if res := get(t, h, http.MethodGet, target, nil); res.StatusCode != http.StatusOK {
			t.Errorf("%s references %s (%s): status %d", from, ref, target, res.StatusCode)
		}
	}
	static := os.DirFS("static")
	index, err := fs.ReadFile(static, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range htmlRef.FindAllStringSubmatch(string(index), -1) {
		check("index.html", m[1])
	}
	modules := 0
	err = fs.WalkDir(static, "js", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(name, ".js") {
			return err
		}
		modules++
		src, err := fs.ReadFile(static, name)
		if err != nil {
			return err
		}
		for _, m := range importRef.FindAllStringSubmatch(string(src), -1) {
			ref := m[1] + m[2]
			if !strings.HasPrefix(ref, "./") && !strings.HasPrefix(ref, "../") {
				t.Errorf("%s imports %q: only relative imports work without a build step", name, ref)
				continue
			}
			check(name, ref)
		}
		if bytes.Contains(src, []byte("innerHTML")) {
			t.Errorf("%s uses innerHTML; build DOM nodes instead", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if modules < 5 {
		t.Errorf("found %d modules under static/js; want the dashboard's modules", modules)
	}
}
