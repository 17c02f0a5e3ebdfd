package broker

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// tcpPair returns both ends of a real loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// TestSendConnOrder: writes arrive complete and in order, however they are batched.
func TestSendConnOrder(t *testing.T) {
	srv, cli := tcpPair(t)
	sc := newSendConn(srv, 1<<20, 5*time.Second, nil)
	var want bytes.Buffer
	for i := range 2000 {
		p := bytes.Repeat([]byte{byte(i)}, 1+i%300)
		want.Write(p)
		if _, err := sc.Write(p); err != nil {
			t.Fatalf("Write #%d: %v", i, err)
		}
	}
	got := make([]byte, want.Len())
	cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(cli, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("bytes arrived out of order or damaged")
	}
}

// TestSendConnOverflow: a client that stops reading is cut off at the byte limit, once, and the
// overflow names the topic of the packet that did not fit.
func TestSendConnOverflow(t *testing.T) {
	srv, _ := tcpPair(t) // the client never reads
	var calls atomic.Int32
	var topic atomic.Value
	sc := newSendConn(srv, 64<<10, 5*time.Second, func(client, tp string) { calls.Add(1); topic.Store(tp) })
	sc.setClient("slow")
	pkt := publishPacket("hospital/h1/alerts", bytes.Repeat([]byte("x"), 1000))
	var err error
	for i := 0; i < 100_000 && err == nil; i++ {
		_, err = sc.Write(pkt)
	}
	if err != errSendBuffer {
		t.Fatalf("writing to a client that never reads: %v; want errSendBuffer", err)
	}
	if _, err := sc.Write(pkt); err == nil {
		t.Fatal("a write after the overflow succeeded")
	}
	if calls.Load() != 1 || topic.Load() != "hospital/h1/alerts" {
		t.Fatalf("overflow reported %d times with topic %v; want once with hospital/h1/alerts", calls.Load(), topic.Load())
	}
}

// TestSendConnCloseFlushes: bytes written just before Close (a DISCONNECT) still go out, and the
// reader is unblocked at once.
func TestSendConnCloseFlushes(t *testing.T) {
	srv, cli := tcpPair(t)
	sc := newSendConn(srv, 1<<20, 5*time.Second, nil)
	read := make(chan error, 1)
	go func() {
		_, err := sc.Read(make([]byte, 1))
		read <- err
	}()
	sc.Write([]byte{0xe0, 0x01, 0x87}) // DISCONNECT, not authorized
	sc.Close()
	select {
	case <-read:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock the reader")
	}
	got := make([]byte, 3)
	cli.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(cli, got); err != nil || !bytes.Equal(got, []byte{0xe0, 0x01, 0x87}) {
		t.Fatalf("client read % x, %v; want the DISCONNECT", got, err)
	}
	if _, err := cli.Read(got); err == nil {
		t.Fatal("the connection stayed open after Close")
	}
}

// TestSendConnIdle: an idle connection keeps no buffer and no flusher.
func TestSendConnIdle(t *testing.T) {
	srv, cli := tcpPair(t)
	sc := newSendConn(srv, 1<<20, 5*time.Second, nil)
	sc.Write(make([]byte, 10_000))
	io.ReadFull(cli, make([]byte, 10_000))
	deadline := time.Now().Add(2 * time.Second)
	for {
		sc.mu.Lock()
		idle := !sc.writing && sc.buf == nil && sc.spare == nil
		sc.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the send buffer is still held after everything was sent")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPublishTopic(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"publish", publishPacket("a/b", []byte("x")), "a/b"},
		{"long remaining length", publishPacket("hospital/h1/alerts", make([]byte, 20_000)), "hospital/h1/alerts"},
		{"puback", []byte{0x40, 0x02, 0x00, 0x01}, ""},
		{"truncated", []byte{0x30, 0x05, 0x00}, ""},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := publishTopic(tt.b); got != tt.want {
				t.Fatalf("publishTopic(% x...) = %q; want %q", tt.b[:min(len(tt.b), 8)], got, tt.want)
			}
		})
	}
}

// publishPacket encodes a QoS 0 MQTT PUBLISH.
func publishPacket(topic string, payload []byte) []byte {
	body := append([]byte{byte(len(topic) >> 8), byte(len(topic))}, topic...)
	body = append(body, payload...)
	out := []byte{0x30}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// publishFrame is a QoS 1 or 2 PUBLISH packet (MQTT 5) on topic "t", packet ID 1, with a
// one-byte payload.
func publishFrame(qos, payload byte) []byte {
	return []byte{0x30 | qos<<1, 7, 0, 1, 't', 0, 1, 0, payload}
}

// TestSendConnReceiveMaximum: with the client's Receive Maximum, at most that many QoS 1/2
// PUBLISH packets are unacknowledged; the rest wait, in order (a QoS 0 packet behind a held one
// waits too), and each acknowledgement lets the next go.
func TestSendConnReceiveMaximum(t *testing.T) {
	srv, cli := tcpPair(t)
	sc := newSendConn(srv, 1<<20, 5*time.Second, nil)
	sc.setReceiveMaximum(2)
	qos0 := []byte{0x30, 4, 0, 1, 't', 9}
	// One write with three QoS 1 packets (mochi batches), then a QoS 0 one and a QoS 2 one.
	batch := append(append(publishFrame(1, 1), publishFrame(1, 2)...), publishFrame(1, 3)...)
	for _, p := range [][]byte{batch, qos0, publishFrame(2, 4)} {
		if n, err := sc.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	expect := func(what string, want []byte) {
		t.Helper()
		got := make([]byte, len(want))
		cli.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(cli, got); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: read % x, %v; want % x", what, got, err, want)
		}
	}
	nothing := func(what string) {
		t.Helper()
		cli.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := cli.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("%s: a byte arrived past the window", what)
		}
	}
	expect("the window's two packets", append(publishFrame(1, 1), publishFrame(1, 2)...))
	nothing("two unacknowledged")
	sc.acked()
	expect("the third after one acknowledgement, with the QoS 0 packet behind it", append(publishFrame(1, 3), qos0...))
	nothing("two unacknowledged again")
	sc.acked()
	expect("the QoS 2 packet", publishFrame(2, 4))
	sc.acked()
	sc.acked()
	sc.acked() // more acknowledgements than packets (a duplicate): the count stays at zero
	if _, err := sc.Write(append(publishFrame(1, 5), publishFrame(1, 6)...)); err != nil {
		t.Fatal(err)
	}
	expect("a full window again", append(publishFrame(1, 5), publishFrame(1, 6)...))
	nothing("the window is full")
}

// tlsPair returns both ends of a TLS connection over loopback TCP, handshake done.
func tlsPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	s, c := tcpPair(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"vigil.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	ts := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	tc := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "vigil.test"})
	done := make(chan error, 1)
	go func() { done <- ts.Handshake() }()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return ts, tc
}

// wsPair returns both ends of a WebSocket connection, as the byte streams MQTT uses.
func wsPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	conns := make(chan *websocket.Conn, 1)
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conns <- ws
	}))
	t.Cleanup(hs.Close)
	cws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	server, client = WebSocketConn(<-conns), WebSocketConn(cws)
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// TestSendConnSlowReader: over TLS and WebSocket, a client that stops reading while much is
// sent (its socket buffers fill) gets everything, intact and in order, once it reads again. A
// write that times out breaks those connections for good, so they never get the short
// deadline of the direct write that plain TCP gets.
func TestSendConnSlowReader(t *testing.T) {
	for _, tc := range []struct {
		name string
		pair func(*testing.T) (net.Conn, net.Conn)
	}{{"tls", tlsPair}, {"websocket", wsPair}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, cli := tc.pair(t)
			sc := newSendConn(srv, 64<<20, 20*time.Second, nil)
			const total, size = 16 << 20, 1024
			var want bytes.Buffer
			for i := range total / size {
				p := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, size/2)
				want.Write(p)
				if _, err := sc.Write(p); err != nil {
					t.Fatalf("Write #%d: %v", i, err)
				}
			}
			time.Sleep(200 * time.Millisecond) // the client reads nothing meanwhile
			got := make([]byte, total)
			cli.SetReadDeadline(time.Now().Add(20 * time.Second))
			if n, err := io.ReadFull(cli, got); err != nil {
				t.Fatalf("read %d of %d bytes: %v", n, total, err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatal("bytes arrived out of order or damaged")
			}
		})
	}
}

// TestSendConnRoom checks the wake-up of publishers waiting for room in a client's queue: the
// write that takes the count below the limit wakes every waiter, and one above it none.
func TestSendConnRoom(t *testing.T) {
	server, _ := tcpPair(t)
	c := newSendConn(server, 1<<20, time.Second, nil)
	c.queued.Store(4)
	woken := make(chan int, 2)
	var ready sync.WaitGroup
	for i := range 2 {
		ready.Add(1)
		go func() {
			room := c.roomChan()
			ready.Done()
			<-room
			woken <- i
		}()
	}
	ready.Wait()
	c.sent(3) // 4 -> 3: not below the limit of 3
	select {
	case i := <-woken:
		t.Fatalf("waiter %d woken with the queue at the limit", i)
	case <-time.After(50 * time.Millisecond):
	}
	if !c.waiting.Load() {
		t.Fatal("the waiters are no longer marked")
	}
	c.sent(3) // 3 -> 2
	for range 2 {
		select {
		case <-woken:
		case <-time.After(5 * time.Second):
			t.Fatal("a waiter was not woken when the queue fell below the limit")
		}
	}
	if c.waiting.Load() || c.queued.Load() != 2 {
		t.Errorf("waiting %v, queued %d after the wake-up; want false, 2", c.waiting.Load(), c.queued.Load())
	}
	c.queued.Store(0)
	c.sent(3) // never below zero
	if n := c.queued.Load(); n != 0 {
		t.Errorf("queued %d after a write with nothing counted; want 0", n)
	}
	// Closing ends every wait: mochi closes the connection before it marks the client closed.
	c.Close()
	select {
	case <-c.done:
	default:
		t.Error("Close did not end the waits for room")
	}
}
