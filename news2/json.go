package news2

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxJSONLen bounds the length of a valid Risk in Vigil's JSON shape: a
// two-digit score, the longest level name, every parameter missing.
// MarshalJSON allocates this much, once.
const maxJSONLen = len(`{"score":20,"level":"low-medium",` +
	`"contributions":{"rr":3,"spo2":3,"o2":2,"sbp":3,"hr":3,"acvpu":3,"temp":3},` +
	`"complete":false,"missing":["rr","spo2","o2","sbp","hr","acvpu","temp"]}`)

// AppendJSON appends r to dst as Vigil's Risk payload and returns the
// extended slice:
//
//	{"score":7,"level":"high","contributions":{"rr":3,"spo2":2,"o2":0,"sbp":0,"hr":1,"acvpu":0,"temp":1},"complete":true,"missing":[]}
//
// The keys come in that order; all seven contributions are always written,
// and missing parameters in Param order. AppendJSON does not allocate when dst
// has room for the result; 192 bytes of spare capacity is enough for any Risk
// that Score returns. It writes r as it is, without checking it: an invalid
// Level is written as its String form, which UnmarshalJSON rejects.
func (r Risk) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"score":`...)
	dst = strconv.AppendInt(dst, int64(r.Score), 10)
	dst = append(dst, `,"level":"`...)
	if int(r.Level) < len(levelNames) {
		dst = append(dst, levelNames[r.Level]...)
	} else {
		dst = append(dst, "Level("...)
		dst = strconv.AppendUint(dst, uint64(r.Level), 10)
		dst = append(dst, ')')
	}
	dst = append(dst, `","contributions":{`...)
	for p := range NumParams {
		if p > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, paramKeys[p]...)
		dst = append(dst, `":`...)
		dst = strconv.AppendInt(dst, int64(r.Contributions[p]), 10)
	}
	dst = append(dst, `},"complete":`...)
	dst = strconv.AppendBool(dst, r.Complete())
	dst = append(dst, `,"missing":[`...)
	first := true
	for p := range NumParams {
		if !r.Missing.Has(p) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, paramKeys[p]...)
		dst = append(dst, '"')
	}
	return append(dst, "]}"...)
}

// MarshalJSON implements [json.Marshaler] with [Risk.AppendJSON]. It fails
// only when r.Level is not one of the four levels.
func (r Risk) MarshalJSON() ([]byte, error) {
	if int(r.Level) >= len(levelNames) {
		return nil, fmt.Errorf("news2: invalid level %d", r.Level)
	}
	return r.AppendJSON(make([]byte, 0, maxJSONLen)), nil
}

// subScores lists, for each parameter, the sub-scores its Chart 1 row can
// give, as a bit set: bit n set means n is possible.
var subScores = [NumParams]uint8{
	RespRate:      0b1111, // 0, 1, 2, 3
	SpO2:          0b1111, // 0, 1, 2, 3
	Oxygen:        0b0101, // air 0, oxygen 2
	SystolicBP:    0b1111, // 0, 1, 2, 3
	Pulse:         0b1111, // 0, 1, 2, 3
	Consciousness: 0b1001, // A 0; C, V, P or U 3
	Temperature:   0b1111, // 0, 1, 2, 3
}

// UnmarshalJSON implements [json.Unmarshaler]. It is strict: it accepts the
// shape that AppendJSON writes, with keys in any order but each exactly once
// and no others, all seven contributions, and then checks that the payload is
// consistent with itself: each contribution is a sub-score its chart row can
// give, a missing parameter contributes 0, "complete" is true exactly when
// "missing" is empty, and the contributions add up to "score". It does not
// rescore: the level is taken as written. Following encoding/json's
// convention, the literal null is a no-op. On error r is left unchanged.
func (r *Risk) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	out, err := decodeRisk(d)
	if err != nil {
		return fmt.Errorf("news2: risk: %w", err)
	}
	*r = out
	return nil
}

func decodeRisk(d *json.Decoder) (Risk, error) {
	var (
		out      Risk
		complete bool
		seen     uint8 // bit i set: keys[i] has been read
	)
	keys := [...]string{"score", "level", "contributions", "complete", "missing"}
	if err := expectDelim(d, '{'); err != nil {
		return Risk{}, err
	}
	for d.More() {
		key, err := stringToken(d)
		if err != nil {
			return Risk{}, err
		}
		i := 0
		for i < len(keys) && keys[i] != key {
			i++
		}
		if i == len(keys) {
			return Risk{}, fmt.Errorf("unknown key %q", key)
		}
		if seen&(1<<i) != 0 {
			return Risk{}, fmt.Errorf("duplicate key %q", key)
		}
		seen |= 1 << i
		switch key {
		case "score":
			var n int64
			n, err = intToken(d, 64)
			out.Score = int(n)
		case "level":
			var s string
			if s, err = stringToken(d); err == nil {
				out.Level, err = ParseLevel(s)
			}
		case "contributions":
			err = decodeContributions(d, &out.Contributions)
		case "complete":
			complete, err = boolToken(d)
		case "missing":
			out.Missing, err = decodeMissing(d)
		}
		if err != nil {
			return Risk{}, fmt.Errorf("%s: %w", key, err)
		}
	}
	if err := expectDelim(d, '}'); err != nil {
		return Risk{}, err
	}
	if _, err := d.Token(); err != io.EOF {
		return Risk{}, errors.New("data after the object")
	}
	for i, key := range keys {
		if seen&(1<<i) == 0 {
			return Risk{}, fmt.Errorf("no %q", key)
		}
	}

	sum := 0
	for p, c := range out.Contributions {
		if c < 0 || subScores[p]&(1<<c) == 0 {
			return Risk{}, fmt.Errorf("%s cannot score %d", Param(p), c)
		}
		if c != 0 && out.Missing.Has(Param(p)) {
			return Risk{}, fmt.Errorf("%s is missing but scores %d", Param(p), c)
		}
		sum += int(c)
	}
	if sum != out.Score {
		return Risk{}, fmt.Errorf("contributions add up to %d, not score %d", sum, out.Score)
	}
	if complete != out.Complete() {
		return Risk{}, fmt.Errorf("complete is %t but %d parameters are missing", complete, out.Missing.Len())
	}
	return out, nil
}

func decodeContributions(d *json.Decoder, c *[NumParams]int8) error {
	if err := expectDelim(d, '{'); err != nil {
		return err
	}
	var seen Set
	for d.More() {
		key, err := stringToken(d)
		if err != nil {
			return err
		}
		p, ok := ParseParam(key)
		if !ok {
			return fmt.Errorf("unknown parameter %q", key)
		}
		if seen.Has(p) {
			return fmt.Errorf("duplicate parameter %q", key)
		}
		seen = seen.With(p)
		n, err := intToken(d, 8)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		c[p] = int8(n)
	}
	if err := expectDelim(d, '}'); err != nil {
		return err
	}
	if seen != AllParams() {
		for p := range NumParams {
			if !seen.Has(p) {
				return fmt.Errorf("no %q", p.String())
			}
		}
	}
	return nil
}

func decodeMissing(d *json.Decoder) (Set, error) {
	if err := expectDelim(d, '['); err != nil {
		return 0, err
	}
	var s Set
	for d.More() {
		name, err := stringToken(d)
		if err != nil {
			return 0, err
		}
		p, ok := ParseParam(name)
		if !ok {
			return 0, fmt.Errorf("unknown parameter %q", name)
		}
		if s.Has(p) {
			return 0, fmt.Errorf("duplicate parameter %q", name)
		}
		s = s.With(p)
	}
	return s, expectDelim(d, ']')
}

func expectDelim(d *json.Decoder, want json.Delim) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	if tok != want {
		return fmt.Errorf("got %v, want %v", tok, want)
	}
	return nil
}

func stringToken(d *json.Decoder) (string, error) {
	tok, err := d.Token()
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("got %v, want a string", tok)
	}
	return s, nil
}

func boolToken(d *json.Decoder) (bool, error) {
	tok, err := d.Token()
	if err != nil {
		return false, err
	}
	v, ok := tok.(bool)
	if !ok {
		return false, fmt.Errorf("got %v, want true or false", tok)
	}
	return v, nil
}

// intToken reads an integer written without fraction or exponent.
func intToken(d *json.Decoder, bitSize int) (int64, error) {
	tok, err := d.Token()
	if err != nil {
		return 0, err
	}
	n, ok := tok.(json.Number)
	if !ok {
		return 0, fmt.Errorf("got %v, want an integer", tok)
	}
	return strconv.ParseInt(string(n), 10, bitSize)
}
