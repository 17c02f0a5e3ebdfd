package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// benchPlan is the schedule every monitor follows; the senders and the matchers share it.
// Monitor d sends sample n at t0 + phase(d) + n*period, the phases spread uniformly over one
// period. A monitor that falls behind sends every sample all the same, late: latency counts
// from the scheduled time, so a stalled sender cannot hide delay.
//
// The samples cycle through nine states: pulse 85, 95, 115 (NEWS2 sub-score 0, 1, 2) times
// SpO2 97, 95, 93 (0, 1, 2), respiration 16 (0). Every sample changes the risk, so Vigil
// publishes one risk_updated per sample; the score never passes 4 and no parameter scores 3, so
// no alert is raised. The sub-scores in the event's contributions tell which of the nine states
// it reflects, so events match their samples exactly across gaps of up to eight samples (two
// alternating states, as first designed, would pair every event after a longer gap with the
// wrong sample for the rest of the run).
type benchPlan struct {
	devices int
	period  time.Duration
	warm    time.Duration // the window starts at t0+warm
	t0      time.Time     // set by start, before the first sample
	end     atomic.Int64  // the window ends at t0+end (sooner after Ctrl-C)

	alertSeq []int32         // the seq of monitor d's critical sample; -1: none
	sent     []atomic.Uint32 // monitor d has begun sending samples 0..sent-1
}

func newBenchPlan(devices int, rate float64, warm, window time.Duration, alerts int) *benchPlan {
	p := &benchPlan{
		devices:  devices,
		period:   max(time.Duration(float64(time.Second)/rate), time.Microsecond),
		warm:     warm,
		alertSeq: make([]int32, devices),
		sent:     make([]atomic.Uint32, devices),
	}
	p.end.Store(int64(warm + window))
	for d := range p.alertSeq {
		p.alertSeq[d] = -1
	}
	// The critical samples go mid-window, from monitors spread over the ward.
	mid := warm + window/2
	for i := range alerts {
		d := i * devices / alerts
		p.alertSeq[d] = int32(ceilDiv(mid-p.phase(d), p.period))
	}
	return p
}

// start fixes the time of sample 0.
func (p *benchPlan) start(t0 time.Time) { p.t0 = t0 }

func (p *benchPlan) phase(d int) time.Duration {
	return time.Duration(int64(p.period) * int64(d) / int64(p.devices))
}

// sched is when monitor d is to send sample n.
func (p *benchPlan) sched(d int, n uint32) time.Time {
	return p.t0.Add(p.phase(d) + time.Duration(n)*p.period)
}

// windowEnd is the end of the measured window, after t0.
func (p *benchPlan) windowEnd() time.Duration { return time.Duration(p.end.Load()) }

// cut ends the window at t (Ctrl-C); samples scheduled later are not counted.
func (p *benchPlan) cut(t time.Time) {
	if e := t.Sub(p.t0); e < p.windowEnd() {
		p.end.Store(int64(max(e, p.warm)))
	}
}

// window returns the samples of monitor d scheduled in the measured window: seqs a..b-1.
func (p *benchPlan) window(d int) (a, b uint32) {
	ph := p.phase(d)
	return uint32(ceilDiv(p.warm-ph, p.period)), uint32(ceilDiv(p.windowEnd()-ph, p.period))
}

// offered is the number of samples scheduled in the window, and how many of them were sent.
func (p *benchPlan) offered() (offered, sent int64) {
	for d := range p.devices {
		a, b := p.window(d)
		offered += int64(b - a)
		s := min(max(p.sent[d].Load(), a), b)
		sent += int64(s - a)
	}
	return offered, sent
}

func ceilDiv(x, y time.Duration) int64 {
	if x <= 0 {
		return 0
	}
	return int64((x + y - 1) / y)
}

// Sample states (see benchPlan).
var (
	benchHR   = [3]int{85, 95, 115}
	benchSpO2 = [3]int{97, 95, 93}
)

// keyCritical is the state of the critical sample: pulse sub-score 2, SpO2 3.
const keyCritical = 2*4 + 3

// riskKey is the state an event's pulse and SpO2 sub-scores stand for.
func riskKey(hr, spo2 int) uint8 { return uint8(hr*4 + spo2) }

// key is the state of monitor d's sample n.
func (p *benchPlan) key(d int, n uint32) uint8 {
	if int64(n) == int64(p.alertSeq[d]) {
		return keyCritical
	}
	s := n % 9
	return riskKey(int(s%3), int(s/3))
}

// appendSample encodes monitor d's sample n.
func (p *benchPlan) appendSample(b []byte, d int, n uint32) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, uint64(n), 10)
	if int64(n) == int64(p.alertSeq[d]) {
		// NEWS2 12 (high): RR 26 (3), SpO2 91 (3), SBP 95 (2), pulse 130 (2), temperature 39.2 (2).
		return append(b, `,"hr":130,"rr":26,"spo2":91,"sbp":95,"temp":39.2,"acvpu":"A","o2":false}`...)
	}
	s := n % 9
	b = append(b, `,"hr":`...)
	b = strconv.AppendInt(b, int64(benchHR[s%3]), 10)
	b = append(b, `,"spo2":`...)
	b = strconv.AppendInt(b, int64(benchSpO2[s/3]), 10)
	return append(b, `,"rr":16}`...)
}

// Patient and device IDs of monitor d.
func benchPatient(d int) string { return "bp-" + strconv.Itoa(d) }
func benchDevice(d int) string  { return "bd-" + strconv.Itoa(d) }

// benchIndex parses a patient ID back into its monitor; -1 when it is not one of the bench's.
func benchIndex(patient string, devices int) int {
	s, ok := strings.CutPrefix(patient, "bp-")
	if !ok {
		return -1
	}
	d, err := strconv.Atoi(s)
	if err != nil || d < 0 || d >= devices {
		return -1
	}
	return d
}

// matcher pairs one subscriber's events with the samples they come from, and measures.
//
// For Vigil, a risk_updated event of state k for monitor d is the first sample not yet matched
// whose state is k (earlier ones are lost: a gap); after the subscriber reconnects, it is the
// latest sample sent with state k (the events of the samples in between went while it was
// away). For a relay the payload carries the seq. Latency is the receive time minus the
// sample's scheduled time, for samples scheduled in the measured window only.
type matcher struct {
	plan  *benchPlan
	relay bool

	mu        sync.Mutex
	next      []uint32 // per monitor: the first sample not yet matched
	resync    []bool   // per monitor: the subscriber reconnected since the last match
	alerted   []bool   // per monitor: its critical sample's alert was seen
	lat       histogram
	alert     histogram
	delivered int64 // samples of the window matched
	gaps      int64 // runs of samples of the window that never came
	unmatched int64 // events matching no sample (duplicates, strays)

	received atomic.Int64 // events, for the progress line
}

func newMatcher(p *benchPlan, relay bool) *matcher {
	m := &matcher{plan: p, relay: relay, next: make([]uint32, p.devices), resync: make([]bool, p.devices)}
	if !relay {
		m.alerted = make([]bool, p.devices)
	}
	return m
}

// reconnected: the subscriber missed what was published while it was away.
func (m *matcher) reconnected() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.resync {
		m.resync[i] = true
	}
}

// benchEvent is the part of a Vigil event the matcher reads.
type benchEvent struct {
	Type    string `json:"type"`
	Patient string `json:"patient"`
	Data    struct {
		Contributions struct {
			HR   int `json:"hr"`
			SpO2 int `json:"spo2"`
		} `json:"contributions"`
		Action string `json:"action"`
		Alert  struct {
			Kind string `json:"kind"`
		} `json:"alert"`
	} `json:"data"`
}

// event takes one message received at t. Retained messages (what a topic held before the
// subscription) are no answer to any sample and are ignored.
func (m *matcher) event(topic string, payload []byte, retained bool, t time.Time) {
	m.received.Add(1)
	if retained {
		return
	}
	if m.relay {
		d, n, ok := parseRelaySample(topic, payload, m.plan.devices)
		m.mu.Lock()
		defer m.mu.Unlock()
		if !ok || n < m.next[d] {
			m.unmatched++
			return
		}
		m.take(d, n, t)
		return
	}
	if d, hr, spo2, ok := scanRisk(payload, m.plan.devices); ok {
		m.mu.Lock()
		m.risk(d, riskKey(hr, spo2), t)
		m.mu.Unlock()
		return
	}
	var ev benchEvent
	if json.Unmarshal(payload, &ev) != nil {
		m.mu.Lock()
		m.unmatched++
		m.mu.Unlock()
		return
	}
	d := benchIndex(ev.Patient, m.plan.devices)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case d < 0:
		m.unmatched++
	case ev.Type == "risk_updated":
		m.risk(d, riskKey(ev.Data.Contributions.HR, ev.Data.Contributions.SpO2), t)
	case ev.Type == "patient_alert" && ev.Data.Action == "raised" && ev.Data.Alert.Kind == "news2":
		m.raised(d, t)
	}
}

// scanRisk reads the monitor and the pulse and SpO2 sub-scores of a risk_updated event without
// decoding all of it (encoding/json takes 20 times longer, and the bench shares the machine with
// the server it measures); ok is false for anything else, which event decodes in full.
func scanRisk(payload []byte, devices int) (d, hr, spo2 int, ok bool) {
	rest, found := bytes.CutPrefix(payload, []byte(`{"type":"risk_updated",`))
	if !found {
		return 0, 0, 0, false
	}
	_, rest, found = bytes.Cut(rest, []byte(`"patient":"`))
	if !found {
		return 0, 0, 0, false
	}
	patient, rest, found := bytes.Cut(rest, []byte{'"'})
	if !found {
		return 0, 0, 0, false
	}
	if d = benchIndex(string(patient), devices); d < 0 {
		return 0, 0, 0, false
	}
	_, rest, found = bytes.Cut(rest, []byte(`"contributions":{`))
	if !found {
		return 0, 0, 0, false
	}
	contribs, _, found := bytes.Cut(rest, []byte{'}'})
	if !found {
		return 0, 0, 0, false
	}
	digit := func(key string) (int, bool) {
		_, v, found := bytes.Cut(contribs, []byte(key))
		if !found || len(v) == 0 || v[0] < '0' || v[0] > '9' || (len(v) > 1 && v[1] != ',') {
			return 0, false
		}
		return int(v[0] - '0'), true
	}
	hr, ok1 := digit(`"hr":`)
	spo2, ok2 := digit(`"spo2":`)
	return d, hr, spo2, ok1 && ok2
}

// parseRelaySample reads the monitor (from the vitals topic) and the seq (the payload starts
// with {"seq":N) of a sample a relay passed on.
func parseRelaySample(topic string, payload []byte, devices int) (d int, n uint32, ok bool) {
	rest, found := strings.CutPrefix(topic, "hospital/"+benchHospital+"/patient/")
	if !found {
		return 0, 0, false
	}
	patient, _, _ := strings.Cut(rest, "/")
	if d = benchIndex(patient, devices); d < 0 {
		return 0, 0, false
	}
	num, found := bytes.CutPrefix(payload, []byte(`{"seq":`))
	if !found {
		return 0, 0, false
	}
	if i := bytes.IndexByte(num, ','); i >= 0 {
		num = num[:i]
	}
	seq, err := strconv.ParseUint(string(num), 10, 32)
	if err != nil {
		return 0, 0, false
	}
	return d, uint32(seq), true
}

// risk matches a risk_updated of state k for monitor d (m.mu held).
func (m *matcher) risk(d int, k uint8, t time.Time) {
	hi, next := m.plan.sent[d].Load(), m.next[d]
	const reach = 11 // a state recurs within 9 samples, 10 around the critical one
	if m.resync[d] {
		for i := hi; i > next && hi-i < reach; i-- {
			if m.plan.key(d, i-1) == k {
				m.resync[d] = false
				m.take(d, i-1, t)
				return
			}
		}
	} else {
		for i := next; i < hi && i-next < reach; i++ {
			if m.plan.key(d, i) == k {
				m.take(d, i, t)
				return
			}
		}
	}
	m.unmatched++
}

// take records that sample n of monitor d arrived at t (m.mu held).
func (m *matcher) take(d int, n uint32, t time.Time) {
	a, b := m.plan.window(d)
	if next := m.next[d]; n > next && next < b && n > a {
		m.gaps++ // samples next..n-1 never came, some of them in the window
	}
	m.next[d] = n + 1
	if n >= a && n < b {
		m.delivered++
		m.lat.Record(t.Sub(m.plan.sched(d, n)))
	}
}

// raised records the alert raised by monitor d's critical sample (m.mu held).
func (m *matcher) raised(d int, t time.Time) {
	n := m.plan.alertSeq[d]
	if n < 0 || m.alerted[d] || m.plan.sent[d].Load() <= uint32(n) {
		return
	}
	m.alerted[d] = true
	m.alert.Record(t.Sub(m.plan.sched(d, uint32(n))))
}

// matchResult is what a matcher measured.
type matchResult struct {
	delivered, gaps, unmatched int64
	alerts                     int64
}

// result returns the counts and merges the latencies into lat and alert. Samples of the window
// after the last that arrived, which never came, count as one more gap.
func (m *matcher) result(lat, alert *histogram) matchResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	lat.Merge(&m.lat)
	alert.Merge(&m.alert)
	gaps := m.gaps
	for d, next := range m.next {
		if a, b := m.plan.window(d); next < b && a < b {
			gaps++
		}
	}
	return matchResult{delivered: m.delivered, gaps: gaps, unmatched: m.unmatched, alerts: int64(m.alert.Count())}
}

// pending is how many samples sent have neither arrived nor been passed over.
func (m *matcher) pending() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for d := range m.next {
		if s := m.plan.sent[d].Load(); s > m.next[d] {
			n += int64(s - m.next[d])
		}
	}
	return n
}
