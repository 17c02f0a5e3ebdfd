package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/broker"
	"github.com/vigilhq/vigil/devices"
	"github.com/vigilhq/vigil/topics"
)

// Per-connection limits of the bench's MQTT clients.
const (
	benchKeepAlive      = 30 // seconds, as the simulator's monitors
	benchPacketTimeout  = 10 * time.Second
	benchConnectTimeout = 10 * time.Second
	// benchPerSource is the most connections from one source address: 127.0.0.x has about 28,000
	// ephemeral ports towards one server port.
	benchPerSource = 25_000
	// benchDeviceReceiveMax bounds what a monitor may be sent unacknowledged: monitors subscribe
	// to nothing, and paho sizes a channel by it (65,535 pointers per client by default).
	benchDeviceReceiveMax = 8
)

// endpoint is where a server takes MQTT connections.
type endpoint struct {
	mqtt string // host:port, MQTT over TCP
	ws   string // ws://host:port/path, MQTT over WebSocket; "" when none
}

// benchDialer opens the bench's connections. Towards a loopback server, TCP connections leave
// from 127.0.0.1, 127.0.0.2, ... in turn, each carrying at most benchPerSource of them.
type benchDialer struct {
	sources []net.IP // nil: the system chooses
	next    atomic.Uint64
}

func newBenchDialer(server string, conns int) *benchDialer {
	host, _, _ := net.SplitHostPort(server)
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return &benchDialer{}
	}
	k := (conns + benchPerSource - 1) / benchPerSource
	bd := &benchDialer{}
	for x := 1; x <= max(k, 1); x++ {
		bd.sources = append(bd.sources, net.IPv4(127, 0, 0, byte(x)))
	}
	return bd
}

func (bd *benchDialer) netDialer() *net.Dialer {
	d := &net.Dialer{Timeout: benchConnectTimeout}
	if len(bd.sources) > 0 {
		src := bd.sources[int(bd.next.Add(1)-1)%len(bd.sources)]
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	return d
}

// dial opens a connection to ep: over WebSocket when ws (and ep has a WebSocket address).
func (bd *benchDialer) dial(ctx context.Context, ep endpoint, ws bool) (net.Conn, error) {
	if !ws {
		return bd.netDialer().DialContext(ctx, "tcp", ep.mqtt)
	}
	if ep.ws == "" {
		return nil, errors.New("the server has no WebSocket listener")
	}
	d := websocket.Dialer{
		Subprotocols:     []string{"mqtt"},
		NetDialContext:   bd.netDialer().DialContext,
		HandshakeTimeout: benchConnectTimeout,
		ReadBufferSize:   4096,
		WriteBufferSize:  1024,
	}
	c, resp, err := d.DialContext(ctx, ep.ws, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	return broker.WebSocketConn(c), nil
}

// mqttConnect opens an MQTT 5 session on conn with a raw paho client (no autopaho: a monitor
// costs one connection and a few goroutines). lost is called once when the connection fails or
// the server disconnects it.
func mqttConnect(ctx context.Context, conn net.Conn, cp *paho.Connect, onMsg func(paho.PublishReceived) (bool, error), lost func(error)) (*paho.Client, error) {
	var once sync.Once
	fail := func(err error) { once.Do(func() { lost(err) }) }
	if onMsg == nil {
		onMsg = func(paho.PublishReceived) (bool, error) { return true, nil }
	}
	c := paho.NewClient(paho.ClientConfig{
		Conn:              conn,
		ClientID:          cp.ClientID,
		PacketTimeout:     benchPacketTimeout,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){onMsg},
		OnClientError:     fail,
		OnServerDisconnect: func(d *paho.Disconnect) {
			fail(fmt.Errorf("disconnected by the server: reason 0x%02x", d.ReasonCode))
		},
	})
	cctx, cancel := context.WithTimeout(ctx, benchConnectTimeout)
	defer cancel()
	ca, err := c.Connect(cctx, cp)
	if err != nil {
		conn.Close()
		if ca != nil {
			return nil, fmt.Errorf("connect refused: reason 0x%02x: %w", ca.ReasonCode, err)
		}
		return nil, err
	}
	return c, nil
}

func connectPacket(clientID, user string, pass []byte, receiveMax uint16) *paho.Connect {
	cp := &paho.Connect{ClientID: clientID, KeepAlive: benchKeepAlive, CleanStart: true,
		Username: user, UsernameFlag: user != "", Password: pass, PasswordFlag: pass != nil}
	if receiveMax > 0 {
		cp.Properties = &paho.ConnectProperties{ReceiveMaximum: &receiveMax}
	}
	return cp
}

// benchLoad is the simulated monitors of one run.
type benchLoad struct {
	plan   *benchPlan
	qos    byte
	ep     endpoint
	dialer *benchDialer
	creds  func(d int) (user string, pass []byte)
	devs   []benchMonitor

	published atomic.Int64 // samples published (QoS 1: acknowledged)
	errs      atomic.Int64 // failed connects and publishes
	failedWin atomic.Int64 // samples of the window that could not be published
	connected atomic.Int64

	lastErrMu sync.Mutex
	lastErr   error

	ctx    context.Context // the monitors' schedules run until it is done
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// benchMonitor is one monitor; its goroutine owns it.
type benchMonitor struct {
	topic   string
	client  *paho.Client
	dead    *atomic.Bool // the client's connection failed: reconnect before the next sample
	retryAt time.Time
}

func newBenchLoad(plan *benchPlan, qos int, ep endpoint, dialer *benchDialer, creds func(int) (string, []byte)) *benchLoad {
	l := &benchLoad{plan: plan, qos: byte(qos), ep: ep, dialer: dialer, creds: creds, devs: make([]benchMonitor, plan.devices)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	for d := range l.devs {
		l.devs[d].topic = topics.Vitals(benchHospital, benchPatient(d))
	}
	return l
}

func (l *benchLoad) fail(err error) {
	l.errs.Add(1)
	l.lastErrMu.Lock()
	l.lastErr = err
	l.lastErrMu.Unlock()
}

// lastError is the most recent failure, for the report.
func (l *benchLoad) lastError() error {
	l.lastErrMu.Lock()
	defer l.lastErrMu.Unlock()
	return l.lastErr
}

// connect opens monitor d's connection.
func (l *benchLoad) connect(ctx context.Context, d int) error {
	dev := &l.devs[d]
	conn, err := l.dialer.dial(ctx, l.ep, false)
	if err != nil {
		return err
	}
	user, pass := l.creds(d)
	dead := new(atomic.Bool)
	c, err := mqttConnect(ctx, conn, connectPacket(benchDevice(d), user, pass, benchDeviceReceiveMax), nil, func(error) {
		dead.Store(true)
		l.connected.Add(-1)
	})
	if err != nil {
		return err
	}
	dev.client, dev.dead = c, dead
	l.connected.Add(1)
	return nil
}

// connectAll opens every monitor's connection, parallel at a time; a failure is retried twice,
// then counted (the monitor tries again before its samples).
func (l *benchLoad) connectAll(ctx context.Context, parallel int, progress func(done int)) error {
	var next, done, failed atomic.Int64
	var wg sync.WaitGroup
	for range min(parallel, len(l.devs)) {
		wg.Go(func() {
			for {
				d := int(next.Add(1) - 1)
				if d >= len(l.devs) || ctx.Err() != nil {
					return
				}
				var err error
				for try := range 3 {
					if err = l.connect(ctx, d); err == nil || ctx.Err() != nil {
						break
					}
					time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
				}
				if err != nil {
					failed.Add(1)
					l.fail(fmt.Errorf("monitor %s: %w", benchDevice(d), err))
				}
				if n := done.Add(1); progress != nil {
					progress(int(n))
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if failed.Load() == int64(len(l.devs)) {
		return fmt.Errorf("no monitor could connect to %s: %v", l.ep.mqtt, l.lastError())
	}
	return nil
}

// start runs every monitor's schedule, each in its goroutine, until its last sample of the
// window or stop; done is closed when they have all finished.
func (l *benchLoad) start() (done <-chan struct{}) {
	for d := range l.devs {
		l.wg.Go(func() { l.run(d) })
	}
	ch := make(chan struct{})
	go func() { l.wg.Wait(); close(ch) }()
	return ch
}

// stop ends the monitors' schedules and waits for them.
func (l *benchLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

func (l *benchLoad) run(d int) {
	dev := &l.devs[d]
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	buf := make([]byte, 0, 128)
	for n := uint32(0); ; n++ {
		a, b := l.plan.window(d)
		if n >= b {
			return
		}
		if wait := time.Until(l.plan.sched(d, n)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-l.ctx.Done():
				return
			case <-timer.C:
			}
		} else if l.ctx.Err() != nil {
			return
		}
		if err := l.publish(dev, d, n, buf); err != nil {
			if l.ctx.Err() != nil {
				return
			}
			l.fail(err)
			if n >= a && n < b {
				l.failedWin.Add(1)
			}
		}
	}
}

// publish sends sample n of monitor d, reconnecting first when the connection failed (at most
// once a second).
func (l *benchLoad) publish(dev *benchMonitor, d int, n uint32, buf []byte) error {
	if dev.client == nil || dev.dead.Load() {
		if time.Now().Before(dev.retryAt) {
			return fmt.Errorf("monitor %s: not connected", benchDevice(d))
		}
		dev.retryAt = time.Now().Add(time.Second)
		if dev.client != nil {
			_ = dev.client.Disconnect(&paho.Disconnect{})
			dev.client = nil
		}
		if err := l.connect(l.ctx, d); err != nil {
			return fmt.Errorf("monitor %s: reconnecting: %w", benchDevice(d), err)
		}
	}
	payload := l.plan.appendSample(buf[:0], d, n)
	l.plan.sent[d].Store(n + 1) // before the write: the event may come back before Publish returns
	resp, err := dev.client.Publish(l.ctx, &paho.Publish{QoS: l.qos, Topic: dev.topic, Payload: payload})
	switch {
	case err != nil:
		return fmt.Errorf("monitor %s: publish: %w", benchDevice(d), err)
	case resp != nil && resp.ReasonCode >= 0x80:
		return fmt.Errorf("monitor %s: sample refused: reason 0x%02x", benchDevice(d), resp.ReasonCode)
	}
	l.published.Add(1)
	return nil
}

// closeAll disconnects every monitor (DISCONNECT: a clean goodbye, no offline alarm), after
// stop.
func (l *benchLoad) closeAll() {
	for d := range l.devs {
		if c := l.devs[d].client; c != nil {
			_ = c.Disconnect(&paho.Disconnect{})
			l.devs[d].client = nil
		}
	}
}

// benchSub is one browser-like subscriber; it reconnects when its connection drops (a server
// may disconnect a subscriber that falls behind) and its matcher then resynchronizes.
type benchSub struct {
	id      string
	ep      endpoint
	ws      bool
	dialer  *benchDialer
	user    string
	pass    []byte
	filters []string
	m       *matcher

	mu         sync.Mutex
	client     *paho.Client
	lost       chan struct{} // closed when the current connection is lost
	reconnects atomic.Int64
	wg         sync.WaitGroup
}

func newBenchSub(i int, ep endpoint, ws bool, dialer *benchDialer, user string, pass []byte, filters []string, m *matcher) *benchSub {
	return &benchSub{id: "bench-sub-" + strconv.Itoa(i) + "-" + strconv.FormatUint(rand.Uint64(), 36),
		ep: ep, ws: ws, dialer: dialer, user: user, pass: pass, filters: filters, m: m}
}

func (s *benchSub) connect(ctx context.Context) error {
	conn, err := s.dialer.dial(ctx, s.ep, s.ws)
	if err != nil {
		return err
	}
	lost := make(chan struct{})
	c, err := mqttConnect(ctx, conn, connectPacket(s.id, s.user, s.pass, 0), func(pr paho.PublishReceived) (bool, error) {
		s.m.event(pr.Packet.Topic, pr.Packet.Payload, pr.Packet.Retain, time.Now())
		return true, nil
	}, func(error) { close(lost) })
	if err != nil {
		return err
	}
	subs := make([]paho.SubscribeOptions, len(s.filters))
	for i, f := range s.filters {
		subs[i] = paho.SubscribeOptions{Topic: f, QoS: 1}
	}
	sctx, cancel := context.WithTimeout(ctx, benchPacketTimeout)
	defer cancel()
	sa, err := c.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs})
	if err == nil {
		for i, rc := range sa.Reasons {
			if rc >= 0x80 {
				err = fmt.Errorf("subscription to %s refused: reason 0x%02x", s.filters[i], rc)
			}
		}
	}
	if err != nil {
		_ = c.Disconnect(&paho.Disconnect{})
		return fmt.Errorf("subscribing: %w", err)
	}
	s.mu.Lock()
	s.client, s.lost = c, lost
	s.mu.Unlock()
	return nil
}

// supervise reconnects the subscriber until ctx is done.
func (s *benchSub) supervise(ctx context.Context) {
	s.wg.Go(func() {
		for {
			s.mu.Lock()
			lost := s.lost
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-lost:
			}
			s.reconnects.Add(1)
			s.m.reconnected()
			for {
				if s.connect(ctx) == nil {
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	})
}

func (s *benchSub) close() {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		_ = s.client.Disconnect(&paho.Disconnect{})
		s.client = nil
	}
}

// provisionBench logs in to the Vigil at base, admits a patient for each monitor and provisions
// and assigns its device in hospital "bench" (patients and devices that exist are kept; an
// existing device's secret is rotated, as secrets are shown once), 16 requests at a time. It
// returns the login token (the subscribers' JWT) and the devices' secrets.
func provisionBench(ctx context.Context, base, user, password string, n int, progress func(done int)) (token string, secrets []string, err error) {
	cl := devices.NewClient(base)
	cl.HTTP = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, MaxIdleConns: 64, MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second,
	}}
	defer cl.HTTP.CloseIdleConnections()
	sess, err := cl.Login(ctx, user, password)
	if err != nil {
		return "", nil, fmt.Errorf("logging in as %s: %w", user, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	secrets = make([]string, n)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range min(16, n) {
		wg.Go(func() {
			for {
				d := int(next.Add(1) - 1)
				if d >= n || ctx.Err() != nil {
					return
				}
				p, dev := benchPatient(d), benchDevice(d)
				err := cl.AdmitPatient(ctx, benchHospital, p, "Bench patient "+strconv.Itoa(d), "")
				if err == nil {
					secrets[d], err = cl.ProvisionDevice(ctx, benchHospital, dev, "vigil bench")
				}
				if err == nil {
					err = cl.Assign(ctx, benchHospital, dev, p)
				}
				if err != nil {
					cancel(fmt.Errorf("provisioning %s: %w", dev, err))
					return
				}
				if k := done.Add(1); progress != nil {
					progress(int(k))
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return "", nil, err
	}
	return sess.Token, secrets, nil
}

// dischargeBench discharges patients of hospital "bench" (a running Vigil of --target): their
// open alerts resolve and their state goes, so that the next run's critical samples raise new
// alerts.
func dischargeBench(ctx context.Context, base, token string, patients []string) error {
	var errs []error
	for _, p := range patients {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, base+"/api/v1/hospitals/"+benchHospital+"/patients/"+p, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotFound {
			errs = append(errs, fmt.Errorf("discharging %s: %s", p, resp.Status))
		}
	}
	return errors.Join(errs...)
}
