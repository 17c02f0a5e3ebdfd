package ingest

import (
	"regexp"
	"sync"
	"testing"
	"time"
)

// crockfordID is 26 characters of Crockford's base32 (no I, L, O or U).
var crockfordID = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

// idMillis decodes the 48-bit millisecond time of an ID (its first 10 characters).
func idMillis(t *testing.T, id string) int64 {
	t.Helper()
	var ms int64
	for _, c := range id[:10] {
		i := -1
		for j := range len(crockford) {
			if rune(crockford[j]) == c {
				i = j
			}
		}
		if i < 0 {
			t.Fatalf("ID %q: %q is not Crockford base32", id, c)
		}
		ms = ms<<5 | int64(i)
	}
	return ms
}

func TestIDs(t *testing.T) {
	repeat := func(tm time.Time, n int) []time.Time {
		out := make([]time.Time, n)
		for i := range out {
			out[i] = tm
		}
		return out
	}
	tests := []struct {
		name  string
		times []time.Time
	}{
		{"one millisecond", repeat(t0, 5000)},
		{"clock forward", []time.Time{t0, t0.Add(time.Millisecond), t0.Add(time.Second), t0.Add(time.Hour), t0.Add(365 * 24 * time.Hour)}},
		{"within a millisecond", []time.Time{t0, t0.Add(100 * time.Microsecond), t0.Add(999 * time.Microsecond), t0.Add(time.Millisecond)}},
		{"clock backwards", []time.Time{t0.Add(time.Hour), t0, t0.Add(-time.Hour), t0.Add(30 * time.Minute), t0.Add(time.Hour), t0.Add(time.Hour + time.Millisecond)}},
		{"far past and future", []time.Time{time.Unix(0, 0), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g idGen
			prev := ""
			var latest int64
			for i, tm := range tt.times {
				id := g.next(tm)
				if !crockfordID.MatchString(id) {
					t.Fatalf("next(%v) = %q; want 26 characters of Crockford base32", tm, id)
				}
				if id <= prev {
					t.Fatalf("next(%v) = %q after %q (call %d); want strictly greater", tm, id, prev, i)
				}
				latest = max(latest, tm.UnixMilli())
				if ms := idMillis(t, id); ms != latest {
					t.Errorf("next(%v) = %q holds time %d; want %d (the latest time seen)", tm, id, ms, latest)
				}
				prev = id
			}
		})
	}
}

func TestIDsConcurrent(t *testing.T) {
	var g idGen
	const workers, each = 4, 2000
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				ids[w] = append(ids[w], g.next(t0))
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for w, list := range ids {
		for i, id := range list {
			if seen[id] {
				t.Fatalf("ID %q generated twice", id)
			}
			seen[id] = true
			if i > 0 && id <= list[i-1] {
				t.Errorf("goroutine %d: %q after %q; want strictly greater", w, id, list[i-1])
			}
		}
	}
}

func TestEventIDsIncrease(t *testing.T) {
	// Every event the pipeline publishes carries an ID from one generator: even with the clock
	// standing still they increase.
	e := newEnv(t, nil)
	e.admit(pat, nil)
	e.mustSubmit(pat, highSample)
	e.mustSubmit(pat, normalSample)
	e.mustSubmit(pat, highSample)
	prev := ""
	evs := e.events()
	if len(evs) < 4 {
		t.Fatalf("%d events; want at least 4", len(evs))
	}
	for _, ev := range evs {
		if !crockfordID.MatchString(ev.ID) || ev.ID <= prev {
			t.Errorf("event ID %q after %q; want a greater Crockford ID", ev.ID, prev)
		}
		prev = ev.ID
	}
}
