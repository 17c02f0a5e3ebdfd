package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigilhq/vigil/auth"
	"github.com/vigilhq/vigil/devices"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/embedded"
)

// deviceStore gives the registry the embedded store (the same adapter cmd/vigil wires).
type deviceStore struct{ st store.Store }

func (d deviceStore) CreateDevice(ctx context.Context, r devices.Record) error {
	return d.st.CreateDevice(ctx, store.Device(r))
}
func (d deviceStore) GetDevice(ctx context.Context, id string) (devices.Record, error) {
	r, err := d.st.GetDevice(ctx, id)
	return devices.Record(r), err
}
func (d deviceStore) UpdateDevice(ctx context.Context, r devices.Record) error {
	return d.st.UpdateDevice(ctx, store.Device(r))
}
func (d deviceStore) DeleteDevice(ctx context.Context, id string) error {
	return d.st.DeleteDevice(ctx, id)
}
func (d deviceStore) ListDevices(ctx context.Context, h string, limit int, cursor string) ([]devices.Record, string, error) {
	rs, next, err := d.st.ListDevices(ctx, h, store.Page{Limit: limit, Cursor: cursor})
	out := make([]devices.Record, len(rs))
	for i, r := range rs {
		out[i] = devices.Record(r)
	}
	return out, next, err
}
func (d deviceStore) PatientExists(ctx context.Context, h, p string) error {
	_, err := d.st.GetPatient(ctx, h, p)
	return err
}

type tokens struct{ t *auth.Tokens }

func (v tokens) VerifyToken(token string) (Principal, error) {
	c, err := v.t.Verify(token)
	if err != nil {
		return Principal{}, err
	}
	return Principal{Subject: c.Subject, Admin: c.Role == auth.RoleAdmin, Hospitals: c.Hospitals, Expires: c.ExpiresAt.Time}, nil
}

// testBroker starts a real broker with the real device registry on the embedded store, with
// one device assigned to a patient; it returns the broker, the device's secret and a nurse JWT.
// tweak, if not nil, changes the options.
func testBroker(b testing.TB, tweak func(*Options)) (*Broker, string, string) {
	b.Helper()
	ctx := context.Background()
	st, err := embedded.Open(b.TempDir(), embedded.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.CreatePatient(ctx, store.Patient{Hospital: "h1", ID: "p1", SpO2Scale: 1}); err != nil {
		b.Fatal(err)
	}
	reg, err := devices.Open(ctx, deviceStore{st}, devices.Options{})
	if err != nil {
		b.Fatal(err)
	}
	_, secret, err := reg.Provision(ctx, "h1", "mon-1", "")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := reg.Assign(ctx, "h1", "mon-1", "p1"); err != nil {
		b.Fatal(err)
	}
	tk, err := auth.NewTokens([]byte("benchmark-secret-benchmark-secret-0123"), auth.TokenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	jwt, _, err := tk.Issue("nurse", auth.RoleNurse, []string{"h1"})
	if err != nil {
		b.Fatal(err)
	}
	opts := Options{MQTTAddr: "127.0.0.1:0", Devices: reg, Tokens: tokens{tk}, DeviceRate: 1e9}
	if tweak != nil {
		tweak(&opts)
	}
	br, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br, secret, jwt
}

// TestQueueBackpressure: with a tiny outgoing queue, bursts to one subscriber (its retained
// messages on subscribing, then eight publishers at once) wait for the subscriber's writer
// instead of overflowing the queue: every message arrives, nothing is dropped, and the
// subscriber is never disconnected.
func TestQueueBackpressure(t *testing.T) {
	br, _, jwt := testBroker(t, func(o *Options) { o.MaxPendingWrites = 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const retained, publishers, each = 500, 8, 250
	for i := range retained {
		if err := br.Publish(ctx, fmt.Sprintf("hospital/h1/patient/r%d/risk", i), []byte(`{}`), 1, true); err != nil {
			t.Fatal(err)
		}
	}

	conn, err := net.Dial("tcp", br.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, retained+publishers*each)
	var disconnected atomic.Bool
	lost := make(chan struct{})
	var once sync.Once
	disconnect := func() { disconnected.Store(true); once.Do(func() { close(lost) }) }
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			got <- pr.Packet.Topic
			return true, nil
		}},
		OnServerDisconnect: func(*paho.Disconnect) { disconnect() },
		OnClientError:      func(error) { disconnect() },
	})
	defer c.Disconnect(&paho.Disconnect{})
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "web-1", CleanStart: true, KeepAlive: 30,
		Username: "web", UsernameFlag: true, Password: []byte(jwt), PasswordFlag: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect: %v %v", ca, err)
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "hospital/h1/patient/+/risk", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	receive := func(n int, what string) map[string]int {
		seen := map[string]int{}
		for range n {
			select {
			case tp := <-got:
				seen[tp]++
			case <-lost:
				t.Fatalf("%s: disconnected after %d of %d messages (drops: %v)", what, len(seen), n, br.stats.snapshot(br.server).Drops)
			case <-ctx.Done():
				t.Fatalf("%s: %d of %d messages arrived (disconnected: %v, drops: %v)", what, len(seen), n, disconnected.Load(), br.stats.snapshot(br.server).Drops)
			}
		}
		return seen
	}
	if seen := receive(retained, "retained"); len(seen) != retained {
		t.Fatalf("retained: %d distinct topics of %d", len(seen), retained)
	}

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				if err := br.Publish(ctx, fmt.Sprintf("hospital/h1/patient/l%d-%d/risk", p, i), []byte(`{}`), 1, false); err != nil {
					t.Error(err)
				}
			}
		})
	}
	seen := receive(publishers*each, "live")
	wg.Wait()
	if len(seen) != publishers*each {
		t.Fatalf("live: %d distinct topics of %d", len(seen), publishers*each)
	}
	if d := br.stats.snapshot(br.server).Drops; len(d) != 0 || disconnected.Load() {
		t.Fatalf("drops %v, disconnected %v; want none", d, disconnected.Load())
	}
	// The bursts did fill the queue of four: the publishers waited for the writer.
	if br.stats.queueWaits.Load() == 0 {
		t.Fatal("no publisher ever waited: the test did not exercise a full queue")
	}
}

type acceptVitals struct{ n atomic.Int64 }

func (a *acceptVitals) HandleVitals(context.Context, Vitals) (func(context.Context) error, error) {
	a.n.Add(1)
	return func(context.Context) error { return nil }, nil
}

// TestQueueCountIgnoresAcks: mochi reports the PUBACK of a device's QoS 1 publish through the
// same hook as a message queued for delivery; those acknowledgements are written at once and
// must not count as queued (or a device's publishes would soon make its publishers wait).
func TestQueueCountIgnoresAcks(t *testing.T) {
	vitals := &acceptVitals{}
	br, secret, _ := testBroker(t, func(o *Options) { o.Vitals = vitals })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", br.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	defer c.Disconnect(&paho.Disconnect{})
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "mon-1", CleanStart: true, KeepAlive: 30,
		Username: "mon-1", UsernameFlag: true, Password: []byte(secret), PasswordFlag: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect: %v %v", ca, err)
	}
	const n = 300 // more than a queue's worth
	for i := range n {
		pr, err := c.Publish(ctx, &paho.Publish{Topic: "hospital/h1/patient/p1/vitals", QoS: 1, Payload: []byte(`{"hr":70}`)})
		if err != nil || pr.ReasonCode != 0 {
			t.Fatalf("publish %d: %v %v", i, pr, err)
		}
	}
	if got := vitals.n.Load(); got != n {
		t.Fatalf("%d vitals handled; want %d", got, n)
	}
	cl, ok := br.server.Clients.Get("mon-1")
	if !ok {
		t.Fatal("mon-1 not connected")
	}
	if q := cl.Net.Conn.(*sendConn).queued.Load(); q != 0 {
		t.Fatalf("queued = %d after %d acknowledged publishes; want 0", q, n)
	}
}

// TestCloseDisconnectsClients: closing the broker sends every client "server shutting down"
// (0x8B) and returns, while other clients are leaving (each leaving client takes the client
// list's write lock, which once deadlocked the shutdown) and new ones arriving (mochi adds each
// to a WaitGroup its Close waits on: a race inside mochi unless Broker.admit holds them back,
// which TestAdmitGate checks deterministically).
func TestCloseDisconnectsClients(t *testing.T) {
	br, _, jwt := testBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connect := func(id string, onDisconnect func(*paho.Disconnect)) (*paho.Client, net.Conn) {
		conn, err := net.Dial("tcp", br.Addr("tcp"))
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn, OnServerDisconnect: onDisconnect})
		ca, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
			Username: "nurse", UsernameFlag: true, Password: []byte(jwt), PasswordFlag: true})
		if err != nil || ca.ReasonCode != 0 {
			t.Fatalf("%s: CONNACK %v, %v", id, ca, err)
		}
		return c, conn
	}
	const n, leavers, each = 20, 4, 25
	reasons := make(chan byte, n)
	for i := range n {
		connect(fmt.Sprintf("web-%d", i), func(d *paho.Disconnect) { reasons <- d.ReasonCode })
	}
	type client struct {
		c    *paho.Client
		conn net.Conn
	}
	leaving := make([][]client, leavers)
	for g := range leavers {
		for i := range each {
			c, conn := connect(fmt.Sprintf("leaving-%d-%d", g, i), nil)
			leaving[g] = append(leaving[g], client{c, conn})
		}
	}

	var wg sync.WaitGroup
	var left atomic.Int64
	stop := make(chan struct{})
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				conn, err := net.Dial("tcp", br.Addr("tcp"))
				if err != nil {
					continue // the listener is closed
				}
				c := paho.NewClient(paho.ClientConfig{Conn: conn})
				if _, err := c.Connect(ctx, &paho.Connect{ClientID: fmt.Sprintf("arriving-%d-%d", g, i), CleanStart: true,
					KeepAlive: 30, Password: []byte(jwt), PasswordFlag: true}); err == nil {
					c.Disconnect(&paho.Disconnect{})
				}
				conn.Close()
			}
		}()
	}
	for g := range leavers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, l := range leaving[g] {
				l.c.Disconnect(&paho.Disconnect{})
				l.conn.Close()
				left.Add(1)
			}
		}()
	}
	for left.Load() < leavers && ctx.Err() == nil {
		time.Sleep(100 * time.Microsecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- br.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
	close(stop)
	wg.Wait()
	for i := range n {
		select {
		case r := <-reasons:
			if r != 0x8b {
				t.Errorf("client disconnected with reason %#x; want 0x8b (server shutting down)", r)
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d clients told of the shutdown", i, n)
		}
	}
}

// TestReceiveMaximum: a subscriber's Receive Maximum (MQTT 5) is kept: with 2, the third
// message waits until the client acknowledges one, and all arrive in order.
func TestReceiveMaximum(t *testing.T) {
	br, _, jwt := testBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rm := uint16(2)
	c := dialRaw(t, br, jwt, "web-rm", &packets.Properties{ReceiveMaximum: &rm}, "hospital/h1/patient/+/risk")
	read, send := c.read, c.send
	if cp, err := read(5 * time.Second); err != nil || cp.Type != packets.SUBACK {
		t.Fatalf("SUBACK: %v %v", cp, err)
	}
	const n = 5
	for i := range n {
		if err := br.Publish(ctx, "hospital/h1/patient/p1/risk", []byte{'0' + byte(i)}, 1, false); err != nil {
			t.Fatal(err)
		}
	}
	next := func(want byte) uint16 {
		t.Helper()
		cp, err := read(5 * time.Second)
		if err != nil || cp.Type != packets.PUBLISH {
			t.Fatalf("want PUBLISH %c: %v %v", want, cp, err)
		}
		p := cp.Content.(*packets.Publish)
		if string(p.Payload) != string(want) {
			t.Fatalf("PUBLISH %q; want %c (in order)", p.Payload, want)
		}
		return p.PacketID
	}
	none := func() {
		t.Helper()
		if cp, err := read(300 * time.Millisecond); err == nil {
			t.Fatalf("%v arrived past the client's Receive Maximum", cp)
		}
	}
	ids := []uint16{next('0'), next('1')}
	none()
	for i := 2; i < n; i++ {
		send(&packets.Puback{PacketID: ids[0]})
		ids = append(ids[1:], next('0'+byte(i)))
		none()
	}
}

// TestReceiveMaximumBusy: many publishers to a subscriber that sets a Receive Maximum and
// acknowledges as it goes. mochi's own flow control deadlocked here within a few thousand
// messages (the subscriber's reader read-locking its inflight set twice while a publisher
// waited for the write lock); every message must arrive.
func TestReceiveMaximumBusy(t *testing.T) {
	br, _, jwt := testBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", br.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(paho.PublishReceived) (bool, error) { got.Add(1); return true, nil }}})
	defer c.Disconnect(&paho.Disconnect{})
	rm := uint16(50)
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "web-busy", CleanStart: true, KeepAlive: 30,
		Password: []byte(jwt), PasswordFlag: true, Properties: &paho.ConnectProperties{ReceiveMaximum: &rm}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "hospital/h1/patient/+/risk", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	const publishers, each = 4, 5000
	var sent atomic.Int64
	var wg sync.WaitGroup
	for g := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("hospital/h1/patient/p%d/risk", g)
			for range each {
				for sent.Load()-got.Load() > 2000 && ctx.Err() == nil { // within the inflight limit
					time.Sleep(100 * time.Microsecond)
				}
				if err := br.Publish(ctx, topic, []byte(`{}`), 1, false); err != nil {
					t.Error(err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	published := make(chan struct{})
	go func() { wg.Wait(); close(published) }()
	select {
	case <-published:
	case <-ctx.Done():
		t.Fatalf("publishers stuck after %d messages (the subscriber got %d)", sent.Load(), got.Load())
	}
	for got.Load() < publishers*each && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if n := got.Load(); n != publishers*each {
		t.Fatalf("the subscriber got %d of %d messages", n, publishers*each)
	}
}

// TestAdmitGate: Close waits while a connection is being handed to mochi, until mochi first
// reads from it (by then mochi counts the client that its Close waits for); after Close, new
// connections are refused. The EstablishFn stands in for mochi's, to hold the hand-over open.
func TestAdmitGate(t *testing.T) {
	br, _, _ := testBroker(t, nil)
	srv, cli := tcpPair(t)
	inside, proceed := make(chan struct{}), make(chan struct{})
	admitted := make(chan error, 1)
	go func() {
		admitted <- br.admit(func(_ string, c net.Conn) error {
			close(inside)
			<-proceed
			_, err := c.Read(make([]byte, 1))
			return err
		}, "tcp", srv)
	}()
	<-inside
	closed := make(chan error, 1)
	go func() { closed <- br.Close() }()
	select {
	case <-closed:
		t.Fatal("Close went ahead while a connection was being admitted")
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := cli.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	close(proceed)
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return once mochi had read from the connection")
	}
	if err := <-admitted; err != nil {
		t.Errorf("admit: %v", err)
	}
	late, _ := tcpPair(t)
	err := br.admit(func(string, net.Conn) error {
		t.Error("a connection was established after Close")
		return nil
	}, "tcp", late)
	if !errors.Is(err, errClosing) {
		t.Errorf("admit after Close = %v; want errClosing", err)
	}
}

// TestInflightBackpressure: a publisher to a subscriber with three quarters of its inflight
// limit unacknowledged waits for its acknowledgements (each PUBACK lets one more through)
// instead of the subscriber being disconnected; a subscriber that acknowledges nothing for a
// second is disconnected as stuck, and the publisher goes on.
func TestInflightBackpressure(t *testing.T) {
	br, _, jwt := testBroker(t, func(o *Options) { o.MaxInflight = 8 }) // publishers wait at 6
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := dialRaw(t, br, jwt, "web-slow", nil, "hospital/h1/patient/+/risk")
	read, send := c.read, c.send
	if cp, err := read(5 * time.Second); err != nil || cp.Type != packets.SUBACK {
		t.Fatalf("SUBACK: %v %v", cp, err)
	}
	const n = 10
	var published atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if err := br.Publish(ctx, "hospital/h1/patient/p1/risk", []byte{'0' + byte(i)}, 1, false); err != nil {
				t.Error(err)
			}
			published.Add(1)
		}
	}()
	next := func(want byte) uint16 {
		t.Helper()
		cp, err := read(5 * time.Second)
		if err != nil || cp.Type != packets.PUBLISH {
			t.Fatalf("want PUBLISH %c: %v %v", want, cp, err)
		}
		if p := cp.Content.(*packets.Publish); string(p.Payload) != string(want) {
			t.Fatalf("PUBLISH %q; want %c (in order)", p.Payload, want)
		}
		return cp.Content.(*packets.Publish).PacketID
	}
	none := func() {
		t.Helper()
		if cp, err := read(300 * time.Millisecond); err == nil {
			t.Fatalf("%v arrived with six messages unacknowledged", cp)
		}
	}
	var ids []uint16
	for i := range 5 {
		ids = append(ids, next('0'+byte(i)))
	}
	none() // the sixth is in the inflight set: the publisher waits
	if p := published.Load(); p != 5 {
		t.Fatalf("%d publishes returned; want 5 (the sixth waiting)", p)
	}
	send(&packets.Puback{PacketID: ids[0], ReasonCode: 0})
	next('5')
	none()
	if d := br.stats.snapshot(br.server).Drops; len(d) != 0 {
		t.Fatalf("drops %v while the subscriber acknowledges; want none", d)
	}
	// No more acknowledgements: after a second the subscriber is taken as stuck.
	start := time.Now()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the publisher is still waiting")
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Errorf("the publisher went on after %v; want about a second of waiting", waited)
	}
	if d := br.stats.snapshot(br.server).Drops; d["inflight_stuck"] != 1 {
		t.Errorf("drops %v; want the stuck subscriber counted once", d)
	}
	if br.stats.inflightWaits.Load() == 0 {
		t.Error("no wait for acknowledgements counted")
	}
	// The server disconnected it (DISCONNECT 0x89, server busy, then EOF).
	for {
		cp, err := read(5 * time.Second)
		if err != nil {
			break
		}
		if cp.Type == packets.DISCONNECT {
			if rc := cp.Content.(*packets.Disconnect).ReasonCode; rc != 0x89 {
				t.Errorf("DISCONNECT reason %#x; want 0x89 (server busy)", rc)
			}
			break
		}
	}
}

// TestRetainedBurstDoesNotWaitForAcks: the retained messages a subscriber gets on subscribing
// are sent by its own connection goroutine, which is also the one that reads its PUBACKs; they
// never wait for acknowledgements (that would stall the connection until it was taken as
// stuck), even past the point where live messages would.
func TestRetainedBurstDoesNotWaitForAcks(t *testing.T) {
	br, _, jwt := testBroker(t, func(o *Options) { o.MaxInflight = 64 }) // live publishers wait at 48
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const retained = 60
	for i := range retained {
		if err := br.Publish(ctx, fmt.Sprintf("hospital/h1/patient/r%d/risk", i), []byte(`{}`), 1, true); err != nil {
			t.Fatal(err)
		}
	}
	c := dialRaw(t, br, jwt, "web-burst", nil, "hospital/h1/patient/+/risk")
	read := func() *packets.ControlPacket {
		t.Helper()
		cp, err := c.read(5 * time.Second)
		if err != nil {
			t.Fatalf("reading: %v (drops %v)", err, br.stats.snapshot(br.server).Drops)
		}
		return cp
	}
	seen := 0
	for seen < retained {
		switch cp := read(); cp.Type {
		case packets.SUBACK:
		case packets.PUBLISH:
			seen++
			c.send(&packets.Puback{PacketID: cp.Content.(*packets.Publish).PacketID})
		default:
			t.Fatalf("%v during the retained burst (drops %v)", cp, br.stats.snapshot(br.server).Drops)
		}
	}
	if d := br.stats.snapshot(br.server).Drops; len(d) != 0 || br.stats.inflightWaits.Load() != 0 {
		t.Errorf("drops %v, waits for acknowledgements %d; want none", d, br.stats.inflightWaits.Load())
	}
}

// rawClient is an MQTT 5 client made of paho's packets and no client logic: it acknowledges
// only what the test does.
type rawClient struct {
	t    *testing.T
	conn net.Conn
}

// dialRaw connects a raw client with the JWT and subscribes it to filter at QoS 1 (the SUBACK
// is left to read).
func dialRaw(t *testing.T, br *Broker, jwt, id string, props *packets.Properties, filter string) *rawClient {
	t.Helper()
	c, _ := connectRaw(t, br, jwt, id, props, true)
	c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.SubOptions{{Topic: filter, QoS: 1}}})
	return c
}

// connectRaw connects a raw client with the JWT; it returns the CONNACK.
func connectRaw(t *testing.T, br *Broker, jwt, id string, props *packets.Properties, cleanStart bool) (*rawClient, *packets.Connack) {
	t.Helper()
	conn, err := net.Dial("tcp", br.Addr("tcp"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn}
	if props == nil {
		props = &packets.Properties{}
	}
	c.send(&packets.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, KeepAlive: 30, CleanStart: cleanStart, ClientID: id,
		Password: []byte(jwt), PasswordFlag: true, Properties: props})
	cp, err := c.read(5 * time.Second)
	if err != nil || cp.Type != packets.CONNACK || cp.Content.(*packets.Connack).ReasonCode != 0 {
		t.Fatalf("CONNACK: %v %v", cp, err)
	}
	return c, cp.Content.(*packets.Connack)
}

func (c *rawClient) read(wait time.Duration) (*packets.ControlPacket, error) {
	c.conn.SetReadDeadline(time.Now().Add(wait))
	return packets.ReadPacket(c.conn)
}

func (c *rawClient) send(cp interface {
	WriteTo(io.Writer) (int64, error)
}) {
	c.t.Helper()
	if _, err := cp.WriteTo(c.conn); err != nil {
		c.t.Fatal(err)
	}
}

// TestStuckSubscriberNotWaitedForAgain: a persistent session disconnected for not
// acknowledging comes back with everything it left unacknowledged, at the limit at once.
// Publishers do not wait a second for it again (a reconnecting client that never acknowledges
// would stall them, ingest workers serving other hospitals, a second per reconnection); once
// it acknowledges, it is waited for like any client.
func TestStuckSubscriberNotWaitedForAgain(t *testing.T) {
	br, _, jwt := testBroker(t, func(o *Options) { o.MaxInflight = 16 }) // publishers wait at 12
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const filter, topic = "hospital/h1/patient/+/risk", "hospital/h1/patient/p1/risk"
	expiry := uint32(3600)
	session := &packets.Properties{SessionExpiryInterval: &expiry}
	c, _ := connectRaw(t, br, jwt, "web-stuck", session, true)
	c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.SubOptions{{Topic: filter, QoS: 1}}})
	if cp, err := c.read(5 * time.Second); err != nil || cp.Type != packets.SUBACK {
		t.Fatalf("SUBACK: %v %v", cp, err)
	}
	publish := func() {
		t.Helper()
		if err := br.Publish(ctx, topic, []byte("x"), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	counts := func() (waits int64, stuck int64) {
		return br.stats.inflightWaits.Load(), br.stats.snapshot(br.server).Drops["inflight_stuck"]
	}
	for range 13 { // the 13th waits for the first 12, a second, then the client goes
		publish()
	}
	if w, s := counts(); w != 1 || s != 1 {
		t.Fatalf("first time: %d waits, %d stuck; want 1 and 1", w, s)
	}
	waitClosed(t, br, "web-stuck")

	// Back, still not acknowledging: not waited for again. Its first second, messages pass (its
	// first PUBACKs may be on their way); after that it is cut off at once.
	c, ack := connectRaw(t, br, jwt, "web-stuck", session, false)
	if !ack.SessionPresent {
		t.Fatal("session not present on reconnecting")
	}
	established(t, br, "web-stuck")
	publish()
	if w, s := counts(); w != 1 || s != 1 || !br.Connected("web-stuck") {
		t.Fatalf("back, in its first second: %d waits, %d stuck, connected %v; want still 1, 1, connected", w, s, br.Connected("web-stuck"))
	}
	time.Sleep(maxRoomWait)
	publish()
	if w, s := counts(); w != 1 || s != 2 {
		t.Fatalf("back, a second without acknowledging: %d waits, %d stuck; want still 1 wait, 2 stuck", w, s)
	}
	waitClosed(t, br, "web-stuck")

	// Back, and acknowledging one message: waited for like any client again.
	c, _ = connectRaw(t, br, jwt, "web-stuck", session, false)
	established(t, br, "web-stuck")
	var resent []uint16
	for len(resent) < 13 {
		cp, err := c.read(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d resent messages: %v", len(resent), err)
		}
		if cp.Type == packets.PUBLISH {
			resent = append(resent, cp.Content.(*packets.Publish).PacketID)
		}
	}
	cl, _ := br.server.Clients.Get("web-stuck")
	before := cl.State.Inflight.Len()
	c.send(&packets.Puback{PacketID: resent[0]})
	for deadline := time.Now().Add(5 * time.Second); cl.State.Inflight.Len() == before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the acknowledgement was not taken")
		}
	}
	published := make(chan struct{})
	go func() { defer close(published); publish() }() // still at the limit: waits
	for deadline := time.Now().Add(5 * time.Second); br.stats.inflightWaits.Load() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the publisher did not wait for a client that acknowledges again")
		}
	}
	for _, id := range resent[1:] {
		c.send(&packets.Puback{PacketID: id})
	}
	<-published
	if _, s := counts(); s != 2 || !br.Connected("web-stuck") {
		t.Errorf("after acknowledging: %d stuck, connected %v; want still 2, connected", s, br.Connected("web-stuck"))
	}
}

// established waits until the broker has set up the connection of client id
// (OnSessionEstablished runs after mochi has sent the CONNACK; it names the send buffer last).
func established(t *testing.T, br *Broker, id string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if cl, ok := br.server.Clients.Get(id); ok && !cl.Closed() {
			if sc, ok := cl.Net.Conn.(*sendConn); ok && sc.client.Load() == id {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not established", id)
		}
	}
}

// waitClosed waits until the client with this ID is no longer connected.
func waitClosed(t *testing.T, br *Broker, id string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); br.Connected(id); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still connected", id)
		}
	}
}
