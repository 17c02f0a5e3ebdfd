package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// harness runs a real Vigil in the test process: the embedded store in a temporary directory,
// the embedded broker on a free loopback port, the HTTP server on another.
type harness struct {
	t     *testing.T
	v     *vigil
	cfg   config
	base  string // http://127.0.0.1:port
	mqtt  string // 127.0.0.1:port
	admin string // admin token
}

const adminPassword = "admin-pass-123"

// testConfig is a fast configuration: short timers so lifecycle tests finish in seconds.
func testConfig(t testing.TB) config {
	return config{
		DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", AdminPassword: adminPassword,
		LogFormat: "text", LogLevel: "warn", Retention: 24 * time.Hour, TokenTTL: time.Hour,
		EscalateAfter:      escalation{high: time.Hour, medium: time.Hour, low: time.Hour},
		DeviceOfflineAfter: time.Hour, ConditionDelay: 0, ClearDelay: 200 * time.Millisecond,
		MaxPacketSize: 64 << 10, MaxConnections: 1000, DeviceRate: 1000, Tick: 50 * time.Millisecond, ShutdownTimeout: 10 * time.Second,
		AllowedOrigins: "http://dashboard.test",
	}
}

func newHarness(t *testing.T, edit ...func(*config)) *harness {
	t.Helper()
	c := testConfig(t)
	for _, e := range edit {
		e(&c)
	}
	return startHarness(t, c)
}

func startHarness(t *testing.T, c config) *harness {
	t.Helper()
	level := slog.LevelWarn
	if os.Getenv("VIGIL_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	v, err := start(context.Background(), c, log, io.Discard)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	h := &harness{t: t, v: v, cfg: c, base: "http://" + v.httpLn.Addr().String(), mqtt: v.mqttAddr()}
	t.Cleanup(func() { h.stop() })
	h.admin = h.login("admin", adminPassword)
	return h
}

func (h *harness) stop() {
	if h.v != nil {
		if err := h.v.stop(); err != nil {
			h.t.Errorf("stop: %v", err)
		}
		h.v = nil
	}
}

// restart stops Vigil and starts it again on the same data directory and ports.
func (h *harness) restart() {
	h.t.Helper()
	c := h.cfg
	c.HTTPAddr = h.base[len("http://"):]
	c.MQTTAddr = h.mqtt
	h.stop()
	n := startHarness(h.t, c)
	*h = *n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// do sends a JSON request and returns the status and body.
func (h *harness) do(method, path, token string, body any) (int, []byte) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, h.base+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// must sends a request and fails the test unless it answers want.
func (h *harness) must(want int, method, path, token string, body any) []byte {
	h.t.Helper()
	status, out := h.do(method, path, token, body)
	if status != want {
		h.t.Fatalf("%s %s = %d %s; want %d", method, path, status, out, want)
	}
	return out
}

func (h *harness) login(user, pw string) string {
	h.t.Helper()
	var res struct{ Token string }
	json.Unmarshal(h.must(200, "POST", "/api/v1/auth/login", "", map[string]string{"username": user, "password": pw}), &res)
	return res.Token
}

// user creates a user and returns their token.
func (h *harness) user(name, role string, hospitals ...string) string {
	h.t.Helper()
	h.must(201, "POST", "/api/v1/users", h.admin, map[string]any{"username": name, "password": "password-" + name, "role": role, "hospitals": hospitals})
	return h.login(name, "password-"+name)
}

func (h *harness) admit(hospital, patient string) {
	h.t.Helper()
	h.must(201, "POST", "/api/v1/hospitals/"+hospital+"/patients", h.admin, map[string]any{"id": patient, "name": "Patient " + patient})
}

// device provisions a device, assigns it to patient (when not empty) and returns its secret.
func (h *harness) device(hospital, id, patient string) string {
	h.t.Helper()
	var d struct{ Secret string }
	json.Unmarshal(h.must(201, "POST", "/api/v1/hospitals/"+hospital+"/devices", h.admin, map[string]string{"id": id}), &d)
	if patient != "" {
		h.must(200, "PUT", "/api/v1/hospitals/"+hospital+"/devices/"+id+"/assignment", h.admin, map[string]string{"patient": patient})
	}
	return d.Secret
}

// message is one MQTT message a test client received.
type message struct {
	Topic   string
	Payload []byte
	Retain  bool
}

// client is a real MQTT 5 client (paho.golang) over TCP.
type client struct {
	t       *testing.T
	c       *paho.Client
	conn    net.Conn
	msgs    chan message
	backlog []envelope // received, not yet matched by await
}

// connect opens an MQTT 5 connection; it returns the client and the CONNACK error.
func (h *harness) connect(clientID, username string, password []byte) (*client, error) {
	h.t.Helper()
	conn, err := net.DialTimeout("tcp", h.mqtt, 5*time.Second)
	if err != nil {
		h.t.Fatalf("dial mqtt: %v", err)
	}
	cl := &client{t: h.t, conn: conn, msgs: make(chan message, 1000)}
	cl.c = paho.NewClient(paho.ClientConfig{
		Conn:     conn,
		ClientID: clientID,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case cl.msgs <- message{Topic: pr.Packet.Topic, Payload: pr.Packet.Payload, Retain: pr.Packet.Retain}:
			default:
			}
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true, Username: username, UsernameFlag: username != "", Password: password, PasswordFlag: password != nil}
	if _, err := cl.c.Connect(ctx, cp); err != nil {
		conn.Close()
		return nil, err
	}
	h.t.Cleanup(func() { cl.close() })
	return cl, nil
}

func (h *harness) mustConnect(clientID, username string, password []byte) *client {
	h.t.Helper()
	c, err := h.connect(clientID, username, password)
	if err != nil {
		h.t.Fatalf("connect %s: %v", clientID, err)
	}
	return c
}

func (c *client) close() {
	c.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	c.conn.Close()
}

func (c *client) subscribe(filters ...string) error {
	c.t.Helper()
	var subs []paho.SubscribeOptions
	for _, f := range filters {
		subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	return err
}

func (c *client) mustSubscribe(filters ...string) {
	c.t.Helper()
	if err := c.subscribe(filters...); err != nil {
		c.t.Fatalf("subscribe %v: %v", filters, err)
	}
}

func (c *client) publish(topic string, payload any, qos byte) error {
	c.t.Helper()
	var b []byte
	switch p := payload.(type) {
	case string:
		b = []byte(p)
	case []byte:
		b = p
	default:
		b, _ = json.Marshal(p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.c.Publish(ctx, &paho.Publish{Topic: topic, Payload: b, QoS: qos})
	return err
}

// envelope is an event as Vigil publishes it.
type envelope struct {
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	TS       time.Time       `json:"ts"`
	Hospital string          `json:"hospital"`
	Patient  string          `json:"patient"`
	Data     json.RawMessage `json:"data"`
	topic    string
}

// await returns the first event, received or still to come, matching pred (in arrival order;
// events it passes over stay for later awaits). The wait is generous: this is not a speed test.
func (c *client) await(what string, pred func(envelope) bool) envelope {
	c.t.Helper()
	if e, ok := c.take(pred); ok {
		return e
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-c.msgs:
			var e envelope
			if json.Unmarshal(m.Payload, &e) != nil {
				continue
			}
			e.topic = m.Topic
			if pred(e) {
				return e
			}
			c.backlog = append(c.backlog, e)
		case <-deadline:
			c.t.Fatalf("no %s within 10 s", what)
			return envelope{}
		}
	}
}

func (c *client) take(pred func(envelope) bool) (envelope, bool) {
	for i, e := range c.backlog {
		if pred(e) {
			c.backlog = append(c.backlog[:i], c.backlog[i+1:]...)
			return e, true
		}
	}
	return envelope{}, false
}

// quiet reports whether no event matching pred arrives (or has arrived) within d.
func (c *client) quiet(d time.Duration, pred func(envelope) bool) bool {
	if _, ok := c.take(pred); ok {
		return false
	}
	deadline := time.After(d)
	for {
		select {
		case m := <-c.msgs:
			var e envelope
			if json.Unmarshal(m.Payload, &e) == nil {
				e.topic = m.Topic
				if pred(e) {
					return false
				}
				c.backlog = append(c.backlog, e)
			}
		case <-deadline:
			return true
		}
	}
}

type alertEvent struct {
	Action string `json:"action"`
	Alert  struct {
		ID              string          `json:"id"`
		Patient         string          `json:"patient"`
		Kind            string          `json:"kind"`
		Category        string          `json:"category"`
		Priority        string          `json:"priority"`
		State           string          `json:"state"`
		EscalationLevel int             `json:"escalation_level"`
		Message         string          `json:"message"`
		AckedBy         *string         `json:"acked_by"`
		Risk            json.RawMessage `json:"risk"`
	} `json:"alert"`
}

func alertOf(e envelope) alertEvent {
	var a alertEvent
	json.Unmarshal(e.Data, &a)
	return a
}

func isAlert(kind, action string) func(envelope) bool {
	return func(e envelope) bool {
		if e.Type != "patient_alert" {
			return false
		}
		a := alertOf(e)
		return a.Alert.Kind == kind && a.Action == action
	}
}

type riskData struct {
	Score    int            `json:"score"`
	Level    string         `json:"level"`
	Contribs map[string]int `json:"contributions"`
	Complete bool           `json:"complete"`
	Missing  []string       `json:"missing"`
}

func riskOf(e envelope) riskData {
	var r riskData
	json.Unmarshal(e.Data, &r)
	return r
}

func vitals(fields map[string]any) map[string]any {
	m := map[string]any{"ts": time.Now().UTC().Format(time.RFC3339Nano)}
	for k, v := range fields {
		m[k] = v
	}
	return m
}
