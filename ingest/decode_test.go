package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/ingest"
	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/store"
)

// decodeNow is the receive time of every sample in these tests.
var decodeNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// typicalSample is a full sample as a monitor sends it ([DESIGN.md section 5]).
const typicalSample = `{"ts":"2026-11-25T09:59:58.250Z","seq":42,"hr":88,"rr":18,"spo2":96,"o2":false,"sbp":121,"temp":37.2,"acvpu":"A"}`

func sameDecoded(a, b ingest.Decoded) bool {
	return a.Vitals == b.Vitals && a.Time.Equal(b.Time) && a.Seq == b.Seq
}

func TestDecodeAccepts(t *testing.T) {
	all := store.FieldHR | store.FieldRR | store.FieldSpO2 | store.FieldSBP | store.FieldTemp | store.FieldO2 | store.FieldACVPU
	tests := []struct {
		name string
		in   string
		want ingest.Decoded
	}{
		{"full sample", typicalSample, ingest.Decoded{
			Vitals: store.Vitals{Has: all, HR: 88, RR: 18, SpO2: 96, SBP: 121, Temp: 37.2, O2: false, ACVPU: 'A'},
			Time:   time.Date(2026, 11, 25, 9, 59, 58, 250e6, time.UTC), Seq: 42,
		}},
		{"full sample on oxygen, other values", `{"acvpu":"U","temp":35.05,"sbp":90.5,"o2":true,"spo2":88,"rr":8,"hr":40.25,"seq":0,"ts":"2026-11-25T11:04:59+01:00"}`, ingest.Decoded{
			Vitals: store.Vitals{Has: all, HR: 40.25, RR: 8, SpO2: 88, SBP: 90.5, Temp: 35.05, O2: true, ACVPU: 'U'},
			Time:   time.Date(2026, 11, 25, 10, 4, 59, 0, time.UTC),
		}},
		{"hr only", `{"hr":72}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldHR, HR: 72}}},
		{"rr only", `{"rr":12}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldRR, RR: 12}}},
		{"spo2 only", `{"spo2":99.5}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldSpO2, SpO2: 99.5}}},
		{"sbp only", `{"sbp":140}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldSBP, SBP: 140}}},
		{"temp only", `{"temp":36.6}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldTemp, Temp: 36.6}}},
		{"o2 false only", `{"o2":false}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldO2}}},
		{"o2 true only", `{"o2":true}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldO2, O2: true}}},
		{"acvpu only", `{"acvpu":"C"}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldACVPU, ACVPU: 'C'}}},
		{"each acvpu letter V", `{"acvpu":"V"}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldACVPU, ACVPU: 'V'}}},
		{"each acvpu letter P", `{"acvpu":"P"}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldACVPU, ACVPU: 'P'}}},
		{"measurement with ts and seq", `{"ts":"2026-11-25T10:00:00Z","seq":7,"hr":60}`, ingest.Decoded{
			Vitals: store.Vitals{Has: store.FieldHR, HR: 60}, Time: decodeNow, Seq: 7,
		}},
		{"null fields are not measured", `{"ts":null,"seq":null,"hr":null,"rr":16,"spo2":null,"sbp":null,"temp":null,"o2":null,"acvpu":null}`,
			ingest.Decoded{Vitals: store.Vitals{Has: store.FieldRR, RR: 16}}},
		{"whitespace everywhere", " \t\r\n{ \"hr\" :\t80 ,\n\"o2\"\r\n:\tfalse\n } \n\t", ingest.Decoded{
			Vitals: store.Vitals{Has: store.FieldHR | store.FieldO2, HR: 80},
		}},
		{"no whitespace", `{"hr":80,"o2":true}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldHR | store.FieldO2, HR: 80, O2: true}}},
		{"escaped acvpu", `{"acvpu":"\u0041"}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldACVPU, ACVPU: 'A'}}},
		{"escaped ts", `{"ts":"2026-11-25T09:30:00\u002e5\u005a","hr":70}`, ingest.Decoded{
			Vitals: store.Vitals{Has: store.FieldHR, HR: 70}, Time: time.Date(2026, 11, 25, 9, 30, 0, 5e8, time.UTC),
		}},
		{"escaped key", `{"h\u0072":70}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldHR, HR: 70}}},
		{"exponent", `{"hr":1E2,"rr":1.2e1,"spo2":9.5e+1,"sbp":12000e-2}`, ingest.Decoded{
			Vitals: store.Vitals{Has: store.FieldHR | store.FieldRR | store.FieldSpO2 | store.FieldSBP, HR: 100, RR: 12, SpO2: 95, SBP: 120},
		}},
		{"negative zero", `{"hr":-0}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldHR, HR: 0}}},
		{"zero with fraction", `{"rr":0.0}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldRR, RR: 0}}},
		{"underflow is zero", `{"spo2":1e-400}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldSpO2, SpO2: 0}}},
		{"largest seq", `{"hr":80,"seq":9007199254740991}`, ingest.Decoded{Vitals: store.Vitals{Has: store.FieldHR, HR: 80}, Seq: 1<<53 - 1}},
		{"ts exactly 5 min ahead", `{"hr":80,"ts":"2026-11-25T10:05:00Z"}`, ingest.Decoded{
			Vitals: store.Vitals{Has: store.FieldHR, HR: 80}, Time: decodeNow.Add(ingest.MaxFuture),
		}},
		{"ts exactly 24 h ago", `{"hr":80,"ts":"2026-11-24T10:00:00Z"}`, ingest.Decoded{
			Vitals: store.Vitals{Has: store.FieldHR, HR: 80}, Time: decodeNow.Add(-ingest.MaxPast),
		}},
		{"ts with nanoseconds", `{"hr":80,"ts":"2026-11-25T09:00:00.123456789Z"}`, ingest.Decoded{
			Vitals: store.Vitals{Has: store.FieldHR, HR: 80}, Time: time.Date(2026, 11, 25, 9, 0, 0, 123456789, time.UTC),
		}},
		{"payload of exactly MaxPayload bytes", `{"hr":80}` + strings.Repeat(" ", ingest.MaxPayload-len(`{"hr":80}`)), ingest.Decoded{
			Vitals: store.Vitals{Has: store.FieldHR, HR: 80},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ingest.Decode([]byte(tt.in), decodeNow)
			if err != nil {
				t.Fatalf("Decode(%q) = %v; want %+v", tt.in, err, tt.want)
			}
			if !sameDecoded(got, tt.want) {
				t.Errorf("Decode(%q) = %+v; want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// TestDecodeFullSampleExact checks each field of the full sample on its own, so that a value that
// does not round-trip is named.
func TestDecodeFullSampleExact(t *testing.T) {
	d, err := ingest.Decode([]byte(typicalSample), decodeNow)
	if err != nil {
		t.Fatalf("Decode(%q) = %v; want a sample", typicalSample, err)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"hr", d.HR, 88.0}, {"rr", d.RR, 18.0}, {"spo2", d.SpO2, 96.0}, {"sbp", d.SBP, 121.0},
		{"temp", d.Temp, 37.2}, {"o2", d.O2, false}, {"acvpu", d.ACVPU, byte('A')}, {"seq", d.Seq, int64(42)},
		{"ts", d.Time.UTC().Format(time.RFC3339Nano), "2026-11-25T09:59:58.25Z"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("Decode(%q).%s = %v; want %v", typicalSample, c.name, c.got, c.want)
		}
	}
	for _, f := range []struct {
		name string
		bit  store.Fields
	}{{"hr", store.FieldHR}, {"rr", store.FieldRR}, {"spo2", store.FieldSpO2}, {"sbp", store.FieldSBP}, {"temp", store.FieldTemp}, {"o2", store.FieldO2}, {"acvpu", store.FieldACVPU}} {
		if d.Has&f.bit == 0 {
			t.Errorf("Decode(%q).Has = %b; want the %s bit set", typicalSample, d.Has, f.name)
		}
	}
}

type refusal struct {
	name        string
	in          string
	field       string
	implausible bool
}

func checkRefusal(t *testing.T, tt refusal, err *ingest.FieldError) {
	t.Helper()
	if err == nil {
		t.Fatalf("Decode(%q) = nil error; want a refusal of field %q", tt.in, tt.field)
	}
	if err.Field() != tt.field {
		t.Errorf("Decode(%q).Field() = %q (%v); want %q", tt.in, err.Field(), err, tt.field)
	}
	if err.Reason() == "" {
		t.Errorf("Decode(%q).Reason() = \"\"; want a reason", tt.in)
	}
	if err.Implausible != tt.implausible {
		t.Errorf("Decode(%q).Implausible = %v (%v); want %v", tt.in, err.Implausible, err, tt.implausible)
	}
	if err.Code() != "invalid" {
		t.Errorf("Decode(%q).Code() = %q; want %q", tt.in, err.Code(), "invalid")
	}
	if tt.field != "" && !strings.HasPrefix(err.Error(), tt.field+": ") {
		t.Errorf("Decode(%q).Error() = %q; want it to start with %q", tt.in, err.Error(), tt.field+": ")
	}
}

func TestDecodeRefuses(t *testing.T) {
	tests := []refusal{
		// Not an object.
		{name: "empty", in: ``},
		{name: "only whitespace", in: " \n\t"},
		{name: "array", in: `[]`},
		{name: "number", in: `1`},
		{name: "string", in: `"x"`},
		{name: "null", in: `null`},
		{name: "array of objects", in: `[{"hr":80}]`},
		// Malformed JSON.
		{name: "truncated after value", in: `{"hr":80`},
		{name: "truncated after comma", in: `{"hr":80,`},
		{name: "truncated in key", in: `{"hr`},
		{name: "open brace only", in: `{`},
		{name: "trailing comma", in: `{"hr":80,}`},
		{name: "missing colon", in: `{"hr" 80}`},
		{name: "missing comma", in: `{"hr":80 "rr":12}`},
		{name: "unquoted key", in: `{hr:80}`},
		{name: "single-quoted key", in: `{'hr':80}`},
		{name: "data after the object", in: `{"hr":80}x`},
		{name: "second object", in: `{"hr":80}{"hr":81}`},
		{name: "key without value", in: `{"hr":80,"rr"}`},
		{name: "control character in key", in: "{\"h\x01r\":80}"},
		{name: "bad escape in key", in: `{"h\qr":80}`},
		{name: "leading zero", in: `{"hr":01}`},
		{name: "hex number", in: `{"hr":0x10}`},
		{name: "comment", in: `{"hr":80 /* bpm */}`},
		// Oversize.
		{name: "payload over MaxPayload", in: `{"hr":80}` + strings.Repeat(" ", ingest.MaxPayload+1-len(`{"hr":80}`))},
		// No measurement.
		{name: "empty object", in: `{}`},
		{name: "empty object with spaces", in: `{ }`},
		{name: "only ts and seq", in: `{"ts":"2026-11-25T10:00:00Z","seq":1}`},
		{name: "only nulls", in: `{"hr":null,"o2":null,"acvpu":null}`},
		// Unknown and duplicate fields.
		{name: "unknown field", in: `{"hr":80,"bp":120}`, field: `"bp"`},
		{name: "unknown field first", in: `{"pulse":80}`, field: `"pulse"`},
		{name: "field names are case-sensitive", in: `{"HR":80}`, field: `"HR"`},
		{name: "long unknown field is clipped", in: `{"` + strings.Repeat("k", 60) + `":1}`, field: strconv.Quote(strings.Repeat("k", 40)) + "..."},
		{name: "spo2_scale is for scoring only", in: `{"spo2":95,"spo2_scale":2}`, field: `"spo2_scale"`},
		{name: "duplicate field", in: `{"hr":80,"hr":81}`, field: "hr"},
		{name: "duplicate after null", in: `{"acvpu":null,"acvpu":"A"}`, field: "acvpu"},
		{name: "duplicate ts", in: `{"hr":80,"ts":"2026-11-25T10:00:00Z","ts":"2026-11-25T10:00:00Z"}`, field: "ts"},
		// Wrong types.
		{name: "hr as string", in: `{"hr":"80"}`, field: "hr"},
		{name: "hr as bool", in: `{"hr":true}`, field: "hr"},
		{name: "hr as object", in: `{"hr":{"v":80}}`, field: "hr"},
		{name: "hr as array", in: `{"hr":[80]}`, field: "hr"},
		{name: "rr as string", in: `{"rr":"12"}`, field: "rr"},
		{name: "spo2 as bool", in: `{"spo2":false}`, field: "spo2"},
		{name: "sbp as array", in: `{"sbp":[120,80]}`, field: "sbp"},
		{name: "temp as string", in: `{"temp":"37.2"}`, field: "temp"},
		{name: "o2 as number", in: `{"o2":1}`, field: "o2"},
		{name: "o2 as string", in: `{"o2":"true"}`, field: "o2"},
		{name: "o2 capitalised", in: `{"o2":True}`, field: "o2"},
		{name: "acvpu as number", in: `{"acvpu":1}`, field: "acvpu"},
		{name: "acvpu X", in: `{"acvpu":"X"}`, field: "acvpu"},
		{name: "acvpu lower case", in: `{"acvpu":"a"}`, field: "acvpu"},
		{name: "acvpu two letters", in: `{"acvpu":"AA"}`, field: "acvpu"},
		{name: "acvpu empty", in: `{"acvpu":""}`, field: "acvpu"},
		{name: "acvpu escaped X", in: `{"acvpu":"\u0058"}`, field: "acvpu"},
		{name: "ts as number", in: `{"hr":80,"ts":1764064800}`, field: "ts"},
		{name: "ts not RFC 3339", in: `{"hr":80,"ts":"25/11/2026 10:00"}`, field: "ts"},
		{name: "ts without zone", in: `{"hr":80,"ts":"2026-11-25T10:00:00"}`, field: "ts"},
		{name: "ts with a space", in: `{"hr":80,"ts":"2026-11-25 10:00:00Z"}`, field: "ts"},
		{name: "ts empty", in: `{"hr":80,"ts":""}`, field: "ts"},
		{name: "ts more than 5 min ahead", in: `{"hr":80,"ts":"2026-11-25T10:05:00.001Z"}`, field: "ts"},
		{name: "ts more than 24 h ago", in: `{"hr":80,"ts":"2026-11-24T09:59:59.999Z"}`, field: "ts"},
		{name: "seq negative", in: `{"hr":80,"seq":-1}`, field: "seq"},
		{name: "seq fractional", in: `{"hr":80,"seq":1.5}`, field: "seq"},
		{name: "seq too large", in: `{"hr":80,"seq":1e300}`, field: "seq"},
		{name: "seq past 2^53-1", in: `{"hr":80,"seq":9007199254740992}`, field: "seq"},
		{name: "seq rounding to 2^53", in: `{"hr":80,"seq":9007199254740993}`, field: "seq"},
		{name: "seq written as a float", in: `{"hr":80,"seq":1.0}`, field: "seq"},
		{name: "seq with an exponent", in: `{"hr":80,"seq":1e2}`, field: "seq"},
		{name: "seq negative zero", in: `{"hr":80,"seq":-0}`, field: "seq"},
		{name: "seq as string", in: `{"hr":80,"seq":"1"}`, field: "seq"},
		// Numbers JSON does not allow.
		{name: "leading dot", in: `{"hr":.5}`, field: "hr"},
		{name: "trailing dot", in: `{"hr":5.}`, field: "hr"},
		{name: "plus sign", in: `{"hr":+5}`, field: "hr"},
		{name: "lone minus", in: `{"hr":-}`, field: "hr"},
		{name: "exponent without digits", in: `{"hr":1e}`, field: "hr"},
		{name: "exponent sign without digits", in: `{"hr":1e+}`, field: "hr"},
		{name: "NaN", in: `{"hr":NaN}`, field: "hr"},
		{name: "Infinity", in: `{"hr":Infinity}`, field: "hr"},
		// Numbers too large for a float64 are implausible values.
		{name: "overflow", in: `{"hr":1e400}`, field: "hr", implausible: true},
		{name: "negative overflow", in: `{"temp":-1e400}`, field: "temp", implausible: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ingest.Decode([]byte(tt.in), decodeNow)
			if err == nil {
				t.Fatalf("Decode(%q) = %+v, nil; want a refusal of field %q", tt.in, got, tt.field)
			}
			checkRefusal(t, tt, err)
		})
	}
}

// TestDecodePlausibleRanges checks both sides of every range: the bounds are accepted, values
// just outside are refused as implausible, naming the field.
func TestDecodePlausibleRanges(t *testing.T) {
	tests := []struct {
		key              string
		bit              store.Fields
		min, max         string
		below, above     string
		get              func(ingest.Decoded) float64
		wantMin, wantMax float64
	}{
		{"hr", store.FieldHR, "0", "300", "-1", "301", func(d ingest.Decoded) float64 { return d.HR }, 0, 300},
		{"rr", store.FieldRR, "0", "100", "-1", "101", func(d ingest.Decoded) float64 { return d.RR }, 0, 100},
		{"spo2", store.FieldSpO2, "0", "100", "-1", "101", func(d ingest.Decoded) float64 { return d.SpO2 }, 0, 100},
		{"sbp", store.FieldSBP, "0", "300", "-1", "301", func(d ingest.Decoded) float64 { return d.SBP }, 0, 300},
		{"temp", store.FieldTemp, "25", "45", "24.9", "45.1", func(d ingest.Decoded) float64 { return d.Temp }, 25, 45},
		{"hr", store.FieldHR, "0.0", "300.0", "-0.001", "300.001", func(d ingest.Decoded) float64 { return d.HR }, 0, 300},
		{"temp", store.FieldTemp, "2.5e1", "4.5E1", "24.99999", "45.00001", func(d ingest.Decoded) float64 { return d.Temp }, 25, 45},
	}
	for _, tt := range tests {
		for _, ok := range []struct {
			v    string
			want float64
		}{{tt.min, tt.wantMin}, {tt.max, tt.wantMax}} {
			t.Run(tt.key+"="+ok.v+" accepted", func(t *testing.T) {
				in := `{"` + tt.key + `":` + ok.v + `}`
				d, err := ingest.Decode([]byte(in), decodeNow)
				if err != nil {
					t.Fatalf("Decode(%q) = %v; want %s = %g", in, err, tt.key, ok.want)
				}
				if d.Has != tt.bit || tt.get(d) != ok.want {
					t.Errorf("Decode(%q) = %+v; want only %s = %g", in, d, tt.key, ok.want)
				}
			})
		}
		for _, bad := range []string{tt.below, tt.above} {
			// Along with other fields, so the check does not depend on the order of fields.
			in := `{"hr":80,"` + tt.key + `":` + bad + `,"o2":false}`
			if tt.key == "hr" {
				in = `{"rr":12,"hr":` + bad + `,"o2":false}`
			}
			t.Run(tt.key+"="+bad+" refused", func(t *testing.T) {
				_, err := ingest.Decode([]byte(in), decodeNow)
				checkRefusal(t, refusal{in: in, field: tt.key, implausible: true}, err)
				if err != nil && !strings.Contains(err.Reason(), "implausible") {
					t.Errorf("Decode(%q).Reason() = %q; want it to say implausible", in, err.Reason())
				}
			})
		}
	}
}

func TestDecodeForScoring(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantScale news2.Scale
		wantField string // "" when accepted
		refused   bool
	}{
		{name: "no scale is scale 1", in: `{"spo2":90}`, wantScale: news2.Scale1},
		{name: "scale 1", in: `{"spo2":90,"spo2_scale":1}`, wantScale: news2.Scale1},
		{name: "scale 2", in: `{"spo2_scale":2,"spo2":90,"o2":true}`, wantScale: news2.Scale2},
		{name: "scale 2 written 2.0", in: `{"spo2_scale":2.0,"spo2":90}`, wantScale: news2.Scale2},
		{name: "scale 0", in: `{"spo2":90,"spo2_scale":0}`, wantField: "spo2_scale", refused: true},
		{name: "scale 3", in: `{"spo2":90,"spo2_scale":3}`, wantField: "spo2_scale", refused: true},
		{name: "scale 1.5", in: `{"spo2":90,"spo2_scale":1.5}`, wantField: "spo2_scale", refused: true},
		{name: "scale as string", in: `{"spo2":90,"spo2_scale":"2"}`, wantField: "spo2_scale", refused: true},
		{name: "scale as bool", in: `{"spo2":90,"spo2_scale":true}`, wantField: "spo2_scale", refused: true},
		{name: "scale twice", in: `{"spo2":90,"spo2_scale":2,"spo2_scale":2}`, wantField: "spo2_scale", refused: true},
		{name: "scale without a measurement", in: `{"spo2_scale":2}`, refused: true},
		{name: "sample refusals still apply", in: `{"spo2":101,"spo2_scale":2}`, wantField: "spo2", refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, scale, err := ingest.DecodeForScoring([]byte(tt.in), decodeNow)
			if tt.refused {
				if err == nil {
					t.Fatalf("DecodeForScoring(%q) = %+v, %d, nil; want a refusal of %q", tt.in, d, scale, tt.wantField)
				}
				if err.Field() != tt.wantField || err.Reason() == "" {
					t.Errorf("DecodeForScoring(%q) = %q, %q; want field %q and a reason", tt.in, err.Field(), err.Reason(), tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeForScoring(%q) = %v; want scale %d", tt.in, err, tt.wantScale)
			}
			if scale != tt.wantScale {
				t.Errorf("DecodeForScoring(%q) scale = %d; want %d", tt.in, scale, tt.wantScale)
			}
			if d.Has&store.FieldSpO2 == 0 || d.SpO2 != 90 {
				t.Errorf("DecodeForScoring(%q) = %+v; want spo2 90", tt.in, d)
			}
		})
	}
}

func TestDecodeAllocs(t *testing.T) {
	b := []byte(typicalSample)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := ingest.Decode(b, decodeNow); err != nil {
			t.Fatalf("Decode(%q) = %v", b, err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decode(%q) allocates %v times per call; want 0", b, allocs)
	}
}

func BenchmarkDecode(b *testing.B) {
	p := []byte(typicalSample)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := ingest.Decode(p, decodeNow); err != nil {
			b.Fatal(err)
		}
	}
}

// jsonSample mirrors a vitals sample for encoding/json, the reference the fuzz test holds Decode
// to: a nil pointer is a field absent or null.
type jsonSample struct {
	TS    *string  `json:"ts"`
	Seq   *int64   `json:"seq"`
	HR    *float64 `json:"hr"`
	RR    *float64 `json:"rr"`
	SpO2  *float64 `json:"spo2"`
	SBP   *float64 `json:"sbp"`
	Temp  *float64 `json:"temp"`
	O2    *bool    `json:"o2"`
	ACVPU *string  `json:"acvpu"`
}

func decodeReference(b []byte) (jsonSample, error) {
	var s jsonSample
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return s, errors.New("data after the object")
	}
	return s, nil
}

var sampleFields = map[string]bool{"ts": true, "seq": true, "hr": true, "rr": true, "spo2": true, "sbp": true, "temp": true, "o2": true, "acvpu": true}

// FuzzDecode checks that Decode never panics; that whatever it accepts, encoding/json accepts
// too with the same values, each in its plausible range; and that a refusal names a field of the
// sample or the unknown key. Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		typicalSample,
		`{"hr":80}`, `{"o2":true,"acvpu":"\u0041"}`, `{"hr":1E2,"rr":-0,"temp":2.5e1}`, `{"seq":9007199254740991,"spo2":100}`,
		`{"hr":null,"rr":null,"spo2":1e-400}`, `{"hr":1e400}`, `{"hr":01}`, `{"hr":.5}`, `{"hr":80,}`, `{}`, `[]`,
		`{"bp":1}`, `{"hr":80,"hr":80}`, `{"ts":"2026-11-25T10:00:00+01:00","hr":80}`, `{"spo2_scale":2,"spo2":90}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, ferr := ingest.Decode(b, decodeNow)
		sd, scale, serr := ingest.DecodeForScoring(b, decodeNow)
		if ferr != nil {
			if ferr.Reason() == "" {
				t.Errorf("Decode(%q) = %v with an empty Reason()", b, ferr)
			}
			if k := ferr.Field(); k != "" && !sampleFields[k] {
				q := strings.TrimSuffix(k, "...")
				name, err := strconv.Unquote(q)
				if err != nil || (q == k && sampleFields[name]) {
					t.Errorf("Decode(%q).Field() = %q; want a field of the sample or a quoted unknown key", b, k)
				}
			}
			if ferr.Implausible && !map[string]bool{"hr": true, "rr": true, "spo2": true, "sbp": true, "temp": true}[ferr.Field()] {
				t.Errorf("Decode(%q) = %v marked implausible; want that only for a measurement", b, ferr)
			}
			return
		}
		if serr != nil || !sameDecoded(d, sd) || scale != news2.Scale1 {
			t.Errorf("DecodeForScoring(%q) = %+v, %d, %v; want %+v, 1, nil like Decode", b, sd, scale, serr, d)
		}
		ref, err := decodeReference(b)
		if err != nil {
			t.Fatalf("Decode(%q) = %+v, nil; but encoding/json refuses it: %v", b, d, err)
		}
		num := []struct {
			name string
			bit  store.Fields
			got  float64
			ref  *float64
			min  float64
			max  float64
		}{
			{"hr", store.FieldHR, d.HR, ref.HR, 0, 300},
			{"rr", store.FieldRR, d.RR, ref.RR, 0, 100},
			{"spo2", store.FieldSpO2, d.SpO2, ref.SpO2, 0, 100},
			{"sbp", store.FieldSBP, d.SBP, ref.SBP, 0, 300},
			{"temp", store.FieldTemp, d.Temp, ref.Temp, 25, 45},
		}
		for _, n := range num {
			has := d.Has&n.bit != 0
			if has != (n.ref != nil) {
				t.Errorf("Decode(%q): %s present = %v; encoding/json says %v", b, n.name, has, n.ref != nil)
				continue
			}
			if !has {
				continue
			}
			if n.got != *n.ref || math.Signbit(n.got) != math.Signbit(*n.ref) {
				t.Errorf("Decode(%q).%s = %v; encoding/json says %v", b, n.name, n.got, *n.ref)
			}
			if n.got < n.min || n.got > n.max {
				t.Errorf("Decode(%q).%s = %v; want it in %g..%g", b, n.name, n.got, n.min, n.max)
			}
		}
		if has := d.Has&store.FieldO2 != 0; has != (ref.O2 != nil) || (has && d.O2 != *ref.O2) {
			t.Errorf("Decode(%q): o2 = %v (present %v); encoding/json says %v", b, d.O2, has, ref.O2)
		}
		hasACVPU := d.Has&store.FieldACVPU != 0
		if hasACVPU != (ref.ACVPU != nil) || (hasACVPU && string(d.ACVPU) != *ref.ACVPU) {
			t.Errorf("Decode(%q): acvpu = %q (present %v); encoding/json says %v", b, d.ACVPU, hasACVPU, ref.ACVPU)
		}
		if hasACVPU && !strings.ContainsRune("ACVPU", rune(d.ACVPU)) {
			t.Errorf("Decode(%q).ACVPU = %q; want one of A C V P U", b, d.ACVPU)
		}
		if d.Has == 0 {
			t.Errorf("Decode(%q) accepted a sample without a measurement", b)
		}
		if ref.Seq != nil {
			if d.Seq != *ref.Seq || d.Seq < 0 {
				t.Errorf("Decode(%q).Seq = %d; encoding/json says %d", b, d.Seq, *ref.Seq)
			}
		} else if d.Seq != 0 {
			t.Errorf("Decode(%q).Seq = %d; want 0 without seq", b, d.Seq)
		}
		if ref.TS == nil {
			if !d.Time.IsZero() {
				t.Errorf("Decode(%q).Time = %v; want zero without ts", b, d.Time)
			}
		} else {
			want, err := time.Parse(time.RFC3339Nano, *ref.TS)
			if err != nil || !d.Time.Equal(want) {
				t.Errorf("Decode(%q).Time = %v; want %q parsed (%v, %v)", b, d.Time, *ref.TS, want, err)
			}
			if d.Time.Before(decodeNow.Add(-ingest.MaxPast)) || d.Time.After(decodeNow.Add(ingest.MaxFuture)) {
				t.Errorf("Decode(%q).Time = %v; want it within %v before and %v after %v", b, d.Time, ingest.MaxPast, ingest.MaxFuture, decodeNow)
			}
		}
		if len(b) > ingest.MaxPayload {
			t.Errorf("Decode accepted a payload of %d bytes; want at most %d", len(b), ingest.MaxPayload)
		}
	})
}
