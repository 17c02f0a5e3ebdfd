// Package news2 scores vital signs with the Royal College of Physicians'
// National Early Warning Score 2 (2017).
//
// [Score] applies Chart 1 of the RCP NEWS2 report to one set of
// observations and returns a [Risk]: the aggregate score, its clinical-risk
// [Level] and the sub-score of every parameter, so that a score can always be
// explained. The package is pure: it does no I/O, reads no clock and Score
// does not allocate.
//
// The chart's bands are written in integers (respiration rate, SpO2, systolic
// blood pressure, pulse) and in tenths of a degree (temperature), so a
// measurement is rounded before it is banded: the integer parameters to the
// nearest integer and temperature to one decimal, halves away from zero
// ([math.Round]). A pulse of 90.5 is banded as 91, a temperature of 36.04 as
// 36.0 and one of 36.05 as 36.1.
//
// A parameter not in [Vitals.Present], a consciousness byte other than 'A',
// 'C', 'V', 'P' or 'U', and a NaN or infinite measurement all count as
// missing: the parameter contributes 0 and is listed in [Risk.Missing]. The
// score of partial input is therefore a lower bound on the full score. On SpO2
// scale 2 a saturation of 93% or more scores 1 to 3 only on oxygen; when the
// air-or-oxygen parameter is missing it is scored as on air (0).
//
// Range checks (an SpO2 above 100%, a pulse above 300) are the caller's job;
// Score bands whatever finite value it is given.
package news2

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
)

// Param is one of the seven NEWS2 physiological parameters.
type Param uint8

// The parameters, in the order of Chart 1. Each one's String is its key in
// Vigil's JSON payloads.
const (
	RespRate      Param = iota // "rr": respiration rate
	SpO2                       // "spo2": oxygen saturation
	Oxygen                     // "o2": air or oxygen
	SystolicBP                 // "sbp": systolic blood pressure
	Pulse                      // "hr": pulse
	Consciousness              // "acvpu": consciousness on the ACVPU scale
	Temperature                // "temp": temperature
	NumParams                  // count, not a parameter
)

var paramKeys = [NumParams]string{"rr", "spo2", "o2", "sbp", "hr", "acvpu", "temp"}

// String returns the parameter's JSON key, such as "rr" or "spo2".
func (p Param) String() string {
	if p < NumParams {
		return paramKeys[p]
	}
	return "Param(" + strconv.Itoa(int(p)) + ")"
}

// ParseParam returns the parameter whose JSON key is s.
func ParseParam(s string) (Param, bool) {
	for p := range NumParams {
		if paramKeys[p] == s {
			return p, true
		}
	}
	return 0, false
}

// Set is a set of parameters. Bits beyond NumParams are ignored.
type Set uint8

func bit(p Param) Set {
	if p >= NumParams {
		return 0
	}
	return 1 << p
}

// Has reports whether p is in s.
func (s Set) Has(p Param) bool { return s&bit(p) != 0 }

// With returns s with p added.
func (s Set) With(p Param) Set { return s | bit(p) }

// Without returns s with p removed.
func (s Set) Without(p Param) Set { return s &^ bit(p) }

// AllParams returns the set of all seven parameters.
func AllParams() Set { return 1<<NumParams - 1 }

// Len returns the number of parameters in s.
func (s Set) Len() int { return bits.OnesCount8(uint8(s & AllParams())) }

// Scale is the SpO2 scale of Chart 1. Scale 2 is for patients with
// hypercapnic respiratory failure and is a clinician's decision; scale 1 is
// the default.
type Scale uint8

// The SpO2 scales. Any value other than Scale2 scores as scale 1.
const (
	Scale1 Scale = 1
	Scale2 Scale = 2
)

// Vitals is one set of observations. Present says which fields hold a value;
// the others are ignored.
type Vitals struct {
	Present       Set     // which fields below hold a value
	RespRate      float64 // breaths per minute
	SpO2          float64 // percent
	SystolicBP    float64 // mmHg
	Pulse         float64 // beats per minute
	Temperature   float64 // degrees Celsius
	Oxygen        bool    // on supplemental oxygen
	Consciousness byte    // 'A', 'C', 'V', 'P' or 'U'
}

// Level is the RCP NEWS2 clinical-risk band of a score.
type Level uint8

// The clinical-risk bands, from least to most urgent.
const (
	Low       Level = iota // aggregate 0-4
	LowMedium              // aggregate 3-4 with a single parameter scoring 3
	Medium                 // aggregate 5-6
	High                   // aggregate 7 or more
)

var levelNames = [...]string{"low", "low-medium", "medium", "high"}

// String returns the level's JSON name: "low", "low-medium", "medium" or
// "high".
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return "Level(" + strconv.Itoa(int(l)) + ")"
}

// ParseLevel returns the level whose JSON name is s.
func ParseLevel(s string) (Level, error) {
	for l, name := range levelNames {
		if name == s {
			return Level(l), nil
		}
	}
	return 0, fmt.Errorf("news2: unknown level %q", s)
}

// MarshalText implements [encoding.TextMarshaler].
func (l Level) MarshalText() ([]byte, error) {
	if int(l) >= len(levelNames) {
		return nil, fmt.Errorf("news2: invalid level %d", l)
	}
	return []byte(levelNames[l]), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler].
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Risk is a scored set of observations.
type Risk struct {
	Score         int
	Level         Level
	Contributions [NumParams]int8 // per-parameter sub-scores, indexed by Param; they add up to Score
	Missing       Set             // parameters with no value
}

// Complete reports whether no parameter is missing, so that Score is the full
// NEWS2 rather than a lower bound.
func (r Risk) Complete() bool { return r.Missing&AllParams() == 0 }

// Score scores v with Chart 1 on the given SpO2 scale, after rounding each
// value as the package documentation says. Missing, NaN and infinite values
// contribute 0 and are listed in Risk.Missing. Score does not allocate.
func Score(v Vitals, scale Scale) Risk {
	ok := v.Present & AllParams()
	for _, f := range [...]struct {
		p Param
		x float64
	}{
		{RespRate, v.RespRate},
		{SpO2, v.SpO2},
		{SystolicBP, v.SystolicBP},
		{Pulse, v.Pulse},
		{Temperature, v.Temperature},
	} {
		if math.IsNaN(f.x) || math.IsInf(f.x, 0) {
			ok = ok.Without(f.p) // defensive: callers validate ranges
		}
	}
	switch v.Consciousness {
	case 'A', 'C', 'V', 'P', 'U':
	default:
		ok = ok.Without(Consciousness)
	}

	r := Risk{Missing: AllParams() &^ ok}
	c := &r.Contributions
	if ok.Has(RespRate) {
		c[RespRate] = respRate(v.RespRate)
	}
	onOxygen := ok.Has(Oxygen) && v.Oxygen
	if ok.Has(SpO2) {
		if scale == Scale2 {
			c[SpO2] = spO2Scale2(v.SpO2, onOxygen)
		} else {
			c[SpO2] = spO2Scale1(v.SpO2)
		}
	}
	if onOxygen {
		c[Oxygen] = 2 // Chart 1, air or oxygen: oxygen scores 2, air 0
	}
	if ok.Has(SystolicBP) {
		c[SystolicBP] = systolicBP(v.SystolicBP)
	}
	if ok.Has(Pulse) {
		c[Pulse] = pulse(v.Pulse)
	}
	if ok.Has(Consciousness) && v.Consciousness != 'A' {
		c[Consciousness] = 3 // Chart 1, consciousness: A scores 0; C, V, P or U scores 3
	}
	if ok.Has(Temperature) {
		c[Temperature] = temperature(v.Temperature)
	}

	red := false
	for _, s := range c {
		r.Score += int(s)
		red = red || s == 3
	}
	switch {
	case r.Score >= 7:
		r.Level = High // aggregate 7 or more
	case r.Score >= 5:
		r.Level = Medium // aggregate 5-6
	case red:
		r.Level = LowMedium // a single parameter scoring 3 in an aggregate below 5
	default:
		r.Level = Low // aggregate 0-4
	}
	return r
}

func respRate(x float64) int8 {
	switch n := math.Round(x); {
	case n <= 8:
		return 3 // Chart 1, respiration rate: <=8 scores 3
	case n <= 11:
		return 1 // Chart 1, respiration rate: 9-11 scores 1
	case n <= 20:
		return 0 // Chart 1, respiration rate: 12-20 scores 0
	case n <= 24:
		return 2 // Chart 1, respiration rate: 21-24 scores 2
	default:
		return 3 // Chart 1, respiration rate: >=25 scores 3
	}
}

func spO2Scale1(x float64) int8 {
	switch n := math.Round(x); {
	case n <= 91:
		return 3 // Chart 1, SpO2 scale 1: <=91 scores 3
	case n <= 93:
		return 2 // Chart 1, SpO2 scale 1: 92-93 scores 2
	case n <= 95:
		return 1 // Chart 1, SpO2 scale 1: 94-95 scores 1
	default:
		return 0 // Chart 1, SpO2 scale 1: >=96 scores 0
	}
}

func spO2Scale2(x float64, onOxygen bool) int8 {
	switch n := math.Round(x); {
	case n <= 83:
		return 3 // Chart 1, SpO2 scale 2: <=83 scores 3
	case n <= 85:
		return 2 // Chart 1, SpO2 scale 2: 84-85 scores 2
	case n <= 87:
		return 1 // Chart 1, SpO2 scale 2: 86-87 scores 1
	case n <= 92, !onOxygen:
		return 0 // Chart 1, SpO2 scale 2: 88-92, or >=93 on air, scores 0
	case n <= 94:
		return 1 // Chart 1, SpO2 scale 2: 93-94 on oxygen scores 1
	case n <= 96:
		return 2 // Chart 1, SpO2 scale 2: 95-96 on oxygen scores 2
	default:
		return 3 // Chart 1, SpO2 scale 2: >=97 on oxygen scores 3
	}
}

func systolicBP(x float64) int8 {
	switch n := math.Round(x); {
	case n <= 90:
		return 3 // Chart 1, systolic BP: <=90 scores 3
	case n <= 100:
		return 2 // Chart 1, systolic BP: 91-100 scores 2
	case n <= 110:
		return 1 // Chart 1, systolic BP: 101-110 scores 1
	case n <= 219:
		return 0 // Chart 1, systolic BP: 111-219 scores 0
	default:
		return 3 // Chart 1, systolic BP: >=220 scores 3
	}
}

func pulse(x float64) int8 {
	switch n := math.Round(x); {
	case n <= 40:
		return 3 // Chart 1, pulse: <=40 scores 3
	case n <= 50:
		return 1 // Chart 1, pulse: 41-50 scores 1
	case n <= 90:
		return 0 // Chart 1, pulse: 51-90 scores 0
	case n <= 110:
		return 1 // Chart 1, pulse: 91-110 scores 1
	case n <= 130:
		return 2 // Chart 1, pulse: 111-130 scores 2
	default:
		return 3 // Chart 1, pulse: >=131 scores 3
	}
}

// temperature bands in tenths of a degree, so that no comparison depends on
// how a decimal fraction such as 35.1 is represented in binary.
func temperature(x float64) int8 {
	switch tenths := math.Round(x * 10); {
	case tenths <= 350:
		return 3 // Chart 1, temperature: <=35.0 scores 3
	case tenths <= 360:
		return 1 // Chart 1, temperature: 35.1-36.0 scores 1
	case tenths <= 380:
		return 0 // Chart 1, temperature: 36.1-38.0 scores 0
	case tenths <= 390:
		return 1 // Chart 1, temperature: 38.1-39.0 scores 1
	default:
		return 2 // Chart 1, temperature: >=39.1 scores 2
	}
}
