package news2_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/news2"
)

// Constructors of Vitals holding one parameter (two for SpO2 with air or
// oxygen).
func rr(x float64) news2.Vitals {
	return news2.Vitals{Present: news2.Set(0).With(news2.RespRate), RespRate: x}
}

func spo2(x float64) news2.Vitals {
	return news2.Vitals{Present: news2.Set(0).With(news2.SpO2), SpO2: x}
}

func spo2Air(x float64) news2.Vitals {
	v := spo2(x)
	v.Present = v.Present.With(news2.Oxygen)
	return v
}

func spo2O2(x float64) news2.Vitals {
	v := spo2Air(x)
	v.Oxygen = true
	return v
}

func o2(on bool) news2.Vitals {
	return news2.Vitals{Present: news2.Set(0).With(news2.Oxygen), Oxygen: on}
}

func sbp(x float64) news2.Vitals {
	return news2.Vitals{Present: news2.Set(0).With(news2.SystolicBP), SystolicBP: x}
}

func hr(x float64) news2.Vitals {
	return news2.Vitals{Present: news2.Set(0).With(news2.Pulse), Pulse: x}
}

func acvpu(c byte) news2.Vitals {
	return news2.Vitals{Present: news2.Set(0).With(news2.Consciousness), Consciousness: c}
}

func temp(x float64) news2.Vitals {
	return news2.Vitals{Present: news2.Set(0).With(news2.Temperature), Temperature: x}
}

// normal returns a complete set of vitals that scores 0 on either scale.
func normal() news2.Vitals {
	return news2.Vitals{
		Present:       news2.AllParams(),
		RespRate:      16,
		SpO2:          97,
		SystolicBP:    120,
		Pulse:         70,
		Temperature:   37,
		Consciousness: 'A',
	}
}

type band struct {
	name string // the Chart 1 band and the value tested
	v    news2.Vitals
	want int
}

// TestChart1Boundaries tests both sides of every boundary of every row of
// Chart 1 (RCP NEWS2, 2017).
func TestChart1Boundaries(t *testing.T) {
	rows := []struct {
		row   string
		p     news2.Param
		scale news2.Scale
		bands []band
	}{
		{"respiration rate", news2.RespRate, news2.Scale1, []band{
			{"<=8 scores 3: 8", rr(8), 3},
			{"9-11 scores 1: 9", rr(9), 1},
			{"9-11 scores 1: 11", rr(11), 1},
			{"12-20 scores 0: 12", rr(12), 0},
			{"12-20 scores 0: 20", rr(20), 0},
			{"21-24 scores 2: 21", rr(21), 2},
			{"21-24 scores 2: 24", rr(24), 2},
			{">=25 scores 3: 25", rr(25), 3},
			{"<=8 scores 3: 0", rr(0), 3},
			{">=25 scores 3: 60", rr(60), 3},
		}},
		{"SpO2 scale 1", news2.SpO2, news2.Scale1, []band{
			{"<=91 scores 3: 91", spo2(91), 3},
			{"92-93 scores 2: 92", spo2(92), 2},
			{"92-93 scores 2: 93", spo2(93), 2},
			{"94-95 scores 1: 94", spo2(94), 1},
			{"94-95 scores 1: 95", spo2(95), 1},
			{">=96 scores 0: 96", spo2(96), 0},
			{">=96 scores 0: 100", spo2(100), 0},
			{"<=91 scores 3: 70", spo2(70), 3},
			{"oxygen does not change scale 1: 94 on oxygen", spo2O2(94), 1},
			{"oxygen does not change scale 1: 98 on oxygen", spo2O2(98), 0},
		}},
		{"SpO2 scale 2 on air", news2.SpO2, news2.Scale2, []band{
			{"<=83 scores 3: 80", spo2Air(80), 3},
			{"<=83 scores 3: 83", spo2Air(83), 3},
			{"84-85 scores 2: 84", spo2Air(84), 2},
			{"84-85 scores 2: 85", spo2Air(85), 2},
			{"86-87 scores 1: 86", spo2Air(86), 1},
			{"86-87 scores 1: 87", spo2Air(87), 1},
			{"88-92 scores 0: 88", spo2Air(88), 0},
			{"88-92 scores 0: 89", spo2Air(89), 0},
			{"88-92 scores 0: 90", spo2Air(90), 0},
			{"88-92 scores 0: 91", spo2Air(91), 0},
			{"88-92 scores 0: 92", spo2Air(92), 0},
			{">=93 on air scores 0: 93", spo2Air(93), 0},
			{">=93 on air scores 0: 94", spo2Air(94), 0},
			{">=93 on air scores 0: 95", spo2Air(95), 0},
			{">=93 on air scores 0: 96", spo2Air(96), 0},
			{">=93 on air scores 0: 97", spo2Air(97), 0},
			{">=93 on air scores 0: 100", spo2Air(100), 0},
		}},
		{"SpO2 scale 2 on oxygen", news2.SpO2, news2.Scale2, []band{
			{"<=83 scores 3: 80", spo2O2(80), 3},
			{"<=83 scores 3: 83", spo2O2(83), 3},
			{"84-85 scores 2: 84", spo2O2(84), 2},
			{"84-85 scores 2: 85", spo2O2(85), 2},
			{"86-87 scores 1: 86", spo2O2(86), 1},
			{"86-87 scores 1: 87", spo2O2(87), 1},
			{"88-92 scores 0: 88", spo2O2(88), 0},
			{"88-92 scores 0: 89", spo2O2(89), 0},
			{"88-92 scores 0: 90", spo2O2(90), 0},
			{"88-92 scores 0: 91", spo2O2(91), 0},
			{"88-92 scores 0: 92", spo2O2(92), 0},
			{"93-94 on oxygen scores 1: 93", spo2O2(93), 1},
			{"93-94 on oxygen scores 1: 94", spo2O2(94), 1},
			{"95-96 on oxygen scores 2: 95", spo2O2(95), 2},
			{"95-96 on oxygen scores 2: 96", spo2O2(96), 2},
			{">=97 on oxygen scores 3: 97", spo2O2(97), 3},
			{">=97 on oxygen scores 3: 100", spo2O2(100), 3},
		}},
		{"SpO2 scale 2, air or oxygen missing", news2.SpO2, news2.Scale2, []band{
			{"86-87 scores 1: 87", spo2(87), 1},
			{"88-92 scores 0: 92", spo2(92), 0},
			{"scored as on air, >=93 scores 0: 93", spo2(93), 0},
			{"scored as on air, >=93 scores 0: 95", spo2(95), 0},
			{"scored as on air, >=93 scores 0: 97", spo2(97), 0},
		}},
		{"air or oxygen", news2.Oxygen, news2.Scale1, []band{
			{"air scores 0", o2(false), 0},
			{"oxygen scores 2", o2(true), 2},
			{"oxygen scores 2 on scale 2", spo2O2(90), 2},
		}},
		{"systolic BP", news2.SystolicBP, news2.Scale1, []band{
			{"<=90 scores 3: 90", sbp(90), 3},
			{"91-100 scores 2: 91", sbp(91), 2},
			{"91-100 scores 2: 100", sbp(100), 2},
			{"101-110 scores 1: 101", sbp(101), 1},
			{"101-110 scores 1: 110", sbp(110), 1},
			{"111-219 scores 0: 111", sbp(111), 0},
			{"111-219 scores 0: 219", sbp(219), 0},
			{">=220 scores 3: 220", sbp(220), 3},
			{"<=90 scores 3: 40", sbp(40), 3},
			{">=220 scores 3: 280", sbp(280), 3},
		}},
		{"pulse", news2.Pulse, news2.Scale1, []band{
			{"<=40 scores 3: 40", hr(40), 3},
			{"41-50 scores 1: 41", hr(41), 1},
			{"41-50 scores 1: 50", hr(50), 1},
			{"51-90 scores 0: 51", hr(51), 0},
			{"51-90 scores 0: 90", hr(90), 0},
			{"91-110 scores 1: 91", hr(91), 1},
			{"91-110 scores 1: 110", hr(110), 1},
			{"111-130 scores 2: 111", hr(111), 2},
			{"111-130 scores 2: 130", hr(130), 2},
			{">=131 scores 3: 131", hr(131), 3},
			{"<=40 scores 3: 20", hr(20), 3},
			{">=131 scores 3: 220", hr(220), 3},
		}},
		{"consciousness", news2.Consciousness, news2.Scale1, []band{
			{"A scores 0", acvpu('A'), 0},
			{"C scores 3", acvpu('C'), 3},
			{"V scores 3", acvpu('V'), 3},
			{"P scores 3", acvpu('P'), 3},
			{"U scores 3", acvpu('U'), 3},
		}},
		{"temperature", news2.Temperature, news2.Scale1, []band{
			{"<=35.0 scores 3: 35.0", temp(35.0), 3},
			{"35.1-36.0 scores 1: 35.1", temp(35.1), 1},
			{"35.1-36.0 scores 1: 36.0", temp(36.0), 1},
			{"36.1-38.0 scores 0: 36.1", temp(36.1), 0},
			{"36.1-38.0 scores 0: 38.0", temp(38.0), 0},
			{"38.1-39.0 scores 1: 38.1", temp(38.1), 1},
			{"38.1-39.0 scores 1: 39.0", temp(39.0), 1},
			{">=39.1 scores 2: 39.1", temp(39.1), 2},
			{"<=35.0 scores 3: 30.0", temp(30.0), 3},
			{">=39.1 scores 2: 42.0", temp(42.0), 2},
		}},
	}
	for _, row := range rows {
		t.Run(row.row, func(t *testing.T) {
			for _, tt := range row.bands {
				t.Run(tt.name, func(t *testing.T) {
					r := news2.Score(tt.v, row.scale)
					if got := int(r.Contributions[row.p]); got != tt.want {
						t.Errorf("Score(%+v, %d).Contributions[%v] = %d; want %d", tt.v, row.scale, row.p, got, tt.want)
					}
					if sum := sumOf(r); r.Score != sum {
						t.Errorf("Score(%+v, %d) = %d; want %d, the sum of its contributions", tt.v, row.scale, r.Score, sum)
					}
				})
			}
		})
	}
}

// TestScaleDefault tests that every Scale other than Scale2 scores as
// scale 1.
func TestScaleDefault(t *testing.T) {
	for _, scale := range []news2.Scale{0, news2.Scale1, 3, 255} {
		for _, v := range []news2.Vitals{spo2O2(97), spo2O2(93), spo2O2(85)} {
			got := news2.Score(v, scale).Contributions[news2.SpO2]
			want := news2.Score(v, news2.Scale1).Contributions[news2.SpO2]
			if got != want {
				t.Errorf("Score(%+v, %d).Contributions[spo2] = %d; want %d (scale 1)", v, scale, got, want)
			}
		}
	}
}

// TestRounding tests that values are rounded, halves away from zero, before
// they are banded: integers for all but temperature, one decimal for it.
func TestRounding(t *testing.T) {
	tests := []struct {
		name  string
		v     news2.Vitals
		scale news2.Scale
		p     news2.Param
		want  int
	}{
		{"pulse 90.5 is 91, 91-110 scores 1", hr(90.5), news2.Scale1, news2.Pulse, 1},
		{"pulse 90.49 is 90, 51-90 scores 0", hr(90.49), news2.Scale1, news2.Pulse, 0},
		{"pulse 40.5 is 41, 41-50 scores 1", hr(40.5), news2.Scale1, news2.Pulse, 1},
		{"pulse 130.4 is 130, 111-130 scores 2", hr(130.4), news2.Scale1, news2.Pulse, 2},
		{"temp 36.04 is 36.0, 35.1-36.0 scores 1", temp(36.04), news2.Scale1, news2.Temperature, 1},
		{"temp 36.05 is 36.1, 36.1-38.0 scores 0", temp(36.05), news2.Scale1, news2.Temperature, 0},
		{"temp 35.04 is 35.0, <=35.0 scores 3", temp(35.04), news2.Scale1, news2.Temperature, 3},
		{"temp 35.05 is 35.1, 35.1-36.0 scores 1", temp(35.05), news2.Scale1, news2.Temperature, 1},
		{"temp 38.04 is 38.0, 36.1-38.0 scores 0", temp(38.04), news2.Scale1, news2.Temperature, 0},
		{"temp 39.05 is 39.1, >=39.1 scores 2", temp(39.05), news2.Scale1, news2.Temperature, 2},
		{"spo2 91.4 is 91, scale 1 <=91 scores 3", spo2(91.4), news2.Scale1, news2.SpO2, 3},
		{"spo2 91.5 is 92, scale 1 92-93 scores 2", spo2(91.5), news2.Scale1, news2.SpO2, 2},
		{"spo2 92.5 on oxygen is 93, scale 2 93-94 on oxygen scores 1", spo2O2(92.5), news2.Scale2, news2.SpO2, 1},
		{"rr 8.5 is 9, 9-11 scores 1", rr(8.5), news2.Scale1, news2.RespRate, 1},
		{"rr 20.4 is 20, 12-20 scores 0", rr(20.4), news2.Scale1, news2.RespRate, 0},
		{"sbp 90.4 is 90, <=90 scores 3", sbp(90.4), news2.Scale1, news2.SystolicBP, 3},
		{"sbp 219.5 is 220, >=220 scores 3", sbp(219.5), news2.Scale1, news2.SystolicBP, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := int(news2.Score(tt.v, tt.scale).Contributions[tt.p])
			if got != tt.want {
				t.Errorf("Score(%+v, %d).Contributions[%v] = %d; want %d", tt.v, tt.scale, tt.p, got, tt.want)
			}
		})
	}
}

// TestLevel tests the RCP clinical-risk bands: aggregate 0-4 low, a single
// parameter scoring 3 with an aggregate below 5 low-medium, 5-6 medium, 7 or
// more high.
func TestLevel(t *testing.T) {
	with := func(f func(*news2.Vitals)) news2.Vitals {
		v := normal()
		f(&v)
		return v
	}
	tests := []struct {
		name      string
		v         news2.Vitals
		scale     news2.Scale
		wantScore int
		wantLevel news2.Level
	}{
		{"aggregate 0 is low", normal(), news2.Scale1, 0, news2.Low},
		{"aggregate 4 without a 3 is low", with(func(v *news2.Vitals) { v.RespRate = 22; v.Oxygen = true }), news2.Scale1, 4, news2.Low},
		{"single 3 with aggregate 3 is low-medium", with(func(v *news2.Vitals) { v.RespRate = 8 }), news2.Scale1, 3, news2.LowMedium},
		{"single 3 (consciousness) with aggregate 3 is low-medium", with(func(v *news2.Vitals) { v.Consciousness = 'C' }), news2.Scale1, 3, news2.LowMedium},
		{"single 3 with aggregate 4 is low-medium", with(func(v *news2.Vitals) { v.Pulse = 131; v.Temperature = 35.5 }), news2.Scale1, 4, news2.LowMedium},
		{"red score with aggregate 5 is medium", with(func(v *news2.Vitals) { v.RespRate = 8; v.SystolicBP = 95 }), news2.Scale1, 5, news2.Medium},
		{"aggregate 5 without a 3 is medium", with(func(v *news2.Vitals) { v.SystolicBP = 95; v.Pulse = 120; v.Temperature = 38.5 }), news2.Scale1, 5, news2.Medium},
		{"aggregate 6 is medium", with(func(v *news2.Vitals) { v.Oxygen = true; v.SpO2 = 93; v.RespRate = 22 }), news2.Scale1, 6, news2.Medium},
		{"aggregate 7 is high", with(func(v *news2.Vitals) { v.RespRate = 26; v.SpO2 = 93; v.Pulse = 95; v.Temperature = 38.5 }), news2.Scale1, 7, news2.High},
		{"aggregate 7 on scale 2 is high", with(func(v *news2.Vitals) { v.Oxygen = true; v.SpO2 = 97; v.SystolicBP = 95 }), news2.Scale2, 7, news2.High},
		{"maximum aggregate 20 is high", news2.Vitals{
			Present: news2.AllParams(), RespRate: 30, SpO2: 99, Oxygen: true, SystolicBP: 80,
			Pulse: 150, Consciousness: 'U', Temperature: 34,
		}, news2.Scale2, 20, news2.High},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := news2.Score(tt.v, tt.scale)
			if r.Score != tt.wantScore {
				t.Errorf("Score(%+v, %d) = %d; want %d", tt.v, tt.scale, r.Score, tt.wantScore)
			}
			if r.Level != tt.wantLevel {
				t.Errorf("Score(%+v, %d).Level = %v; want %v", tt.v, tt.scale, r.Level, tt.wantLevel)
			}
		})
	}
}

// TestPartial tests that missing and unusable parameters contribute 0 and
// are listed in Missing.
func TestPartial(t *testing.T) {
	all := news2.AllParams()
	without := func(f func(*news2.Vitals)) news2.Vitals {
		v := normal()
		v.RespRate, v.Pulse = 26, 135 // 3 + 3, so that a lost value shows
		f(&v)
		return v
	}
	tests := []struct {
		name        string
		v           news2.Vitals
		scale       news2.Scale
		wantScore   int
		wantMissing news2.Set
	}{
		{"nothing present", news2.Vitals{}, news2.Scale1, 0, all},
		{"values without Present are ignored", news2.Vitals{RespRate: 30, Pulse: 150, Consciousness: 'U'}, news2.Scale1, 0, all},
		{"complete", without(func(*news2.Vitals) {}), news2.Scale1, 6, 0},
		{"pulse only", hr(135), news2.Scale1, 3, all.Without(news2.Pulse)},
		{"pulse not present", without(func(v *news2.Vitals) { v.Present = v.Present.Without(news2.Pulse) }), news2.Scale1, 3, news2.Set(0).With(news2.Pulse)},
		{"NaN pulse", without(func(v *news2.Vitals) { v.Pulse = math.NaN() }), news2.Scale1, 3, news2.Set(0).With(news2.Pulse)},
		{"+Inf resp rate", without(func(v *news2.Vitals) { v.RespRate = math.Inf(1) }), news2.Scale1, 3, news2.Set(0).With(news2.RespRate)},
		{"-Inf SpO2", without(func(v *news2.Vitals) { v.SpO2 = math.Inf(-1) }), news2.Scale1, 6, news2.Set(0).With(news2.SpO2)},
		{"NaN systolic BP", without(func(v *news2.Vitals) { v.SystolicBP = math.NaN() }), news2.Scale1, 6, news2.Set(0).With(news2.SystolicBP)},
		{"NaN temperature", without(func(v *news2.Vitals) { v.Temperature = math.NaN() }), news2.Scale1, 6, news2.Set(0).With(news2.Temperature)},
		{"consciousness 'X'", without(func(v *news2.Vitals) { v.Consciousness = 'X' }), news2.Scale1, 6, news2.Set(0).With(news2.Consciousness)},
		{"consciousness lower-case 'u'", without(func(v *news2.Vitals) { v.Consciousness = 'u' }), news2.Scale1, 6, news2.Set(0).With(news2.Consciousness)},
		{"consciousness zero byte", without(func(v *news2.Vitals) { v.Consciousness = 0 }), news2.Scale1, 6, news2.Set(0).With(news2.Consciousness)},
		{"air or oxygen missing, scale 2 SpO2 97 scored as on air", without(func(v *news2.Vitals) {
			v.Present = v.Present.Without(news2.Oxygen)
			v.Oxygen = true // not present: ignored
		}), news2.Scale2, 6, news2.Set(0).With(news2.Oxygen)},
		{"bits beyond NumParams are ignored", without(func(v *news2.Vitals) { v.Present = 0xFF }), news2.Scale1, 6, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := news2.Score(tt.v, tt.scale)
			if r.Score != tt.wantScore {
				t.Errorf("Score(%+v, %d) = %d; want %d", tt.v, tt.scale, r.Score, tt.wantScore)
			}
			if r.Missing != tt.wantMissing {
				t.Errorf("Score(%+v, %d).Missing = %07b; want %07b", tt.v, tt.scale, r.Missing, tt.wantMissing)
			}
			if got, want := r.Complete(), tt.wantMissing == 0; got != want {
				t.Errorf("Score(%+v, %d).Complete() = %t; want %t", tt.v, tt.scale, got, want)
			}
			for p := range news2.NumParams {
				if r.Missing.Has(p) && r.Contributions[p] != 0 {
					t.Errorf("Score(%+v, %d).Contributions[%v] = %d; want 0 (missing)", tt.v, tt.scale, p, r.Contributions[p])
				}
			}
		})
	}
}

// randomVitals returns vitals with random values, roughly in and around the
// physiological range, and a random subset present; some values are NaN,
// infinite or invalid.
func randomVitals(rng *rand.Rand) news2.Vitals {
	f := func(lo, hi float64) float64 {
		switch rng.IntN(50) {
		case 0:
			return math.NaN()
		case 1:
			return math.Inf(1 - 2*rng.IntN(2))
		case 2, 3, 4, 5, 6:
			return math.Round(lo + rng.Float64()*(hi-lo)) // integers hit band edges
		}
		return lo + rng.Float64()*(hi-lo)
	}
	return news2.Vitals{
		Present:       news2.Set(rng.IntN(256)),
		RespRate:      f(0, 60),
		SpO2:          f(60, 100),
		SystolicBP:    f(40, 300),
		Pulse:         f(0, 300),
		Temperature:   f(25, 45),
		Oxygen:        rng.IntN(2) == 0,
		Consciousness: "ACVPUACVPUAx\x00"[rng.IntN(13)],
	}
}

// TestProperties checks, over many random inputs, that the contributions add
// up to the score, that each is a sub-score its chart row can give, that a
// missing parameter contributes 0, that the level follows from the
// contributions, and that supplying a missing parameter never lowers the
// score (the score of partial input is a lower bound).
func TestProperties(t *testing.T) {
	possible := [news2.NumParams][]int8{
		news2.RespRate:      {0, 1, 2, 3},
		news2.SpO2:          {0, 1, 2, 3},
		news2.Oxygen:        {0, 2},
		news2.SystolicBP:    {0, 1, 2, 3},
		news2.Pulse:         {0, 1, 2, 3},
		news2.Consciousness: {0, 3},
		news2.Temperature:   {0, 1, 2, 3},
	}
	rng := rand.New(rand.NewPCG(2017, 2))
	for range 200_000 {
		v := randomVitals(rng)
		scale := news2.Scale(rng.IntN(4))
		r := news2.Score(v, scale)

		if sum := sumOf(r); r.Score != sum {
			t.Fatalf("Score(%+v, %d) = %d; want %d, the sum of its contributions %v", v, scale, r.Score, sum, r.Contributions)
		}
		red := false
		for p := range news2.NumParams {
			c := r.Contributions[p]
			red = red || c == 3
			ok := false
			for _, q := range possible[p] {
				ok = ok || c == q
			}
			if !ok {
				t.Fatalf("Score(%+v, %d).Contributions[%v] = %d; want one of %v", v, scale, p, c, possible[p])
			}
			if r.Missing.Has(p) && c != 0 {
				t.Fatalf("Score(%+v, %d).Contributions[%v] = %d; want 0 (missing)", v, scale, p, c)
			}
			if want := !usable(v, p); r.Missing.Has(p) != want {
				t.Fatalf("Score(%+v, %d).Missing.Has(%v) = %t; want %t", v, scale, p, !want, want)
			}
		}
		var want news2.Level
		switch {
		case r.Score >= 7:
			want = news2.High
		case r.Score >= 5:
			want = news2.Medium
		case red:
			want = news2.LowMedium
		}
		if r.Level != want {
			t.Fatalf("Score(%+v, %d).Level = %v; want %v", v, scale, r.Level, want)
		}

		// Supply every missing parameter with a valid value: the score
		// can only rise.
		full := randomVitals(rng)
		full.Consciousness = "ACVPU"[rng.IntN(5)]
		for p := range news2.NumParams {
			if !r.Missing.Has(p) {
				continue
			}
			switch p {
			case news2.RespRate:
				v.RespRate = finite(full.RespRate, 16)
			case news2.SpO2:
				v.SpO2 = finite(full.SpO2, 97)
			case news2.Oxygen:
				v.Oxygen = full.Oxygen
			case news2.SystolicBP:
				v.SystolicBP = finite(full.SystolicBP, 120)
			case news2.Pulse:
				v.Pulse = finite(full.Pulse, 70)
			case news2.Consciousness:
				v.Consciousness = full.Consciousness
			case news2.Temperature:
				v.Temperature = finite(full.Temperature, 37)
			}
			v.Present = v.Present.With(p)
		}
		rf := news2.Score(v, scale)
		if !rf.Complete() || rf.Score < r.Score {
			t.Fatalf("Score(%+v, %d) = %d, complete %t; want complete and >= %d, the partial score", v, scale, rf.Score, rf.Complete(), r.Score)
		}
	}
}

// usable reports whether v holds a value for p that Score can band.
func usable(v news2.Vitals, p news2.Param) bool {
	if !v.Present.Has(p) {
		return false
	}
	ok := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch p {
	case news2.RespRate:
		return ok(v.RespRate)
	case news2.SpO2:
		return ok(v.SpO2)
	case news2.SystolicBP:
		return ok(v.SystolicBP)
	case news2.Pulse:
		return ok(v.Pulse)
	case news2.Temperature:
		return ok(v.Temperature)
	case news2.Consciousness:
		return strings.IndexByte("ACVPU", v.Consciousness) >= 0
	}
	return true // Oxygen
}

func finite(x, otherwise float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return otherwise
	}
	return x
}

func sumOf(r news2.Risk) int {
	sum := 0
	for _, c := range r.Contributions {
		sum += int(c)
	}
	return sum
}

func TestSet(t *testing.T) {
	all := news2.AllParams()
	if got := all.Len(); got != 7 {
		t.Errorf("AllParams().Len() = %d; want 7", got)
	}
	var s news2.Set
	for p := range news2.NumParams {
		if s.Has(p) {
			t.Errorf("Set(%07b).Has(%v) = true before With", s, p)
		}
		s = s.With(p)
		if !s.Has(p) {
			t.Errorf("Set(%07b).Has(%v) = false after With", s, p)
		}
		if got, want := s.Len(), int(p)+1; got != want {
			t.Errorf("Set(%07b).Len() = %d; want %d", s, got, want)
		}
	}
	if s != all {
		t.Errorf("Set with every Param = %07b; want AllParams() = %07b", s, all)
	}
	if got := all.Without(news2.SpO2); got.Has(news2.SpO2) || got.Len() != 6 {
		t.Errorf("AllParams().Without(spo2) = %07b; want six parameters without spo2", got)
	}
	if got := all.With(news2.NumParams); got != all {
		t.Errorf("AllParams().With(NumParams) = %08b; want %08b", got, all)
	}
	if news2.Set(0xFF).Has(news2.NumParams) {
		t.Errorf("Set(0xFF).Has(NumParams) = true; want false")
	}
	if got := news2.Set(0xFF).Len(); got != 7 {
		t.Errorf("Set(0xFF).Len() = %d; want 7", got)
	}
}

func TestParam(t *testing.T) {
	keys := []string{"rr", "spo2", "o2", "sbp", "hr", "acvpu", "temp"}
	for i, key := range keys {
		p := news2.Param(i)
		if got := p.String(); got != key {
			t.Errorf("Param(%d).String() = %q; want %q", i, got, key)
		}
		if got, ok := news2.ParseParam(key); !ok || got != p {
			t.Errorf("ParseParam(%q) = %d, %t; want %d, true", key, got, ok, p)
		}
	}
	for _, s := range []string{"", "RR", "pulse", "spo2 ", "Param(7)"} {
		if p, ok := news2.ParseParam(s); ok {
			t.Errorf("ParseParam(%q) = %d, true; want false", s, p)
		}
	}
	if got, want := news2.NumParams.String(), "Param(7)"; got != want {
		t.Errorf("NumParams.String() = %q; want %q", got, want)
	}
}

func TestLevelText(t *testing.T) {
	names := []string{"low", "low-medium", "medium", "high"}
	for i, name := range names {
		l := news2.Level(i)
		if got := l.String(); got != name {
			t.Errorf("Level(%d).String() = %q; want %q", i, got, name)
		}
		if got, err := news2.ParseLevel(name); err != nil || got != l {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, nil", name, got, err, l)
		}
		b, err := l.MarshalText()
		if err != nil || string(b) != name {
			t.Errorf("Level(%d).MarshalText() = %q, %v; want %q, nil", i, b, err, name)
		}
		var back news2.Level
		if err := back.UnmarshalText(b); err != nil || back != l {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v, nil", b, back, err, l)
		}
	}
	for _, s := range []string{"", "Low", "HIGH", "low_medium", "critical", "3"} {
		if l, err := news2.ParseLevel(s); err == nil {
			t.Errorf("ParseLevel(%q) = %v, nil; want an error", s, l)
		}
		l := news2.High
		if err := l.UnmarshalText([]byte(s)); err == nil || l != news2.High {
			t.Errorf("UnmarshalText(%q) = %v, %v; want high unchanged and an error", s, l, err)
		}
	}
	if got, want := news2.Level(4).String(), "Level(4)"; got != want {
		t.Errorf("Level(4).String() = %q; want %q", got, want)
	}
	if b, err := news2.Level(4).MarshalText(); err == nil {
		t.Errorf("Level(4).MarshalText() = %q, nil; want an error", b)
	}
}

func TestScoreAllocs(t *testing.T) {
	v := normal()
	v.Oxygen = true
	var r news2.Risk
	allocs := testing.AllocsPerRun(1000, func() {
		v.Pulse++
		r = news2.Score(v, news2.Scale2)
	})
	if allocs != 0 {
		t.Errorf("Score allocates %v times per call; want 0", allocs)
	}
	_ = r
}

// benchVitals is a mix of inputs, so that the benchmarks do not measure one
// well-predicted path.
func benchVitals() []news2.Vitals {
	rng := rand.New(rand.NewPCG(1, 2))
	vs := make([]news2.Vitals, 1024)
	for i := range vs {
		vs[i] = randomVitals(rng)
		vs[i].Present |= news2.AllParams() &^ news2.Set(0).With(news2.Temperature).With(news2.Consciousness)
	}
	return vs
}

var sink news2.Risk

func BenchmarkScore(b *testing.B) {
	vs := benchVitals()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sink = news2.Score(vs[i&1023], news2.Scale(1+i&1))
		i++
	}
}

func ExampleScore() {
	v := news2.Vitals{
		Present:       news2.AllParams().Without(news2.Temperature),
		RespRate:      23,
		SpO2:          95,
		SystolicBP:    105,
		Pulse:         112,
		Consciousness: 'A',
	}
	r := news2.Score(v, news2.Scale1)
	fmt.Println(r.Score, r.Level, r.Complete())
	fmt.Println(string(r.AppendJSON(nil)))
	// Output:
	// 6 medium false
	// {"score":6,"level":"medium","contributions":{"rr":2,"spo2":1,"o2":0,"sbp":1,"hr":2,"acvpu":0,"temp":0},"complete":false,"missing":["temp"]}
}
