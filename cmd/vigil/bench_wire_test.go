package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// The bench's wire encoding is checked against paho's: what it writes, paho reads as meant;
// what paho writes, it reads as meant.

func TestBenchWireEncode(t *testing.T) {
	t.Run("connect", func(t *testing.T) {
		cp := readPaho(t, appendConnect(nil, "bd-7", "bd-7", []byte("s3cret"), 30, 8))
		c, ok := cp.Content.(*packets.Connect)
		if !ok {
			t.Fatalf("read %T; want CONNECT", cp.Content)
		}
		if c.ProtocolName != "MQTT" || c.ProtocolVersion != 5 || !c.CleanStart || c.KeepAlive != 30 || c.ClientID != "bd-7" ||
			!c.UsernameFlag || c.Username != "bd-7" || !c.PasswordFlag || string(c.Password) != "s3cret" || c.WillFlag {
			t.Errorf("CONNECT = %+v", c)
		}
		if rm := c.Properties.ReceiveMaximum; rm == nil || *rm != 8 {
			t.Errorf("Receive Maximum = %v; want 8", rm)
		}
		// No credentials, no Receive Maximum.
		c = readPaho(t, appendConnect(nil, "x", "", nil, 0, 0)).Content.(*packets.Connect)
		if c.UsernameFlag || c.PasswordFlag || c.Properties.ReceiveMaximum != nil {
			t.Errorf("bare CONNECT = %+v", c)
		}
	})
	t.Run("publish", func(t *testing.T) {
		// A payload past 127 bytes takes a two-byte remaining length.
		payload := bytes.Repeat([]byte("v"), 300)
		for _, qos := range []byte{0, 1} {
			p, ok := readPaho(t, appendPublish(nil, "vigil/h/bench/p/1/vitals", qos, 0x1234, payload)).Content.(*packets.Publish)
			if !ok || p.Topic != "vigil/h/bench/p/1/vitals" || p.QoS != qos || !bytes.Equal(p.Payload, payload) || p.Retain {
				t.Fatalf("QoS %d: PUBLISH = %+v", qos, p)
			}
			if qos == 1 && p.PacketID != 0x1234 {
				t.Errorf("packet ID %#x; want 0x1234", p.PacketID)
			}
		}
	})
	t.Run("subscribe", func(t *testing.T) {
		filters := []string{"vigil/h/bench/p/+/risk", "vigil/h/bench/alerts"}
		s, ok := readPaho(t, appendSubscribe(nil, 9, filters)).Content.(*packets.Subscribe)
		if !ok || s.PacketID != 9 || len(s.Subscriptions) != 2 {
			t.Fatalf("SUBSCRIBE = %+v", s)
		}
		for i, o := range s.Subscriptions {
			if o.Topic != filters[i] || o.QoS != 1 {
				t.Errorf("subscription %d = %+v; want %s at QoS 1", i, o, filters[i])
			}
		}
	})
	t.Run("puback", func(t *testing.T) {
		a, ok := readPaho(t, appendPuback(nil, 0xbeef)).Content.(*packets.Puback)
		if !ok || a.PacketID != 0xbeef || a.ReasonCode != 0 {
			t.Errorf("PUBACK = %+v", a)
		}
	})
}

func readPaho(t *testing.T, b []byte) *packets.ControlPacket {
	t.Helper()
	r := bytes.NewReader(b)
	cp, err := packets.ReadPacket(r)
	if err != nil {
		t.Fatalf("paho cannot read % x: %v", b, err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes left after the packet", r.Len())
	}
	return cp
}

func TestBenchWireDecode(t *testing.T) {
	var stream bytes.Buffer
	write := func(cp *packets.ControlPacket) {
		if _, err := cp.WriteTo(&stream); err != nil {
			t.Fatal(err)
		}
	}
	ack := packets.NewControlPacket(packets.PUBACK)
	ack.Content.(*packets.Puback).PacketID = 7
	write(ack)
	refused := packets.NewControlPacket(packets.PUBACK)
	reason := "not for you"
	refused.Content = &packets.Puback{PacketID: 8, ReasonCode: 0x87, Properties: &packets.Properties{ReasonString: reason}}
	write(refused)
	pub := packets.NewControlPacket(packets.PUBLISH)
	exp := uint32(60)
	pub.Content = &packets.Publish{Topic: "vigil/h/bench/p/3/risk", QoS: 1, PacketID: 300, Retain: true,
		Payload: bytes.Repeat([]byte("r"), 200), Properties: &packets.Properties{MessageExpiry: &exp}}
	write(pub)
	sub := packets.NewControlPacket(packets.SUBACK)
	sub.Content = &packets.Suback{PacketID: 1, Reasons: []byte{1, 0x87}, Properties: &packets.Properties{ReasonString: "no"}}
	write(sub)
	ca := packets.NewControlPacket(packets.CONNACK)
	ca.Content.(*packets.Connack).ReasonCode = 0x86
	write(ca)
	dis := packets.NewControlPacket(packets.DISCONNECT)
	dis.Content.(*packets.Disconnect).ReasonCode = 0x8b
	write(dis)

	br := bufio.NewReader(&stream)
	next := func(want byte) []byte {
		t.Helper()
		first, body, err := readPacket(br, nil)
		if err != nil || first&0xf0 != want {
			t.Fatalf("readPacket = %#x, %v; want type %#x", first, err, want)
		}
		return body
	}
	if id, rc, err := parseAck(next(pktPuback)); id != 7 || rc != 0 || err != nil {
		t.Errorf("PUBACK = %d, %#x, %v; want 7, success", id, rc, err)
	}
	if id, rc, err := parseAck(next(pktPuback)); id != 8 || rc != 0x87 || err != nil {
		t.Errorf("refusing PUBACK = %d, %#x, %v; want 8, 0x87", id, rc, err)
	}
	first, body, err := readPacket(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePublish(first, body)
	if err != nil || string(p.topic) != "vigil/h/bench/p/3/risk" || p.qos != 1 || p.id != 300 || !p.retain || !bytes.Equal(p.payload, bytes.Repeat([]byte("r"), 200)) {
		t.Errorf("PUBLISH = %+v, %v", p, err)
	}
	sb := next(pktSuback)
	if rcs, err := parseSuback(sb, 1); err != nil || !bytes.Equal(rcs, []byte{1, 0x87}) {
		t.Errorf("SUBACK reasons = %v, %v; want [1 0x87]", rcs, err)
	}
	if _, err := parseSuback(sb, 2); err == nil {
		t.Error("a SUBACK of another packet ID was taken")
	}
	if rc, err := parseConnack(next(pktConnack)); rc != 0x86 || err != nil {
		t.Errorf("CONNACK reason = %#x, %v; want 0x86", rc, err)
	}
	if rc := disconnectReason(next(pktDisconnect)); rc != 0x8b {
		t.Errorf("DISCONNECT reason = %#x; want 0x8b", rc)
	}
	if _, _, err := readPacket(br, nil); err != io.EOF {
		t.Errorf("after the last packet: %v; want EOF", err)
	}
}

func TestBenchWireMalformed(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []byte
		want string
	}{
		{"cut in the length", []byte{pktPuback, 0x80}, "unexpected EOF"},
		{"cut in the body", []byte{pktPuback, 2, 0}, "unexpected EOF"},
		{"five-byte length", []byte{pktPuback, 0xff, 0xff, 0xff, 0xff, 0x01}, "more than four bytes"},
		{"too large", append([]byte{pktPublish}, appendVarint(nil, maxBenchPacket+1)...), "at most"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readPacket(bufio.NewReader(bytes.NewReader(tt.in)), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("readPacket(% x) = %v; want an error with %q", tt.in, err, tt.want)
			}
		})
	}
	if _, _, err := parseAck([]byte{1}); !errors.Is(err, errMalformed) {
		t.Errorf("one-byte PUBACK: %v", err)
	}
	if _, err := parseConnack(nil); !errors.Is(err, errMalformed) {
		t.Errorf("empty CONNACK: %v", err)
	}
	for _, body := range [][]byte{{}, {0, 9, 'a'}, {0, 1, 'a', 0, 1}, {0, 1, 'a', 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff}, {0, 1, 'a', 0, 1, 5, 1}} {
		if _, err := parsePublish(pktPublish|2, body); !errors.Is(err, errMalformed) {
			t.Errorf("PUBLISH % x: %v; want malformed", body, err)
		}
	}
	if _, err := parsePublish(pktPublish|6, []byte{0, 1, 'a', 0}); !errors.Is(err, errMalformed) {
		t.Errorf("PUBLISH of QoS 3 taken")
	}
}

func TestBenchPacketBuffered(t *testing.T) {
	pub := appendPublish(nil, "t", 1, 1, bytes.Repeat([]byte("x"), 200)) // two-byte length
	for _, tt := range []struct {
		name string
		in   []byte
		want bool
	}{
		{"nothing", nil, false},
		{"first byte", pub[:1], false},
		{"half the length", pub[:2], false},
		{"header", pub[:3], false},
		{"all but one byte", pub[:len(pub)-1], false},
		{"whole", pub, true},
		{"whole and a part", append(append([]byte{}, pub...), pub[:5]...), true},
		{"PINGRESP", []byte{pktPingresp, 0}, true},
	} {
		r := bufio.NewReader(bytes.NewReader(tt.in))
		if len(tt.in) > 0 {
			r.Peek(1) // fill the buffer
		}
		if got := packetBuffered(r); got != tt.want {
			t.Errorf("%s: packetBuffered = %v; want %v", tt.name, got, tt.want)
		}
	}
}
