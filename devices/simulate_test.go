package devices_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilhq/vigil/devices"
	"github.com/vigilhq/vigil/topics"
)

// testBroker is a bare mochi-mqtt server on 127.0.0.1. It lets every client in (auth.AllowHook:
// in this test broker only, never in Vigil). Its hook stands in for what Vigil does with an
// implausible sample: refuse it (PUBACK 0x99) and say why on the device's errors topic.
type testBroker struct {
	srv  *mqtt.Server
	hook *brokerHook
	url  string
}

func startBroker(t *testing.T, websocket bool) *testBroker {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	hook := &brokerHook{srv: srv, subscribed: make(chan string, 1000), disconnects: map[string][]error{}}
	for _, h := range []mqtt.Hook{new(auth.AllowHook), hook} {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	b := &testBroker{srv: srv, hook: hook}
	if websocket {
		// mochi's websocket listener does not report the port it bound: take a free one.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: addr})); err != nil {
			t.Fatal(err)
		}
		b.url = "ws://" + addr + "/mqtt"
	} else {
		tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
		if err := srv.AddListener(tcp); err != nil { // Init binds the port
			t.Fatal(err)
		}
		b.url = "tcp://" + tcp.Address()
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

// waitSubscribed waits until every filter has been subscribed to.
func (b *testBroker) waitSubscribed(t *testing.T, filters ...string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for len(filters) > 0 {
		select {
		case f := <-b.hook.subscribed:
			filters = slices.DeleteFunc(filters, func(s string) bool { return s == f })
		case <-deadline:
			t.Fatalf("no subscription to %v within 5 s", filters)
		}
	}
}

type brokerHook struct {
	mqtt.HookBase
	srv        *mqtt.Server
	subscribed chan string

	mu          sync.Mutex
	disconnects map[string][]error // by client ID: nil for a DISCONNECT, else why it ended
}

func (h *brokerHook) ID() string { return "test-vigil-stand-in" }

func (h *brokerHook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnSubscribed || b == mqtt.OnDisconnect
}

func (h *brokerHook) OnSubscribed(_ *mqtt.Client, pk packets.Packet, _ []byte) {
	for _, f := range pk.Filters {
		select {
		case h.subscribed <- f.Filter:
		default:
		}
	}
}

func (h *brokerHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	h.mu.Lock()
	h.disconnects[cl.ID] = append(h.disconnects[cl.ID], err)
	h.mu.Unlock()
}

func (h *brokerHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	tp, err := topics.Parse(pk.TopicName)
	if err != nil || tp.Kind != topics.KindVitals {
		return pk, nil
	}
	var s struct {
		HR   float64 `json:"hr"`
		RR   float64 `json:"rr"`
		SpO2 float64 `json:"spo2"`
		SBP  float64 `json:"sbp"`
	}
	if err := json.Unmarshal(pk.Payload, &s); err != nil {
		return pk, packets.ErrPayloadFormatInvalid
	}
	field := ""
	switch {
	case s.HR > 300:
		field = "hr"
	case s.SpO2 > 100:
		field = "spo2"
	case s.RR > 100:
		field = "rr"
	case s.SBP > 300:
		field = "sbp"
	default:
		return pk, nil
	}
	ev := fmt.Sprintf(`{"type":"sample_rejected","id":"e1","ts":"2026-11-25T10:00:00.000Z","hospital":%q,"patient":%q,"data":{"device":%q,"patient":%q,"field":%q,"reason":"implausible"}}`,
		tp.Hospital, tp.Patient, cl.ID, tp.Patient, field)
	_ = h.srv.Publish(topics.DeviceErrors(tp.Hospital, cl.ID), []byte(ev), false, 0)
	return pk, packets.ErrPayloadFormatInvalid
}

// received is what a vitals subscriber got, by patient.
type received struct {
	mu      sync.Mutex
	samples map[string][]wireSample
	n       int
}

func (r *received) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// subscribeVitals connects a paho client to the test broker's TCP listener and subscribes it
// to every patient's vitals.
func subscribeVitals(t *testing.T, b *testBroker) *received {
	t.Helper()
	r := &received{samples: map[string][]wireSample{}}
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.url, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{
		ClientID: "test-vitals-subscriber",
		Conn:     conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			tp, err := topics.Parse(pr.Packet.Topic)
			if err != nil {
				t.Errorf("sample on %q: %v", pr.Packet.Topic, err)
				return true, nil
			}
			w := decodeSample(t, pr.Packet.Payload)
			r.mu.Lock()
			r.samples[tp.Patient] = append(r.samples[tp.Patient], w)
			r.n++
			r.mu.Unlock()
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "test-vitals-subscriber", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topics.VitalsFilter, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	return r
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var _ io.Writer = tWriter{}

func ward(n int) []devices.Monitor {
	scenarios := devices.Scenarios()
	mons := make([]devices.Monitor, n)
	for i := range mons {
		mons[i] = devices.Monitor{
			Device:   fmt.Sprintf("mon-%d", i+1),
			Secret:   "not-checked-by-the-test-broker",
			Hospital: "h1",
			Patient:  fmt.Sprintf("p%d", i+1),
			Scenario: scenarios[i%len(scenarios)],
		}
	}
	return mons
}

func TestSimulate(t *testing.T) {
	b := startBroker(t, false)
	got := subscribeVitals(t, b)
	mons := ward(6) // one monitor per scenario

	var mu sync.Mutex
	var progress []devices.Progress
	// At 120x, dropout goes away after 1 s of wall time (2 minutes) and comes back at 1.5 s.
	// The run ends once it is back and at least runFor has passed (a loaded machine only makes
	// it longer; the 30 s bound is for a broken simulator, not a timing assertion).
	const runFor = 2200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := devices.Simulate(ctx, devices.SimOptions{
		URL:       b.url,
		Monitors:  mons,
		Rate:      20,
		TimeScale: 120,
		Seed:      1,
		Progress: func(p devices.Progress) {
			mu.Lock()
			progress = append(progress, p)
			mu.Unlock()
			if p.Connects >= 7 && p.Elapsed >= runFor {
				cancel()
			}
		},
		ProgressEvery: 200 * time.Millisecond,
		Logger:        testLogger(t),
	})
	if err != nil {
		t.Fatalf("Simulate: %v", err)
	}
	t.Logf("summary: %+v", sum)

	// Totals add up, per scenario and overall.
	if sum.Sent != sum.Acked+sum.Refused+sum.Errors || sum.Errors != 0 {
		t.Errorf("sent %d, acked %d, refused %d, errors %d; want sent = acked + refused and no errors",
			sum.Sent, sum.Acked, sum.Refused, sum.Errors)
	}
	if min := int(sum.Elapsed.Seconds() * 20 * 6 / 4); sum.Sent < min {
		t.Errorf("%d samples sent in %v at 20 Hz by 6 monitors; want at least %d", sum.Sent, sum.Elapsed, min)
	}
	// The dropout monitor reconnects at least once; the run may end while it is away again.
	if sum.Connected < 5 || sum.Connects < 7 {
		t.Errorf("connected %d, connects %d; want the five steady monitors connected and the dropout reconnected", sum.Connected, sum.Connects)
	}
	for sc, c := range sum.Scenarios {
		if c.Monitors != 1 || c.Acked == 0 {
			t.Errorf("%s: %+v; want 1 monitor with samples acknowledged", sc, c)
		}
		if sc == devices.Dropout {
			if c.Connects < 2 {
				t.Errorf("%s: %d connects; want a reconnection", sc, c.Connects)
			}
		} else if c.Connects != 1 {
			t.Errorf("%s: %d connects; want 1", sc, c.Connects)
		}
		if sc != devices.SensorFault && (c.Refused != 0 || c.Rejected != 0) {
			t.Errorf("%s: %+v; want nothing refused", sc, c)
		}
	}
	if len(sum.Scenarios) != 6 {
		t.Errorf("summary of %d scenarios; want 6", len(sum.Scenarios))
	}
	// The sensor_fault monitor's implausible samples were refused (PUBACK 0x99), and its
	// sample_rejected events counted (the last may not arrive before the DISCONNECT).
	if f := sum.Scenarios[devices.SensorFault]; f.Refused == 0 || f.Rejected < f.Refused-1 || f.Rejected > f.Refused {
		t.Errorf("sensor_fault: %+v; want refusals, each with a sample_rejected event", f)
	}

	// The subscriber got every acknowledged sample, in order.
	deadline := time.Now().Add(3 * time.Second)
	for got.count() < sum.Acked && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if got.n != sum.Acked {
		t.Errorf("subscriber received %d samples; want the %d acknowledged", got.n, sum.Acked)
	}
	for _, m := range mons {
		samples := got.samples[m.Patient]
		for i, s := range samples {
			if i > 0 && s.Seq <= samples[i-1].Seq {
				t.Fatalf("%s: seq %d after %d; want increasing", m.Device, s.Seq, samples[i-1].Seq)
			}
			if m.Scenario != devices.SensorFault && s.Seq != int64(i+1) {
				t.Fatalf("%s: sample %d has seq %d; want %d (no gaps)", m.Device, i, s.Seq, i+1)
			}
		}
		if m.Scenario == devices.Dropout {
			gap := 0 * time.Millisecond
			for i := 1; i < len(samples); i++ {
				a, _ := time.Parse(time.RFC3339Nano, samples[i-1].TS)
				b, _ := time.Parse(time.RFC3339Nano, samples[i].TS)
				gap = max(gap, b.Sub(a))
			}
			if gap < 400*time.Millisecond {
				t.Errorf("dropout: longest gap between samples %v; want about 500 ms away", gap)
			}
		}
	}

	// Every monitor left with a DISCONNECT, and dropout once without one. The broker sees the
	// ends a little after the clients.
	wantEnds := func(m devices.Monitor) int {
		if m.Scenario == devices.Dropout {
			return 2
		}
		return 1
	}
	b.hook.mu.Lock()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		all := true
		for _, m := range mons {
			all = all && len(b.hook.disconnects[m.Device]) >= wantEnds(m)
		}
		if all {
			break
		}
		b.hook.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		b.hook.mu.Lock()
	}
	for _, m := range mons {
		ends := b.hook.disconnects[m.Device]
		unclean := 0
		for _, e := range ends[:max(len(ends)-1, 0)] {
			if e != nil {
				unclean++
			}
		}
		// The last end is a DISCONNECT; before it, only dropout's deliberate drops (at least
		// one; the run may end after a second).
		n := wantEnds(m)
		last := len(ends) - 1
		if len(ends) < n || unclean != len(ends)-1 || ends[last] != nil || (m.Scenario != devices.Dropout && len(ends) != 1) {
			t.Errorf("%s disconnects: %v; want the last with a DISCONNECT and %d unclean before", m.Device, ends, n-1)
		}
	}
	b.hook.mu.Unlock()

	mu.Lock()
	defer mu.Unlock()
	if len(progress) < 5 {
		t.Errorf("Progress called %d times in %v, every 200 ms; want at least 5", len(progress), runFor)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i].Sent < progress[i-1].Sent || progress[i].Elapsed <= progress[i-1].Elapsed {
			t.Errorf("progress %+v after %+v; want counts and time going up", progress[i], progress[i-1])
		}
	}
}

func TestSimulateWebSocket(t *testing.T) {
	b := startBroker(t, true)
	mons := ward(2)
	// Run until both monitors are connected and some samples acknowledged (a generous bound, not
	// a timed assertion: a loaded machine only takes longer).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	progress := func(p devices.Progress) {
		if p.Connects >= 2 && p.Acked >= 10 {
			cancel()
		}
	}
	sum, err := devices.Simulate(ctx, devices.SimOptions{URL: b.url, Monitors: mons, Rate: 10, Progress: progress, ProgressEvery: 50 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Simulate over WebSocket: %v", err)
	}
	if sum.Acked < 10 || sum.Sent != sum.Acked || sum.Connects != 2 {
		t.Errorf("over WebSocket: %+v; want both monitors connected, samples all acknowledged", sum)
	}
}

func TestSimulateQoS0(t *testing.T) {
	b := startBroker(t, false)
	got := subscribeVitals(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	progress := func(p devices.Progress) {
		if p.Sent >= 10 {
			cancel()
		}
	}
	sum, err := devices.Simulate(ctx, devices.SimOptions{URL: b.url, Monitors: ward(1), Rate: 20, AtMostOnce: true, Progress: progress, ProgressEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent < 5 || sum.Acked != 0 || sum.Errors != 0 {
		t.Errorf("at QoS 0: %+v; want samples sent, none acknowledged", sum)
	}
	deadline := time.Now().Add(2 * time.Second)
	for got.count() < sum.Sent && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := got.count(); n != sum.Sent {
		t.Errorf("subscriber received %d samples; want the %d sent", n, sum.Sent)
	}
}

func TestSimulateWatch(t *testing.T) {
	b := startBroker(t, false)
	mons := ward(1)
	seen := make(chan int, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sum devices.Summary
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sum, err = devices.Simulate(ctx, devices.SimOptions{
			URL:           b.url,
			Monitors:      mons,
			Watch:         &devices.WatchOptions{Username: "nurse1", Token: "jwt"},
			Progress:      func(p devices.Progress) { seen <- p.AlertsSeen },
			ProgressEvery: 20 * time.Millisecond,
			Logger:        testLogger(t),
		})
	}()
	b.waitSubscribed(t, "hospital/h1/alerts", "hospital/h1/patient/+/alerts")

	alert := func(action string, level int) []byte {
		return fmt.Appendf(nil, `{"type":"patient_alert","id":"ev-%s-%d","ts":"2026-11-25T10:00:00.000Z","hospital":"h1","patient":"p1",`+
			`"data":{"action":%q,"alert":{"id":"a1","kind":"news2","priority":"high","escalation_level":%d}}}`, action, level, action, level)
	}
	publish := func(topic string, payload []byte) {
		if err := b.srv.Publish(topic, payload, false, 1); err != nil {
			t.Fatal(err)
		}
	}
	publish(topics.PatientAlerts("h1", "p1"), alert("raised", 0))
	publish(topics.PatientAlerts("h1", "p1"), alert("updated", 0))      // not counted
	publish(topics.PatientAlerts("h1", "p1"), alert("escalated", 1))    // counted once,
	publish(topics.HospitalAlerts("h1"), alert("escalated", 1))         // although it comes twice
	publish(topics.PatientAlerts("h1", "p1"), alert("acknowledged", 1)) // not counted
	publish(topics.HospitalAlerts("h1"), []byte(`{"type":"hospital_alert","data":{"priority":"high","message":"code red"}}`))

	timeout := time.After(5 * time.Second)
	for n := 0; n < 2; {
		select {
		case n = <-seen:
		case <-timeout:
			t.Fatalf("AlertsSeen %d after 5 s; want 2", n)
		}
	}
	time.Sleep(100 * time.Millisecond) // room for a wrong third
	cancel()
	<-done
	if err != nil || sum.AlertsSeen != 2 {
		t.Errorf("Simulate with Watch = %+v, %v; want AlertsSeen 2 (raised, escalated)", sum.Progress, err)
	}
}

func TestSimulateOptions(t *testing.T) {
	good := ward(1)
	tests := []struct {
		name string
		opts devices.SimOptions
		want string
	}{
		{"no url", devices.SimOptions{Monitors: good}, "broker url"},
		{"bad scheme", devices.SimOptions{URL: "http://127.0.0.1:1883", Monitors: good}, "scheme"},
		{"no monitors", devices.SimOptions{URL: "tcp://127.0.0.1:1883"}, "no monitors"},
		{"bad device id", devices.SimOptions{URL: "tcp://127.0.0.1:1883", Monitors: []devices.Monitor{{Device: "a/b", Hospital: "h1", Patient: "p1", Scenario: devices.Stable}}}, "invalid device id"},
		{"unknown scenario", devices.SimOptions{URL: "tcp://127.0.0.1:1883", Monitors: []devices.Monitor{{Device: "d", Hospital: "h1", Patient: "p1", Scenario: "septic"}}}, "unknown scenario"},
		{"same device twice", devices.SimOptions{URL: "tcp://127.0.0.1:1883", Monitors: append(ward(1), ward(1)...)}, "twice"},
		{"negative rate", devices.SimOptions{URL: "tcp://127.0.0.1:1883", Monitors: good, Rate: -1}, "rate"},
		{"qos 2", devices.SimOptions{URL: "tcp://127.0.0.1:1883", Monitors: good, QoS: 2}, "qos"},
		{"watch without token", devices.SimOptions{URL: "tcp://127.0.0.1:1883", Monitors: good, Watch: &devices.WatchOptions{}}, "token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := devices.Simulate(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Simulate(%s) = %v; want an error about %q", tt.name, err, tt.want)
			}
		})
	}
}
