package ingest

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/store"
)

// MaxPayload is the largest vitals payload accepted. A sample is a few hundred bytes.
const MaxPayload = 4096

// Plausible ranges: values outside them cannot be real measurements ([DESIGN.md section 5]).
// Low bounds are 0 where 0 is a real, critical reading (asystole, apnoea).
var ranges = [...]struct {
	field    store.Fields
	key      string
	min, max float64
}{
	{store.FieldHR, "hr", 0, 300},
	{store.FieldRR, "rr", 0, 100},
	{store.FieldSpO2, "spo2", 0, 100},
	{store.FieldSBP, "sbp", 0, 300},
	{store.FieldTemp, "temp", 25, 45},
}

// FieldError says which field of a sample is wrong and why. Key is "" when the payload as a
// whole is wrong. Implausible is set for values out of their plausible range (a technical alarm
// counts those).
type FieldError struct {
	Key         string
	Why         string
	Implausible bool
}

func (e *FieldError) Error() string {
	if e.Key == "" {
		return e.Why
	}
	return e.Key + ": " + e.Why
}

// Field names the field at fault ("" for the payload as a whole).
func (e *FieldError) Field() string { return e.Key }

// Reason says why.
func (e *FieldError) Reason() string { return e.Why }

// Code marks the error as bad input for the broker and the HTTP layer.
func (e *FieldError) Code() string { return "invalid" }

// Decoded is one decoded sample.
type Decoded struct {
	store.Vitals
	Time time.Time // zero when the sample had no ts
	Seq  int64
}

// Limits on sample times: a device clock may run a little ahead; backfill is accepted for a day.
const (
	MaxFuture = 5 * time.Minute
	MaxPast   = 24 * time.Hour
)

// Decode parses and validates a vitals sample (strict JSON: known fields only, each once, of
// the right type, in plausible ranges; at least one measurement). now bounds ts. null counts as
// "not measured". Decode allocates nothing for a well-formed sample.
func Decode(b []byte, now time.Time) (Decoded, *FieldError) {
	d, _, err := decode(b, now, false)
	return d, err
}

// DecodeForScoring decodes the body of the scoring endpoint: a sample plus an optional
// "spo2_scale" (1 or 2, default 1).
func DecodeForScoring(b []byte, now time.Time) (Decoded, news2.Scale, *FieldError) {
	return decode(b, now, true)
}

func decode(b []byte, now time.Time, scoring bool) (Decoded, news2.Scale, *FieldError) {
	var d Decoded
	scale := news2.Scale1
	if len(b) > MaxPayload {
		return d, scale, &FieldError{Why: fmt.Sprintf("payload larger than %d bytes", MaxPayload)}
	}
	s := scanner{b: b}
	s.space()
	if !s.eat('{') {
		return d, scale, &FieldError{Why: "payload is not a JSON object"}
	}
	var seen uint16
	s.space()
	if s.eat('}') {
		return d, scale, &FieldError{Why: "no measurement (hr, rr, spo2, sbp, temp, o2 or acvpu)"}
	}
	for {
		s.space()
		key, ok := s.str()
		if !ok {
			return d, scale, &FieldError{Why: "malformed JSON: expected a field name"}
		}
		f := fieldIndex(key)
		if f == fScale && !scoring {
			f = -1
		}
		if f < 0 {
			return d, scale, &FieldError{Key: clip(key), Why: "unknown field"}
		}
		if seen&(1<<f) != 0 {
			return d, scale, &FieldError{Key: fieldNames[f], Why: "appears twice"}
		}
		seen |= 1 << f
		s.space()
		if !s.eat(':') {
			return d, scale, &FieldError{Why: "malformed JSON: expected ':'"}
		}
		s.space()
		if f == fScale {
			v, ok := s.number()
			if !ok || (v != 1 && v != 2) {
				return d, scale, &FieldError{Key: "spo2_scale", Why: "must be 1 or 2"}
			}
			scale = news2.Scale(v)
		} else if err := d.value(&s, f, now); err != nil {
			return d, scale, err
		}
		s.space()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			break
		}
		return d, scale, &FieldError{Why: "malformed JSON: expected ',' or '}'"}
	}
	s.space()
	if s.i != len(s.b) {
		return d, scale, &FieldError{Why: "malformed JSON: data after the object"}
	}
	if d.Has == 0 {
		return d, scale, &FieldError{Why: "no measurement (hr, rr, spo2, sbp, temp, o2 or acvpu)"}
	}
	for _, r := range ranges {
		if d.Has&r.field == 0 {
			continue
		}
		v := d.get(r.field)
		if v < r.min || v > r.max {
			return d, scale, &FieldError{Key: r.key, Why: fmt.Sprintf("%s is implausible (plausible: %g to %g)", strconv.FormatFloat(v, 'f', -1, 64), r.min, r.max), Implausible: true}
		}
	}
	return d, scale, nil
}

// Fields of a sample, by index.
const (
	fTS = iota
	fSeq
	fHR
	fRR
	fSpO2
	fSBP
	fTemp
	fO2
	fACVPU
	fScale // scoring endpoint only
)

var fieldNames = [...]string{"ts", "seq", "hr", "rr", "spo2", "sbp", "temp", "o2", "acvpu", "spo2_scale"}

func fieldIndex(k []byte) int {
	for i, n := range fieldNames {
		if string(k) == n {
			return i
		}
	}
	return -1
}

func clip(k []byte) string {
	if len(k) > 40 {
		return strconv.Quote(string(k[:40])) + "..."
	}
	return strconv.Quote(string(k))
}

func (d *Decoded) get(f store.Fields) float64 {
	switch f {
	case store.FieldHR:
		return d.HR
	case store.FieldRR:
		return d.RR
	case store.FieldSpO2:
		return d.SpO2
	case store.FieldSBP:
		return d.SBP
	}
	return d.Temp
}

// set stores measurement f. A switch, not a table of accessor funcs: calls through func values
// make d escape, and Decode would allocate it on every call.
func (d *Decoded) set(f int, v float64) {
	switch f {
	case fHR:
		d.HR, d.Has = v, d.Has|store.FieldHR
	case fRR:
		d.RR, d.Has = v, d.Has|store.FieldRR
	case fSpO2:
		d.SpO2, d.Has = v, d.Has|store.FieldSpO2
	case fSBP:
		d.SBP, d.Has = v, d.Has|store.FieldSBP
	case fTemp:
		d.Temp, d.Has = v, d.Has|store.FieldTemp
	}
}

func (d *Decoded) value(s *scanner, f int, now time.Time) *FieldError {
	name := fieldNames[f]
	if s.literal("null") {
		return nil // not measured
	}
	switch f {
	case fTS:
		v, ok := s.str()
		if !ok {
			return &FieldError{Key: name, Why: "must be an RFC 3339 time string"}
		}
		t, err := time.Parse(time.RFC3339Nano, unsafeString(v))
		if err != nil {
			return &FieldError{Key: name, Why: "not an RFC 3339 time (e.g. 2026-11-25T10:00:00.000Z)"}
		}
		if t.After(now.Add(MaxFuture)) {
			return &FieldError{Key: name, Why: "more than 5 minutes in the future (check the device clock)"}
		}
		if t.Before(now.Add(-MaxPast)) {
			return &FieldError{Key: name, Why: "more than 24 hours in the past"}
		}
		d.Time = t
	case fSeq:
		start := s.i
		v, ok := s.number()
		// Digits only and below 2^53, so the float64 holds the integer exactly: 9007199254740993
		// would silently become ...992, and 1.0 or 1e2 are not integers to encoding/json either.
		if !ok || !digitsOnly(s.b[start:s.i]) || v >= 1<<53 {
			return &FieldError{Key: name, Why: "must be a non-negative integer below 2^53"}
		}
		d.Seq = int64(v)
	case fO2:
		switch {
		case s.literal("true"):
			d.O2 = true
		case s.literal("false"):
			d.O2 = false
		default:
			return &FieldError{Key: name, Why: "must be true or false"}
		}
		d.Has |= store.FieldO2
	case fACVPU:
		v, ok := s.str()
		if !ok {
			return &FieldError{Key: name, Why: `must be one of "A", "C", "V", "P", "U"`}
		}
		if len(v) != 1 || (v[0] != 'A' && v[0] != 'C' && v[0] != 'V' && v[0] != 'P' && v[0] != 'U') {
			return &FieldError{Key: name, Why: `must be one of "A", "C", "V", "P", "U"`}
		}
		d.ACVPU = v[0]
		d.Has |= store.FieldACVPU
	default:
		v, ok := s.number()
		if !ok {
			return &FieldError{Key: name, Why: "must be a number"}
		}
		if math.IsInf(v, 0) {
			return &FieldError{Key: name, Why: "number out of range", Implausible: true}
		}
		d.set(f, v)
	}
	return nil
}

// scanner reads the small subset of JSON a sample is made of.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// str reads a JSON string and returns its contents. Strings with escapes are decoded by
// encoding/json (rare: no field of a sample needs them).
func (s *scanner) str() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start, escaped := s.i, false
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if !escaped {
				return raw, true
			}
			var out string
			if err := json.Unmarshal(s.b[start-1:s.i], &out); err != nil {
				return nil, false
			}
			return []byte(out), true
		case c == '\\':
			escaped = true
			s.i += 2
			continue
		case c < 0x20:
			return nil, false // control characters must be escaped
		}
		s.i++
	}
	return nil, false
}

// number reads a JSON number (RFC 8259 grammar, checked strictly).
func (s *scanner) number() (float64, bool) {
	start := s.i
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.digits() > 0:
	default:
		return 0, false
	}
	if s.eat('.') && s.digits() == 0 {
		return 0, false
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if s.digits() == 0 {
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(unsafeString(s.b[start:s.i]), 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return v, true // ±Inf or 0: the caller range-checks
		}
		return 0, false
	}
	return v, true
}

func digitsOnly(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// unsafeString views b as a string for parsing calls that do not keep it.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
