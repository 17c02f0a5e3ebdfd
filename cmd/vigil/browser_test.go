package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/testenv"
	"github.com/vigilhq/vigil/web"
)

// browserStep is one line the browser script prints (web/test/browser/dashboard.mjs).
type browserStep struct {
	Step       string `json:"step"`
	OK         bool   `json:"ok"`
	For        string `json:"for"`
	Error      string `json:"error"`
	Screenshot string `json:"screenshot"`
	raw        string
}

// TestBrowserDashboard drives the real dashboard in Debian's Chromium (playwright-core, no
// browser download) against a Vigil fed by real MQTT devices: log in, see the ward fill, see a
// high-priority alert arrive and escalate, acknowledge it, then go offline and see an alert
// raised meanwhile appear after the reconnect. Screenshots go to $VIGIL_TEST_ARTIFACTS.
//
// The script prints a JSON line per step. When it needs Vigil to act it prints
// {"step":"wait","for":...}; this test acts (publishes a critical sample, drops the page's MQTT
// connection) and answers on the script's stdin, so every step waits for a condition, not a
// clock.
func TestBrowserDashboard(t *testing.T) {
	node, chromium, script := browserTools(t)
	artifacts := testArtifacts(t)

	// The page's WebSocket carries its own origin, which /mqtt must allow: fix the port first.
	port := pickFreePort(t)
	origin := "http://127.0.0.1:" + port
	h := newHarness(t, func(c *config) {
		c.HTTPAddr = "127.0.0.1:" + port
		c.AllowedOrigins = origin
		c.EscalateAfter = escalation{high: 2 * time.Second, medium: time.Hour, low: time.Hour}
	})

	// A ward of four patients, each with a monitor that has sent one normal sample.
	patients := []string{"p1", "p2", "p3", "p4"}
	monitors := map[string]*client{}
	for _, p := range patients {
		h.admit("h1", p)
		secret := h.device("h1", "mon-"+p, p)
		monitors[p] = h.mustConnect("mon-"+p, "mon-"+p, []byte(secret))
		if err := monitors[p].publish("hospital/h1/patient/"+p+"/vitals", vitals(normal), 1); err != nil {
			t.Fatalf("publish %s: %v", p, err)
		}
	}
	const nurse = "nurse.web"
	h.user(nurse, "nurse", "h1")
	// The observer sees what the page should see, and tells the test the alert IDs.
	observer := h.mustConnect("observer", "observer", []byte(h.user("observer", "viewer", "h1")))
	observer.mustSubscribe("hospital/h1/patient/+/alerts")
	browsers := func() int64 { return h.v.broker.Snapshot().BrowsersConnected }

	raise := func(p string) (string, error) {
		if err := monitors[p].publish("hospital/h1/patient/"+p+"/vitals", vitals(critical), 1); err != nil {
			return "", fmt.Errorf("publish the critical sample of %s: %w", p, err)
		}
		e := observer.await("NEWS2 alert of "+p, func(e envelope) bool { return isAlert("news2", "raised")(e) && e.Patient == p })
		return alertOf(e).Alert.ID, nil
	}
	// act does what the script waits for and returns the answer.
	act := func(what string) (any, error) {
		switch what {
		case "alert":
			id, err := raise("p1")
			return map[string]string{"alert": id, "patient": "p1"}, err
		case "disconnect":
			// The browser is offline; drop its MQTT connection as a network failure would, and
			// wait until the broker has no connection of the page (the observer stays).
			h.v.broker.DisconnectUser(nurse)
			if !pollUntil(10*time.Second, func() bool { return browsers() == 1 }) {
				return nil, fmt.Errorf("the page's MQTT connection is still up: %d browsers connected, want 1 (the observer)", browsers())
			}
			return map[string]bool{"ok": true}, nil
		case "offline-alert":
			id, err := raise("p2")
			if err != nil {
				return nil, err
			}
			// Published while the page had no connection: only the refetch after the reconnect
			// can show it.
			if n := browsers(); n != 1 {
				return nil, fmt.Errorf("the page reconnected while offline (%d browsers connected); the alert may have come live", n)
			}
			return map[string]any{"alert": id, "patient": "p2", "vitals": map[string]any{"hr": critical["hr"], "rr": critical["rr"]}}, nil
		}
		return nil, fmt.Errorf("the script waits for %q, which this test does not know", what)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script,
		"--url", origin+"/", "--user", nurse, "--patients", strings.Join(patients, ","),
		"--artifacts", artifacts, "--chromium", chromium)
	cmd.Env = append(os.Environ(), "VIGIL_PASSWORD=password-"+nurse)
	// On timeout, SIGINT first: playwright then closes Chromium instead of orphaning it.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s %s: %v", node, script, err)
	}
	steps := make(chan browserStep)
	go readSteps(stdout, steps)

	answer := func(v any) {
		b, _ := json.Marshal(v)
		if _, err := stdin.Write(append(b, '\n')); err != nil {
			t.Errorf("answer the script: %v", err)
		}
	}
	var last browserStep
	done := false
	for s := range steps {
		t.Logf("browser: %s", s.raw)
		last = s
		switch {
		case !s.OK:
			t.Errorf("browser step %s failed: %s", s.Step, s.Error)
		case s.Step == "wait":
			res, err := act(s.For)
			if err != nil {
				t.Errorf("step %s: %v", s.For, err)
				answer(map[string]string{"error": err.Error()})
				continue
			}
			answer(res)
		case s.Step == "done":
			done = true
		}
		if s.Screenshot != "" {
			t.Logf("screenshot: %s", s.Screenshot)
		}
	}
	stdin.Close()
	werr := cmd.Wait()
	if stderr.Len() > 0 {
		t.Logf("browser script stderr:\n%s", strings.TrimSpace(stderr.String()))
	}
	switch {
	case ctx.Err() != nil:
		t.Fatalf("the browser script did not finish within 90 s (last step: %s)", last.raw)
	case werr != nil && !t.Failed():
		t.Fatalf("browser script: %v (last step: %s)", werr, last.raw)
	case !done && !t.Failed():
		t.Fatalf("the browser script stopped before the end (last step: %s)", last.raw)
	}
	t.Logf("screenshots in %s", artifacts)
}

// readSteps parses the script's stdout, a JSON object a line; other lines pass as failures of
// a step named "output" so that nothing the script says is lost.
func readSteps(r io.Reader, out chan<- browserStep) {
	defer close(out)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var s browserStep
		if err := json.Unmarshal([]byte(line), &s); err != nil || s.Step == "" {
			s = browserStep{Step: "output", OK: true}
		}
		s.raw = line
		out <- s
	}
}

// browserTools finds Node, Chromium and the script, or skips (fails in CI) saying what is
// missing.
func browserTools(t *testing.T) (node, chromium, script string) {
	t.Helper()
	node = testenv.LookPath(t, "node", "install Node 20; .ci/run does")
	chromium = os.Getenv("VIGIL_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		testenv.Missing(t, "Chromium not found at %s (apt-get install chromium, or set VIGIL_CHROMIUM; .ci/run installs it)", chromium)
	}
	webDir, err := filepath.Abs(filepath.Join("..", "..", "web"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(webDir, "node_modules", "playwright-core", "package.json")); err != nil {
		testenv.Missing(t, "playwright-core is not installed: run npm ci in web/")
	}
	if !web.AssetsBuilt() {
		testenv.Missing(t, "the dashboard assets are not built into this binary: run make web (npm ci && npm run build in web/)")
	}
	return node, chromium, filepath.Join(webDir, "test", "browser", "dashboard.mjs")
}

// testArtifacts is where a test leaves files worth keeping (screenshots):
// $VIGIL_TEST_ARTIFACTS/<test name> (.ci/run sets it to ./test-artifacts), else a temporary
// directory.
func testArtifacts(t *testing.T) string {
	t.Helper()
	base := os.Getenv("VIGIL_TEST_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir, err := filepath.Abs(filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_")))
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatalf("artifacts directory: %v", err)
	}
	return dir
}

// pickFreePort returns a loopback port that was free a moment ago.
func pickFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// pollUntil polls cond until it holds or d passes.
func pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
