package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/vigilhq/vigil/internal/testenv"
	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/topics"
)

func TestBenchHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h, a, b histogram
	var ref []time.Duration
	for i := range 200_000 {
		// Log-uniform from 1 µs to 10 s: every bucket width is exercised.
		d := time.Duration(math.Exp(rng.Float64()*math.Log(1e7)) * float64(time.Microsecond))
		h.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		ref = append(ref, d.Truncate(time.Microsecond))
	}
	slices.Sort(ref)
	for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
		want := ref[int(math.Ceil(q*float64(len(ref))))-1]
		got := h.Quantile(q)
		if diff := (got - want).Abs(); diff > max(want/64, time.Microsecond) {
			t.Errorf("Quantile(%g) = %v; want %v within 1/64", q, got, want)
		}
	}
	if h.Max() != ref[len(ref)-1] || h.Count() != uint64(len(ref)) {
		t.Errorf("Max() = %v, Count() = %d; want %v, %d", h.Max(), h.Count(), ref[len(ref)-1], len(ref))
	}
	a.Merge(&b)
	if a != h {
		t.Error("merging two halves differs from recording everything in one histogram")
	}
	// Its memory is fixed, however many values it holds.
	if size := unsafe.Sizeof(h); size > 20<<10 {
		t.Errorf("a histogram takes %d bytes; want at most 20 KiB", size)
	}
	var empty histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Error("an empty histogram answers non-zero")
	}
}

func TestBenchHistogramBuckets(t *testing.T) {
	// Buckets tile [0, histMax] without gaps or overlaps, each narrower than 1/64 of its values.
	prevHi := int64(-1)
	for i := 0; i <= histIndex(histMax); i++ {
		lo, hi := histBounds(i)
		if int64(lo) != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d = [%d, %d]; want it to start at %d", i, lo, hi, prevHi+1)
		}
		if lo >= 128 && float64(hi-lo+1) > float64(lo)/64 {
			t.Fatalf("bucket %d = [%d, %d] is wider than 1/64 of its values", i, lo, hi)
		}
		if histIndex(lo) != i || histIndex(hi) != i {
			t.Fatalf("histIndex(%d), histIndex(%d) = %d, %d; want %d", lo, hi, histIndex(lo), histIndex(hi), i)
		}
		prevHi = int64(hi)
	}
	if histIndex(histMax) >= histBuckets {
		t.Fatalf("histIndex(histMax) = %d; want below %d", histIndex(histMax), histBuckets)
	}
	var h histogram
	h.Record(-time.Second) // a clock step
	h.Record(1000 * time.Hour)
	if h.Quantile(0) != 0 || h.Max() != time.Duration(histMax)*time.Microsecond {
		t.Errorf("out-of-range values: min %v, max %v; want 0 and histMax", h.Quantile(0), h.Max())
	}
}

// benchTestPlan: monitors at 10/s (samples every 100 ms; with 2, monitor 1 sends 50 ms after
// monitor 0), window from 1 s to 3 s after t0: samples 10..29 of each monitor.
func benchTestPlan(devices, alerts int) *benchPlan {
	p := newBenchPlan(devices, 10, time.Second, 2*time.Second, alerts)
	p.start(time.Unix(1_000_000, 0))
	return p
}

func riskPayload(d int, key uint8) []byte {
	return fmt.Appendf(nil, `{"type":"risk_updated","id":"e1","ts":"2026-01-01T00:00:00.000Z","hospital":"bench","patient":"%s","data":{"score":1,"level":"low","contributions":{"rr":0,"spo2":%d,"o2":0,"sbp":0,"hr":%d,"acvpu":0,"temp":0},"complete":false,"missing":["sbp"]}}`,
		benchPatient(d), key%4, key/4)
}

// deliver: monitor d sent sample n, and its event arrives lat after the sample's schedule.
func deliver(p *benchPlan, m *matcher, d int, n uint32, lat time.Duration) {
	if p.sent[d].Load() < n+1 {
		p.sent[d].Store(n + 1)
	}
	at := p.sched(d, n).Add(lat)
	if m.relay {
		m.event(topics.Vitals(benchHospital, benchPatient(d)), p.appendSample(nil, d, n), false, at)
		return
	}
	m.event(topics.Risk(benchHospital, benchPatient(d)), riskPayload(d, p.key(d, n)), false, at)
}

func TestBenchMatcher(t *testing.T) {
	const lat = 5 * time.Millisecond
	tests := []struct {
		name                       string
		relay                      bool
		run                        func(p *benchPlan, m *matcher)
		delivered, gaps, unmatched int64
	}{
		{"in order", false, func(p *benchPlan, m *matcher) {
			for n := range uint32(30) {
				deliver(p, m, 0, n, lat)
			}
		}, 20, 0, 0},
		{"a short gap in the window", false, func(p *benchPlan, m *matcher) {
			for n := range uint32(30) {
				if n < 12 || n > 14 {
					deliver(p, m, 0, n, lat)
				}
			}
		}, 17, 1, 0},
		{"a gap in the warm-up is not counted", false, func(p *benchPlan, m *matcher) {
			for n := range uint32(30) {
				if n < 3 || n > 5 {
					deliver(p, m, 0, n, lat)
				}
			}
		}, 20, 0, 0},
		{"a long gap across a reconnect", false, func(p *benchPlan, m *matcher) {
			for n := range uint32(12) {
				deliver(p, m, 0, n, lat)
			}
			p.sent[0].Store(28) // samples 12..27 went while the subscriber was away
			m.reconnected()
			deliver(p, m, 0, 28, lat)
			deliver(p, m, 0, 29, lat)
		}, 4, 1, 0},
		{"the last samples never come", false, func(p *benchPlan, m *matcher) {
			for n := range uint32(25) {
				deliver(p, m, 0, n, lat)
			}
			p.sent[0].Store(30)
		}, 15, 1, 0},
		{"strays and retained messages", false, func(p *benchPlan, m *matcher) {
			for n := range uint32(11) {
				deliver(p, m, 0, n, lat)
			}
			// What the topic held before: ignored.
			m.event(topics.Risk(benchHospital, benchPatient(0)), riskPayload(0, 3), true, time.Now())
			// An event for a sample not sent yet, another patient's, and garbage.
			m.event(topics.Risk(benchHospital, benchPatient(0)), riskPayload(0, p.key(0, 15)), false, time.Now())
			m.event(topics.Risk(benchHospital, "someone-else"), []byte(`{"type":"risk_updated","patient":"someone-else"}`), false, time.Now())
			m.event(topics.Risk(benchHospital, benchPatient(0)), []byte(`not json`), false, time.Now())
		}, 1, 1, 3},
		{"relay: in order", true, func(p *benchPlan, m *matcher) {
			for n := range uint32(30) {
				deliver(p, m, 0, n, lat)
			}
		}, 20, 0, 0},
		{"relay: a long gap and a duplicate", true, func(p *benchPlan, m *matcher) {
			for n := range uint32(30) {
				if n < 11 || n > 25 {
					deliver(p, m, 0, n, lat)
				}
			}
			deliver(p, m, 0, 29, lat)
		}, 5, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := benchTestPlan(1, 0)
			m := newMatcher(p, tt.relay)
			tt.run(p, m)
			var h, alert histogram
			res := m.result(&h, &alert)
			if res.delivered != tt.delivered || res.gaps != tt.gaps || res.unmatched != tt.unmatched {
				t.Fatalf("delivered, gaps, unmatched = %d, %d, %d; want %d, %d, %d", res.delivered, res.gaps, res.unmatched, tt.delivered, tt.gaps, tt.unmatched)
			}
			// Every event was paired with its own sample: no latency is off by a period.
			if h.Count() != uint64(tt.delivered) || (h.Count() > 0 && (h.Quantile(0) != lat || h.Max() != lat)) {
				t.Fatalf("latencies: %d from %v to %v; want %d of %v", h.Count(), h.Quantile(0), h.Max(), tt.delivered, lat)
			}
		})
	}
}

func TestBenchMatcherAlert(t *testing.T) {
	p := benchTestPlan(2, 1) // monitor 0 sends the critical sample mid-window: 2 s after t0
	n := uint32(p.alertSeq[0])
	if n != 20 || p.alertSeq[1] != -1 || p.key(0, n) != keyCritical {
		t.Fatalf("alertSeq = %v, key %d; want [20 -1] and the critical key", p.alertSeq, p.key(0, n))
	}
	if s := string(p.appendSample(nil, 0, n)); !strings.Contains(s, `"hr":130`) || !json.Valid([]byte(s)) {
		t.Fatalf("critical sample = %s", s)
	}
	m := newMatcher(p, false)
	for i := range uint32(25) {
		deliver(p, m, 0, i, time.Millisecond)
	}
	raised := func(d int, after time.Duration) {
		m.event(topics.PatientAlerts(benchHospital, benchPatient(d)),
			fmt.Appendf(nil, `{"type":"patient_alert","patient":"%s","data":{"action":"raised","alert":{"kind":"news2"}}}`, benchPatient(d)), false, p.sched(0, n).Add(after))
	}
	raised(0, 7*time.Millisecond)
	raised(0, 9*time.Millisecond) // seen once only
	raised(1, 9*time.Millisecond) // not an alert monitor
	var h, alert histogram
	res := m.result(&h, &alert)
	// Samples 25..29 of monitor 0 and all of monitor 1's never came: two gaps.
	if res.delivered != 15 || res.gaps != 2 || res.alerts != 1 || alert.Max() != 7*time.Millisecond {
		t.Fatalf("delivered %d, gaps %d, alerts %d (max %v); want 15, 2, 1 at 7ms", res.delivered, res.gaps, res.alerts, alert.Max())
	}
}

func TestBenchPlanSamples(t *testing.T) {
	p := benchTestPlan(2, 0)
	// Consecutive samples always differ (so Vigil publishes a risk_updated for each), and the
	// nine states never score 3 on a parameter nor more than 4 in all (no alert).
	for n := range uint32(100) {
		if p.key(0, n) == p.key(0, n+1) {
			t.Fatalf("samples %d and %d have the same state", n, n+1)
		}
		var s struct{ Seq, HR, SpO2, RR int }
		if err := json.Unmarshal(p.appendSample(nil, 0, n), &s); err != nil || s.Seq != int(n) {
			t.Fatalf("sample %d = %s: %v", n, p.appendSample(nil, 0, n), err)
		}
		if k := p.key(0, n); k/4 > 2 || k%4 > 2 {
			t.Fatalf("sample %d: state %d scores 3 on a parameter", n, k)
		}
	}
	if off, _ := p.offered(); off != 40 {
		t.Fatalf("offered = %d; want 2 monitors x 20 samples", off)
	}
	p.cut(p.t0.Add(2 * time.Second))
	if off, _ := p.offered(); off != 20 {
		t.Fatalf("offered after cutting the window at 2 s = %d; want 20", off)
	}
}

// TestBenchSampleScores scores the bench's samples with the real NEWS2: each state's pulse and
// SpO2 sub-scores are its key, the nine load states stay low (no alert), the critical one is
// high; and the fast scanner reads the key from the event Vigil encodes.
func TestBenchSampleScores(t *testing.T) {
	p := benchTestPlan(1, 1)
	for n := uint32(11); n < 21; n++ { // nine states, then the critical sample (20)
		var s struct {
			HR, RR, SpO2, SBP, Temp float64
		}
		json.Unmarshal(p.appendSample(nil, 0, n), &s)
		v := news2.Vitals{Present: news2.AllParams().Without(news2.Oxygen).Without(news2.Consciousness), Pulse: s.HR, RespRate: s.RR, SpO2: s.SpO2, SystolicBP: s.SBP, Temperature: s.Temp}
		if s.SBP == 0 {
			v.Present = v.Present.Without(news2.SystolicBP).Without(news2.Temperature)
		}
		r := news2.Score(v, news2.Scale1)
		key := p.key(0, n)
		if got := riskKey(int(r.Contributions[news2.Pulse]), int(r.Contributions[news2.SpO2])); got != key {
			t.Errorf("sample %d scores %v; its key is %d, want %d", n, r.Contributions, got, key)
		}
		if critical := key == keyCritical; critical != (r.Level == news2.High) || (!critical && r.Level != news2.Low) {
			t.Errorf("sample %d: level %v (key %d)", n, r.Level, key)
		}
		event := r.AppendJSON([]byte(`{"type":"risk_updated","id":"x","ts":"2026-01-01T00:00:00.000Z","hospital":"bench","patient":"bp-0","data":`))
		event = append(event, '}')
		d, hr, spo2, ok := scanRisk(event, 1)
		if !ok || d != 0 || riskKey(hr, spo2) != key {
			t.Errorf("scanRisk(%s) = %d, %d, %d, %v; want monitor 0, key %d", event, d, hr, spo2, ok, key)
		}
	}
}

// TestBenchDialer: towards a loopback server, connections leave from 127.0.0.1, .2, ... in
// turn, as many addresses as benchPerSource connections each need.
func TestBenchDialer(t *testing.T) {
	if got := len(newBenchDialer("127.0.0.1:1883", 10).sources); got != 1 {
		t.Errorf("10 connections: %d source addresses; want 1", got)
	}
	if got := newBenchDialer("192.0.2.1:1883", 100_000).sources; got != nil {
		t.Errorf("a remote server: source addresses %v; want the system's choice", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	bd := newBenchDialer(ln.Addr().String(), 2*benchPerSource+1)
	var got []string
	for range 4 {
		c, err := bd.dial(context.Background(), endpoint{mqtt: ln.Addr().String()}, false)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s.RemoteAddr().(*net.TCPAddr).IP.String())
		s.Close()
		c.Close()
	}
	if want := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"}; !slices.Equal(got, want) {
		t.Fatalf("connections came from %v; want %v", got, want)
	}
}

func TestBenchConfig(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"--against", "mochi,mosquitto,mochi"}, ""},
		{[]string{"--against", "emqx"}, "--against"},
		{[]string{"--sweep", "1,2"}, ""},
		{[]string{"--sweep", "1,2,100"}, ""},
		{[]string{"--sweep", "1"}, "--sweep"},
		{[]string{"--sweep", "1,1"}, "--sweep"},
		{[]string{"--sweep", "1,2", "--sweep-p99", "0"}, ""},
		{[]string{"--sweep", "1,2", "--idle"}, "--idle"},
		{[]string{"--sweep", "1,2", "--pairs", "3"}, "--pairs"},
		{[]string{"--qos", "2"}, "--qos"},
		{[]string{"--rate", "0"}, "--rate"},
		{[]string{"--target", "http://vigil.example:8080"}, "--password"},
		{[]string{"--target", "vigil.example:8080", "--password", "x"}, "--target"},
		{[]string{"--mqtt", "127.0.0.1:1883"}, "--mqtt"},
		{[]string{"--subscribers", "0"}, "--subscribers"},
		{[]string{"--load-procs", "0"}, ""},
		{[]string{"--load-procs", "-1"}, "--load-procs"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var c benchConfig
			s := newSettings("vigil bench")
			c.flags(s)
			if err := s.Parse(tt.args, func(string) string { return "" }); err != nil {
				t.Fatal(err)
			}
			err := c.check()
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("check() = %v; want an error naming %q", err, tt.wantErr)
			}
		})
	}
	var c benchConfig
	s := newSettings("vigil bench")
	c.flags(s)
	s.Parse(nil, func(k string) string {
		return map[string]string{"VIGIL_BENCH_DEVICES": "250", "VIGIL_BENCH_AGAINST": "mosquitto"}[k]
	})
	if err := c.check(); err != nil || c.Devices != 250 || c.Alerts != 2 || !slices.Equal(c.servers(), []string{"vigil", "mosquitto"}) {
		t.Fatalf("from the environment: %+v, %v; want 250 devices, 2 alerts, vigil and mosquitto", c, err)
	}
	if got := (sweepPlan{Start: 1, Factor: 2, Max: 10}).rates(); !slices.Equal(got, []float64{1, 2, 4, 8}) {
		t.Fatalf("sweep rates = %v; want [1 2 4 8]", got)
	}
}

func TestBenchReport(t *testing.T) {
	c := benchConfig{Devices: 100, Rate: 1, QoS: 1, Duration: time.Second, Subscribers: 2, Pairs: 3, against: []string{kindMochi}}
	rep := newBenchReport(c)
	run := func(server string, pair int, p50, cpu float64, lost int64) benchRun {
		return benchRun{Server: server, Pair: pair, Rate: 1, Devices: 100, Offered: 100, Sent: 100, Delivered: 200 - lost, Lost: lost, OfferedPerSec: 100, DeliveredPerSec: 100,
			Latency: &benchLatency{Count: 200, P50: p50, P90: 2 * p50, P99: 3 * p50, P999: 4 * p50, Max: 5 * p50}, CPUPercent: ptr(cpu), RSSMB: ptr(50.0), RSSPerConnKB: ptr(10.0)}
	}
	for p := 1; p <= 3; p++ {
		rep.Runs = append(rep.Runs, run(kindVigil, p, float64(p), 30, 0), run(kindMochi, p, 0.5, 10, 0))
	}
	rep.summarize()
	if len(rep.Summary) != 2 || rep.Summary[0].Server != kindVigil || rep.Summary[0].Runs != 3 {
		t.Fatalf("summary = %+v; want vigil then mochi, 3 runs each", rep.Summary)
	}
	if got := rep.Summary[0].Figures["p50_ms"]; got != (spread{Median: 2, Min: 1, Max: 3, N: 3}) {
		t.Fatalf("vigil p50 = %+v; want median 2, min 1, max 3", got)
	}
	if len(rep.Ratios) != 1 || rep.Ratios[0].Of != "vigil/mochi" || rep.Ratios[0].Figures["p50_ms"] != 4 || rep.Ratios[0].Figures["cpu_percent"] != 3 {
		t.Fatalf("ratios = %+v; want vigil/mochi p50 4x, CPU 3x", rep.Ratios)
	}

	var out bytes.Buffer
	writeBenchTable(&out, rep)
	for _, want := range []string{"p99.9 ms", "KB/conn", "vigil/mochi", "4.00x", "min-max", "1.00-3.00"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}

	file := filepath.Join(t.TempDir(), "bench.json")
	if err := writeBenchJSON(file, rep); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(file)
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"machine", "settings", "runs", "summary", "ratios", "interrupted"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, raw)
		}
	}
	r0 := doc["runs"].([]any)[0].(map[string]any)
	for _, k := range []string{"offered_per_s", "delivered_per_s", "lost", "latency", "cpu_percent", "rss_mb", "rss_per_connection_kb", "broker_drops"} {
		if _, ok := r0[k]; !ok {
			t.Errorf("a run in the JSON lacks %q", k)
		}
	}
	if m := doc["machine"].(map[string]any); m["gomaxprocs"] == nil || m["go_version"] == nil || m["vigil_version"] == nil {
		t.Errorf("machine = %v", m)
	}

	// A sweep: the capacity is the last rate before the first that fails, by loss or (with a
	// bound) by p99 latency. The runs' p99 is 3 ms at 1/s, 30 ms at 2/s, 300 ms at 4/s, and
	// 4/s lost samples.
	sweep := func(p99 time.Duration) benchCap {
		sw := newBenchReport(benchConfig{Devices: 100, Sweep: "1,2,8", sweep: sweepPlan{Start: 1, Factor: 2, Max: 8}, SweepP99: p99})
		for i, rate := range []float64{1, 2, 4} {
			r := run(kindVigil, 1, math.Pow(10, float64(i)), 10, 0)
			r.Rate = rate
			if i == 2 {
				r.Lost = 5
			}
			sw.Runs = append(sw.Runs, r)
		}
		sw.summarize()
		if len(sw.Capacity) != 1 {
			t.Fatalf("capacity = %+v; want one server", sw.Capacity)
		}
		return sw.Capacity[0]
	}
	if c := sweep(0); c.Rate != 2 || c.SamplesPerSec != 200 || c.FirstFailRate != 4 || c.FailedBy != "lost 5 samples" {
		t.Errorf("capacity without a latency bound = %+v; want 2/s per monitor (200 samples/s), failing at 4/s by loss", c)
	}
	if c := sweep(10 * time.Millisecond); c.Rate != 1 || c.SamplesPerSec != 100 || c.FirstFailRate != 2 || c.FailedBy != "p99 30.0 ms" {
		t.Errorf("capacity with p99 within 10 ms = %+v; want 1/s per monitor, failing at 2/s by p99 30 ms", c)
	}

	// A failing run is repeated: a rate fails only when its repeat fails too.
	sw := newBenchReport(benchConfig{Devices: 100, Sweep: "1,2,8", sweep: sweepPlan{Start: 1, Factor: 2, Max: 8}})
	for _, x := range []struct {
		rate float64
		lost int64
	}{{1, 0}, {2, 3}, {2, 0}, {4, 7}, {4, 9}} {
		r := run(kindVigil, 1, 1, 10, 0)
		r.Rate, r.Lost = x.rate, x.lost
		sw.Runs = append(sw.Runs, r)
	}
	sw.summarize()
	if c := sw.Capacity[0]; c.Rate != 2 || c.FirstFailRate != 4 || c.FailedBy != "lost 9 samples" {
		t.Errorf("capacity with a repeated rate = %+v; want 2/s (its repeat passed), failing at 4/s (lost 9 samples)", c)
	}
	// Samples the monitors never sent count as lost, and the reason says so.
	behind := run(kindVigil, 1, 1, 10, 3)
	behind.Sent = 97
	if ok, why := behind.passes(0); ok || why != "lost 3 samples, 3 of them not sent (the monitors fell behind)" {
		t.Errorf("passes with 3 samples unsent = %v, %q", ok, why)
	}
}

// TestBenchSweepOrder: the sweep runs every server at each rate, repeats a failing run once,
// and drops a server from the sweep only when the repeat fails too.
func TestBenchSweepOrder(t *testing.T) {
	cfg := benchConfig{Devices: 10, sweep: sweepPlan{Start: 1, Factor: 2, Max: 8}, against: []string{kindMochi}}
	b := &bench{cfg: cfg, stderr: io.Discard}
	rep := newBenchReport(cfg)
	// vigil fails at 2/s once (then passes), and at 4/s twice; mochi never fails.
	lost := map[string]int64{"vigil 2 1": 1, "vigil 4 1": 2, "vigil 4 2": 3}
	var calls []string
	do := func(kind string, rate float64, try int) error {
		key := fmt.Sprintf("%s %g %d", kind, rate, try)
		calls = append(calls, key)
		rep.Runs = append(rep.Runs, benchRun{Server: kind, Rate: rate, Devices: 10, Offered: 100, Sent: 100, Lost: lost[key]})
		return nil
	}
	if err := b.sweep(context.Background(), rep, do); err != nil {
		t.Fatal(err)
	}
	want := []string{"vigil 1 1", "mochi 1 1", "vigil 2 1", "vigil 2 2", "mochi 2 1", "vigil 4 1", "vigil 4 2", "mochi 4 1", "mochi 8 1"}
	if !slices.Equal(calls, want) {
		t.Errorf("runs = %q; want %q", calls, want)
	}
	rep.summarize()
	if c := rep.Capacity[0]; c.Server != kindVigil || c.Rate != 2 || c.FirstFailRate != 4 {
		t.Errorf("vigil capacity = %+v; want 2/s, failing at 4/s", c)
	}
	if c := rep.Capacity[1]; c.Server != kindMochi || c.Rate != 8 || c.FirstFailRate != 0 {
		t.Errorf("mochi capacity = %+v; want 8/s, the end of the sweep", c)
	}
}

// TestBenchRun runs `vigil bench` against its own child Vigil, a bare mochi relay and (when
// installed) Mosquitto: 20 monitors at 10/s for 3 s, 2 subscribers.
func TestBenchRun(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds vigil and runs servers")
	}
	against := kindMochi
	var mosquitto bool
	t.Run("mosquitto", func(t *testing.T) {
		testenv.LookPath(t, "mosquitto", "Debian: apt-get install mosquitto")
		mosquitto = true
	})
	if mosquitto {
		against += "," + kindMosquitto
	}
	rep, stdout := runBenchJSON(t, "--devices", "20", "--rate", "10", "--duration", "3s", "--warmup", "1s", "--drain", "3s",
		"--subscribers", "2", "--against", against)
	want := []string{kindVigil, kindMochi}
	if mosquitto {
		want = append(want, kindMosquitto)
	}
	if len(rep.Runs) != len(want) || rep.Interrupted {
		t.Fatalf("%d runs (interrupted %v); want %v", len(rep.Runs), rep.Interrupted, want)
	}
	for i, r := range rep.Runs {
		if r.Server != want[i] {
			t.Errorf("run %d is %s; want %s", i, r.Server, want[i])
		}
		// 20 monitors x 10/s x 3 s, every sample to both subscribers.
		if r.Offered != 600 || r.Sent != 600 || r.Delivered != 1200 || r.Lost != 0 || r.Gaps != 0 || r.Errors != 0 {
			t.Errorf("%s: offered %d, sent %d, delivered %d, lost %d, gaps %d, errors %d (%s); want 600, 600, 1200, 0, 0, 0",
				r.Server, r.Offered, r.Sent, r.Delivered, r.Lost, r.Gaps, r.Errors, r.LastError)
		}
		if math.Abs(r.DeliveredPerSec-r.OfferedPerSec) > 1 || math.Abs(r.OfferedPerSec-200) > 1 {
			t.Errorf("%s: offered %.1f/s, delivered %.1f/s; want 200/s each", r.Server, r.OfferedPerSec, r.DeliveredPerSec)
		}
		l := r.Latency
		if l == nil || l.Count != 1200 || !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max && l.Max < 5000) {
			t.Errorf("%s: latency %+v; want 1200 values, 0 < p50 <= p90 <= p99 <= p99.9 <= max < 5 s", r.Server, l)
		}
		if r.BrokerDrops == nil || *r.BrokerDrops != 0 {
			t.Errorf("%s: broker drops %s; want 0", r.Server, dropsText(r.BrokerDrops))
		}
		if r.CPUPercent == nil || *r.CPUPercent <= 0 || r.RSSMB == nil || *r.RSSMB <= 0 || r.RSSPerConnKB == nil {
			t.Errorf("%s: CPU %v, RSS %v, per connection %v; want figures from /proc", r.Server, r.CPUPercent, r.RSSMB, r.RSSPerConnKB)
		}
		if r.LoadCPUPercent == nil || *r.LoadCPUPercent <= 0 {
			t.Errorf("%s: load CPU %v; want the bench's own CPU", r.Server, r.LoadCPUPercent)
		}
	}
	if rep.Settings.LoadProcs != 1 {
		t.Errorf("the load ran on %d cores; want 1 (the default)", rep.Settings.LoadProcs)
	}
	if a := rep.Runs[0].Alert; a == nil || a.Expected != 2 || a.Received != 2 || a.Latency == nil || a.Latency.P50 <= 0 {
		t.Errorf("vigil alerts = %+v; want the critical sample's alert at both subscribers", a)
	}
	if len(rep.Ratios) != len(want)-1 || rep.Ratios[0].Figures["p50_ms"] <= 0 {
		t.Errorf("ratios = %+v; want vigil over each relay", rep.Ratios)
	}
	for _, w := range append(want, "vigil/mochi", "p99.9 ms") {
		if !strings.Contains(stdout, w) {
			t.Errorf("the table lacks %q", w)
		}
	}
}

// runBenchJSON runs `vigil bench` with args and returns its JSON report and its table.
func runBenchJSON(t *testing.T, args ...string) (benchReport, string) {
	t.Helper()
	exe := buildVigil(t)
	file := filepath.Join(t.TempDir(), "bench.json")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args = append(args, "--json", file)
	err := runBenchCommand(ctx, args, func(string) string { return "" }, &stdout, &stderr, exe)
	t.Logf("vigil bench %s\n%s", strings.Join(args, " "), stdout.String())
	if err != nil {
		t.Fatalf("vigil bench: %v\n%s", err, stderr.String())
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	return rep, stdout.String()
}

// buildVigil builds the vigil binary the bench starts its servers from: once per test run.
func buildVigil(t *testing.T) string {
	t.Helper()
	return vigilBinary(t)
}

func TestBenchLoadBoundNote(t *testing.T) {
	rep := &benchReport{Settings: benchSettings{LoadProcs: 1}, Runs: []benchRun{
		{Server: kindVigil, Rate: 10, Pair: 1, LoadCPUPercent: ptr(45.0)},
		{Server: kindMochi, Rate: 10, Pair: 1, LoadCPUPercent: ptr(96.0)},
		{Server: kindMosquitto, Rate: 10, Pair: 1}, // no figure: not counted
	}}
	if n := rep.loadBoundNote(); !strings.Contains(n, "mochi 10/s pair 1 (96%)") || strings.Contains(n, kindVigil) {
		t.Errorf("note %q; want the mochi run alone", n)
	}
	rep.Settings.LoadProcs = 2 // 96% of two cores is not near the limit
	if n := rep.loadBoundNote(); n != "" {
		t.Errorf("note %q with two cores; want none", n)
	}
}

// TestBenchRunWebSocket: the bench's subscribers over WebSocket (/mqtt) get every event.
func TestBenchRunWebSocket(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds vigil and runs a server")
	}
	rep, _ := runBenchJSON(t, "--devices", "10", "--rate", "5", "--duration", "2s", "--warmup", "1s", "--drain", "3s",
		"--subscribers", "2", "--ws", "--alerts", "0")
	if len(rep.Runs) != 1 || rep.Settings.Transport != "ws" {
		t.Fatalf("%d runs over %q; want one over ws", len(rep.Runs), rep.Settings.Transport)
	}
	// 10 monitors x 5/s x 2 s, every sample to both subscribers.
	if r := rep.Runs[0]; r.Offered != 100 || r.Delivered != 200 || r.Lost != 0 || r.Errors != 0 || r.Reconnects != 0 || r.Latency == nil || r.Latency.Count != 200 {
		t.Errorf("offered %d, delivered %d, lost %d, errors %d (%s), reconnects %d, latency %+v; want 100, 200, 0, 0, 0, 200 values",
			r.Offered, r.Delivered, r.Lost, r.Errors, r.LastError, r.Reconnects, r.Latency)
	}
}
