package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// The bench's monitors and subscribers speak the few MQTT 5 packets they need on the wire
// themselves. With paho clients the load generator took 75-82% of a core at 7,000 samples/s, CPU
// the server it measures on the same machine no longer had: most of it system calls, three
// reads for each event a paho subscriber receives (header, length, body) and a write for each
// acknowledgement. A subscriber here reads through a buffer and acknowledges what one read
// brought in one write.

// MQTT control packet types (the high nibble of the first byte).
const (
	pktConnect    = 0x10
	pktConnack    = 0x20
	pktPublish    = 0x30
	pktPuback     = 0x40
	pktSubscribe  = 0x80
	pktSuback     = 0x90
	pktPingreq    = 0xC0
	pktPingresp   = 0xD0
	pktDisconnect = 0xE0
)

// maxBenchPacket bounds a packet a monitor accepts: it expects acknowledgements only.
const maxBenchPacket = 64 << 10

var errMalformed = errors.New("malformed packet")

// appendVarint appends n as an MQTT variable byte integer.
func appendVarint(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

// appendString appends s as an MQTT UTF-8 string (also binary data): two bytes of length, then
// the bytes.
func appendString[T string | []byte](b []byte, s T) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

// appendConnect appends an MQTT 5 CONNECT with clean start; user "" and pass nil are left out,
// receiveMax 0 is not sent (the protocol's default).
func appendConnect(b []byte, clientID, user string, pass []byte, keepAlive, receiveMax uint16) []byte {
	body := make([]byte, 0, 32+len(clientID)+len(user)+len(pass))
	body = appendString(body, "MQTT")
	flags := byte(0x02) // clean start
	if user != "" {
		flags |= 0x80
	}
	if pass != nil {
		flags |= 0x40
	}
	body = append(body, 5, flags, byte(keepAlive>>8), byte(keepAlive))
	if receiveMax > 0 {
		body = append(body, 3, 0x21, byte(receiveMax>>8), byte(receiveMax))
	} else {
		body = append(body, 0)
	}
	body = appendString(body, clientID)
	if user != "" {
		body = appendString(body, user)
	}
	if pass != nil {
		body = appendString(body, pass)
	}
	b = append(b, pktConnect)
	b = appendVarint(b, len(body))
	return append(b, body...)
}

// appendPublish appends an MQTT 5 PUBLISH without properties; id is sent when qos > 0.
func appendPublish(b []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + 1 + len(payload)
	if qos > 0 {
		n += 2
	}
	b = append(b, pktPublish|qos<<1)
	b = appendVarint(b, n)
	b = appendString(b, topic)
	if qos > 0 {
		b = append(b, byte(id>>8), byte(id))
	}
	b = append(b, 0) // no properties
	return append(b, payload...)
}

// readPacket reads one packet: its first byte and its body, which reuses buf when it fits.
func readPacket(r *bufio.Reader, buf []byte) (first byte, body []byte, err error) {
	first, err = r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n := 0
	for shift := 0; ; shift += 7 {
		c, err := r.ReadByte()
		if err != nil {
			return 0, nil, noEOF(err)
		}
		if shift == 21 && c&0x80 != 0 {
			return 0, nil, fmt.Errorf("%w: remaining length of more than four bytes", errMalformed)
		}
		n |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
	}
	if n > maxBenchPacket {
		return 0, nil, fmt.Errorf("packet type 0x%02x of %d bytes: a monitor takes at most %d", first, n, maxBenchPacket)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	body = buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, noEOF(err)
	}
	return first, body, nil
}

// packetBuffered tells whether r holds a whole packet: whether the next readPacket returns
// without reading from the connection.
func packetBuffered(r *bufio.Reader) bool {
	b, _ := r.Peek(r.Buffered())
	if len(b) < 2 {
		return false
	}
	n, size, err := readVarint(b[1:])
	return err == nil && 1+size+n <= len(b)
}

// noEOF turns an end of stream inside a packet into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseAck reads the packet identifier and reason code of a PUBACK body (MQTT 5: the reason
// may be left out when it is 0, success).
func parseAck(body []byte) (id uint16, reason byte, err error) {
	if len(body) < 2 {
		return 0, 0, fmt.Errorf("%w: PUBACK of %d bytes", errMalformed, len(body))
	}
	id = uint16(body[0])<<8 | uint16(body[1])
	if len(body) > 2 {
		reason = body[2]
	}
	return id, reason, nil
}

// parseConnack reads the reason code of a CONNACK body.
func parseConnack(body []byte) (reason byte, err error) {
	if len(body) < 2 {
		return 0, fmt.Errorf("%w: CONNACK of %d bytes", errMalformed, len(body))
	}
	return body[1], nil
}

// disconnectReason reads the reason code of a DISCONNECT body (none: 0, normal).
func disconnectReason(body []byte) byte {
	if len(body) == 0 {
		return 0
	}
	return body[0]
}

// appendSubscribe appends an MQTT 5 SUBSCRIBE of filters at QoS 1.
func appendSubscribe(b []byte, id uint16, filters []string) []byte {
	n := 3
	for _, f := range filters {
		n += 2 + len(f) + 1
	}
	b = append(b, pktSubscribe|0x02)
	b = appendVarint(b, n)
	b = append(b, byte(id>>8), byte(id), 0) // no properties
	for _, f := range filters {
		b = appendString(b, f)
		b = append(b, 1) // QoS 1
	}
	return b
}

// appendPuback appends a PUBACK of id with success (MQTT 5 leaves out a reason of 0).
func appendPuback(b []byte, id uint16) []byte {
	return append(b, pktPuback, 2, byte(id>>8), byte(id))
}

// readVarint reads a variable byte integer from the front of b: its value and length.
func readVarint(b []byte) (v, n int, err error) {
	for shift := 0; n < len(b) && n < 4; shift += 7 {
		c := b[n]
		n++
		v |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, n, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: bad variable byte integer", errMalformed)
}

// benchPublish is a PUBLISH as a subscriber receives it; its fields point into the body read.
type benchPublish struct {
	topic   []byte
	id      uint16 // qos > 0
	qos     byte
	retain  bool
	payload []byte
}

// parsePublish reads an MQTT 5 PUBLISH: first is its first byte, body the rest.
func parsePublish(first byte, body []byte) (p benchPublish, err error) {
	p.qos, p.retain = first>>1&3, first&1 != 0
	if p.qos > 2 || len(body) < 2 {
		return p, fmt.Errorf("%w: PUBLISH", errMalformed)
	}
	tl := int(body[0])<<8 | int(body[1])
	i := 2 + tl
	if p.qos > 0 {
		i += 2
	}
	if len(body) < i {
		return p, fmt.Errorf("%w: PUBLISH shorter than its topic", errMalformed)
	}
	p.topic = body[2 : 2+tl]
	if p.qos > 0 {
		p.id = uint16(body[i-2])<<8 | uint16(body[i-1])
	}
	pl, n, err := readVarint(body[i:])
	if err != nil || len(body) < i+n+pl {
		return p, fmt.Errorf("%w: PUBLISH properties", errMalformed)
	}
	p.payload = body[i+n+pl:]
	return p, nil
}

// parseSuback reads the reason codes of a SUBACK of id.
func parseSuback(body []byte, id uint16) ([]byte, error) {
	if len(body) < 3 || uint16(body[0])<<8|uint16(body[1]) != id {
		return nil, fmt.Errorf("%w: SUBACK", errMalformed)
	}
	pl, n, err := readVarint(body[2:])
	if err != nil || len(body) < 2+n+pl {
		return nil, fmt.Errorf("%w: SUBACK properties", errMalformed)
	}
	return body[2+n+pl:], nil
}
