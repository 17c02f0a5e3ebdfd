package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestBadSettings: a malformed setting stops `vigil serve` at once with one line naming it.
func TestBadSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	os.WriteFile(file, []byte("x"), 0o600)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the setting named in the message
	}{
		{"bad http address", []string{"--http-addr", "nonsense"}, nil, "--http-addr"},
		{"bad http port", []string{"--http-addr", "127.0.0.1:99999"}, nil, "--http-addr"},
		{"http address in use", []string{"--http-addr", busy.Addr().String()}, nil, "--http-addr"},
		{"bad mqtt address", []string{"--mqtt-addr", "127.0.0.1"}, nil, "--mqtt-addr"},
		{"data dir is a file", []string{"--data-dir", filepath.Join(file, "sub")}, nil, "--data-dir"},
		{"bad mongo uri", []string{"--mongo-uri", "http://nope"}, nil, "--mongo-uri"},
		{"bad broker url", []string{"--broker-url", "ftp://x"}, nil, "--broker-url"},
		{"short jwt secret", []string{"--jwt-secret", "short"}, nil, "--jwt-secret"},
		{"short admin password", nil, map[string]string{"VIGIL_ADMIN_PASSWORD": "abc"}, "--admin-password"},
		{"wildcard origin", []string{"--allowed-origins", "*"}, nil, "--allowed-origins"},
		{"bad origin", []string{"--allowed-origins", "dashboard.example"}, nil, "--allowed-origins"},
		{"bad escalation", []string{"--escalate-after", "urgent=1m"}, nil, "escalate-after"},
		{"bad duration from env", nil, map[string]string{"VIGIL_DEVICE_OFFLINE_AFTER": "soon"}, "VIGIL_DEVICE_OFFLINE_AFTER"},
		{"mqtts without certificate", []string{"--mqtts-addr", "127.0.0.1:0"}, nil, "--mqtts-addr"},
		{"missing certificate files", []string{"--tls-cert", filepath.Join(dir, "no.pem"), "--tls-key", filepath.Join(dir, "no.key")}, nil, "--tls-cert"},
		{"client ca without mqtts", []string{"--client-ca", file}, nil, "--client-ca"},
		{"unknown flag", []string{"--no-such-flag"}, nil, "no-such-flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"}, tt.args...)
			getenv := func(k string) string { return tt.env[k] }
			var out, errOut bytes.Buffer
			done := make(chan int, 1)
			go func() { done <- run(args, getenv, &out, &errOut) }()
			select {
			case code := <-done:
				if code == 0 {
					t.Fatalf("vigil %v exited 0; want a failure", args)
				}
				if !strings.Contains(errOut.String(), tt.want) {
					t.Fatalf("vigil %v: stderr %q does not name %s", args, errOut.String(), tt.want)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("vigil %v kept running with a bad setting", args)
			}
		})
	}
}

// TestStoreDownAtStart: with MongoDB unreachable, Vigil does not crash: /healthz answers,
// /readyz says 503, and it keeps retrying until stopped.
func TestStoreDownAtStart(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := dead.Addr().String()
	dead.Close() // nothing listens there now
	c := testConfig(t)
	c.MongoURI = "mongodb://" + addr + "/vigil?serverSelectionTimeoutMS=200&connectTimeoutMS=200"
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		v   *vigil
		err error
	}
	done := make(chan result, 1)
	started := make(chan *vigil, 1)
	go func() {
		v, err := startOn(ctx, c, slog.New(slog.DiscardHandler), io.Discard, started)
		done <- result{v, err}
	}()
	var v *vigil
	select {
	case v = <-started:
	case r := <-done:
		t.Fatalf("start returned before serving health endpoints: %v", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("HTTP did not come up")
	}
	base := "http://" + v.httpLn.Addr().String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d; want 200 while the store is down", code)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d %s; want 503 while the store is down", code, body)
	}
	if code, _ := get("/api/v1/openapi.json"); code != http.StatusServiceUnavailable {
		t.Fatalf("API = %d; want 503 while starting", code)
	}
	select {
	case r := <-done:
		t.Fatalf("start gave up while the store was down: %v", r.err)
	case <-time.After(time.Second):
	}
	cancel()
	select {
	case r := <-done:
		if r.err == nil {
			t.Fatal("start succeeded with no store")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("start did not stop when cancelled")
	}
}

// TestNoFerretDB: FerretDB is a test tool in its own module and must never be linked into vigil.
func TestNoFerretDB(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info")
	}
	if len(bi.Deps) == 0 {
		t.Fatal("build info lists no dependencies; the check would pass vacuously")
	}
	for _, d := range bi.Deps {
		if strings.Contains(strings.ToLower(d.Path), "ferretdb") {
			t.Fatalf("vigil links %s", d.Path)
		}
	}
}
