package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilhq/vigil/broker"
	"github.com/vigilhq/vigil/topics"
)

// serveTestMochi serves server on a loopback port until the test ends.
func serveTestMochi(t *testing.T, server *mqtt.Server) endpoint {
	t.Helper()
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err := server.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return endpoint{mqtt: tcp.Address()}
}

// refuseHook admits every client and refuses the publishes of one.
type refuseHook struct {
	mqtt.HookBase
	client string
}

func (h *refuseHook) ID() string { return "bench-test" }
func (h *refuseHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}
func (h *refuseHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (h *refuseHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	return !write || cl.ID != h.client
}

// TestBenchLoadFailures runs the bench's monitors against a real mochi broker that refuses
// one monitor's samples and disconnects another mid-run: every sample of the window is either
// published or counted as failed, the disconnected monitor reconnects and goes on, and the
// subscriber's matcher sees the published ones.
func TestBenchLoadFailures(t *testing.T) {
	server := mqtt.New(broker.MochiOptions(broker.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	if err := server.AddHook(&refuseHook{client: benchDevice(2)}, nil); err != nil {
		t.Fatal(err)
	}
	ep := serveTestMochi(t, server)

	const devices, rate = 4, 20
	plan := newBenchPlan(devices, rate, 0, 2*time.Second, 0)
	dialer := newBenchDialer(ep.mqtt, devices+1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub := newBenchSub(0, ep, false, dialer, "", nil, []string{topics.Vitals(benchHospital, "+")}, newMatcher(plan, true))
	if err := sub.connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer sub.close()
	load := newBenchLoad(plan, 1, ep, dialer, func(d int) (string, []byte) { return benchDevice(d), nil })
	defer load.closeAll()
	if err := load.connectAll(ctx, 4, nil); err != nil {
		t.Fatal(err)
	}
	if n := load.connected.Load(); n != devices {
		t.Fatalf("%d monitors connected; want %d", n, devices)
	}
	plan.start(time.Now())
	done := load.start()
	time.Sleep(time.Second)
	cl, ok := server.Clients.Get(benchDevice(1))
	if !ok {
		t.Fatal("monitor 1 is not connected")
	}
	server.DisconnectClient(cl, packets.ErrAdministrativeAction)
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the schedule did not end")
	}
	// The last samples' acknowledgements.
	deadline := time.Now().Add(5 * time.Second)
	for load.published.Load()+load.failedWin.Load() < devices*2*rate && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	load.stop()

	offered, sent := plan.offered()
	published, failed := load.published.Load(), load.failedWin.Load()
	t.Logf("offered %d, sent %d, published %d, failed %d, errors %d, last error %v", offered, sent, published, failed, load.errs.Load(), load.lastError())
	if offered != devices*2*rate || sent != offered {
		t.Errorf("offered %d, sent %d; want %d each", offered, sent, devices*2*rate)
	}
	if published+failed != offered {
		t.Errorf("published %d + failed %d != offered %d: samples unaccounted for", published, failed, offered)
	}
	// Monitor 2's every sample is refused; monitor 1 loses one or two to the disconnection.
	if failed < 2*rate+1 || failed > 2*rate+5 || load.errs.Load() < failed {
		t.Errorf("failed %d, errors %d; want %d refused and a few lost, each an error", failed, load.errs.Load(), 2*rate)
	}
	if n := load.connected.Load(); n != devices {
		t.Errorf("%d monitors connected at the end; want %d (monitor 1 reconnected)", n, devices)
	}
	if err := load.lastError(); err == nil || !strings.Contains(err.Error(), "monitor bd-") {
		t.Errorf("last error %v; want one naming a monitor", err)
	}
	// The subscriber hears what was published and nothing else.
	deadline = time.Now().Add(5 * time.Second)
	for sub.m.received.Load() < published && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	var lat, alert histogram
	if m := sub.m.result(&lat, &alert); m.delivered != published || m.unmatched != 0 {
		t.Errorf("the subscriber matched %d samples (%d unmatched); want the %d published", m.delivered, m.unmatched, published)
	}
}

// TestBenchMonitorOneInFlight checks QoS 1's one sample in flight: samples that fall due while
// one waits for its PUBACK go, in order, as each PUBACK arrives.
func TestBenchMonitorOneInFlight(t *testing.T) {
	server := mqtt.New(broker.MochiOptions(broker.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	var publishes atomic.Int64
	hold := make(chan struct{})
	if err := server.AddHook(&holdHook{hold: hold, publishes: &publishes}, nil); err != nil {
		t.Fatal(err)
	}
	ep := serveTestMochi(t, server)
	plan := newBenchPlan(1, 100, 0, 10*time.Second, 0)
	load := newBenchLoad(plan, 1, ep, newBenchDialer(ep.mqtt, 1), func(d int) (string, []byte) { return benchDevice(d), nil })
	defer load.closeAll()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := load.connectAll(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	m := &load.devs[0]
	for n := range uint32(5) {
		load.fallDue(m, n)
	}
	// The broker holds the first sample: the other four wait behind it.
	eventually(t, "the first sample at the broker", func() (bool, string) {
		return publishes.Load() == 1, fmt.Sprint(publishes.Load(), " publishes")
	})
	m.mu.Lock()
	flight, next, due := m.flight, m.next, m.due
	m.mu.Unlock()
	if flight != 0 || next != 1 || due != 5 {
		t.Fatalf("in flight %d, next %d, due %d; want sample 0 in flight, 1-4 waiting", flight, next, due)
	}
	close(hold)
	eventually(t, "five samples acknowledged", func() (bool, string) {
		return load.published.Load() == 5, fmt.Sprint(load.published.Load(), " acknowledged")
	})
	if s := plan.sent[0].Load(); s != 5 || load.errs.Load() != 0 {
		t.Errorf("sent %d, errors %d (%v); want 5, none", s, load.errs.Load(), load.lastError())
	}
}

// holdHook admits every client and holds each publish until hold is closed.
type holdHook struct {
	mqtt.HookBase
	hold      chan struct{}
	publishes *atomic.Int64
}

func (h *holdHook) ID() string { return "bench-hold" }
func (h *holdHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish}, []byte{b})
}
func (h *holdHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (h *holdHook) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }
func (h *holdHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.publishes.Add(1)
	<-h.hold
	return pk, nil
}
