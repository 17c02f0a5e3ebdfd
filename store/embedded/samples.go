package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/vigilhq/vigil/store"
)

// Sample keys: "vit/{h}/{p}/" + time (8 bytes, big-endian, sign bit flipped so that byte order is
// time order) + device + 0x00 + sequence number (8 bytes). The same sample appended twice lands
// on the same key. Values: format byte, fields, ACVPU, O2, the float measurements present (8 bytes
// each, in Fields bit order), then the author (uvarint length + bytes).

const sampleFormat = 1

var floatFields = [...]store.Fields{store.FieldHR, store.FieldRR, store.FieldSpO2, store.FieldSBP, store.FieldTemp}

func samplePrefix(h, p string) []byte {
	return []byte("vit/" + h + "/" + p + "/")
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixMilli())^(1<<63))
}

func appendSampleKey(b []byte, s *store.Sample) []byte {
	b = append(b, "vit/"...)
	b = append(b, s.Hospital...)
	b = append(b, '/')
	b = append(b, s.Patient...)
	b = append(b, '/')
	b = appendTime(b, s.Time)
	b = append(b, s.Device...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(s.Seq))
	return binary.BigEndian.AppendUint64(b, s.Digest())
}

func appendSampleValue(b []byte, s *store.Sample) []byte {
	var o2 byte
	if s.O2 {
		o2 = 1
	}
	b = append(b, sampleFormat, byte(s.Has), s.ACVPU, o2)
	vals := [...]float64{s.HR, s.RR, s.SpO2, s.SBP, s.Temp}
	for i, f := range floatFields {
		if s.Has&f != 0 {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(vals[i]))
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.Author)))
	return append(b, s.Author...)
}

func decodeSample(prefixLen int, key, val []byte, s *store.Sample) error {
	// time (8), device, 0, seq (8), then the content digest (8; keys written before it was
	// added end at seq). Device IDs hold no 0 byte.
	rest := key[prefixLen:]
	end := -1
	if len(rest) > 8 {
		end = bytes.IndexByte(rest[8:], 0)
	}
	if end < 0 || len(rest) < 8+end+1+8 {
		return fmt.Errorf("short sample key %q", key)
	}
	ms := int64(binary.BigEndian.Uint64(rest[:8]) ^ (1 << 63))
	s.Time = time.UnixMilli(ms).UTC()
	s.Device = string(rest[8 : 8+end])
	s.Seq = int64(binary.BigEndian.Uint64(rest[8+end+1:]))
	if len(val) < 4 || val[0] != sampleFormat {
		return fmt.Errorf("sample value of unknown format at %q", key)
	}
	s.Has, s.ACVPU, s.O2 = store.Fields(val[1]), val[2], val[3] == 1
	val = val[4:]
	ptrs := [...]*float64{&s.HR, &s.RR, &s.SpO2, &s.SBP, &s.Temp}
	for i, f := range floatFields {
		if s.Has&f != 0 {
			if len(val) < 8 {
				return fmt.Errorf("short sample value at %q", key)
			}
			*ptrs[i] = math.Float64frombits(binary.LittleEndian.Uint64(val))
			val = val[8:]
		}
	}
	n, k := binary.Uvarint(val)
	if k <= 0 || uint64(len(val)-k) < n {
		return fmt.Errorf("bad author in sample at %q", key)
	}
	s.Author = string(val[k : k+int(n)])
	return nil
}

// AppendSamples writes samples in one synced batch.
func (d *DB) AppendSamples(ctx context.Context, samples []store.Sample) error {
	return d.use(func() error {
		b := d.db.NewBatch()
		defer b.Close()
		var key, val []byte
		for i := range samples {
			s := &samples[i]
			if s.Hospital == "" || s.Patient == "" {
				return fmt.Errorf("sample without hospital or patient: %w", store.ErrInvalid)
			}
			key = appendSampleKey(key[:0], s)
			val = appendSampleValue(val[:0], s)
			if err := b.Set(key, val, nil); err != nil {
				return err
			}
		}
		return b.Commit(pebble.Sync)
	})
}

// ListSamples returns a patient's samples in the query's time range, oldest first.
func (d *DB) ListSamples(ctx context.Context, q store.SampleQuery, pg store.Page) ([]store.Sample, string, error) {
	prefix := samplePrefix(q.Hospital, q.Patient)
	lower := appendTime(bytes.Clone(prefix), q.From)
	if pg.Cursor != "" {
		k, err := decodeCursor(pg.Cursor, string(prefix))
		if err != nil {
			return nil, "", err
		}
		if bytes.Compare(k, lower) > 0 {
			lower = k
		}
	}
	upper := prefixEnd(prefix)
	if !q.To.IsZero() {
		upper = appendTime(bytes.Clone(prefix), q.To)
	}
	var out []store.Sample
	var next string
	err := d.use(func() error {
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		defer it.Close()
		limit := pg.Size()
		for ok := it.First(); ok; ok = it.Next() {
			if len(out) == limit {
				next = encodeCursor(it.Key())
				break
			}
			s := store.Sample{Hospital: q.Hospital, Patient: q.Patient}
			if err := decodeSample(len(prefix), it.Key(), it.Value(), &s); err != nil {
				return err
			}
			out = append(out, s)
		}
		return it.Error()
	})
	return out, next, err
}

// DeleteSamplesBefore drops every patient's samples older than t.
func (d *DB) DeleteSamplesBefore(ctx context.Context, t time.Time) error {
	return d.deleteSamplesBefore(t)
}

func (d *DB) deleteSamplesBefore(t time.Time) error {
	return d.use(func() error {
		root := []byte("vit/")
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: root, UpperBound: prefixEnd(root)})
		if err != nil {
			return err
		}
		defer it.Close()
		b := d.db.NewBatch()
		defer b.Close()
		for ok := it.First(); ok; {
			prefix := patientPrefixOf(it.Key())
			if prefix == nil {
				return fmt.Errorf("malformed sample key %q", it.Key())
			}
			prefix = bytes.Clone(prefix)
			if err := b.DeleteRange(prefix, appendTime(bytes.Clone(prefix), t), nil); err != nil {
				return err
			}
			ok = it.SeekGE(prefixEnd(prefix))
		}
		if err := it.Error(); err != nil {
			return err
		}
		return b.Commit(pebble.Sync)
	})
}

// patientPrefixOf returns "vit/{h}/{p}/" of a sample key.
func patientPrefixOf(key []byte) []byte {
	slashes := 0
	for i, c := range key {
		if c == '/' {
			slashes++
			if slashes == 3 {
				return key[:i+1]
			}
		}
	}
	return nil
}
