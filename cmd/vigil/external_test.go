package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vigilhq/vigil/internal/testenv"
)

var (
	vigilBinOnce sync.Once
	vigilBin     string
	vigilBinErr  error
)

// vigilBinary builds the vigil binary once per test run (tests that need real processes: a
// crash is a SIGKILL, not a graceful stop).
func vigilBinary(t *testing.T) string {
	t.Helper()
	vigilBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-bin-")
		if err != nil {
			vigilBinErr = err
			return
		}
		vigilBin = filepath.Join(dir, "vigil")
		gobin, err := exec.LookPath("go")
		if err != nil {
			vigilBinErr = fmt.Errorf("the Go toolchain builds the vigil binary these tests run: %v", err)
			return
		}
		out, err := exec.Command(gobin, "build", "-o", vigilBin, ".").CombinedOutput()
		if err != nil {
			vigilBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if vigilBinErr != nil {
		t.Fatal(vigilBinErr)
	}
	return vigilBin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startMosquitto runs Debian's Mosquitto on a free loopback port with its own configuration.
func startMosquitto(t *testing.T) string {
	t.Helper()
	bin := testenv.LookPath(t, "mosquitto", "Debian package mosquitto; .ci/run installs it")
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte(strings.Join([]string{
		"listener " + port + " 127.0.0.1",
		"allow_anonymous true",
		"set_tcp_nodelay true",
		"max_queued_messages 100000",
		"persistence false",
		"log_type error",
	}, "\n")+"\n"), 0o600)
	cmd := exec.Command(bin, "-c", conf)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("mosquitto: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("mosquitto did not listen on %s: %s", addr, logs.String())
	return ""
}

// vigilProc is a `vigil serve` process.
type vigilProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	args []string
	env  []string
	logs *bytes.Buffer
}

func startVigilProc(t *testing.T, env []string, args ...string) *vigilProc {
	t.Helper()
	http := freeAddr(t)
	p := &vigilProc{t: t, base: "http://" + http, env: env, args: append([]string{"serve", "--http-addr", http, "--mqtt-addr", "", "--log-level", "warn"}, args...)}
	p.start()
	return p
}

func (p *vigilProc) start() {
	p.t.Helper()
	p.logs = new(bytes.Buffer)
	p.cmd = exec.Command(vigilBinary(p.t), p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	cmd := p.cmd
	p.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("vigil %v not ready; log:\n%s", p.args, p.logs.String())
}

// kill is a crash: SIGKILL, nothing flushed, nothing acknowledged after it.
func (p *vigilProc) kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

func (p *vigilProc) do(method, path, token string, body any) (int, []byte) {
	p.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// mqttClient connects a plain paho client to an external broker.
func mqttClient(t *testing.T, addr, id string, onMsg func(topic string, payload []byte)) *paho.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, ClientID: id, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			if onMsg != nil {
				onMsg(pr.Packet.Topic, pr.Packet.Payload)
			}
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	t.Cleanup(func() { c.Disconnect(&paho.Disconnect{}); conn.Close() })
	return c
}

// TestExternalBroker runs two Vigil processes against Mosquitto and one MongoDB (FerretDB in
// CI). They share the vitals stream through $share/vigil-ingest/...; one is killed (SIGKILL)
// mid-stream and restarted with the same client ID: nothing acknowledged is lost (the broker
// redelivers what the dead process had not acknowledged), every sample is stored once, and each
// patient ends with the risk and alerts a single Vigil gives for the same samples.
func TestExternalBroker(t *testing.T) {
	mqttAddr := startMosquitto(t)
	mongo, err := url.Parse(testenv.MongoURI(t))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	mongo.Path = "/vigilext_" + hex.EncodeToString(b)
	q := mongo.Query()
	q.Set("maxPoolSize", "1")
	mongo.RawQuery = q.Encode()

	env := []string{"VIGIL_ADMIN_PASSWORD=" + adminPassword, "VIGIL_JWT_SECRET=external-test-secret-0123456789abcdef", "VIGIL_MONGO_URI=" + mongo.String()}
	common := []string{"--broker-url", "mqtt://" + mqttAddr, "--clear-delay", "1h", "--tick", "100ms"}
	a := startVigilProc(t, env, append([]string{"--data-dir", t.TempDir(), "--broker-client-id", "vigil-a"}, common...)...)
	bp := startVigilProc(t, env, append([]string{"--data-dir", t.TempDir(), "--broker-client-id", "vigil-b"}, common...)...)

	status, body := a.do("POST", "/api/v1/auth/login", "", map[string]string{"username": "admin", "password": adminPassword})
	if status != 200 {
		t.Fatalf("login: %d %s", status, body)
	}
	var login struct{ Token string }
	json.Unmarshal(body, &login)
	token := login.Token

	const patients, perPatient = 6, 30
	for i := range patients {
		p := fmt.Sprintf("p%d", i)
		if st, out := a.do("POST", "/api/v1/hospitals/h1/patients", token, map[string]any{"id": p, "name": "Patient " + p}); st != 201 {
			t.Fatalf("admit %s: %d %s", p, st, out)
		}
	}
	// Both processes know the patients (they share the store); give B's admission cache a
	// moment: it learns of patients admitted elsewhere when their first sample arrives.

	var mu sync.Mutex
	events := map[string][]map[string]any{} // by patient
	mqttClient(t, mqttAddr, "watcher", func(topic string, payload []byte) {
		var e map[string]any
		if json.Unmarshal(payload, &e) == nil {
			mu.Lock()
			events[fmt.Sprint(e["patient"])] = append(events[fmt.Sprint(e["patient"])], e)
			mu.Unlock()
		}
	}).Subscribe(context.Background(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "hospital/h1/patient/+/alerts", QoS: 1}}})

	dev := mqttClient(t, mqttAddr, "monitors", nil)
	start := time.Now().Add(-time.Minute).UTC()
	sampleOf := func(p, n int) map[string]any {
		s := map[string]any{"ts": start.Add(time.Duration(n) * time.Second).Format(time.RFC3339Nano), "seq": n,
			"hr": 70 + n%5, "rr": 16, "spo2": 97, "sbp": 120, "temp": 37.0, "acvpu": "A", "o2": false}
		if p%2 == 0 && n >= perPatient-5 { // even patients deteriorate at the end: NEWS2 12, high
			for k, v := range critical {
				s[k] = v
			}
		}
		return s
	}
	publish := func(p, n int) {
		payload, _ := json.Marshal(sampleOf(p, n))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := dev.Publish(ctx, &paho.Publish{Topic: fmt.Sprintf("hospital/h1/patient/p%d/vitals", p), Payload: payload, QoS: 1}); err != nil {
			t.Fatalf("publish p%d #%d: %v", p, n, err)
		}
	}
	for n := range perPatient {
		if n == perPatient/2 {
			a.kill() // a crash in the middle of the stream
		}
		if n == perPatient/2+5 {
			a.start() // back with the same client ID: its session, and what it had not acknowledged
		}
		for p := range patients {
			publish(p, n)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Every sample stored once; each patient's risk is the risk of its newest sample.
	for p := range patients {
		id := fmt.Sprintf("p%d", p)
		var stored struct{ Items []struct{ Seq int64 } }
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, out := bp.do("GET", "/api/v1/hospitals/h1/patients/"+id+"/vitals?limit=1000&from="+url.QueryEscape(start.Add(-time.Second).Format(time.RFC3339)), token, nil)
			stored.Items = nil
			json.Unmarshal(out, &stored)
			if len(stored.Items) >= perPatient || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		seen := map[int64]int{}
		for _, s := range stored.Items {
			seen[s.Seq]++
		}
		for n := range perPatient {
			if seen[int64(n)] != 1 {
				t.Fatalf("patient %s sample %d stored %d times; want once (%d stored)", id, n, seen[int64(n)], len(stored.Items))
			}
		}
		_, want := bp.do("POST", "/api/v1/risk/score", token, sampleOf(p, perPatient-1))
		var got, exp map[string]any
		json.Unmarshal(want, &exp)
		deadline = time.Now().Add(10 * time.Second)
		for {
			_, out := bp.do("GET", "/api/v1/hospitals/h1/patients/"+id+"/risk", token, nil)
			got = nil
			json.Unmarshal(out, &got)
			if fmt.Sprint(got["score"]) == fmt.Sprint(exp["score"]) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if fmt.Sprint(got["score"]) != fmt.Sprint(exp["score"]) || fmt.Sprint(got["level"]) != fmt.Sprint(exp["level"]) {
			t.Fatalf("patient %s risk %v; a single Vigil scores the newest sample %v", id, got, exp)
		}
		var alerts struct {
			Items []struct{ Kind, Priority string }
		}
		_, out := bp.do("GET", "/api/v1/hospitals/h1/alerts?kind=news2&patient="+id, token, nil)
		json.Unmarshal(out, &alerts)
		wantAlerts := 0
		if p%2 == 0 {
			wantAlerts = 1
		}
		if len(alerts.Items) != wantAlerts {
			t.Fatalf("patient %s has %d NEWS2 alerts %+v; want %d", id, len(alerts.Items), alerts.Items, wantAlerts)
		}
	}
	func() {
		mu.Lock()
		defer mu.Unlock()
		for p := 0; p < patients; p += 2 {
			raised := 0
			for _, e := range events[fmt.Sprintf("p%d", p)] {
				if d, ok := e["data"].(map[string]any); ok && d["action"] == "raised" {
					raised++
				}
			}
			if raised == 0 {
				t.Fatalf("no patient_alert raised for p%d reached the external broker", p)
			}
		}
	}()

	// Devices and discharges across the processes: a device assigned through A feeds its patient
	// in B too (B's registry takes it in within its sync interval), and a discharge through B
	// unassigns it, although B's own API never assigned it.
	if st, out := a.do("POST", "/api/v1/hospitals/h1/devices", token, map[string]any{"id": "mon-x"}); st != 201 {
		t.Fatalf("provision through A: %d %s", st, out)
	}
	if st, out := a.do("PUT", "/api/v1/hospitals/h1/devices/mon-x/assignment", token, map[string]any{"patient": "p1"}); st != 200 {
		t.Fatalf("assign through A: %d %s", st, out)
	}
	var pat struct{ Devices []string }
	deadline := time.Now().Add(3 * registrySyncEvery)
	for {
		_, out := bp.do("GET", "/api/v1/hospitals/h1/patients/p1", token, nil)
		pat.Devices = nil
		json.Unmarshal(out, &pat)
		if len(pat.Devices) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if fmt.Sprint(pat.Devices) != "[mon-x]" {
		t.Fatalf("patient p1 through B lists devices %v; want [mon-x], assigned through A", pat.Devices)
	}
	// A second device assigned through A just before the discharge: B's registry has not
	// synced yet (it does every 5 s); the discharge finds it in the store.
	for _, step := range []struct{ method, path string }{{"POST", "/devices"}, {"PUT", "/devices/mon-y/assignment"}} {
		body := map[string]any{"id": "mon-y"}
		if step.method == "PUT" {
			body = map[string]any{"patient": "p1"}
		}
		if st, out := a.do(step.method, "/api/v1/hospitals/h1"+step.path, token, body); st != 201 && st != 200 {
			t.Fatalf("%s %s through A: %d %s", step.method, step.path, st, out)
		}
	}
	if st, out := bp.do("DELETE", "/api/v1/hospitals/h1/patients/p1", token, nil); st != 204 {
		t.Fatalf("discharge through B: %d %s", st, out)
	}
	st, out := a.do("GET", "/api/v1/hospitals/h1/devices", token, nil)
	var list struct {
		Items []struct{ ID, Patient string }
	}
	if err := json.Unmarshal(out, &list); st != 200 || err != nil {
		t.Fatalf("GET devices through A: %d %s (%v)", st, out, err)
	}
	found := 0
	for _, d := range list.Items {
		if d.ID == "mon-x" || d.ID == "mon-y" {
			found++
			if d.Patient != "" {
				t.Fatalf("device %s after p1's discharge through B: assigned to %q; want unassigned", d.ID, d.Patient)
			}
		}
	}
	if found != 2 {
		t.Fatalf("devices listed through A: %+v; want mon-x and mon-y among them", list.Items)
	}
}
