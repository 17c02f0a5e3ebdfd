package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram counts latencies in fixed log-linear buckets, like an HDR histogram: values below
// 2^histSubBits microseconds are exact; above, each power of two is split into 2^(histSubBits-1)
// equal buckets, so every bucket is narrower than 1/64 of its values (< 0.8 % error at the
// midpoint) from 1 µs to histMax. Its size is fixed (16 KB) however many values it holds,
// so p99.9 over millions of samples costs nothing more than over a thousand.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      uint64 // µs
	min, max uint64 // µs
}

const (
	histSubBits = 7
	histHalf    = 1 << (histSubBits - 1)
	histMaxBits = 36
	histMax     = uint64(1) << histMaxBits // µs, about 19 hours: anything longer is clamped
	histBuckets = (histMaxBits + 1 - histSubBits + 2) * histHalf
)

// histIndex is the bucket of v (µs, at most histMax).
func histIndex(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits // v>>e is in [histHalf, 2*histHalf)
	return e*histHalf + int(v>>e)
}

// histBounds are the lowest and highest values of bucket i.
func histBounds(i int) (lo, hi uint64) {
	if i < 1<<histSubBits {
		return uint64(i), uint64(i)
	}
	e := i/histHalf - 1
	m := uint64(i - e*histHalf)
	return m << e, (m+1)<<e - 1
}

// Record adds one latency; negative ones (a clock step) count as 0.
func (h *histogram) Record(d time.Duration) {
	v := uint64(max(d, 0) / time.Microsecond)
	v = min(v, histMax)
	h.counts[histIndex(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.n++
	h.sum += v
}

// Merge adds o's values.
func (h *histogram) Merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of values.
func (h *histogram) Count() uint64 { return h.n }

// Quantile returns the value of rank ceil(q*n) (nearest rank, 1-based), as the midpoint of its
// bucket bounded by the smallest and largest value seen; 0 when empty.
func (h *histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := histBounds(i)
			v := min(max(lo+(hi-lo)/2, h.min), h.max)
			return time.Duration(v) * time.Microsecond
		}
	}
	return time.Duration(h.max) * time.Microsecond
}

// Max is the largest value.
func (h *histogram) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }

// Mean is the average value.
func (h *histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum/h.n) * time.Microsecond
}
