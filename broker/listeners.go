package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// tcpListener accepts MQTT over TCP, or over TLS when it has a TLS config.
type tcpListener struct {
	id, addr string
	tls      *tls.Config
	log      *slog.Logger
	admit    admitFn
	shutdown func(listener string) // disconnects the listener's clients (Broker.closeClients)

	mu     sync.Mutex
	ln     net.Listener
	closed atomic.Bool
}

var _ listeners.Listener = (*tcpListener)(nil)

// admitFn hands a new connection to mochi (Broker.admit).
type admitFn func(establish listeners.EstablishFn, listener string, c net.Conn) error

func newTCPListener(id, addr string, tc *tls.Config, admit admitFn, shutdown func(string), log *slog.Logger) *tcpListener {
	return &tcpListener{id: id, addr: addr, tls: tc, admit: admit, shutdown: shutdown, log: log.With("listener", id)}
}

func (l *tcpListener) ID() string { return l.id }

func (l *tcpListener) Protocol() string { return "tcp" }

// Address is the bound address once initialised (so ":0" tells its port).
func (l *tcpListener) Address() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *tcpListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	if l.tls != nil {
		ln = tls.NewListener(ln, l.tls)
	}
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	return nil
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	ln := l.ln
	l.mu.Unlock()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !l.closed.Load() && !errors.Is(err, net.ErrClosed) {
				l.log.Error("accept failed", "err", err)
			}
			return
		}
		go func() {
			if err := l.admit(establish, l.id, conn); err != nil {
				l.log.Debug("connection ended", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// Close stops accepting and disconnects the listener's clients. mochi's own CloseFn is not used:
// it read-locks the client list twice (Clients.GetByListener calls Len under its read lock), so a
// client leaving at that instant, whose removal waits for the write lock, deadlocks the shutdown.
func (l *tcpListener) Close(listeners.CloseFn) {
	if l.closed.Swap(true) {
		return
	}
	l.mu.Lock()
	if l.ln != nil {
		l.ln.Close()
	}
	l.mu.Unlock()
	l.shutdown(l.id)
}

// wsListener serves MQTT over WebSocket as an http.Handler, so it shares the HTTP server (and
// origin) of the API and the dashboard. It refuses upgrades from origins not allowed.
type wsListener struct {
	id       string
	admit    admitFn
	shutdown func(listener string) // as tcpListener's
	log      *slog.Logger
	stats    *Stats
	origins  []string
	upgrader websocket.Upgrader

	mu        sync.Mutex
	establish listeners.EstablishFn
	closed    bool
}

var _ listeners.Listener = (*wsListener)(nil)

func newWSListener(id string, origins []string, admit admitFn, shutdown func(string), log *slog.Logger, stats *Stats) *wsListener {
	l := &wsListener{id: id, admit: admit, shutdown: shutdown, log: log.With("listener", id), stats: stats, origins: origins}
	l.upgrader = websocket.Upgrader{
		Subprotocols:    []string{"mqtt"},
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		CheckOrigin:     l.originAllowed,
	}
	return l
}

func (l *wsListener) ID() string              { return l.id }
func (l *wsListener) Address() string         { return "/mqtt" }
func (l *wsListener) Protocol() string        { return "ws" }
func (l *wsListener) Init(*slog.Logger) error { return nil }
func (l *wsListener) Close(listeners.CloseFn) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.shutdown(l.id)
}

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	l.establish = establish
	l.mu.Unlock()
}

// originAllowed: browsers always send Origin on WebSocket upgrades; a request without one comes
// from a non-browser client, which the Origin check is not about (it still needs a token).
func (l *wsListener) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || slices.Contains(l.origins, o)
}

func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	establish, closed := l.establish, l.closed
	l.mu.Unlock()
	if establish == nil || closed {
		http.Error(w, "MQTT broker not running", http.StatusServiceUnavailable)
		return
	}
	if !l.originAllowed(r) {
		l.stats.refused("origin")
		l.log.Warn("websocket refused: origin not allowed", "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	ws, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	if err := l.admit(establish, l.id, &wsConn{ws: ws}); err != nil {
		l.log.Debug("connection ended", "remote", r.RemoteAddr, "err", err)
	}
}

// WebSocketConn presents a WebSocket (client or server side) as the byte stream MQTT expects:
// MQTT packets may span binary messages and a message may hold several packets
// [MQTT-6.0.0-2]. Writes are serialized: a WebSocket takes one writer at a time.
func WebSocketConn(ws *websocket.Conn) net.Conn { return &wsConn{ws: ws} }

type wsConn struct {
	ws  *websocket.Conn
	r   io.Reader
	wmu sync.Mutex
	// The write deadline, applied by Write: gorilla's writer state may be touched only by the
	// writing goroutine, and mochi sets deadlines from its reading goroutine.
	wdl    atomic.Pointer[time.Time]
	closed atomic.Bool
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			mt, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if mt != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT needs binary messages") // [MQTT-6.0.0-1]
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if d := c.wdl.Load(); d != nil {
		if err := c.ws.SetWriteDeadline(*d); err != nil {
			return 0, err
		}
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.ws.Close()
}

func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline applies to the writes that start after it.
func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(&t)
	return nil
}
