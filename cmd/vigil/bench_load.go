package main

import (
	"bufio"
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
	// benchDeviceReceiveMax is the Receive Maximum a monitor announces: it subscribes to
	// nothing, so it expects nothing but acknowledgements.
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

// mqttConnect opens an MQTT 5 session on conn with a paho client, for the bench's few
// low-rate connections (Mosquitto's $SYS counters); monitors and subscribers speak on the wire
// (bench_wire.go). lost is called once when the connection fails or the server disconnects it.
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

// benchLoad is the simulated monitors of one run. Each monitor is one MQTT connection spoken
// on the wire (bench_wire.go) with a goroutine reading its acknowledgements; a few sender
// goroutines walk the schedule, each for a share of the monitors.
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
	wg     sync.WaitGroup // senders and reconnects

	stopPings context.CancelFunc
	pings     sync.WaitGroup
}

// benchSenders is how many goroutines send the monitors' samples, each for every
// benchSenders-th monitor: more than one, so that a write that waits delays few monitors.
const benchSenders = 4

// benchMonitor is one monitor. QoS 1: one sample in flight; a sample that falls due while one
// is in flight waits for its acknowledgement and goes late, as from a monitor that publishes
// and waits.
type benchMonitor struct {
	d     int
	topic string

	mu         sync.Mutex
	conn       net.Conn // nil: not connected
	lastErr    error    // why the last connection ended
	out        []byte   // the packet being written
	payload    []byte
	id         uint16 // packet identifier of the sample in flight
	flight     int64  // the sample in flight; -1: none
	next       uint32 // the next sample to send
	due        uint32 // samples 0..due-1 have fallen due
	lastSend   time.Time
	connecting bool
	retryAt    time.Time
}

func newBenchLoad(plan *benchPlan, qos int, ep endpoint, dialer *benchDialer, creds func(int) (string, []byte)) *benchLoad {
	l := &benchLoad{plan: plan, qos: byte(qos), ep: ep, dialer: dialer, creds: creds, devs: make([]benchMonitor, plan.devices)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	for d := range l.devs {
		l.devs[d] = benchMonitor{d: d, topic: topics.Vitals(benchHospital, benchPatient(d)), flight: -1}
	}
	pctx, stop := context.WithCancel(context.Background())
	l.stopPings = stop
	l.pings.Go(func() { l.ping(pctx) })
	return l
}

func (l *benchLoad) fail(err error) {
	l.errs.Add(1)
	l.lastErrMu.Lock()
	l.lastErr = err
	l.lastErrMu.Unlock()
}

// failSample counts monitor m's sample n as not published.
func (l *benchLoad) failSample(m *benchMonitor, n uint32, err error) {
	l.fail(err)
	if a, b := l.plan.window(m.d); n >= a && n < b {
		l.failedWin.Add(1)
	}
}

// lastError is the most recent failure, for the report.
func (l *benchLoad) lastError() error {
	l.lastErrMu.Lock()
	defer l.lastErrMu.Unlock()
	return l.lastErr
}

// handshakeBound limits conn's reads and writes to benchConnectTimeout from now, and ends them
// at once when ctx is done; stop ends the latter (false: ctx was done first).
func handshakeBound(ctx context.Context, conn net.Conn) (stop func() bool) {
	deadline := time.Now().Add(benchConnectTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}

// dial opens an MQTT 5 session for monitor m: it returns once the server has accepted it.
func (l *benchLoad) dial(ctx context.Context, m *benchMonitor) (net.Conn, *bufio.Reader, error) {
	conn, err := l.dialer.dial(ctx, l.ep, false)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (net.Conn, *bufio.Reader, error) {
		conn.Close()
		return nil, nil, err
	}
	stop := handshakeBound(ctx, conn)
	defer stop()
	user, pass := l.creds(m.d)
	if _, err := conn.Write(appendConnect(nil, benchDevice(m.d), user, pass, benchKeepAlive, benchDeviceReceiveMax)); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(conn, 256)
	first, body, err := readPacket(br, nil)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fail(fmt.Errorf("waiting for CONNACK: %w", err))
	}
	if first != pktConnack {
		return fail(fmt.Errorf("packet type 0x%02x instead of CONNACK", first))
	}
	reason, err := parseConnack(body)
	if err != nil {
		return fail(err)
	}
	if reason >= 0x80 {
		return fail(fmt.Errorf("connect refused: reason 0x%02x", reason))
	}
	if !stop() {
		return fail(ctx.Err())
	}
	conn.SetDeadline(time.Time{})
	return conn, br, nil
}

// connect opens monitor m's connection and starts reading from it.
func (l *benchLoad) connect(ctx context.Context, m *benchMonitor) error {
	conn, br, err := l.dial(ctx, m)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.conn, m.flight, m.next, m.lastSend = conn, -1, m.due, time.Now()
	m.mu.Unlock()
	l.connected.Add(1)
	go l.read(m, conn, br)
	return nil
}

// read takes the server's packets to monitor m until the connection ends.
func (l *benchLoad) read(m *benchMonitor, conn net.Conn, br *bufio.Reader) {
	buf := make([]byte, 0, 16)
	for {
		first, body, err := readPacket(br, buf)
		if err != nil {
			l.lost(m, conn, err)
			return
		}
		switch first & 0xf0 {
		case pktPuback:
			id, reason, err := parseAck(body)
			if err != nil {
				l.lost(m, conn, err)
				return
			}
			m.mu.Lock()
			if m.conn == conn && m.flight >= 0 && id == m.id {
				n := uint32(m.flight)
				m.flight = -1
				if reason >= 0x80 {
					l.failSample(m, n, fmt.Errorf("monitor %s: sample refused: reason 0x%02x", benchDevice(m.d), reason))
				} else {
					l.published.Add(1)
				}
				l.sendDue(m)
			}
			m.mu.Unlock()
		case pktPingresp:
		case pktDisconnect:
			l.lost(m, conn, fmt.Errorf("disconnected by the server: reason 0x%02x", disconnectReason(body)))
			return
		default:
			l.lost(m, conn, fmt.Errorf("unexpected packet type 0x%02x from the server", first))
			return
		}
	}
}

// lost ends monitor m's connection conn (once): the sample in flight and those waiting for it
// fail.
func (l *benchLoad) lost(m *benchMonitor, conn net.Conn, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l.lostLocked(m, conn, err)
}

func (l *benchLoad) lostLocked(m *benchMonitor, conn net.Conn, err error) {
	if m.conn != conn {
		return // ended already, or closed by closeAll
	}
	conn.Close()
	m.conn, m.lastErr = nil, err
	l.connected.Add(-1)
	err = fmt.Errorf("monitor %s: connection lost: %w", benchDevice(m.d), err)
	if m.flight >= 0 {
		l.failSample(m, uint32(m.flight), err)
		m.flight = -1
	}
	for ; m.next < m.due; m.next++ {
		l.failSample(m, m.next, err)
	}
}

// sendDue sends monitor m's samples that have fallen due, as far as QoS 1's one in flight
// allows; m.mu is held.
func (l *benchLoad) sendDue(m *benchMonitor) {
	for m.conn != nil && m.next < m.due && m.flight < 0 {
		n := m.next
		m.next++
		m.payload = l.plan.appendSample(m.payload[:0], m.d, n)
		if l.qos > 0 {
			m.id = m.id%0xffff + 1
		}
		m.out = appendPublish(m.out[:0], m.topic, l.qos, m.id, m.payload)
		l.plan.sent[m.d].Store(n + 1) // before the write: the event may come back before Write returns
		now := time.Now()
		m.conn.SetWriteDeadline(now.Add(benchPacketTimeout))
		if _, err := m.conn.Write(m.out); err != nil {
			l.failSample(m, n, fmt.Errorf("monitor %s: publish: %w", benchDevice(m.d), err))
			l.lostLocked(m, m.conn, err)
			return
		}
		m.lastSend = now
		if l.qos == 0 {
			l.published.Add(1)
		} else {
			m.flight = int64(n)
		}
	}
}

// fallDue makes monitor m's sample n due: it is sent now, after the one in flight, or, when
// the monitor is not connected, fails (and the monitor reconnects, at most once a second).
// Called by m's sender only.
func (l *benchLoad) fallDue(m *benchMonitor, n uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.due = n + 1
	if m.conn != nil {
		l.sendDue(m)
		return
	}
	reason := "not connected"
	if m.connecting {
		reason = "reconnecting"
	} else if m.lastErr != nil {
		reason = "not connected: " + m.lastErr.Error()
	}
	for ; m.next < m.due; m.next++ {
		l.failSample(m, m.next, fmt.Errorf("monitor %s: %s", benchDevice(m.d), reason))
	}
	if !m.connecting && time.Now().After(m.retryAt) {
		m.connecting, m.retryAt = true, time.Now().Add(time.Second)
		l.wg.Go(func() {
			err := l.connect(l.ctx, m)
			m.mu.Lock()
			m.connecting = false
			if err != nil {
				m.lastErr = err
			}
			m.mu.Unlock()
			if err != nil && l.ctx.Err() == nil {
				l.fail(fmt.Errorf("monitor %s: reconnecting: %w", benchDevice(m.d), err))
			}
		})
	}
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
					if err = l.connect(ctx, &l.devs[d]); err == nil || ctx.Err() != nil {
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

// start runs the monitors' schedules until their last sample of the window or stop; done is
// closed when every sample has fallen due.
func (l *benchLoad) start() (done <-chan struct{}) {
	senders := min(benchSenders, len(l.devs))
	var all sync.WaitGroup
	for first := range senders {
		all.Go(func() { l.send(first, senders) })
	}
	ch := make(chan struct{})
	l.wg.Go(func() { all.Wait(); close(ch) })
	return ch
}

// send walks the schedule of monitors first, first+step, ...: sample 0 of each in turn (their
// phases rise with their number), then sample 1, and so on.
func (l *benchLoad) send(first, step int) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for n := uint32(0); ; n++ {
		left := false
		for d := first; d < len(l.devs); d += step {
			if _, b := l.plan.window(d); n >= b {
				continue
			}
			left = true
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
			l.fallDue(&l.devs[d], n)
		}
		if !left {
			return
		}
	}
}

// stop ends the monitors' schedules and waits for them.
func (l *benchLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// ping keeps idle monitors' connections alive: a PINGREQ from each monitor that has sent
// nothing for half its keep-alive.
func (l *benchLoad) ping(ctx context.Context) {
	const keepAlive = benchKeepAlive * time.Second
	t := time.NewTicker(keepAlive / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for d := range l.devs {
				m := &l.devs[d]
				m.mu.Lock()
				if m.conn != nil && now.Sub(m.lastSend) > keepAlive/2 {
					m.conn.SetWriteDeadline(now.Add(benchPacketTimeout))
					if _, err := m.conn.Write([]byte{pktPingreq, 0}); err != nil {
						l.lostLocked(m, m.conn, err)
					} else {
						m.lastSend = now
					}
				}
				m.mu.Unlock()
			}
		}
	}
}

// closeAll disconnects every monitor (DISCONNECT: a clean goodbye, no offline alarm), after
// stop.
func (l *benchLoad) closeAll() {
	l.stopPings()
	l.pings.Wait()
	for d := range l.devs {
		m := &l.devs[d]
		m.mu.Lock()
		if m.conn != nil {
			m.conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = m.conn.Write([]byte{pktDisconnect, 0})
			m.conn.Close()
			m.conn = nil
		}
		m.mu.Unlock()
	}
}

// benchSub is one browser-like subscriber; it reconnects when its connection drops (a server
// may disconnect a subscriber that falls behind) and its matcher then resynchronizes. It
// acknowledges the events one read brought in one write.
type benchSub struct {
	id      string
	ep      endpoint
	ws      bool
	dialer  *benchDialer
	user    string
	pass    []byte
	filters []string
	m       *matcher

	mu         sync.Mutex // guards conn, lost and writes to conn
	conn       net.Conn
	lost       chan struct{} // closed when the current connection is lost
	reconnects atomic.Int64
	wg         sync.WaitGroup
}

// benchSubBuffer is a subscriber's read buffer: a burst of events takes one read.
const benchSubBuffer = 64 << 10

func newBenchSub(i int, ep endpoint, ws bool, dialer *benchDialer, user string, pass []byte, filters []string, m *matcher) *benchSub {
	return &benchSub{id: "bench-sub-" + strconv.Itoa(i) + "-" + strconv.FormatUint(rand.Uint64(), 36),
		ep: ep, ws: ws, dialer: dialer, user: user, pass: pass, filters: filters, m: m}
}

// connect opens the subscriber's session and subscribes; then a goroutine reads the events.
func (s *benchSub) connect(ctx context.Context) error {
	conn, err := s.dialer.dial(ctx, s.ep, s.ws)
	if err != nil {
		return err
	}
	br, err := s.handshake(ctx, conn)
	if err != nil {
		conn.Close()
		return err
	}
	lost := make(chan struct{})
	s.mu.Lock()
	s.conn, s.lost = conn, lost
	s.mu.Unlock()
	go s.read(conn, br, lost)
	return nil
}

// handshake sends CONNECT and SUBSCRIBE on conn and waits for their acknowledgements.
func (s *benchSub) handshake(ctx context.Context, conn net.Conn) (*bufio.Reader, error) {
	stop := handshakeBound(ctx, conn)
	defer stop()
	const subID = 1
	out := appendConnect(nil, s.id, s.user, s.pass, benchKeepAlive, 0)
	out = appendSubscribe(out, subID, s.filters)
	if _, err := conn.Write(out); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, benchSubBuffer)
	for acked := false; !acked; {
		first, body, err := readPacket(br, nil)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("waiting for CONNACK and SUBACK: %w", err)
		}
		switch first & 0xf0 {
		case pktConnack:
			reason, err := parseConnack(body)
			if err != nil {
				return nil, err
			}
			if reason >= 0x80 {
				return nil, fmt.Errorf("connect refused: reason 0x%02x", reason)
			}
		case pktSuback:
			reasons, err := parseSuback(body, subID)
			if err != nil {
				return nil, err
			}
			for i, rc := range reasons {
				if rc >= 0x80 && i < len(s.filters) {
					return nil, fmt.Errorf("subscription to %s refused: reason 0x%02x", s.filters[i], rc)
				}
			}
			acked = true
		default:
			return nil, fmt.Errorf("packet type 0x%02x before SUBACK", first)
		}
	}
	if !stop() {
		return nil, ctx.Err()
	}
	conn.SetDeadline(time.Time{})
	return br, nil
}

// read hands the events on conn to the matcher until the connection ends; then it closes lost.
func (s *benchSub) read(conn net.Conn, br *bufio.Reader, lost chan struct{}) {
	defer close(lost)
	defer conn.Close()
	go s.ping(conn, lost)
	buf := make([]byte, 0, 1024)
	var acks []byte
	for {
		first, body, err := readPacket(br, buf)
		if err != nil {
			return
		}
		switch first & 0xf0 {
		case pktPublish:
			p, err := parsePublish(first, body)
			if err != nil {
				return
			}
			s.m.event(string(p.topic), p.payload, p.retain, time.Now())
			if p.qos == 1 {
				acks = appendPuback(acks, p.id)
			}
		case pktPingresp:
		case pktDisconnect:
			return
		default:
			return // not of this protocol: the connection is beyond saving
		}
		if len(acks) > 0 && (!packetBuffered(br) || len(acks) >= 4096) {
			s.mu.Lock()
			conn.SetWriteDeadline(time.Now().Add(benchPacketTimeout))
			_, err := conn.Write(acks)
			s.mu.Unlock()
			if err != nil {
				return
			}
			acks = acks[:0]
		}
	}
}

// ping keeps the connection alive while it lasts (until lost is closed): the PUBACKs count as
// traffic, but a subscriber with nothing to receive sends none.
func (s *benchSub) ping(conn net.Conn, lost chan struct{}) {
	t := time.NewTicker(benchKeepAlive * time.Second / 2)
	defer t.Stop()
	for {
		select {
		case <-lost:
			return
		case now := <-t.C:
			s.mu.Lock()
			conn.SetWriteDeadline(now.Add(benchPacketTimeout))
			_, err := conn.Write([]byte{pktPingreq, 0})
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
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
	if s.conn != nil {
		s.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = s.conn.Write([]byte{pktDisconnect, 0})
		s.conn.Close()
		s.conn = nil
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
