package embedded

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/vigilhq/vigil/store"
)

// TestSampleKeyFormats: keys written before the content digest was added (time, device, 0,
// seq) still read back, as do today's (with the digest after seq).
func TestSampleKeyFormats(t *testing.T) {
	s := store.Sample{Hospital: "h1", Patient: "p1", Time: time.UnixMilli(1_764_064_800_123).UTC(), Device: "mon-1", Seq: 0x0100_0000_0000_0042,
		Vitals: store.Vitals{Has: store.FieldHR, HR: 80}}
	prefix := len(samplePrefix(s.Hospital, s.Patient))
	val := appendSampleValue(nil, &s)
	current := appendSampleKey(nil, &s)
	old := current[:len(current)-8]
	for name, key := range map[string][]byte{"current": current, "before the digest": old} {
		var got store.Sample
		if err := decodeSample(prefix, key, val, &got); err != nil {
			t.Fatalf("%s key: %v", name, err)
		}
		if !got.Time.Equal(s.Time) || got.Device != s.Device || got.Seq != s.Seq || got.Vitals != s.Vitals {
			t.Errorf("%s key read back as %+v; want %+v", name, got, s)
		}
	}
	if got := binary.BigEndian.Uint64(current[len(current)-8:]); got != s.Digest() {
		t.Errorf("key ends with %x; want the digest %x", got, s.Digest())
	}
	for _, bad := range [][]byte{current[:prefix+8], current[:prefix+8+len(s.Device)+1+7]} {
		if err := decodeSample(prefix, bad, val, new(store.Sample)); err == nil {
			t.Errorf("decodeSample(truncated key %q) = nil; want an error", bad)
		}
	}
}
