package broker

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestVolatileRetainedNotRestored: retained messages of volatile topics (a patient's risk,
// republished by Vigil after a restart) are neither stored nor restored; a copy stored by an
// earlier version is dropped at load, and the deletion of a volatile topic's retained message
// deletes any stored copy (a discharged patient's risk must not come back at a restart).
func TestVolatileRetainedNotRestored(t *testing.T) {
	dir := t.TempDir()
	volatile := func(topic string) bool { return strings.HasSuffix(topic, "/risk") }
	open := func() *persistence {
		p, err := openPersistence(dir, time.Hour, volatile, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := open()
	// As an earlier version stored them: the risks of p1 and p2, and a bed (not volatile).
	for _, topic := range []string{"hospital/h1/patient/p1/risk", "hospital/h1/patient/p2/risk", "hospital/h1/bed/b1"} {
		p.set(retainedKey(topic), storage.Message{T: "retained", TopicName: topic, Payload: []byte("{}")})
	}
	vigil := &mqtt.Client{Net: mqtt.ClientConnection{Inline: true}}
	// p2 is discharged: its retained risk is deleted.
	p.OnRetainMessage(vigil, packets.Packet{TopicName: "hospital/h1/patient/p2/risk"}, -1)
	// A risk published now is not stored.
	p.OnRetainMessage(vigil, packets.Packet{TopicName: "hospital/h1/patient/p3/risk", Payload: []byte("{}")}, 1)
	for _, topic := range []string{"hospital/h1/patient/p2/risk", "hospital/h1/patient/p3/risk"} {
		var m storage.Message
		if p.get(retainedKey(topic), &m) {
			t.Errorf("%s stored before the restart; want it deleted (p2) or never stored (p3)", topic)
		}
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}

	p = open()
	defer p.close()
	got, err := p.StoredRetainedMessages()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].TopicName != "hospital/h1/bed/b1" {
		t.Fatalf("restored retained messages %+v; want the bed's alone", got)
	}
	for _, topic := range []string{"hospital/h1/patient/p1/risk", "hospital/h1/patient/p2/risk", "hospital/h1/patient/p3/risk"} {
		var m storage.Message
		if p.get(retainedKey(topic), &m) {
			t.Errorf("%s still stored after the load; want it gone", topic)
		}
	}
}

// TestPubackNotStoredAsInflight: the PUBACK mochi builds for a QoS 1 message a device sent is
// not stored as an inflight message of its session (a crash could restore and resend it); a
// QoS 1 message sent to a client still is, until the client's PUBACK completes it.
func TestPubackNotStoredAsInflight(t *testing.T) {
	p, err := openPersistence(t.TempDir(), time.Hour, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	cl := &mqtt.Client{ID: "mon-1", Properties: mqtt.ClientProperties{ProtocolVersion: 5, Props: packets.Properties{SessionExpiryInterval: 3600}}}
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 7}
	p.OnQosPublish(cl, ack, 0, 0)
	out := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 8, TopicName: "hospital/h1/device/mon-1/errors"}
	p.OnQosPublish(cl, out, 0, 0)
	got, err := p.StoredInflightMessages()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].PacketID != 8 {
		t.Fatalf("stored inflight messages %+v; want the outgoing publish (8) alone", got)
	}
	// The device acknowledges it: mochi completes it with the device's PUBACK.
	p.OnQosComplete(cl, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 8})
	if got, err := p.StoredInflightMessages(); err != nil || len(got) != 0 {
		t.Fatalf("stored inflight messages after the device's PUBACK: %+v, %v; want none", got, err)
	}
}
