package news2_test

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/news2"
)

// exampleJSON is the Risk payload of DESIGN.md section 5.
const exampleJSON = `{"score":7,"level":"high","contributions":{"rr":3,"spo2":2,"o2":0,"sbp":0,"hr":1,"acvpu":0,"temp":1},"complete":true,"missing":[]}`

// exampleVitals scores as exampleJSON.
func exampleVitals() news2.Vitals {
	return news2.Vitals{
		Present:       news2.AllParams(),
		RespRate:      26,    // >=25 scores 3
		SpO2:          93,    // scale 1, 92-93 scores 2
		Oxygen:        false, // air scores 0
		SystolicBP:    120,   // 111-219 scores 0
		Pulse:         95,    // 91-110 scores 1
		Consciousness: 'A',   // A scores 0
		Temperature:   38.5,  // 38.1-39.0 scores 1
	}
}

func TestAppendJSON(t *testing.T) {
	partial := exampleVitals()
	partial.Present = partial.Present.Without(news2.Temperature).Without(news2.Oxygen).Without(news2.RespRate)
	tests := []struct {
		name  string
		v     news2.Vitals
		scale news2.Scale
		want  string
	}{
		{"DESIGN.md example", exampleVitals(), news2.Scale1, exampleJSON},
		{"missing in Param order", partial, news2.Scale1,
			`{"score":3,"level":"low","contributions":{"rr":0,"spo2":2,"o2":0,"sbp":0,"hr":1,"acvpu":0,"temp":0},"complete":false,"missing":["rr","o2","temp"]}`},
		{"nothing present", news2.Vitals{}, news2.Scale1,
			`{"score":0,"level":"low","contributions":{"rr":0,"spo2":0,"o2":0,"sbp":0,"hr":0,"acvpu":0,"temp":0},"complete":false,"missing":["rr","spo2","o2","sbp","hr","acvpu","temp"]}`},
		{"low-medium", rr(8), news2.Scale1,
			`{"score":3,"level":"low-medium","contributions":{"rr":3,"spo2":0,"o2":0,"sbp":0,"hr":0,"acvpu":0,"temp":0},"complete":false,"missing":["spo2","o2","sbp","hr","acvpu","temp"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := news2.Score(tt.v, tt.scale)
			prefix := []byte("x")
			if got := string(r.AppendJSON(prefix)); got != "x"+tt.want {
				t.Errorf("AppendJSON(%q) of Score(%+v, %d) =\n%s\nwant\n%s", prefix, tt.v, tt.scale, got, "x"+tt.want)
			}
			got, err := json.Marshal(r)
			if err != nil || string(got) != tt.want {
				t.Errorf("json.Marshal(Score(%+v, %d)) =\n%s, %v\nwant\n%s, nil", tt.v, tt.scale, got, err, tt.want)
			}
		})
	}
}

func TestMarshalJSONInvalidLevel(t *testing.T) {
	r := news2.Risk{Level: 4}
	if b, err := r.MarshalJSON(); err == nil {
		t.Errorf("Risk{Level: 4}.MarshalJSON() = %s, nil; want an error", b)
	}
	b := r.AppendJSON(nil)
	if want := `"level":"Level(4)"`; !strings.Contains(string(b), want) {
		t.Errorf("Risk{Level: 4}.AppendJSON(nil) = %s; want it to contain %s", b, want)
	}
	if err := new(news2.Risk).UnmarshalJSON(b); err == nil {
		t.Errorf("UnmarshalJSON(%s) = nil; want an error", b)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20_000 {
		v := randomVitals(rng)
		scale := news2.Scale(rng.IntN(3))
		want := news2.Score(v, scale)
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatalf("json.Marshal(Score(%+v, %d)) = %v", v, scale, err)
		}
		var got news2.Risk
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("json.Unmarshal(%s) = %v; want nil", b, err)
		}
		if got != want {
			t.Fatalf("json.Unmarshal(%s) = %+v; want %+v", b, got, want)
		}
	}
}

// TestUnmarshalJSON tests that UnmarshalJSON reads the Risk shape with keys in
// any order and takes the level as written.
func TestUnmarshalJSON(t *testing.T) {
	want := news2.Score(exampleVitals(), news2.Scale1)
	tests := []struct {
		name string
		in   string
		want news2.Risk
	}{
		{"DESIGN.md example", exampleJSON, want},
		{"whitespace and other key order", ` { "missing" : [ ] , "complete" : true , "level" : "high" ,
			"contributions" : { "temp":1, "acvpu":0, "hr":1, "sbp":0, "o2":0, "spo2":2, "rr":3 }, "score" : 7 } `, want},
		{"missing in any order", `{"score":0,"level":"low","contributions":{"rr":0,"spo2":0,"o2":0,"sbp":0,"hr":0,"acvpu":0,"temp":0},"complete":false,"missing":["temp","rr"]}`,
			news2.Risk{Missing: news2.Set(0).With(news2.RespRate).With(news2.Temperature)}},
		{"level taken as written", strings.Replace(exampleJSON, `"high"`, `"low"`, 1),
			news2.Risk{Score: 7, Level: news2.Low, Contributions: want.Contributions}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got news2.Risk
			if err := got.UnmarshalJSON([]byte(tt.in)); err != nil {
				t.Fatalf("UnmarshalJSON(%s) = %v; want nil", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("UnmarshalJSON(%s) = %+v; want %+v", tt.in, got, tt.want)
			}
		})
	}

	t.Run("inside a struct", func(t *testing.T) {
		var msg struct {
			Risk  news2.Risk  `json:"risk"`
			Level news2.Level `json:"level"`
		}
		in := `{"risk":` + exampleJSON + `,"level":"medium"}`
		if err := json.Unmarshal([]byte(in), &msg); err != nil {
			t.Fatalf("json.Unmarshal(%s) = %v; want nil", in, err)
		}
		if msg.Risk != want || msg.Level != news2.Medium {
			t.Errorf("json.Unmarshal(%s) = %+v; want risk %+v and level medium", in, msg, want)
		}
	})

	t.Run("null is a no-op", func(t *testing.T) {
		got := want
		if err := got.UnmarshalJSON([]byte("null")); err != nil || got != want {
			t.Errorf("UnmarshalJSON(null) = %+v, %v; want %+v unchanged, nil", got, err, want)
		}
	})
}

// TestUnmarshalJSONRejects tests that UnmarshalJSON refuses malformed JSON,
// any other shape, and payloads that contradict themselves, and leaves its
// receiver unchanged.
func TestUnmarshalJSONRejects(t *testing.T) {
	replace := func(old, new string) string {
		s := strings.Replace(exampleJSON, old, new, 1)
		if s == exampleJSON {
			t.Fatalf("%q is not in %s", old, exampleJSON)
		}
		return s
	}
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ``},
		{"not JSON", `score=7`},
		{"truncated", exampleJSON[:len(exampleJSON)-1]},
		{"array", `[]`},
		{"number", `7`},
		{"empty object", `{}`},
		{"trailing comma", replace(`"missing":[]}`, `"missing":[],}`)},
		{"missing colon", replace(`"score":7`, `"score" 7`)},
		{"data after the object", exampleJSON + `{}`},
		{"garbage after the object", exampleJSON + `x`},
		{"unknown key", replace(`{"score"`, `{"id":"a","score"`)},
		{"duplicate key", replace(`"score":7`, `"score":7,"score":7`)},
		{"key in other case", replace(`"score"`, `"Score"`)},
		{"no score", replace(`"score":7,`, ``)},
		{"no level", replace(`"level":"high",`, ``)},
		{"no complete", replace(`"complete":true,`, ``)},
		{"no missing", replace(`,"missing":[]`, ``)},
		{"no contributions", replace(`"contributions":{"rr":3,"spo2":2,"o2":0,"sbp":0,"hr":1,"acvpu":0,"temp":1},`, ``)},
		{"score as string", replace(`"score":7`, `"score":"7"`)},
		{"score with fraction", replace(`"score":7`, `"score":7.0`)},
		{"score with exponent", replace(`"score":7`, `"score":7e0`)},
		{"score null", replace(`"score":7`, `"score":null`)},
		{"unknown level", replace(`"high"`, `"critical"`)},
		{"level as number", replace(`"high"`, `3`)},
		{"complete as string", replace(`"complete":true`, `"complete":"true"`)},
		{"missing as string", replace(`"missing":[]`, `"missing":"temp"`)},
		{"unknown missing parameter", replace(`"missing":[]`, `"missing":["pulse"]`)},
		{"missing parameter as number", replace(`"missing":[]`, `"missing":[1]`)},
		{"contributions as array", replace(`{"rr":3,"spo2":2,"o2":0,"sbp":0,"hr":1,"acvpu":0,"temp":1}`, `[3,2,0,0,1,0,1]`)},
		{"six contributions", replace(`,"temp":1}`, `}`)},
		{"unknown contribution", replace(`"temp":1}`, `"temp":1,"gcs":0}`)},
		{"duplicate contribution", replace(`"temp":1}`, `"temp":1,"temp":1}`)},
		{"contribution with fraction", replace(`"hr":1`, `"hr":1.0`)},
		{"contribution out of int8", replace(`"hr":1`, `"hr":300`)},
		{"contribution as string", replace(`"hr":1`, `"hr":"1"`)},
		{"contributions add up to more", replace(`"score":7`, `"score":6`)},
		{"contributions add up to less", replace(`"score":7`, `"score":8`)},
		{"negative contribution", replace(`{"score":7,"level":"high","contributions":{"rr":3`, `{"score":3,"level":"high","contributions":{"rr":-1`)},
		{"contribution above 3", replace(`{"score":7,"level":"high","contributions":{"rr":3`, `{"score":8,"level":"high","contributions":{"rr":4`)},
		{"oxygen scoring 1", replace(`{"score":7,"level":"high","contributions":{"rr":3,"spo2":2,"o2":0`, `{"score":8,"level":"high","contributions":{"rr":3,"spo2":2,"o2":1`)},
		{"consciousness scoring 2", replace(`{"score":7,"level":"high","contributions":{"rr":3,"spo2":2,"o2":0,"sbp":0,"hr":1,"acvpu":0`, `{"score":9,"level":"high","contributions":{"rr":3,"spo2":2,"o2":0,"sbp":0,"hr":1,"acvpu":2`)},
		{"missing parameter contributing", replace(`"complete":true,"missing":[]`, `"complete":false,"missing":["rr"]`)},
		{"complete with missing", replace(`"missing":[]`, `"missing":["o2"]`)},
		{"incomplete without missing", replace(`"complete":true`, `"complete":false`)},
		{"duplicate missing parameter", replace(`"complete":true,"missing":[]`, `"complete":false,"missing":["o2","o2"]`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := news2.Risk{Score: 2, Level: news2.Low, Missing: news2.AllParams()}
			before := r
			if err := r.UnmarshalJSON([]byte(tt.in)); err == nil {
				t.Errorf("UnmarshalJSON(%s) = nil (%+v); want an error", tt.in, r)
			} else if !strings.HasPrefix(err.Error(), "news2: ") {
				t.Errorf("UnmarshalJSON(%s) = %q; want an error starting %q", tt.in, err, "news2: ")
			}
			if r != before {
				t.Errorf("UnmarshalJSON(%s) changed its receiver to %+v; want %+v", tt.in, r, before)
			}
		})
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	// The longest Risk in Vigil's JSON shape; the doc comment promises that
	// 192 bytes hold it.
	longest := news2.Risk{Score: 20, Level: news2.LowMedium, Missing: news2.AllParams(),
		Contributions: [news2.NumParams]int8{3, 3, 2, 3, 3, 3, 3}}
	buf := make([]byte, 0, 192)
	for _, r := range []news2.Risk{longest, news2.Score(exampleVitals(), news2.Scale1)} {
		allocs := testing.AllocsPerRun(1000, func() {
			buf = r.AppendJSON(buf[:0])
		})
		if allocs != 0 {
			t.Errorf("AppendJSON(%+v) with a 192-byte buffer allocates %v times per call; want 0", r, allocs)
		}
		if cap(buf) != 192 {
			t.Errorf("AppendJSON(%+v) grew a 192-byte buffer to %d bytes", r, cap(buf))
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	vs := benchVitals()
	rs := make([]news2.Risk, len(vs))
	for i, v := range vs {
		rs[i] = news2.Score(v, news2.Scale1)
	}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = rs[i&1023].AppendJSON(buf[:0])
		i++
	}
}
