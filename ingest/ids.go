package ingest

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// IDs of alerts and events: 26 characters of Crockford base32 holding a 48-bit millisecond
// timestamp and 80 random bits, so they sort by creation time (the store lists alerts newest
// first by ID) and never collide in practice. Within one millisecond the random part of one
// generator increases, so IDs from one process are strictly ordered.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

type idGen struct {
	mu   sync.Mutex
	last int64
	hi   uint16
	lo   uint64
}

func (g *idGen) next(now time.Time) string {
	ms := now.UnixMilli()
	g.mu.Lock()
	if ms <= g.last {
		ms = g.last
		g.lo++
		if g.lo == 0 {
			g.hi++
		}
	} else {
		var b [10]byte
		rand.Read(b[:])
		g.hi = binary.BigEndian.Uint16(b[:2])
		g.lo = binary.BigEndian.Uint64(b[2:]) >> 1 // room to increase
		g.last = ms
	}
	hi, lo := g.hi, g.lo
	g.mu.Unlock()

	var out [26]byte
	// 48 bits of time -> 10 characters (50 bits, top 2 zero).
	t := uint64(ms)
	for i := 9; i >= 0; i-- {
		out[i] = crockford[t&31]
		t >>= 5
	}
	// 80 random bits -> 16 characters.
	r1, r0 := uint64(hi), lo // 16 + 64 bits
	for i := 25; i >= 10; i-- {
		out[i] = crockford[r0&31]
		r0 = r0>>5 | (r1&31)<<59
		r1 >>= 5
	}
	return string(out[:])
}
