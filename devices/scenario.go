package devices

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Scenario is what a simulated patient goes through.
type Scenario string

// The scenarios. Durations are in scenario time; SimOptions.TimeScale speeds them up.
const (
	// Stable: normal vitals around a per-patient baseline.
	Stable Scenario = "stable"
	// Deteriorating: sepsis-like, over 5 minutes HR 80->130, RR 16->28, temp 37.0->39.5,
	// SBP 125->88, SpO2 97->92; then it stays there (NEWS2 high).
	Deteriorating Scenario = "deteriorating"
	// Hypoxia: over 4 minutes SpO2 97->82, HR 78->96, RR 16->21.
	Hypoxia Scenario = "hypoxia"
	// Bradycardia: over 3 minutes HR 72->38.
	Bradycardia Scenario = "bradycardia"
	// SensorFault: normal vitals, but about 1 sample in 10 carries an implausible value
	// (hr 400, spo2 130, rr 120 or sbp 350) that Vigil must refuse.
	SensorFault Scenario = "sensor_fault"
	// Dropout: normal vitals; every 3 minutes the monitor drops its connection uncleanly after
	// 2 minutes online (the TCP connection closes without DISCONNECT) and stays away 1 minute.
	Dropout Scenario = "dropout"
)

// Scenarios lists every scenario.
func Scenarios() []Scenario {
	return []Scenario{Stable, Deteriorating, Hypoxia, Bradycardia, SensorFault, Dropout}
}

// Valid reports whether s is a known scenario.
func (s Scenario) Valid() bool {
	switch s {
	case Stable, Deteriorating, Hypoxia, Bradycardia, SensorFault, Dropout:
		return true
	}
	return false
}

// ParseScenario returns the scenario named s.
func ParseScenario(s string) (Scenario, error) {
	if sc := Scenario(s); sc.Valid() {
		return sc, nil
	}
	names := make([]string, 0, 6)
	for _, sc := range Scenarios() {
		names = append(names, string(sc))
	}
	return "", fmt.Errorf("unknown scenario %q (one of %s)", s, strings.Join(names, ", "))
}

// Dropout timing, in scenario time.
const (
	dropoutOnline = 2 * time.Minute
	dropoutAway   = 1 * time.Minute
)

// away reports whether a dropout monitor is disconnected at scenario time t, for how much
// longer (scenario time), and which of its dropouts this is (from 0).
func (s Scenario) away(t time.Duration) (away bool, left time.Duration, n int64) {
	if s != Dropout {
		return false, 0, 0
	}
	cycle := dropoutOnline + dropoutAway
	phase := t % cycle
	if phase < dropoutOnline {
		return false, 0, 0
	}
	return true, cycle - phase, int64(t / cycle)
}

// TempEvery is how often (scenario time) a monitor includes a temperature.
const TempEvery = time.Minute

// Sample is one vitals sample as a monitor sends it ([DESIGN.md section 5]). Monitors never
// send acvpu (clinicians add it) and are always on air.
type Sample struct {
	TS   time.Time
	Seq  int64
	HR   int     // per minute
	RR   int     // per minute
	SpO2 int     // %
	SBP  int     // mmHg
	Temp float64 // degrees Celsius, one decimal; 0 when not measured in this sample
	O2   bool
}

// AppendJSON appends the sample's JSON, e.g.
// {"ts":"2026-11-25T10:00:00.000Z","seq":42,"hr":88,"rr":18,"spo2":96,"o2":false,"sbp":121,"temp":37.2}.
func (s *Sample) AppendJSON(b []byte) []byte {
	b = append(b, `{"ts":"`...)
	b = s.TS.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, s.Seq, 10)
	b = append(b, `,"hr":`...)
	b = strconv.AppendInt(b, int64(s.HR), 10)
	b = append(b, `,"rr":`...)
	b = strconv.AppendInt(b, int64(s.RR), 10)
	b = append(b, `,"spo2":`...)
	b = strconv.AppendInt(b, int64(s.SpO2), 10)
	b = append(b, `,"o2":`...)
	b = strconv.AppendBool(b, s.O2)
	b = append(b, `,"sbp":`...)
	b = strconv.AppendInt(b, int64(s.SBP), 10)
	if s.Temp != 0 {
		b = append(b, `,"temp":`...)
		b = strconv.AppendFloat(b, s.Temp, 'f', 1, 64)
	}
	return append(b, '}')
}

// MarshalJSON implements json.Marshaler.
func (s Sample) MarshalJSON() ([]byte, error) { return s.AppendJSON(make([]byte, 0, 128)), nil }

// Parameters a generator drives, in the order of the arrays below.
const (
	pHR = iota
	pRR
	pSpO2
	pSBP
	pTemp
	nParams
)

// vitals holds one value per parameter.
type vitals [nParams]float64

// Noise: the standard deviation of each parameter's jitter around its curve. The jitter is an
// AR(1) process (each sample keeps most of the previous one's deviation), so traces wander like
// real ones instead of flickering, and it is clamped at 3 standard deviations.
var (
	noiseSD = vitals{pHR: 2.5, pRR: 1, pSpO2: 0.8, pSBP: 4, pTemp: 0.1}
	// Physiological limits no generated value leaves (sensor faults aside).
	lowest  = vitals{pHR: 25, pRR: 4, pSpO2: 50, pSBP: 50, pTemp: 33}
	highest = vitals{pHR: 220, pRR: 60, pSpO2: 100, pSBP: 250, pTemp: 42}
)

const noiseKeep = 0.8 // AR(1) coefficient

// course is how a changing scenario goes: from start to end over a duration, linearly, then
// flat.
type course struct {
	start, end vitals
	over       time.Duration
}

var courses = map[Scenario]*course{
	Deteriorating: {
		start: vitals{pHR: 80, pRR: 16, pSpO2: 97, pSBP: 125, pTemp: 37.0},
		end:   vitals{pHR: 130, pRR: 28, pSpO2: 92, pSBP: 88, pTemp: 39.5},
		over:  5 * time.Minute,
	},
	Hypoxia: {
		start: vitals{pHR: 78, pRR: 16, pSpO2: 97, pSBP: 124, pTemp: 36.9},
		end:   vitals{pHR: 96, pRR: 21, pSpO2: 82, pSBP: 124, pTemp: 36.9},
		over:  4 * time.Minute,
	},
	Bradycardia: {
		start: vitals{pHR: 72, pRR: 15, pSpO2: 97, pSBP: 122, pTemp: 36.8},
		end:   vitals{pHR: 38, pRR: 15, pSpO2: 97, pSBP: 122, pTemp: 36.8},
		over:  3 * time.Minute,
	},
}

// Implausible values a faulty sensor sends: each is outside the plausible range Vigil accepts
// (DESIGN.md section 5: hr > 300, spo2 > 100, ...).
var faults = [...]struct {
	param int
	value float64
}{{pHR, 400}, {pSpO2, 130}, {pRR, 120}, {pSBP, 350}}

// FaultRate is the share of sensor_fault samples that carry an implausible value.
const FaultRate = 0.1

// Generator produces the samples of one simulated monitor. It is deterministic for a seed and
// not safe for concurrent use.
type Generator struct {
	scenario Scenario
	rng      *rand.Rand
	course   *course // nil for the flat scenarios
	base     vitals  // baseline of the flat scenarios
	dev      vitals  // current AR(1) deviation
	seq      int64
	lastTemp time.Duration // scenario time of the last temperature; -1: none yet
}

// NewGenerator returns a generator for scenario s. Patients of the flat scenarios (stable,
// sensor_fault, dropout) get a baseline of their own, drawn from seed.
func NewGenerator(s Scenario, seed uint64) *Generator {
	g := &Generator{scenario: s, rng: rand.New(rand.NewPCG(seed, 0x76696769_6c73696d)), course: courses[s], lastTemp: -1}
	// Baselines keep NEWS2 at 0, and at most 2 with the largest jitter.
	g.base = vitals{
		pHR:   62 + 20*g.rng.Float64(),
		pRR:   13 + 4*g.rng.Float64(),
		pSpO2: 96.5 + 2.5*g.rng.Float64(),
		pSBP:  115 + 23*g.rng.Float64(),
		pTemp: 36.5 + 0.7*g.rng.Float64(),
	}
	return g
}

// Scenario returns the generator's scenario.
func (g *Generator) Scenario() Scenario { return g.scenario }

// Next returns the next sample, time-stamped ts, at scenario time t (time since the scenario
// started, already scaled). Samples are numbered from 1. Each call draws the same amount of
// randomness, so a seed gives the same values and faults sample by sample, however t advances.
func (g *Generator) Next(ts time.Time, t time.Duration) Sample {
	v := g.curve(t)
	for i := range v {
		sd := noiseSD[i]
		d := noiseKeep*g.dev[i] + math.Sqrt(1-noiseKeep*noiseKeep)*sd*g.rng.NormFloat64()
		d = min(max(d, -3*sd), 3*sd)
		g.dev[i] = d
		v[i] = min(max(v[i]+d, lowest[i]), highest[i])
	}
	fault := g.rng.Float64() < FaultRate
	which := faults[g.rng.IntN(len(faults))]

	g.seq++
	s := Sample{
		TS:   ts,
		Seq:  g.seq,
		HR:   int(math.Round(v[pHR])),
		RR:   int(math.Round(v[pRR])),
		SpO2: int(math.Round(v[pSpO2])),
		SBP:  int(math.Round(v[pSBP])),
	}
	if g.lastTemp < 0 || t-g.lastTemp >= TempEvery {
		g.lastTemp = t
		s.Temp = math.Round(v[pTemp]*10) / 10
	}
	if g.scenario == SensorFault && fault {
		switch which.param {
		case pHR:
			s.HR = int(which.value)
		case pSpO2:
			s.SpO2 = int(which.value)
		case pRR:
			s.RR = int(which.value)
		case pSBP:
			s.SBP = int(which.value)
		}
	}
	return s
}

// curve returns the noiseless vitals at scenario time t.
func (g *Generator) curve(t time.Duration) vitals {
	c := g.course
	if c == nil {
		return g.base
	}
	f := 1.0
	if t < c.over {
		f = max(float64(t), 0) / float64(c.over)
	}
	var v vitals
	for i := range v {
		v[i] = c.start[i] + f*(c.end[i]-c.start[i])
	}
	return v
}
