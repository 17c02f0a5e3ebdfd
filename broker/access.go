package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilhq/vigil/internal/deadline"
	"github.com/vigilhq/vigil/topics"
)

// access is the one mochi hook that decides who connects and what they may do. It is the only
// hook providing OnConnectAuthenticate and OnACLCheck, so mochi's OR-combination of auth hooks
// can never let anything through that it refuses.
type access struct {
	mqtt.HookBase
	b        *Broker
	sessions sync.Map // *mqtt.Client -> *session
	away     sync.Map // client ID -> *session: what a persistent session may receive while away
	closing  atomic.Bool
	stop     chan struct{}
	// samples gives each device PUBLISH its deadline for becoming durable (sampleDeadline).
	samples *deadline.Shared
	// stuck: client ID -> when it was disconnected for not acknowledging (inflight_stuck).
	// Publishers do not wait for such a client again (see awaitRoom) until it acknowledges
	// something or stuckMemory passes.
	stuck sync.Map
}

// stuckMemory is how long a client disconnected for not acknowledging is not waited for. A
// persistent session comes back with all it left unacknowledged, at the limit at once: waiting
// for it again would stall its publishers (ingest workers that serve other hospitals too) a
// second per reconnection. (It has maxRoomWait to acknowledge something before it is cut off
// again: the limit leaves a quarter of --max-inflight for that.)
const stuckMemory = time.Minute

// monotonic reads the monotonic clock, in nanoseconds from an arbitrary start (never 0).
func monotonic() int64 { return int64(time.Since(monoStart)) + 1 }

var monoStart = time.Now()

// sampleDeadline bounds how long a device's PUBLISH waits to become durable before it is
// refused (0x80): the store or the ingest workers are stuck. Shared contexts (one per
// 100 ms) spare each sample a timer of its own.
const sampleDeadline = 10 * time.Second

type kind uint8

const (
	kindDevice kind = iota + 1
	kindBrowser
)

func (k kind) String() string {
	if k == kindDevice {
		return "device"
	}
	return "browser"
}

// session is what access knows about one authenticated connection.
type session struct {
	client    *mqtt.Client
	kind      kind
	hospital  string // device
	device    string // device
	principal Principal
	timer     *time.Timer // browser: disconnects at token expiry
	expired   atomic.Bool
	revoked   atomic.Bool // browser: the user was deleted; the session gets nothing more

	// Token bucket for the device's publishes. Only the client's read goroutine touches it.
	tokens float64
	last   time.Time
}

func newAccess(b *Broker) *access {
	return &access{b: b, stop: make(chan struct{}), samples: deadline.New(sampleDeadline, 100*time.Millisecond)}
}

func (a *access) ID() string { return "vigil-access" }

func (a *access) Provides(h byte) bool {
	switch h {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablish, mqtt.OnSessionEstablished,
		mqtt.OnPacketProcessed, mqtt.OnDisconnect,
		mqtt.OnPublish, mqtt.OnPublishDropped, mqtt.OnQosPublish, mqtt.OnPacketSent, mqtt.OnQosDropped,
		mqtt.OnClientExpired, mqtt.OnStopped:
		return true
	}
	return false
}

func (a *access) session(cl *mqtt.Client) *session {
	v, ok := a.sessions.Load(cl)
	if !ok {
		return nil
	}
	return v.(*session)
}

func (a *access) sessionsOf(subject string) []*session {
	var out []*session
	a.sessions.Range(func(_, v any) bool {
		s := v.(*session)
		if s.kind == kindBrowser && s.principal.Subject == subject {
			out = append(out, s)
		}
		return true
	})
	return out
}

// refuse counts and logs a refusal.
func (a *access) refuse(cl *mqtt.Client, reason, topic string, extra ...any) {
	a.b.stats.refused(reason)
	args := append([]any{"client", cl.ID, "remote", cl.Net.Remote, "reason", reason}, extra...)
	if topic != "" {
		args = append(args, "topic", topic)
	}
	a.b.log.Warn("refused", args...)
}

// looksLikeJWT tells a token from a device secret: device secrets never contain dots.
func looksLikeJWT(p []byte) bool { return bytes.Count(p, []byte{'.'}) == 2 }

// OnConnect refuses a CONNECT that carries a will message, before anything else (CONNACK 0x87,
// not authorized; 0x05 to MQTT 3 clients). mochi publishes a will, and retains it, without
// any access check, so a will would let any client write into any topic (another hospital's
// alerts included) by dropping its connection. Nobody needs one: a device's connection state
// is published by Vigil itself (device_status), browsers publish nothing, and a will on a
// device's vitals topic would pass by the pipeline.
func (a *access) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !pk.Connect.WillFlag {
		return nil
	}
	a.refuse(cl, "will_refused", pk.Connect.WillTopic, "why", "clients may not set a will: Vigil publishes device status itself")
	code := packets.ErrNotAuthorized
	if cl.Properties.ProtocolVersion < 5 {
		code = packets.ErrBadUsernameOrPassword // mochi turns it into MQTT 3's "not authorized" (0x05)
	}
	if err := a.b.server.SendConnack(cl, code, false, nil); err != nil {
		return err
	}
	return code // mochi closes the connection without another CONNACK
}

// OnConnectAuthenticate authenticates a device (client certificate or secret) or a browser
// (JWT as the password).
func (a *access) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if a.closing.Load() {
		return false
	}
	user, pass := string(pk.Connect.Username), pk.Connect.Password

	conn := cl.Net.Conn
	if sc, ok := conn.(*sendConn); ok {
		conn = sc.NetConn()
	}
	if tc, ok := conn.(*tls.Conn); ok {
		if st := tc.ConnectionState(); len(st.VerifiedChains) > 0 {
			cn := st.VerifiedChains[0][0].Subject.CommonName
			if cl.ID != cn || (user != "" && user != cn) {
				a.refuse(cl, "client_id", "", "why", "client ID and username must equal the certificate CN", "cn", cn)
				return false
			}
			h, _, known := a.b.opts.Devices.Device(cn)
			if !known {
				a.refuse(cl, "unknown_device", "", "cn", cn)
				return false
			}
			return a.admitDevice(cl, h)
		}
	}

	if looksLikeJWT(pass) {
		p, err := a.b.opts.Tokens.VerifyToken(string(pass))
		if err != nil {
			a.refuse(cl, "token", "", "err", err)
			return false
		}
		if _, _, isDevice := a.b.opts.Devices.Device(cl.ID); isDevice {
			a.refuse(cl, "client_id", "", "why", "a browser may not use a device's client ID", "user", p.Subject)
			return false
		}
		if old, ok := a.b.server.Clients.Get(cl.ID); ok && string(old.Properties.Username) != p.Subject {
			a.refuse(cl, "client_id", "", "why", "client ID belongs to another user's session", "user", p.Subject)
			return false
		}
		now := a.b.opts.Now()
		if !p.Expires.After(now) {
			a.refuse(cl, "token", "", "err", "expired")
			return false
		}
		cl.Properties.Username = []byte(p.Subject)
		s := &session{client: cl, kind: kindBrowser, principal: p}
		s.timer = time.AfterFunc(p.Expires.Sub(now), func() { a.expire(s) })
		a.sessions.Store(cl, s)
		return true
	}

	if user == "" || user != cl.ID {
		a.refuse(cl, "client_id", "", "why", "a device's username must equal its client ID", "user", user)
		return false
	}
	if err := topics.ValidID("device", user); err != nil {
		a.refuse(cl, "bad_credentials", "", "err", err)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := a.b.opts.Devices.AuthenticateDevice(ctx, user, pass)
	if err != nil {
		a.refuse(cl, "bad_credentials", "", "device", user, "err", err)
		return false
	}
	return a.admitDevice(cl, h)
}

func (a *access) admitDevice(cl *mqtt.Client, hospital string) bool {
	burst := float64(a.b.opts.DeviceBurst)
	a.sessions.Store(cl, &session{client: cl, kind: kindDevice, hospital: hospital, device: cl.ID, tokens: burst, last: a.b.opts.Now()})
	return true
}

// expire disconnects a browser whose token has expired.
func (a *access) expire(s *session) {
	if a.session(s.client) != s || s.expired.Swap(true) {
		return
	}
	a.refuse(s.client, "token_expired", "", "user", s.principal.Subject)
	_ = a.b.server.DisconnectClient(s.client, packets.ErrNotAuthorized)
}

// OnSessionEstablish moves the client's Receive Maximum (MQTT 5 flow control) from mochi to the
// connection (sendConn). mochi's own flow control deadlocks: when an acknowledgement frees
// room, the client's reader takes the inflight set's read lock twice (Inflight.NextImmediate
// calls GetAll), and a publisher adding a message for that client in between waits for the
// write lock and blocks the second read lock; the reader, the publisher (an ingest worker)
// and every later publisher to that client stop for good. With the client's Receive Maximum
// at 0, mochi neither holds messages back nor takes that path; sendConn holds them instead.
// This runs before the session is inherited, which would reset mochi's quota from it.
func (a *access) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	a.dropRevoked(cl.ID)
	sc, ok := cl.Net.Conn.(*sendConn)
	if !ok {
		return
	}
	sc.setReceiveMaximum(int(cl.Properties.Props.ReceiveMaximum))
	cl.Properties.Props.ReceiveMaximum = 0
	cl.State.Inflight.ResetSendQuota(0)
}

// OnPacketProcessed frees room in the client's window when it acknowledges a message.
func (a *access) OnPacketProcessed(cl *mqtt.Client, pk packets.Packet, _ error) {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubcomp:
	case packets.Pubrec:
		if pk.ReasonCode < 0x80 {
			return // QoS 2 goes on: the window frees at PUBCOMP
		}
	default:
		return
	}
	if sc, ok := cl.Net.Conn.(*sendConn); ok {
		sc.acked()
		if sc.wasStuck.Load() != 0 && sc.wasStuck.Swap(0) != 0 {
			a.stuck.Delete(cl.ID) // it acknowledges again: waited for as any client
		}
	}
}

func (a *access) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	s := a.session(cl)
	if s == nil {
		return
	}
	if sc, ok := cl.Net.Conn.(*sendConn); ok {
		if at, ok := a.stuck.Load(cl.ID); ok {
			if time.Since(at.(time.Time)) < stuckMemory {
				sc.wasStuck.Store(monotonic())
			} else {
				a.stuck.Delete(cl.ID)
			}
		}
		sc.setClient(cl.ID)
	}
	a.away.Delete(cl.ID)
	if a.b.persist != nil && persistent(cl) {
		g := grant{Kind: s.kind, Hospital: s.hospital, Device: s.device, Principal: s.principal, Revoked: s.revoked.Load()}
		a.b.persist.set(grantKey(cl.ID), g)
		if !g.Revoked && s.revoked.Load() { // revoked meanwhile: its mark may have been overwritten
			g.Revoked = true
			a.b.persist.set(grantKey(cl.ID), g)
		}
	}
	switch s.kind {
	case kindDevice:
		a.b.stats.devices.Add(1)
		if ev := a.b.opts.Events; ev != nil {
			ev.DeviceConnected(s.hospital, s.device)
		}
	case kindBrowser:
		a.b.stats.browsers.Add(1)
	}
}

func (a *access) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	v, ok := a.sessions.LoadAndDelete(cl)
	if !ok {
		return
	}
	s := v.(*session)
	if !expire && !cl.IsTakenOver() {
		a.away.Store(cl.ID, s)
	}
	switch s.kind {
	case kindDevice:
		a.b.stats.devices.Add(-1)
		if ev := a.b.opts.Events; ev != nil && !a.closing.Load() && !cl.IsTakenOver() {
			ev.DeviceDisconnected(s.hospital, s.device, err == nil)
		}
	case kindBrowser:
		a.b.stats.browsers.Add(-1)
		s.timer.Stop()
	}
}

// grant is what a persistent session may receive while its client is away: the rights of its
// last connection. It is kept in the broker state, so that it outlives a restart. Revoked: the
// user was deleted; the session receives nothing and is never taken over.
type grant struct {
	Kind      kind      `json:"kind"`
	Hospital  string    `json:"hospital,omitempty"`
	Device    string    `json:"device,omitempty"`
	Principal Principal `json:"principal"`
	Revoked   bool      `json:"revoked,omitempty"`
}

// revokeUser marks every session of a deleted user, connected or away (persistent), as revoked
// and returns the connected ones, for the caller to disconnect. A revoked session receives
// nothing more, and a later connection with its client ID (a new user of the same name, say)
// starts afresh instead of taking it over with what it holds.
func (a *access) revokeUser(username string) []*session {
	revoke := func(cl *mqtt.Client, s *session) {
		s.revoked.Store(true)
		if a.b.persist != nil && persistent(cl) {
			a.b.persist.set(grantKey(cl.ID), grant{Kind: s.kind, Principal: s.principal, Revoked: true})
		}
	}
	for _, cl := range a.b.server.Clients.GetAll() {
		if !cl.Closed() || !persistent(cl) {
			continue
		}
		if s := a.awaySession(cl); s != nil && s.kind == kindBrowser && s.principal.Subject == username {
			revoke(cl, s)
			a.b.server.UnsubscribeClient(cl) // nothing more is routed to it
		}
	}
	live := a.sessionsOf(username)
	for _, s := range live {
		revoke(s.client, s)
	}
	return live
}

// dropRevoked ends the revoked session a new connection with client ID id would otherwise
// take over (called before mochi looks for one to inherit): its subscriptions, its messages
// in flight and its broker state go.
func (a *access) dropRevoked(id string) {
	old, ok := a.b.server.Clients.Get(id)
	if !ok || !old.Closed() || !persistent(old) {
		return
	}
	s := a.awaySession(old)
	if s == nil || !s.revoked.Load() {
		return
	}
	a.b.server.UnsubscribeClient(old)
	old.ClearInflights()
	a.b.server.Clients.Delete(id)
	a.away.Delete(id)
	if a.b.persist != nil {
		a.b.persist.OnClientExpired(old)
	}
	a.b.log.Info("revoked session dropped", "client", id, "user", s.principal.Subject)
}

// awaySession returns the session of a persistent client that is not connected, from memory or,
// after a restart, from the broker state; nil when none is known.
func (a *access) awaySession(cl *mqtt.Client) *session {
	if v, ok := a.away.Load(cl.ID); ok {
		return v.(*session)
	}
	var g grant
	if a.b.persist == nil || !a.b.persist.get(grantKey(cl.ID), &g) {
		return nil
	}
	fresh := &session{client: cl, kind: g.Kind, hospital: g.Hospital, device: g.Device, principal: g.Principal}
	fresh.revoked.Store(g.Revoked)
	v, _ := a.away.LoadOrStore(cl.ID, fresh)
	return v.(*session)
}

func (a *access) OnClientExpired(cl *mqtt.Client) { a.away.Delete(cl.ID) }

// OnACLCheck decides every publish, every subscription filter and every delivery. Deny by
// default. A delivery to a persistent session whose client is away is decided by the rights of
// its last connection, so that the session gets what was published meanwhile [MQTT-3.1.2-5].
func (a *access) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	s := a.session(cl)
	away := false
	if s == nil && !write && cl.Closed() {
		if !persistent(cl) {
			return false // a clean session being torn down: nothing to deliver to
		}
		s, away = a.awaySession(cl), true
	}
	if s == nil {
		a.refuse(cl, "no_session", topic)
		return false
	}
	if s.revoked.Load() {
		a.b.stats.refused("session_revoked") // counted, not logged: one line per message
		return false
	}
	switch s.kind {
	case kindDevice:
		if write {
			t, err := topics.Parse(topic)
			if err != nil || t.Kind != topics.KindVitals || t.Hospital != s.hospital {
				a.refuse(cl, "publish_denied", topic, "why", "devices publish only vitals of their hospital")
				return false
			}
			_, patient, ok := a.b.opts.Devices.Device(s.device)
			if !ok || patient == "" || patient != t.Patient {
				a.refuse(cl, "publish_denied", topic, "why", "not assigned to this patient", "assigned", patient)
				return false
			}
			return true
		}
		if topics.Within(topic, topics.DeviceFilter(s.hospital, s.device)) {
			return true
		}
		a.refuse(cl, "subscribe_denied", topic, "why", "devices read only their own device topics")
		return false

	case kindBrowser:
		if write {
			a.refuse(cl, "publish_denied", topic, "why", "browsers publish nothing")
			return false
		}
		if !s.principal.Expires.After(a.b.opts.Now()) {
			if away {
				// Nothing more is queued for it; counted, not logged: one line per message would
				// flood the log until the session expires.
				a.b.stats.refused("token_expired")
				return false
			}
			a.refuse(cl, "token_expired", topic)
			go a.expire(s)
			return false
		}
		if s.principal.Admin && topics.Within(topic, "$SYS/#") {
			return true
		}
		if h, ok := topics.FilterHospital(topic); ok && s.principal.CanAccess(h) {
			return true
		}
		a.refuse(cl, "subscribe_denied", topic, "why", "outside the user's hospitals", "user", s.principal.Subject)
		return false
	}
	return false
}

// OnPublish rate-limits devices and hands vitals to the handler; it returns once the sample is
// durable, so mochi's PUBACK that follows acknowledges a stored sample.
func (a *access) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	s := a.session(cl)
	if s == nil || s.kind != kindDevice {
		return pk, packets.ErrRejectPacket // unreachable: the ACL refused it already
	}
	v5 := cl.Properties.ProtocolVersion == 5
	acked := pk.FixedHeader.Qos > 0

	if !s.allow(a.b.opts.Now(), a.b.opts.DeviceRate, float64(a.b.opts.DeviceBurst)) {
		a.refuse(cl, "rate_limited", pk.TopicName)
		if v5 && acked {
			return pk, packets.ErrQuotaExceeded
		}
		return pk, packets.ErrRejectPacket
	}
	h := a.b.opts.Vitals
	if h == nil {
		a.refuse(cl, "no_ingest", pk.TopicName)
		return pk, packets.ErrRejectPacket
	}
	t, err := topics.Parse(pk.TopicName)
	if err != nil {
		return pk, packets.ErrRejectPacket
	}
	ctx := a.samples.Context()
	durable, err := h.HandleVitals(ctx, Vitals{Hospital: t.Hospital, Patient: t.Patient, Device: s.device,
		Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Received: a.b.opts.Now()})
	if err == nil && acked {
		err = durable(ctx)
	}
	if err == nil {
		a.b.stats.vitals.Add(1)
		return pk, nil
	}
	if codeOf(err) == "invalid" {
		// Refused for its content: the handler has told the device why. MQTT 5 devices get the
		// reason code; MQTT 3 devices get their PUBACK (resending would not help), and the
		// sample is not forwarded.
		if v5 && acked {
			return pk, packets.ErrPayloadFormatInvalid
		}
		return pk, packets.CodeSuccessIgnore
	}
	a.b.stats.vitalsFailed.Add(1)
	a.b.log.Error("vitals not stored", "device", s.device, "topic", pk.TopicName, "err", err)
	if v5 && acked {
		return pk, packets.ErrUnspecifiedError
	}
	return pk, packets.ErrRejectPacket // no PUBACK: the device resends after reconnecting
}

// allow takes a token from the device's bucket.
func (s *session) allow(now time.Time, rate, burst float64) bool {
	s.tokens = min(burst, s.tokens+now.Sub(s.last).Seconds()*rate)
	s.last = now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

// OnPublishDropped: the client's outgoing queue was full. Count, log, and disconnect it, so it
// reconnects and catches up instead of silently missing messages.
func (a *access) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	a.dropped(cl, "queue_full", pk.TopicName)
}

// OnQosDropped: an inflight QoS message was dropped. When a persistent session is resumed,
// mochi hands the old connection's inflight messages to the new one and then clears the old
// one's: those were not dropped.
func (a *access) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl.IsTakenOver() || cl.Closed() {
		// A session ending (clean start) or moving to a new connection lets go of its inflight
		// messages: that is the end of the session, not a lost delivery to a live subscriber.
		return
	}
	a.dropped(cl, "inflight_dropped", pk.TopicName)
}

// OnQosPublish runs when a QoS 1/2 message joins a client's inflight set, just before mochi
// puts it in the client's outgoing queue. mochi silently drops messages past the inflight
// limit (it only bumps a global counter), so a client that reaches the limit is disconnected
// here, before anything is dropped: it reconnects and catches up. And the publisher waits here
// while the client's queue or its inflight set is nearly full (see awaitRoom).
func (a *access) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if cl.Net.Inline || cl.Closed() {
		return
	}
	inflight := cl.State.Inflight.Len()
	if inflight >= int(a.b.opts.MaxInflight) {
		a.dropped(cl, "inflight_full", pk.TopicName)
		return
	}
	if pk.FixedHeader.Type != packets.Publish {
		return // mochi also calls this for the acknowledgement of a client's QoS 1/2 publish
	}
	sc, ok := cl.Net.Conn.(*sendConn)
	if !ok || pk.FixedHeader.Dup {
		return // a resend: written directly
	}
	// A retained message sent on subscribing comes from the client's own connection goroutine,
	// the one that reads its PUBACKs: it cannot wait for them.
	a.awaitRoom(cl, sc, !pk.FixedHeader.Retain, inflight) // and counts the message in the queue
}

// OnPacketSent: a QoS 1/2 PUBLISH left the client's queue (or was written directly).
func (a *access) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Qos == 0 {
		return
	}
	if sc, ok := cl.Net.Conn.(*sendConn); ok {
		sc.sent(a.queueLimit())
	}
}

// maxRoomWait bounds how long a publisher waits for room (see awaitRoom). The queue fills and
// acknowledgements stall only while the server is short of CPU (a client that stops reading is
// found by sendConn's limits), and then a second is not long: a disconnected subscriber comes
// back to a burst of retained messages, which costs far more.
const maxRoomWait = time.Second

// queueLimit is how many QoS 1/2 PUBLISH packets a client's queue may hold before publishers
// wait: three quarters of it.
func (a *access) queueLimit() int32 {
	return a.b.opts.MaxPendingWrites - a.b.opts.MaxPendingWrites/4
}

// inflightLimit is how many unacknowledged QoS 1/2 messages a client may have before
// publishers wait: three quarters of the most it may have.
func (a *access) inflightLimit() int {
	return int(a.b.opts.MaxInflight) - int(a.b.opts.MaxInflight)/4
}

// awaitRoom makes the publisher wait while the client's outgoing queue, or (with acks) its set
// of unacknowledged messages, is three quarters full; inflight is the set's size as the caller
// just read it.
//
// mochi's queue is small and fixed (its buffer is allocated for every connection) and drops
// what does not fit; its writer goroutine never blocks on the network (sendConn takes every
// write at once), so a queue fills only when that goroutine gets no CPU: when the server is
// saturated, or when one goroutine publishes a burst (a subscriber's retained messages) faster
// than the writer is scheduled. Unacknowledged messages pile up the same way when the
// connection's reader, which takes the client's PUBACKs, gets no CPU. Dropping, or
// disconnecting the client before mochi drops (see OnQosPublish), would make the subscriber
// reconnect into the burst of its retained messages: under load, a loop that delivers almost
// nothing. Waiting slows the publisher instead (in the end the devices, through later PUBACKs),
// and nothing is lost. The writer (sendConn.sent), the client's acknowledgements
// (sendConn.acked) and the connection closing wake the publisher. A queue still full after
// maxRoomWait goes back to mochi's rule (drop, and the client is disconnected and counted); a
// client whose set is still three quarters full after maxRoomWait is taken as stuck and
// disconnected (counted).
func (a *access) awaitRoom(cl *mqtt.Client, sc *sendConn, acks bool, inflight int) {
	qlimit, ilimit := a.queueLimit(), a.inflightLimit()
	// take counts the message in the queue if both have room (several publishers may be
	// here at once: the place in the queue is taken atomically), or tells which is full.
	take := func(inflight int) (queueFull, inflightFull bool) {
		if acks && inflight >= ilimit {
			return sc.queued.Load() >= qlimit, true
		}
		return !sc.reserve(qlimit), false
	}
	q, f := take(inflight)
	if !q && !f {
		return
	}
	if marked := sc.wasStuck.Load(); f && marked != 0 {
		// Back from being disconnected as stuck, at the limit with what it left unacknowledged:
		// not waited for on acknowledgements. It has a second to acknowledge something (its
		// first PUBACKs may wait for a busy server's CPU), meanwhile messages pass (waiting
		// for room in its queue like any); then it is disconnected at once.
		if monotonic()-marked >= int64(maxRoomWait) {
			sc.queued.Add(1)
			a.dropped(cl, "inflight_stuck", "")
			return
		}
		acks = false
		if q, f = take(inflight); !q && !f {
			return
		}
	}
	if q {
		a.b.stats.queueWaits.Add(1)
	}
	if f {
		a.b.stats.inflightWaits.Add(1)
	}
	start := time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		room := sc.roomChan()
		// Tried after marking the wait: a writer or an acknowledgement that made room before
		// saw no waiter.
		if q, f = take(cl.State.Inflight.Len()); !q && !f {
			return
		}
		if cl.Closed() {
			sc.queued.Add(1)
			return
		}
		waited := time.Since(start)
		if waited >= maxRoomWait {
			if q {
				sc.queued.Store(1) // whatever the count said, let mochi decide
			} else {
				sc.queued.Add(1)
				a.stuck.Store(cl.ID, time.Now())
				a.dropped(cl, "inflight_stuck", "")
			}
			return
		}
		timer.Reset(maxRoomWait - waited)
		select {
		case <-room:
		case <-timer.C:
		case <-sc.done: // the connection is closing (mochi closes it before it marks the client closed)
			sc.queued.Add(1)
			return
		}
	}
}

// dropped counts a drop (or a drop avoided by disconnecting) and disconnects the client. Only
// the first drop of a connection is logged: a stuck subscriber would otherwise log one line
// per message.
func (a *access) dropped(cl *mqtt.Client, reason, topic string) {
	a.b.stats.dropped(reason)
	if cl.Closed() {
		return
	}
	a.b.log.Warn("subscriber cannot keep up; disconnecting it so it reconnects and catches up", "client", cl.ID, "topic", topic, "reason", reason)
	cl.Stop(packets.ErrServerBusy)
}

// watch runs once a second: mochi drops QoS messages past a client's inflight limit without a
// hook, so clients at the limit are found here and disconnected, and the drops are counted.
func (a *access) watch() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var seen int64
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		if n := atomic.LoadInt64(&a.b.server.Info.InflightDropped); n > seen {
			a.b.stats.droppedN("inflight_full", n-seen)
			seen = n
		}
		limit := int(a.b.opts.MaxInflight)
		for _, cl := range a.b.server.Clients.GetAll() {
			if !cl.Closed() && cl.State.Inflight.Len() >= limit {
				a.b.log.Warn("subscriber at its inflight limit; disconnecting it so it catches up", "client", cl.ID, "inflight", cl.State.Inflight.Len())
				cl.Stop(packets.ErrServerBusy)
			}
		}
		a.stuck.Range(func(id, at any) bool {
			if time.Since(at.(time.Time)) >= stuckMemory {
				a.stuck.Delete(id)
			}
			return true
		})
	}
}

func (a *access) OnStopped() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
}

// codeOf returns the Code() of the first error in err's chain that has one.
func codeOf(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return ""
}
