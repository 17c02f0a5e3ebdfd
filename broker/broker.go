// Package broker is Vigil's embedded MQTT broker: mochi-mqtt with one deny-by-default access
// hook for devices and browsers, listeners for TCP, TLS (optionally with device client
// certificates) and WebSocket (mounted on the HTTP server at /mqtt, refusing foreign origins),
// persistence of sessions, subscriptions, inflight and retained messages in the data directory
// with batched syncs, per-device publish rate limits, and counters for every refusal and drop.
//
// Access rules ([DESIGN.md section 7]):
//   - A device (client ID = username = device ID, password = its secret, or a client
//     certificate whose CN is the device ID) may publish only to the vitals topic of the patient
//     it is assigned to at that moment, and subscribe only inside hospital/{h}/device/{d}/#.
//   - A browser (password = a JWT; the username is free and replaced by the token's subject) may
//     subscribe only inside hospital/{h}/... for its hospitals (admin: any hospital, and $SYS/#)
//     and publishes nothing. It is disconnected when its token expires.
//   - Anything else is refused, logged and counted.
//
// A subscriber that cannot keep up loses nothing silently: publishers wait while its outgoing
// queue is nearly full (the writer is short of CPU, never blocked by the network: see sendConn
// and access.awaitQueue); when its send buffer, unacknowledged messages or a stalled write pass
// their limits, the drop is counted and logged with client and topic, and the client is
// disconnected so that it reconnects and catches up through the REST API.
//
// Two of mochi's paths deadlock on a read lock taken twice while a writer waits, so Vigil does
// that work itself: the client's Receive Maximum (MQTT 5 flow control) is kept by the
// connection, not by mochi (access.OnSessionEstablish, sendConn.fit), and a closing listener
// disconnects its clients without mochi's Clients.GetByListener (Broker.closeClients). And no
// connection starts while mochi closes, which would race inside it (Broker.admit).
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Options configure a Broker. Zero values take the defaults named.
type Options struct {
	// MQTTAddr is the plain TCP listener ("" for none).
	MQTTAddr string
	// TLSAddr is the MQTT-over-TLS listener ("" for none); TLSConfig is required with it. Set
	// TLSConfig.ClientCAs and ClientAuth to VerifyClientCertIfGiven to let devices authenticate
	// with a certificate whose CN is their ID.
	TLSAddr   string
	TLSConfig *tls.Config
	// AllowedOrigins are the origins whose pages may open MQTT over WebSocket. Requests without
	// an Origin header (not from a browser) are allowed.
	AllowedOrigins []string
	// Dir holds the persisted broker state ("" keeps nothing across restarts).
	Dir string
	// SyncEvery is how often persisted state is synced to disk (default 100 ms).
	SyncEvery time.Duration

	MaxPacketSize    uint32        // default 64 KiB
	MaxConnections   int64         // default 50,000
	MaxPendingWrites int32         // per client queue of outgoing packets, default 128 (they pass at once to the send buffer; publishers wait while it is 3/4 full)
	MaxSendBuffer    int           // unsent bytes per connection before it is disconnected, default 16 MiB
	WriteTimeout     time.Duration // a write taking longer means a dead client, default 30 s
	MaxInflight      uint16        // unacknowledged QoS 1/2 messages per client, default 65535 (a subscriber reaching it is disconnected); must exceed the retained messages a subscriber may get on subscribing, which arrive before its PUBACKs are read
	SessionExpiry    time.Duration // how long a disconnected persistent session is kept, default 24 h
	DeviceRate       float64       // publishes per second per device, default 20
	DeviceBurst      int           // default DeviceRate

	// Volatile names retained topics that are not kept across restarts because their publisher
	// republishes them (Vigil's risk, one per sample). Nil keeps every retained message.
	Volatile func(topic string) bool

	Devices Devices
	Tokens  TokenVerifier
	Vitals  VitalsHandler // may be nil (vitals are then refused)
	Events  DeviceEvents  // may be nil

	Logger *slog.Logger
	Now    func() time.Time
}

func (o *Options) defaults() {
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = 64 << 10
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = 50_000
	}
	if o.MaxPendingWrites == 0 {
		o.MaxPendingWrites = 128
	}
	if o.MaxSendBuffer == 0 {
		o.MaxSendBuffer = 16 << 20
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MaxInflight == 0 {
		// Room for a large hospital's retained messages, which arrive in one burst when a
		// dashboard subscribes (about one per patient, bed, device and staff member).
		o.MaxInflight = 65535
	}
	if o.SessionExpiry == 0 {
		o.SessionExpiry = 24 * time.Hour
	}
	if o.DeviceRate == 0 {
		o.DeviceRate = 20
	}
	if o.DeviceBurst == 0 {
		o.DeviceBurst = max(1, int(o.DeviceRate))
	}
	if o.SyncEvery == 0 {
		o.SyncEvery = 100 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Devices answers who a device is and where it may publish.
type Devices interface {
	// AuthenticateDevice checks a device's secret and returns its hospital. Unknown devices and
	// wrong secrets are errors.
	AuthenticateDevice(ctx context.Context, id string, secret []byte) (hospital string, err error)
	// Device returns a known device's hospital and the patient it is assigned to now ("" when
	// unassigned). It is called on every publish, so it must be fast.
	Device(id string) (hospital, patient string, ok bool)
}

// Principal is a logged-in user, as a verified token describes them.
type Principal struct {
	Subject   string
	Admin     bool
	Hospitals []string
	Expires   time.Time
}

// CanAccess reports whether the principal may see hospital h.
func (p *Principal) CanAccess(h string) bool {
	if p.Admin {
		return true
	}
	for _, x := range p.Hospitals {
		if x == h {
			return true
		}
	}
	return false
}

// TokenVerifier verifies a JWT.
type TokenVerifier interface {
	VerifyToken(token string) (Principal, error)
}

// Vitals is a sample a device published.
type Vitals struct {
	Hospital, Patient, Device string
	Payload                   []byte
	QoS                       byte
	Received                  time.Time
}

// VitalsHandler takes the samples devices publish. HandleVitals accepts or refuses a sample at
// once; durable then waits until the accepted sample is stored (the broker acknowledges QoS 1
// only then). An error whose Code() is "invalid" means the sample was refused for its content
// (the handler has told the device why); any other error is a failure to take it, and the
// device is told to try again.
type VitalsHandler interface {
	HandleVitals(ctx context.Context, v Vitals) (durable func(context.Context) error, err error)
}

// DeviceEvents hears about device connections.
type DeviceEvents interface {
	DeviceConnected(hospital, device string)
	// DeviceDisconnected: clean is true for a DISCONNECT the device sent.
	DeviceDisconnected(hospital, device string, clean bool)
}

// Broker is the embedded MQTT broker.
type Broker struct {
	opts    Options
	log     *slog.Logger
	server  *mqtt.Server
	access  *access
	persist *persistence
	ws      *wsListener
	stats   *Stats

	// gate keeps new connections from starting while mochi closes (see admit).
	gate      sync.RWMutex
	shut      bool // under gate
	closeOnce sync.Once
}

// New builds a broker; Start opens its listeners.
func New(opts Options) (*Broker, error) {
	opts.defaults()
	if opts.Devices == nil || opts.Tokens == nil {
		return nil, errors.New("broker: Devices and Tokens are required")
	}
	if opts.TLSAddr != "" && opts.TLSConfig == nil {
		return nil, errors.New("broker: a TLS listener needs a certificate")
	}
	log := opts.Logger.With("component", "broker")
	server := mqtt.New(MochiOptions(opts))
	b := &Broker{opts: opts, log: log, server: server, stats: newStats()}
	b.access = newAccess(b)
	if err := server.AddHook(b.access, nil); err != nil {
		return nil, err
	}
	if opts.Dir != "" {
		p, err := openPersistence(filepath.Clean(opts.Dir), opts.SyncEvery, opts.Volatile, log)
		if err != nil {
			return nil, err
		}
		b.persist = p
		if err := server.AddHook(p, nil); err != nil {
			p.close()
			return nil, err
		}
	}
	return b, nil
}

// MochiOptions returns the mochi server options the embedded broker runs with for opts:
// capabilities (limits, queue sizes, no expiry of retained messages), network buffer sizes and
// logging. It is exported so that `vigil bench` can run a bare mochi relay configured exactly
// like Vigil's broker, to compare against.
func MochiOptions(opts Options) *mqtt.Options {
	opts.defaults()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumMessageExpiryInterval = 0 // retained messages never expire by age
	caps.MaximumPacketSize = opts.MaxPacketSize
	caps.MaximumClients = opts.MaxConnections
	caps.MaximumClientWritesPending = opts.MaxPendingWrites
	caps.MaximumInflight = opts.MaxInflight
	caps.MaximumSessionExpiryInterval = uint32(opts.SessionExpiry / time.Second)
	caps.ReceiveMaximum = 64
	return &mqtt.Options{
		Capabilities:             caps,
		InlineClient:             true,
		Logger:                   slog.New(mochiLog{opts.Logger.With("component", "broker", "part", "mochi").Handler()}),
		ClientNetReadBufferSize:  1024,
		ClientNetWriteBufferSize: 2048,
		SysTopicResendInterval:   10,
	}
}

// Start restores persisted state and opens the listeners.
func (b *Broker) Start() error {
	if b.opts.MQTTAddr != "" {
		if err := b.server.AddListener(newTCPListener("tcp", b.opts.MQTTAddr, nil, b.admit, b.closeClients, b.log)); err != nil {
			return fmt.Errorf("mqtt listener %s: %w", b.opts.MQTTAddr, err)
		}
	}
	if b.opts.TLSAddr != "" {
		if err := b.server.AddListener(newTCPListener("tls", b.opts.TLSAddr, b.opts.TLSConfig, b.admit, b.closeClients, b.log)); err != nil {
			return fmt.Errorf("mqtts listener %s: %w", b.opts.TLSAddr, err)
		}
	}
	b.ws = newWSListener("ws", b.opts.AllowedOrigins, b.admit, b.closeClients, b.log, b.stats)
	if err := b.server.AddListener(b.ws); err != nil {
		return err
	}
	if err := b.server.Serve(); err != nil {
		return err
	}
	go b.access.watch()
	return nil
}

// errClosing refuses a connection that arrives while the broker closes.
var errClosing = errors.New("broker closing")

// admit gives a new connection its send buffer (sendConn) and hands it to mochi, unless the
// broker is closing. mochi's Close waits for its clients on a WaitGroup that each client joins
// as it starts, and a client starting while Close waits is a race inside mochi. So admission
// holds the gate's read lock until mochi first reads from the connection (the client has
// joined by then), and Close takes the write lock, once, before it closes mochi: after that,
// no connection starts.
func (b *Broker) admit(establish listeners.EstablishFn, listener string, c net.Conn) error {
	b.gate.RLock()
	if b.shut {
		b.gate.RUnlock()
		c.Close()
		return errClosing
	}
	var once sync.Once
	admitted := func() { once.Do(b.gate.RUnlock) }
	defer admitted()
	sc := b.wrap(c)
	sc.started.Store(&admitted)
	return establish(listener, sc)
}

// wrap gives a new connection its elastic send buffer (see sendConn).
func (b *Broker) wrap(c net.Conn) *sendConn {
	return newSendConn(c, b.opts.MaxSendBuffer, b.opts.WriteTimeout, func(client, topic string) {
		b.stats.dropped("send_buffer_full")
		b.log.Warn("subscriber cannot keep up; disconnecting it so it reconnects and catches up",
			"client", client, "remote", c.RemoteAddr().String(), "topic", topic, "reason", "send_buffer_full")
	})
}

// Addr returns the address of a listener ("tcp" or "tls") once started, e.g. to learn the
// port chosen for ":0".
func (b *Broker) Addr(listener string) string {
	l, ok := b.server.Listeners.Get(listener)
	if !ok {
		return ""
	}
	return l.Address()
}

// WebSocket is the handler for MQTT over WebSocket, to mount at /mqtt.
func (b *Broker) WebSocket() http.Handler { return b.ws }

// Publish sends a message from Vigil itself (the inline client).
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if err := b.server.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	b.stats.published.Add(1)
	return nil
}

// Connected reports whether a client with this ID is connected now.
func (b *Broker) Connected(id string) bool {
	cl, ok := b.server.Clients.Get(id)
	return ok && !cl.Closed()
}

// DisconnectDevice closes the connection of a device (deleted, or its secret rotated).
func (b *Broker) DisconnectDevice(id string) {
	if cl, ok := b.server.Clients.Get(id); ok && !cl.Closed() {
		b.log.Info("disconnecting device", "device", id)
		_ = b.server.DisconnectClient(cl, packets.ErrNotAuthorized)
	}
}

// DisconnectUser closes every connection of a user (deleted) and revokes their persistent
// sessions: they receive nothing more, and nobody takes them over.
func (b *Broker) DisconnectUser(username string) {
	for _, s := range b.access.revokeUser(username) {
		b.log.Info("disconnecting user", "user", username, "client", s.client.ID)
		_ = b.server.DisconnectClient(s.client, packets.ErrNotAuthorized)
		if persistent(s.client) {
			b.server.UnsubscribeClient(s.client) // its session stays, revoked: nothing is routed to it
		}
	}
}

// Stats returns the broker's counters.
func (b *Broker) Stats() *Stats { return b.stats }

// Snapshot returns the counters and the subscribers per filter now.
func (b *Broker) Snapshot() Snapshot { return b.stats.snapshot(b.server) }

// closeClients disconnects the clients of a listener that is closing, with "server shutting
// down". It reads the client list under one read lock (Clients.GetAll), unlike mochi's
// GetByListener (see tcpListener.Close).
func (b *Broker) closeClients(listener string) {
	for _, cl := range b.server.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// Close disconnects every client and stops. Devices disconnected by the shutdown are not
// reported as dropped.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.access.closing.Store(true)
		b.gate.Lock() // connections being admitted reach mochi first; none start after
		b.shut = true
		b.gate.Unlock()
		err = b.server.Close()
		if b.persist != nil {
			if perr := b.persist.close(); perr != nil && err == nil {
				err = perr
			}
		}
	})
	return err
}

// mochiLog tames mochi's own logging: mochi logs a hook's refusal of a publish at error level
// with the whole packet, payload included (vitals values must not reach the logs, and a device
// over its rate limit would flood them). Such records go to debug, and packets are never logged.
type mochiLog struct{ h slog.Handler }

func (m mochiLog) Enabled(ctx context.Context, l slog.Level) bool { return m.h.Enabled(ctx, l) }

func (m mochiLog) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	if r.Message == "publish packet error" {
		out.Level = slog.LevelDebug
		if !m.h.Enabled(ctx, out.Level) {
			return nil
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "packet" && a.Key != "pk" {
			out.AddAttrs(a)
		}
		return true
	})
	return m.h.Handle(ctx, out)
}

func (m mochiLog) WithAttrs(as []slog.Attr) slog.Handler { return mochiLog{m.h.WithAttrs(as)} }
func (m mochiLog) WithGroup(name string) slog.Handler    { return mochiLog{m.h.WithGroup(name)} }
