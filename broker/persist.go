package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// persistence keeps sessions, subscriptions, inflight and retained messages in a Pebble database
// so they survive a restart. Writes are not synced one by one (mochi's own storage hooks sync
// every message, 25-40x slower): a background loop syncs the write-ahead log every SyncEvery
// when something changed, so a crash loses at most that much broker state. Vitals durability
// does not depend on this: samples are in the Vigil store before they are acknowledged.
type persistence struct {
	mqtt.HookBase
	db    *pebble.DB
	log   *slog.Logger
	dirty atomic.Bool
	every time.Duration
	// clients may have state stored (persistent sessions, and those restored at start).
	clients sync.Map
	// volatile reports retained topics Vigil publishes often and republishes at start (risk):
	// not kept, which saves a write per sample.
	volatile func(topic string) bool

	mu     sync.RWMutex // guards db against use after close
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

func openPersistence(dir string, every time.Duration, volatile func(string) bool, log *slog.Logger) (*persistence, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log}})
	if err != nil {
		return nil, fmt.Errorf("broker state in %s: %w", dir, err)
	}
	p := &persistence{db: db, log: log.With("part", "persistence"), every: every, volatile: volatile, stop: make(chan struct{}), done: make(chan struct{})}
	go p.syncLoop()
	return p, nil
}

func (p *persistence) ID() string { return "vigil-persistence" }

func (p *persistence) Provides(h byte) bool {
	switch h {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage, mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped,
		mqtt.OnClientExpired, mqtt.OnRetainedExpired,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages:
		return true
	}
	return false
}

func (p *persistence) syncLoop() {
	defer close(p.done)
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.sync()
		}
	}
}

func (p *persistence) sync() {
	if !p.dirty.Swap(false) {
		return
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return
	}
	// A synced WAL record makes every earlier unsynced write durable.
	if err := p.db.LogData([]byte{0}, pebble.Sync); err != nil {
		p.dirty.Store(true)
		p.log.Error("syncing broker state failed", "err", err)
	}
}

func (p *persistence) close() error {
	select {
	case <-p.stop:
		return nil
	default:
	}
	close(p.stop)
	<-p.done
	p.sync()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return p.db.Close()
}

func (p *persistence) set(key []byte, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		p.log.Error("encoding broker state failed", "key", string(key), "err", err)
		return
	}
	p.write(func(db *pebble.DB) error { return db.Set(key, b, pebble.NoSync) })
}

// get decodes the value at key into v; false when there is none.
func (p *persistence) get(key []byte, v any) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	b, closer, err := p.db.Get(key)
	if err != nil {
		if !errors.Is(err, pebble.ErrNotFound) {
			p.log.Error("reading broker state failed", "key", string(key), "err", err)
		}
		return false
	}
	defer closer.Close()
	if err := json.Unmarshal(b, v); err != nil {
		p.log.Error("broker state unreadable", "key", string(key), "err", err)
		return false
	}
	return true
}

func (p *persistence) del(key []byte) {
	p.write(func(db *pebble.DB) error { return db.Delete(key, pebble.NoSync) })
}

func (p *persistence) delPrefix(prefix []byte) {
	p.write(func(db *pebble.DB) error { return db.DeleteRange(prefix, prefixEnd(prefix), pebble.NoSync) })
}

func (p *persistence) write(f func(*pebble.DB) error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return
	}
	if err := f(p.db); err != nil {
		p.log.Error("writing broker state failed", "err", err)
		return
	}
	p.dirty.Store(true)
}

// Keys: c/{client}, s/{client}\x00{filter}, i/{client}\x00{packet id}, r/{topic}, and
// g/{client}: the access grant of a persistent session (see access.awaySession).
func clientKey(id string) []byte { return []byte("c/" + id) }
func grantKey(id string) []byte  { return []byte("g/" + id) }
func subKey(id, filter string) []byte {
	return []byte("s/" + id + "\x00" + filter)
}
func subPrefix(id string) []byte { return []byte("s/" + id + "\x00") }
func inflightKey(id string, pid uint16) []byte {
	return binary.BigEndian.AppendUint16([]byte("i/"+id+"\x00"), pid)
}
func inflightPrefix(id string) []byte { return []byte("i/" + id + "\x00") }
func retainedKey(topic string) []byte { return []byte("r/" + topic) }

// persistent reports whether a client's session outlives its connection; only then do its
// inflight messages need keeping.
func persistent(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

func (p *persistence) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	if !persistent(cl) {
		// A clean start replaces whatever an earlier session left (if it left anything: most
		// clients never had a persistent session, and a deletion costs a write).
		if p.known(cl.ID) {
			p.forget(cl.ID)
		}
		return
	}
	p.remember(cl.ID)
	p.set(clientKey(cl.ID), storage.Client{
		ID:              cl.ID,
		T:               "client",
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     cl.Properties.Props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: cl.Properties.Props.SessionExpiryIntervalFlag,
			AuthenticationMethod:      cl.Properties.Props.AuthenticationMethod,
			RequestProblemInfo:        cl.Properties.Props.RequestProblemInfo,
			RequestProblemInfoFlag:    cl.Properties.Props.RequestProblemInfoFlag,
			RequestResponseInfo:       cl.Properties.Props.RequestResponseInfo,
			ReceiveMaximum:            cl.Properties.Props.ReceiveMaximum,
			TopicAliasMaximum:         cl.Properties.Props.TopicAliasMaximum,
			User:                      cl.Properties.Props.User,
			MaximumPacketSize:         cl.Properties.Props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	})
}

// known reports whether state may be stored for client id; remember notes that it is.
func (p *persistence) known(id string) bool {
	_, ok := p.clients.Load(id)
	return ok
}

func (p *persistence) remember(id string) { p.clients.Store(id, struct{}{}) }

func (p *persistence) forget(id string) {
	p.clients.Delete(id)
	p.del(clientKey(id))
	p.del(grantKey(id))
	p.delPrefix(subPrefix(id))
	p.delPrefix(inflightPrefix(id))
}

func (p *persistence) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if expire && !cl.IsTakenOver() && p.known(cl.ID) {
		p.forget(cl.ID)
	}
}

func (p *persistence) OnClientExpired(cl *mqtt.Client) {
	if p.known(cl.ID) {
		p.forget(cl.ID)
	}
}

func (p *persistence) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if cl.Net.Inline || !persistent(cl) {
		return
	}
	for i, f := range pk.Filters {
		if i < len(codes) && codes[i] > packets.CodeGrantedQos2.Code {
			continue
		}
		p.set(subKey(cl.ID, f.Filter), storage.Subscription{
			T: "subscription", ID: cl.ID + ":" + f.Filter, Client: cl.ID, Filter: f.Filter, Qos: f.Qos,
			Identifier: f.Identifier, RetainHandling: f.RetainHandling, RetainAsPublished: f.RetainAsPublished, NoLocal: f.NoLocal,
		})
	}
}

func (p *persistence) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	for _, f := range pk.Filters {
		p.del(subKey(cl.ID, f.Filter))
	}
}

func (p *persistence) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	if r == -1 {
		// Deleted, volatile or not: a copy stored before the topic became volatile (or by an
		// earlier version) would otherwise come back at every restart (a discharged patient's
		// risk).
		p.del(retainedKey(pk.TopicName))
		return
	}
	if cl.Net.Inline && p.volatile != nil && p.volatile(pk.TopicName) {
		return // Vigil republishes these itself after a restart
	}
	p.set(retainedKey(pk.TopicName), message(pk, "retained", ""))
}

func (p *persistence) OnRetainedExpired(topic string) { p.del(retainedKey(topic)) }

func (p *persistence) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	// mochi passes the PUBACK of each QoS 1 message a client sent here too, and completes it at
	// once: stored, a crash between the two would restore it, and the resumed session would
	// resend it, acknowledging whichever message then has its packet ID.
	if cl.Net.Inline || !persistent(cl) || pk.FixedHeader.Type == packets.Puback {
		return
	}
	m := message(pk, "inflight", cl.ID)
	m.Sent = sent
	p.set(inflightKey(cl.ID, pk.PacketID), m)
}

// OnQosComplete is also called with the PUBACK a client sends for a message sent to it: that
// message's stored copy goes.
func (p *persistence) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || !persistent(cl) {
		return
	}
	p.del(inflightKey(cl.ID, pk.PacketID))
}

func (p *persistence) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	p.OnQosComplete(cl, pk)
}

func message(pk packets.Packet, t, client string) storage.Message {
	return storage.Message{
		T:           t,
		Client:      client,
		Origin:      pk.Origin,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		FixedHeader: pk.FixedHeader,
		Created:     pk.Created,
		PacketID:    pk.PacketID,
		Properties: storage.MessageProperties{
			PayloadFormat:          pk.Properties.PayloadFormat,
			PayloadFormatFlag:      pk.Properties.PayloadFormatFlag,
			MessageExpiryInterval:  pk.Properties.MessageExpiryInterval,
			ContentType:            pk.Properties.ContentType,
			ResponseTopic:          pk.Properties.ResponseTopic,
			CorrelationData:        pk.Properties.CorrelationData,
			SubscriptionIdentifier: pk.Properties.SubscriptionIdentifier,
			User:                   pk.Properties.User,
		},
	}
}

func scan[T any](p *persistence, prefix string) ([]T, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return nil, errors.New("broker state closed")
	}
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd([]byte(prefix))})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []T
	for ok := it.First(); ok; ok = it.Next() {
		var v T
		if err := json.Unmarshal(it.Value(), &v); err != nil {
			return nil, fmt.Errorf("broker state at %q: %w", it.Key(), err)
		}
		out = append(out, v)
	}
	return out, it.Error()
}

func (p *persistence) StoredClients() ([]storage.Client, error) {
	cs, err := scan[storage.Client](p, "c/")
	for _, c := range cs {
		p.remember(c.ID)
	}
	return cs, err
}

func (p *persistence) StoredSubscriptions() ([]storage.Subscription, error) {
	return scan[storage.Subscription](p, "s/")
}

func (p *persistence) StoredInflightMessages() ([]storage.Message, error) {
	return scan[storage.Message](p, "i/")
}

// StoredRetainedMessages loads the retained messages, but none of a volatile topic: Vigil
// republishes those itself, and a stored copy (from an earlier version) may be stale or of a
// patient since discharged. Such copies are deleted.
func (p *persistence) StoredRetainedMessages() ([]storage.Message, error) {
	all, err := scan[storage.Message](p, "r/")
	if err != nil || p.volatile == nil {
		return all, err
	}
	kept := all[:0]
	for _, m := range all {
		if p.volatile(m.TopicName) {
			p.del(retainedKey(m.TopicName))
			continue
		}
		kept = append(kept, m)
	}
	return kept, nil
}

func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}
