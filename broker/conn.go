package broker

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// errSendBuffer is the error of a write to a connection whose unsent bytes passed the limit.
var errSendBuffer = errors.New("send buffer full: the client does not read fast enough")

// sendConn gives every connection an elastic send buffer. mochi's writer goroutine writes each
// packet to the connection; with sendConn that write only appends to the buffer, and a flusher
// goroutine (running only while there is something to send) writes out what has piled up in as
// few system calls as it can. So a burst (a dashboard subscribing to a hospital's retained state)
// never overflows mochi's small per-client queue, an idle connection holds no buffer at all,
// and a client that stops reading is found by the byte limit: it is disconnected (and counted)
// instead of silently missing messages.
type sendConn struct {
	net.Conn
	max      int                        // most unsent bytes
	timeout  time.Duration              // a write taking longer is a dead client
	overflow func(client, topic string) // called once when the limit is passed
	client   atomic.Value               // the MQTT client ID, once authenticated (for the log)
	started  atomic.Pointer[func()]     // called at the first Read: mochi has the connection (Broker.admit)
	// direct: a write may be tried in the caller's goroutine with a short deadline and resumed
	// after a timeout. Only plain TCP allows that: after a timed-out write, a TLS connection
	// and a WebSocket refuse every later write (and a WebSocket frame cannot be resumed).
	direct bool

	// queued counts the QoS 1/2 PUBLISH packets handed to mochi's per-client queue and not yet
	// written (see access.OnQosPublish and OnPacketSent): how full that queue is.
	queued atomic.Int32
	// A publisher waiting for room (access.awaitRoom: in that queue, or among the client's
	// unacknowledged messages) sleeps on room, which the writer closes when the count falls
	// below the wait limit, and an acknowledgement closes too; waiting tells them that someone
	// sleeps there.
	waiting atomic.Bool
	// wasStuck: when this connection was found to be a client disconnected lately for not
	// acknowledging (monotonic ns; 0: it was not, or it has acknowledged since; see
	// access.stuck).
	wasStuck atomic.Int64
	roomMu   sync.Mutex
	room     chan struct{}
	done     chan struct{} // closed by Close: nobody need wait for room any more

	mu      sync.Mutex
	buf     []byte // unsent bytes
	rmax    int    // the client's Receive Maximum (MQTT 5); 0: no limit
	unacked int    // QoS 1/2 PUBLISH packets sent and not yet acknowledged (with rmax)
	held    []byte // whole packets waiting for the client to acknowledge (with rmax), in order
	spare   []byte // the buffer being written, reused for the next round
	writing bool   // a flusher runs
	closing bool
	err     error
}

func newSendConn(c net.Conn, max int, timeout time.Duration, overflow func(client, topic string)) *sendConn {
	_, direct := c.(*net.TCPConn)
	return &sendConn{Conn: c, max: max, timeout: timeout, overflow: overflow, direct: direct, done: make(chan struct{})}
}

// setClient records the MQTT client ID of the connection.
func (c *sendConn) setClient(id string) { c.client.Store(id) }

// publishTopic returns the topic of the PUBLISH packet b starts with, or "".
func publishTopic(b []byte) string {
	if len(b) < 2 || b[0]>>4 != 3 {
		return ""
	}
	i := 1
	for ; i < len(b) && i < 5 && b[i]&0x80 != 0; i++ { // remaining length: a varint
	}
	i++
	if i+2 > len(b) {
		return ""
	}
	n := int(b[i])<<8 | int(b[i+1])
	if i+2+n > len(b) {
		return ""
	}
	return string(b[i+2 : i+2+n])
}

// Read reads from the connection; the first read tells Broker.admit that mochi has taken the
// connection in.
func (c *sendConn) Read(p []byte) (int, error) {
	if c.started.Load() != nil {
		if f := c.started.Swap(nil); f != nil {
			(*f)()
		}
	}
	return c.Conn.Read(p)
}

// roomChan returns the channel closed when the queue next has room, and marks a waiter.
func (c *sendConn) roomChan() <-chan struct{} {
	c.roomMu.Lock()
	defer c.roomMu.Unlock()
	if c.room == nil {
		c.room = make(chan struct{})
	}
	c.waiting.Store(true)
	return c.room
}

// reserve counts a message in the queue if fewer than limit are counted.
func (c *sendConn) reserve(limit int32) bool {
	for {
		n := c.queued.Load()
		if n >= limit {
			return false
		}
		if c.queued.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// sent records that a queued QoS 1/2 PUBLISH was written; below limit, it wakes the
// publishers waiting for room.
func (c *sendConn) sent(limit int32) {
	n := c.queued.Load()
	for n > 0 && !c.queued.CompareAndSwap(n, n-1) {
		n = c.queued.Load()
	}
	if n-1 < limit && c.waiting.Load() {
		c.wake()
	}
}

// wake wakes every publisher waiting for room.
func (c *sendConn) wake() {
	c.roomMu.Lock()
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
	c.waiting.Store(false)
	c.roomMu.Unlock()
}

// NetConn returns the wrapped connection (the TLS state of a device certificate lives there).
func (c *sendConn) NetConn() net.Conn { return c.Conn }

func (c *sendConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil || c.closing {
		err := c.err
		c.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return 0, err
	}
	if len(c.buf)+len(c.held)+len(p) > c.max {
		c.err = errSendBuffer
		c.mu.Unlock()
		if c.overflow != nil {
			id, _ := c.client.Load().(string)
			c.overflow(id, publishTopic(p))
		}
		c.Conn.Close()
		return 0, errSendBuffer
	}
	out := p
	if c.rmax > 0 {
		if out = c.fit(p); len(out) == 0 {
			c.mu.Unlock()
			return len(p), nil
		}
	}
	if c.direct && !c.writing && len(c.buf) == 0 {
		if _, err := c.writeNow(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	c.buf = append(c.buf, out...)
	if !c.writing {
		c.startFlusher()
	}
	c.mu.Unlock()
	return len(p), nil
}

// setReceiveMaximum makes the connection keep the client's Receive Maximum: at most n QoS 1/2
// PUBLISH packets unacknowledged (see access.OnSessionEstablish: mochi's own flow control is
// turned off). Called before anything is written to the client.
func (c *sendConn) setReceiveMaximum(n int) {
	c.mu.Lock()
	c.rmax = n
	c.mu.Unlock()
}

// fit returns the part of p (whole packets, as mochi writes them) that fits in the client's
// window now; the rest is held, in order, until acknowledgements free room. Called with mu held.
func (c *sendConn) fit(p []byte) []byte {
	if len(c.held) > 0 {
		c.held = append(c.held, p...) // nothing overtakes a held packet
		return nil
	}
	n := c.release(p)
	if n < len(p) {
		c.held = append(c.held, p[n:]...)
	}
	return p[:n]
}

// release counts the QoS 1/2 PUBLISH packets at the start of b that fit in the client's
// window and returns how many bytes of b they (and the other packets among them) take.
// Called with mu held.
func (c *sendConn) release(b []byte) int {
	i := 0
	for i < len(b) {
		n, ok := packetLen(b[i:])
		if !ok {
			return len(b) // not whole packets: written as they are
		}
		if b[i]>>4 == 3 && b[i]>>1&3 != 0 { // PUBLISH, QoS 1 or 2
			if c.unacked >= c.rmax {
				return i
			}
			c.unacked++
		}
		i += n
	}
	return i
}

// acked records an acknowledgement from the client (PUBACK, PUBCOMP, or PUBREC with a failure
// code): it wakes publishers waiting for room and sends what was held back for want of room in
// the client's window.
func (c *sendConn) acked() {
	if c.waiting.Load() {
		c.wake() // a publisher may wait for the client's inflight messages (access.awaitRoom)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rmax == 0 {
		return
	}
	if c.unacked > 0 {
		c.unacked--
	}
	if len(c.held) == 0 || c.err != nil {
		return
	}
	n := c.release(c.held)
	if n == 0 {
		return
	}
	c.buf = append(c.buf, c.held[:n]...)
	if c.held = c.held[n:]; len(c.held) == 0 {
		c.held = nil
	}
	if !c.writing {
		c.startFlusher()
	}
}

// packetLen returns the length of the MQTT packet b starts with, and whether b holds all of it.
func packetLen(b []byte) (int, bool) {
	n, shift := 0, 0
	for i := 1; i < len(b) && i < 5; i++ {
		n |= int(b[i]&0x7f) << shift
		if b[i]&0x80 == 0 {
			total := i + 1 + n
			return total, total <= len(b)
		}
		shift += 7
	}
	return 0, false
}

// fastWrite bounds the direct write: a socket with room takes it in microseconds; one that is
// full hands the rest to the flusher.
const fastWrite = 2 * time.Millisecond

// writeNow is the common case on plain TCP: nothing is waiting, so p is written directly, in
// the caller's goroutine (no hand-off). Called with mu held; returns with it released.
func (c *sendConn) writeNow(p []byte) (int, error) {
	c.writing = true // writes arriving meanwhile queue behind p
	c.mu.Unlock()
	c.Conn.SetWriteDeadline(time.Now().Add(fastWrite))
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	var ne net.Error
	switch {
	case err == nil:
	case errors.As(err, &ne) && ne.Timeout():
		rest := make([]byte, 0, len(p)-n+len(c.buf))
		c.buf = append(append(rest, p[n:]...), c.buf...)
	default:
		c.writing = false
		if c.err == nil {
			c.err = err
		}
		go c.Conn.Close()
		return n, err
	}
	if len(c.buf) == 0 {
		c.writing = false
		if c.closing {
			go c.Conn.Close()
		}
		return len(p), nil
	}
	c.startFlusher()
	return len(p), nil
}

// startFlusher starts a flusher; called with mu held and writing set or about to be.
func (c *sendConn) startFlusher() {
	c.writing = true
	go c.flush()
}

// flush writes the buffer out until it is empty, then exits; idle connections keep no goroutine
// and no buffer.
func (c *sendConn) flush() {
	for {
		c.mu.Lock()
		if len(c.buf) == 0 || c.err != nil {
			c.writing = false
			closing := c.closing
			c.buf, c.spare = nil, nil
			c.mu.Unlock()
			if closing {
				c.Conn.Close()
			}
			return
		}
		data := c.buf
		c.buf = c.spare
		c.spare = nil
		deadline := c.timeout
		if c.closing {
			deadline = 500 * time.Millisecond // the last packets (a DISCONNECT with its reason)
		}
		c.mu.Unlock()

		c.Conn.SetWriteDeadline(time.Now().Add(deadline))
		_, err := c.Conn.Write(data)

		c.mu.Lock()
		if cap(data) <= 64<<10 {
			c.spare = data[:0]
		}
		if err != nil && c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
		if err != nil {
			c.Conn.Close()
		}
	}
}

// Close stops reading at once; unsent bytes still get a short time to go out (mochi sends a
// DISCONNECT with its reason just before closing), then the connection closes.
func (c *sendConn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	writing := c.writing
	c.mu.Unlock()
	close(c.done)
	if !writing {
		return c.Conn.Close()
	}
	// The flusher closes the connection when it is done; unblock the reader now.
	if tc, ok := c.Conn.(interface{ CloseRead() error }); ok {
		tc.CloseRead()
	} else {
		c.Conn.SetReadDeadline(time.Now())
	}
	c.Conn.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
	return nil
}

// SetDeadline applies to reads only (mochi's keepalive); writes have their own timeout.
func (c *sendConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// SetWriteDeadline is ignored: the flusher sets its own for each write.
func (c *sendConn) SetWriteDeadline(time.Time) error { return nil }
