// Package testenv finds the outside tools integration tests need (MongoDB through FerretDB,
// Mosquitto, Node, Chromium). Missing locally, a test skips and says why; with
// VIGIL_REQUIRE_INTEGRATION=1 (set by .ci/run, which installs them all) a missing tool fails the
// test instead, so CI can never pass by skipping.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Required reports whether missing tools fail tests instead of skipping them.
func Required() bool { return os.Getenv("VIGIL_REQUIRE_INTEGRATION") == "1" }

// Missing skips t, or fails it when integration tests are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("VIGIL_REQUIRE_INTEGRATION=1 but "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

// MongoURI returns $VIGIL_TEST_MONGO_URI.
func MongoURI(t testing.TB) string {
	t.Helper()
	uri := os.Getenv("VIGIL_TEST_MONGO_URI")
	if uri == "" {
		Missing(t, "VIGIL_TEST_MONGO_URI is not set (start FerretDB with .ci/ferretdb.sh, or point it at a MongoDB)")
	}
	return uri
}

// LookPath returns the path of an executable.
func LookPath(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not found in PATH (%s)", name, hint)
	}
	return p
}
