package devices_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/vigilhq/vigil/devices"
)

// wireSample mirrors the vitals sample of DESIGN.md section 5.
type wireSample struct {
	TS    string   `json:"ts"`
	Seq   int64    `json:"seq"`
	HR    *float64 `json:"hr"`
	RR    *float64 `json:"rr"`
	SpO2  *float64 `json:"spo2"`
	O2    *bool    `json:"o2"`
	SBP   *float64 `json:"sbp"`
	Temp  *float64 `json:"temp"`
	ACVPU *string  `json:"acvpu"`
}

func decodeSample(t *testing.T, b []byte) wireSample {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wireSample
	if err := dec.Decode(&w); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if dec.More() {
		t.Fatalf("%s: data after the object", b)
	}
	return w
}

// run draws n samples of scenario s, one per step of scenario time.
func run(s devices.Scenario, seed uint64, n int, step time.Duration) []devices.Sample {
	g := devices.NewGenerator(s, seed)
	ts := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	out := make([]devices.Sample, n)
	for i := range out {
		t := time.Duration(i) * step
		out[i] = g.Next(ts.Add(t), t)
	}
	return out
}

func TestGeneratorDeterministic(t *testing.T) {
	for _, sc := range devices.Scenarios() {
		t.Run(string(sc), func(t *testing.T) {
			a, b := run(sc, 42, 500, time.Second), run(sc, 42, 500, time.Second)
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("sample %d: %+v, then %+v with the same seed", i, a[i], b[i])
				}
			}
			c := run(sc, 43, 500, time.Second)
			same := 0
			for i := range a {
				if a[i] == c[i] {
					same++
				}
			}
			if same == len(a) {
				t.Errorf("seeds 42 and 43 give the same %d samples", len(a))
			}
		})
	}
}

// plausible are physiological bounds (tighter than Vigil's plausibility checks).
func plausible(s devices.Sample) bool {
	return s.HR >= 25 && s.HR <= 220 && s.RR >= 4 && s.RR <= 60 && s.SpO2 >= 50 && s.SpO2 <= 100 &&
		s.SBP >= 50 && s.SBP <= 250 && (s.Temp == 0 || s.Temp >= 33 && s.Temp <= 42)
}

// fault reports whether s carries one of sensor_fault's deliberate implausible values, and
// otherwise plausible ones.
func fault(s devices.Sample) bool {
	n := 0
	for _, bad := range []bool{s.HR == 400, s.SpO2 == 130, s.RR == 120, s.SBP == 350} {
		if bad {
			n++
		}
	}
	switch {
	case s.HR == 400:
		s.HR = 80
	case s.SpO2 == 130:
		s.SpO2 = 97
	case s.RR == 120:
		s.RR = 16
	case s.SBP == 350:
		s.SBP = 120
	}
	return n == 1 && plausible(s)
}

func TestGeneratorRanges(t *testing.T) {
	for _, sc := range devices.Scenarios() {
		t.Run(string(sc), func(t *testing.T) {
			samples := run(sc, 7, 2000, 500*time.Millisecond)
			faults, temps := 0, 0
			for i, s := range samples {
				if s.Seq != int64(i+1) {
					t.Fatalf("sample %d: seq %d; want %d", i, s.Seq, i+1)
				}
				if s.O2 {
					t.Fatalf("sample %d: o2 true; monitors are on air", i)
				}
				if s.Temp != 0 {
					temps++
				}
				switch {
				case plausible(s):
				case sc == devices.SensorFault && fault(s):
					faults++
				default:
					t.Fatalf("sample %d of %s: %+v is implausible", i, sc, s)
				}
			}
			// 2000 samples, 0.5 s apart: 1000 s of scenario time, a temperature a minute.
			if temps < 16 || temps > 18 {
				t.Errorf("%d samples with temp over 1000 s; want one a minute (17)", temps)
			}
			if sc == devices.SensorFault {
				if rate := float64(faults) / float64(len(samples)); rate < 0.07 || rate > 0.13 {
					t.Errorf("fault rate %.3f; want about %.2f", rate, devices.FaultRate)
				}
			} else if faults != 0 {
				t.Errorf("%d faults in %s", faults, sc)
			}
		})
	}
}

// news2 scores the parameters a monitor sends (RCP NEWS2 Chart 1, SpO2 scale 1, on air).
func news2(s devices.Sample) int {
	band := func(v int, limits []int, scores []int) int {
		for i, l := range limits {
			if v <= l {
				return scores[i]
			}
		}
		return scores[len(scores)-1]
	}
	score := band(s.RR, []int{8, 11, 20, 24}, []int{3, 1, 0, 2, 3}) +
		band(s.SpO2, []int{91, 93, 95}, []int{3, 2, 1, 0}) +
		band(s.SBP, []int{90, 100, 110, 219}, []int{3, 2, 1, 0, 3}) +
		band(s.HR, []int{40, 50, 90, 110, 130}, []int{3, 1, 0, 1, 2, 3})
	if s.Temp != 0 {
		switch {
		case s.Temp <= 35.0:
			score += 3
		case s.Temp <= 36.0, s.Temp >= 38.1 && s.Temp <= 39.0:
			score++
		case s.Temp >= 39.1:
			score += 2
		}
	}
	return score
}

func TestScenarioCourse(t *testing.T) {
	tests := []struct {
		scenario devices.Scenario
		check    func(end devices.Sample) bool
		want     string
	}{
		{devices.Stable, func(s devices.Sample) bool { return news2(s) <= 2 }, "NEWS2 <= 2"},
		{devices.Deteriorating, func(s devices.Sample) bool {
			return news2(s) >= 7 && s.HR >= 111 && s.RR >= 21 && s.SBP <= 100 && s.SpO2 <= 94
		}, "NEWS2 >= 7 with HR >= 111, RR >= 21, SBP <= 100, SpO2 <= 94"},
		{devices.Hypoxia, func(s devices.Sample) bool { return s.SpO2 <= 86 && s.HR > 85 }, "SpO2 <= 86, HR > 85"},
		{devices.Bradycardia, func(s devices.Sample) bool { return s.HR <= 46 }, "HR <= 46"},
		{devices.Dropout, func(s devices.Sample) bool { return news2(s) <= 2 }, "NEWS2 <= 2"},
	}
	for _, tt := range tests {
		t.Run(string(tt.scenario), func(t *testing.T) {
			// 30 minutes, a sample a second: past the end of every course.
			samples := run(tt.scenario, 3, 1800, time.Second)
			for _, s := range samples[600:] {
				if !tt.check(s) {
					t.Fatalf("%s after 10 minutes: %+v (NEWS2 %d); want %s", tt.scenario, s, news2(s), tt.want)
				}
			}
			if tt.scenario == devices.Deteriorating {
				if first := samples[0]; news2(first) > 2 {
					t.Errorf("deteriorating starts at %+v (NEWS2 %d); want NEWS2 <= 2", first, news2(first))
				}
				for _, s := range samples[600:] {
					if s.Temp != 0 && s.Temp < 39.1 {
						t.Errorf("deteriorating temp %.1f after 10 minutes; want >= 39.1", s.Temp)
					}
				}
			}
		})
	}
}

func TestSampleJSON(t *testing.T) {
	ts := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	tests := []struct {
		name   string
		sample devices.Sample
		want   string
	}{
		{"with temp", devices.Sample{TS: ts, Seq: 42, HR: 88, RR: 18, SpO2: 96, SBP: 121, Temp: 37.25},
			`{"ts":"2026-11-25T09:00:00.123Z","seq":42,"hr":88,"rr":18,"spo2":96,"o2":false,"sbp":121,"temp":37.2}`},
		{"without temp", devices.Sample{TS: ts, Seq: 1, HR: 60, RR: 12, SpO2: 100, SBP: 95},
			`{"ts":"2026-11-25T09:00:00.123Z","seq":1,"hr":60,"rr":12,"spo2":100,"o2":false,"sbp":95}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.sample.AppendJSON(nil)
			if string(got) != tt.want {
				t.Errorf("AppendJSON(%+v) = %s; want %s", tt.sample, got, tt.want)
			}
			viaJSON, err := json.Marshal(tt.sample)
			if err != nil || string(viaJSON) != tt.want {
				t.Errorf("json.Marshal(%+v) = %s, %v; want %s", tt.sample, viaJSON, err, tt.want)
			}
		})
	}

	tsFormat := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	tempFormat := regexp.MustCompile(`,"temp":\d\d\.\d}$`)
	isInt := func(p *float64) bool { return p != nil && *p == float64(int64(*p)) }
	for _, sc := range devices.Scenarios() {
		for i, s := range run(sc, 11, 200, 2*time.Second) {
			w := decodeSample(t, s.AppendJSON(nil))
			if !tsFormat.MatchString(w.TS) || w.Seq != int64(i+1) {
				t.Fatalf("%s sample %d: ts %q, seq %d; want RFC 3339 UTC with ms, seq %d", sc, i, w.TS, w.Seq, i+1)
			}
			if !isInt(w.HR) || !isInt(w.RR) || !isInt(w.SpO2) || !isInt(w.SBP) {
				t.Fatalf("%s sample %d: %+v; want integer hr, rr, spo2, sbp in every sample", sc, i, w)
			}
			if w.O2 == nil || *w.O2 || w.ACVPU != nil {
				t.Fatalf("%s sample %d: o2 %v, acvpu %v; want o2 false and no acvpu", sc, i, w.O2, w.ACVPU)
			}
			if raw := s.AppendJSON(nil); (w.Temp != nil) != (s.Temp != 0) || w.Temp != nil && !tempFormat.Match(raw) {
				t.Fatalf("%s sample %d: %s; want temp with one decimal when measured", sc, i, raw)
			}
		}
	}
}

func TestParseScenario(t *testing.T) {
	for _, sc := range devices.Scenarios() {
		if got, err := devices.ParseScenario(string(sc)); got != sc || err != nil {
			t.Errorf("ParseScenario(%q) = %q, %v; want %q, nil", sc, got, err, sc)
		}
	}
	if got, err := devices.ParseScenario("septic"); err == nil {
		t.Errorf("ParseScenario(%q) = %q, nil; want an error", "septic", got)
	}
}

func TestDemoWard(t *testing.T) {
	beds := devices.DemoWard("h1", 12)
	count := map[devices.Scenario]int{}
	ids := map[string]bool{}
	for _, b := range beds {
		count[b.Scenario]++
		for _, id := range []string{b.Device, b.Patient, b.Bed} {
			if ids[id] {
				t.Errorf("DemoWard: %s appears twice", id)
			}
			ids[id] = true
		}
		if b.Hospital != "h1" || b.Name == "" {
			t.Errorf("DemoWard: %+v; want hospital h1 and a name", b)
		}
	}
	want := map[devices.Scenario]int{devices.Stable: 5, devices.Deteriorating: 2, devices.Hypoxia: 2,
		devices.Bradycardia: 1, devices.SensorFault: 1, devices.Dropout: 1}
	for sc, n := range want {
		if count[sc] != n {
			t.Errorf("DemoWard(h1, 12): %d %s; want %d", count[sc], sc, n)
		}
	}
	if b := beds[0]; b.Device != "demo-mon-01" || b.Patient != "demo-p01" || b.Bed != "bed-01" {
		t.Errorf("DemoWard(h1, 12)[0] = %+v; want demo-mon-01, demo-p01, bed-01", b)
	}
	if b := devices.DemoWard("h1", 150)[149]; b.Device != "demo-mon-150" || b.Patient != "demo-p150" {
		t.Errorf("DemoWard(h1, 150)[149] = %+v; want demo-mon-150, demo-p150", b)
	}
}

// BenchmarkSample measures a monitor's per-sample work: generate and encode.
func BenchmarkSample(b *testing.B) {
	g := devices.NewGenerator(devices.Deteriorating, 1)
	ts := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		t := time.Duration(i) * time.Second
		s := g.Next(ts.Add(t), t)
		buf = s.AppendJSON(buf[:0])
	}
}
