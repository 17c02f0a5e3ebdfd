package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vigilhq/vigil/internal/testenv"
)

// ferretDB runs the FerretDB test tool (internal/tools/ferretdb) on a fixed loopback address and
// data directory, so it can be killed and started again.
type ferretDB struct {
	t         *testing.T
	bin, dir  string
	addr, uri string
	cmd       *exec.Cmd
}

func startFerretDB(t *testing.T) *ferretDB {
	t.Helper()
	bin := os.Getenv("VIGIL_TEST_FERRETDB")
	if bin == "" {
		testenv.Missing(t, "VIGIL_TEST_FERRETDB is not set (the FerretDB tool .ci/ferretdb.sh builds, e.g. .ci/bin/ferretdb)")
	}
	f := &ferretDB{t: t, bin: bin, dir: t.TempDir(), addr: freeAddr(t)}
	f.start()
	t.Cleanup(f.kill)
	return f
}

func (f *ferretDB) start() {
	f.t.Helper()
	f.cmd = exec.Command(f.bin, "-dir", f.dir, "-listen", f.addr)
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		f.t.Fatalf("ferretdb: %v", err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if uri, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- uri
			}
		}
	}()
	select {
	case f.uri = <-ready:
	case <-time.After(60 * time.Second):
		f.t.Fatal("ferretdb not ready")
	}
}

func (f *ferretDB) kill() {
	if f.cmd != nil && f.cmd.Process != nil {
		f.cmd.Process.Kill()
		f.cmd.Wait()
	}
}

// TestStoreGoesAway: MongoDB (FerretDB) dies under a running Vigil. /readyz says 503, nothing
// crashes, a sample sent meanwhile is not acknowledged while it cannot be stored, and once the
// database is back every acknowledged sample is there.
func TestStoreGoesAway(t *testing.T) {
	db := startFerretDB(t)
	h := newHarness(t, func(c *config) { c.MongoURI = db.uri + "vigil?maxPoolSize=1&serverSelectionTimeoutMS=1000" })
	h.admit("h1", "p1")
	secret := h.device("h1", "mon-1", "p1")
	dev := h.mustConnect("mon-1", "mon-1", []byte(secret))
	if err := dev.publish("hospital/h1/patient/p1/vitals", vitals(map[string]any{"hr": 71, "seq": 1}), 1); err != nil {
		t.Fatalf("publish while the store is up: %v", err)
	}

	db.kill()
	ready := func() int {
		resp, err := http.Get(h.base + "/readyz")
		if err != nil {
			t.Fatalf("/readyz: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(20 * time.Second)
	for ready() != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still 200 with the store down")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A sample now cannot be stored: it is not acknowledged (the PUBACK waits, then reports
	// the failure), so the device keeps it.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	pr, err := dev.c.Publish(ctx, &paho.Publish{Topic: "hospital/h1/patient/p1/vitals", QoS: 1, Payload: []byte(`{"hr":72,"seq":2}`)})
	cancel()
	if err == nil && (pr == nil || pr.ReasonCode < 0x80) {
		t.Fatal("a sample was acknowledged while the store was down")
	}

	db.start()
	deadline = time.Now().Add(60 * time.Second)
	for ready() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover with the store back")
		}
		time.Sleep(200 * time.Millisecond)
	}
	dev2 := h.mustConnect("mon-1", "mon-1", []byte(secret))
	if err := dev2.publish("hospital/h1/patient/p1/vitals", vitals(map[string]any{"hr": 73, "seq": 3}), 1); err != nil {
		t.Fatalf("publish after the store came back: %v", err)
	}
	var hist struct{ Items []struct{ Seq int64 } }
	deadline = time.Now().Add(30 * time.Second)
	for {
		status, body := h.do("GET", "/api/v1/hospitals/h1/patients/p1/vitals", h.admin, nil)
		hist.Items = nil
		if status == 200 {
			jsonUnmarshal(body, &hist)
		}
		seqs := map[int64]bool{}
		for _, s := range hist.Items {
			seqs[s.Seq] = true
		}
		if seqs[1] && seqs[3] {
			return // every acknowledged sample is stored (seq 2 may be too: the group commit retried it)
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored samples %+v; want every acknowledged one (1 and 3)", hist.Items)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
