package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/vigilhq/vigil/auth"
)

// Helpers for the broker integration tests (broker_test.go, broker_tls_test.go): outside
// programs read line by line, MQTT sessions with chosen CONNECT properties, a raw MQTT client
// that writes its own packets, polling for conditions and reading /metrics.

// awaitTimeout is how long a test waits for something that should happen: generous, this is not a
// speed test.
const awaitTimeout = 15 * time.Second

// cheapPasswords sets bcrypt to its lowest cost for the test (under -race one hash at the
// default cost takes most of a second). Call it before starting the harness: the cost is
// restored after the harness has stopped.
func cheapPasswords(t *testing.T) {
	old := auth.BcryptCost
	auth.BcryptCost = bcrypt.MinCost
	t.Cleanup(func() { auth.BcryptCost = old })
}

// eventually polls cond until it holds, failing after awaitTimeout with cond's last description.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(awaitTimeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last seen: %s", what, awaitTimeout, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// proc is an outside program (mosquitto_sub, node) whose standard output a test reads line by
// line while it runs.
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	backlog []string // lines read but not yet matched by await
	stderr  bytes.Buffer
	quit    chan struct{}
	done    chan struct{}
	err     error
}

// startProc starts a program; it is killed when the test ends.
func startProc(t *testing.T, env []string, path string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{t: t, name: path, cmd: cmd, lines: make(chan string, 1024), quit: make(chan struct{}), done: make(chan struct{})}
	cmd.Stderr = &p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
	read:
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			case <-p.quit:
				break read
			}
		}
		io.Copy(io.Discard, stdout)
		close(p.lines)
		p.err = cmd.Wait()
	}()
	t.Cleanup(p.kill)
	return p
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	close(p.quit)
	<-p.done
}

// await returns the first output line, already read or still to come, matching pred.
func (p *proc) await(what string, pred func(string) bool) string {
	p.t.Helper()
	for i, l := range p.backlog {
		if pred(l) {
			p.backlog = append(p.backlog[:i], p.backlog[i+1:]...)
			return l
		}
	}
	deadline := time.After(awaitTimeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				<-p.done
				p.t.Fatalf("%s exited (%v) without %s; stdout:\n%s\nstderr:\n%s", p.name, p.err, what, strings.Join(p.backlog, "\n"), p.stderr.String())
			}
			if pred(l) {
				return l
			}
			p.backlog = append(p.backlog, l)
		case <-deadline:
			p.t.Fatalf("%s: no %s within %v; stdout so far:\n%s", p.name, what, awaitTimeout, strings.Join(p.backlog, "\n"))
		}
	}
}

// finish closes the program's stdin, waits for it to exit and returns its exit code, the
// output lines not matched by await and its standard error.
func (p *proc) finish() (code int, rest []string, stderr string) {
	p.t.Helper()
	p.stdin.Close()
	timeout := time.After(awaitTimeout)
	for {
		select {
		case l, ok := <-p.lines:
			if ok {
				p.backlog = append(p.backlog, l)
				continue
			}
			<-p.done
			return p.cmd.ProcessState.ExitCode(), p.backlog, p.stderr.String()
		case <-timeout:
			p.kill()
			p.t.Fatalf("%s did not exit within %v; stdout:\n%s", p.name, awaitTimeout, strings.Join(p.backlog, "\n"))
		}
	}
}

// metricSum adds up the samples of a Prometheus metric in /metrics (every label set).
func (h *harness) metricSum(t *testing.T, name string) float64 {
	t.Helper()
	status, body := h.do("GET", "/metrics", "", nil)
	if status != 200 {
		t.Fatalf("GET /metrics = %d", status)
	}
	var sum float64
	for _, l := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		sum += v
	}
	return sum
}

// dialSession opens an MQTT 5 connection (paho) over conn with the CONNECT packet given, so a
// test chooses Clean Start and the session expiry; it returns the client and the CONNACK.
func dialSession(t *testing.T, conn net.Conn, cp *paho.Connect) (*client, *paho.Connack, error) {
	t.Helper()
	cl := &client{t: t, conn: conn, msgs: make(chan message, 1000)}
	cl.c = paho.NewClient(paho.ClientConfig{
		Conn:     conn,
		ClientID: cp.ClientID,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case cl.msgs <- message{Topic: pr.Packet.Topic, Payload: pr.Packet.Payload, Retain: pr.Packet.Retain}:
			default:
				t.Errorf("client %s: more than %d messages unread", cp.ClientID, cap(cl.msgs))
			}
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := cl.c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() { cl.close() })
	return cl, ca, nil
}

// connectPersistent connects a browser whose session outlives its connection by an hour.
func (h *harness) connectPersistent(t *testing.T, clientID string, token string, cleanStart bool) (*client, *paho.Connack) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", h.mqtt, 5*time.Second)
	if err != nil {
		t.Fatalf("dial mqtt: %v", err)
	}
	expiry := uint32(3600)
	c, ca, err := dialSession(t, conn, &paho.Connect{
		ClientID: clientID, KeepAlive: 30, CleanStart: cleanStart,
		Username: "x", UsernameFlag: true, Password: []byte(token), PasswordFlag: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry},
	})
	if err != nil {
		t.Fatalf("connect %s (clean start %v): %v", clientID, cleanStart, err)
	}
	return c, ca
}

// awaitMessage returns the first message (not yet read) whose envelope matches pred, with the
// message itself, to see its retain flag. Only for clients not also read with await.
func (c *client) awaitMessage(what string, pred func(message, envelope) bool) (message, envelope) {
	c.t.Helper()
	deadline := time.After(awaitTimeout)
	for {
		select {
		case m := <-c.msgs:
			var e envelope
			if json.Unmarshal(m.Payload, &e) != nil {
				continue
			}
			e.topic = m.Topic
			if pred(m, e) {
				return m, e
			}
		case <-deadline:
			c.t.Fatalf("no %s within %v", what, awaitTimeout)
		}
	}
}

// publishAck publishes at QoS 1 and returns the PUBACK's reason code, waiting for it as long as
// awaitTimeout (the harness's publish waits 5 s, short for a loaded machine under -race).
func (c *client) publishAck(topic string, payload any) (byte, error) {
	c.t.Helper()
	b, ok := payload.([]byte)
	if !ok {
		b, _ = json.Marshal(payload)
	}
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	pr, err := c.c.Publish(ctx, &paho.Publish{Topic: topic, Payload: b, QoS: 1})
	if pr != nil {
		return pr.ReasonCode, nil
	}
	return 0, err
}

// mustPublish publishes at QoS 1 and fails the test unless the PUBACK is a success.
func (c *client) mustPublish(topic string, payload any) {
	c.t.Helper()
	code, err := c.publishAck(topic, payload)
	if err != nil || code != 0 {
		c.t.Fatalf("publish to %s: PUBACK reason 0x%02x, %v", topic, code, err)
	}
}

// rawClient speaks MQTT (3.1.1 or 5) over a socket with packets it encodes itself, so a test
// can stop reading, or be an MQTT 3.1.1 device that also subscribes.
type rawClient struct {
	t       *testing.T
	conn    net.Conn
	r       *bufio.Reader
	version byte
	nextID  uint16
	backlog []packets.Packet // read but not yet asked for by mustRead
}

// dialRaw connects and sends CONNECT; it returns the client and the CONNACK.
func dialRaw(t *testing.T, addr string, version byte, cp packets.ConnectParams, props packets.Properties) (*rawClient, packets.Packet) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	rc := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), version: version}
	cp.ProtocolName = []byte("MQTT")
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: cp, Properties: props})
	ack := rc.mustRead(packets.Connack)
	return rc, ack
}

// connectParams are the CONNECT fields of a clean session with these credentials.
func connectParams(id, user, pass string) packets.ConnectParams {
	return packets.ConnectParams{ClientIdentifier: id, Clean: true, Keepalive: 60,
		UsernameFlag: user != "", Username: []byte(user), PasswordFlag: pass != "", Password: []byte(pass)}
}

func (rc *rawClient) send(pk packets.Packet) {
	rc.t.Helper()
	pk.ProtocolVersion = rc.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	default:
		err = fmt.Errorf("cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		rc.t.Fatalf("encode: %v", err)
	}
	rc.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.conn.Write(buf.Bytes()); err != nil {
		rc.t.Fatalf("write packet type %d: %v", pk.FixedHeader.Type, err)
	}
}

// read reads one packet, waiting up to d.
func (rc *rawClient) read(d time.Duration) (packets.Packet, error) {
	rc.conn.SetReadDeadline(time.Now().Add(d))
	var pk packets.Packet
	hb, err := rc.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(rc.r)
	if err != nil {
		return pk, err
	}
	body := make([]byte, n) // not shared: decoded packets keep slices of it
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	pk.ProtocolVersion = rc.version
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// mustRead returns the first packet of type typ, already read or still to come (packets of
// other types stay for later calls).
func (rc *rawClient) mustRead(typ byte) packets.Packet {
	rc.t.Helper()
	for i, pk := range rc.backlog {
		if pk.FixedHeader.Type == typ {
			rc.backlog = append(rc.backlog[:i], rc.backlog[i+1:]...)
			return pk
		}
	}
	deadline := time.Now().Add(awaitTimeout)
	for {
		pk, err := rc.read(time.Until(deadline))
		if err != nil {
			rc.t.Fatalf("reading packet type %d: %v", typ, err)
		}
		if pk.FixedHeader.Type == typ {
			return pk
		}
		rc.backlog = append(rc.backlog, pk)
	}
}

func (rc *rawClient) id() uint16 {
	rc.nextID++
	return rc.nextID
}

// subscribe sends SUBSCRIBE and returns the SUBACK's reason codes.
func (rc *rawClient) subscribe(filter string, qos byte) []byte {
	rc.t.Helper()
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: rc.id(),
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos}}})
	return rc.mustRead(packets.Suback).ReasonCodes
}

// publish sends a PUBLISH; at QoS 1 it returns the PUBACK (its reason code is 0 in MQTT 3.1.1).
func (rc *rawClient) publish(topic string, payload []byte, qos byte) packets.Packet {
	rc.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, Payload: payload}
	if qos > 0 {
		pk.PacketID = rc.id()
	}
	rc.send(pk)
	if qos == 0 {
		return packets.Packet{}
	}
	return rc.mustRead(packets.Puback)
}

// newHarnessLogs starts a harness whose warnings also go to logs, for tests that check what
// Vigil logs.
func newHarnessLogs(t *testing.T, logs io.Writer, edit ...func(*config)) *harness {
	t.Helper()
	cheapPasswords(t)
	c := testConfig(t)
	for _, e := range edit {
		e(&c)
	}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, logs), &slog.HandlerOptions{Level: slog.LevelWarn}))
	v, err := start(context.Background(), c, log, io.Discard)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	h := &harness{t: t, v: v, cfg: c, base: "http://" + v.httpLn.Addr().String(), mqtt: v.mqttAddr()}
	t.Cleanup(func() { h.stop() })
	h.admin = h.login("admin", adminPassword)
	return h
}
