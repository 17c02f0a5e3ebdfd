package topics_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/topics"
)

// FuzzParse checks that Parse never panics, that every error wraps
// ErrInvalidTopic, and that whatever it accepts builds back to the same
// string and holds only valid IDs. Seeds: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, tt := range topicCases {
		f.Add(tt.topic)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := topics.Parse(s)
		if err != nil {
			if !errors.Is(err, topics.ErrInvalidTopic) {
				t.Errorf("Parse(%q) = %v; want an error wrapping ErrInvalidTopic", s, err)
			}
			if got != (topics.Topic{}) {
				t.Errorf("Parse(%q) = %+v, %v; want the zero Topic with the error", s, got, err)
			}
			return
		}
		if got.Kind == topics.KindUnknown {
			t.Errorf("Parse(%q) = %+v, nil; want a known Kind", s, got)
		}
		if back := got.String(); back != s {
			t.Errorf("Parse(%q).String() = %q; want %q", s, back, s)
		}
		for _, id := range []struct{ kind, id string }{
			{"hospital", got.Hospital}, {"patient", got.Patient}, {"device", got.Device},
			{"bed", got.Bed}, {"staff", got.Staff}, {"triage case", got.Case},
		} {
			if (id.id != "" || id.kind == "hospital") && topics.ValidID(id.kind, id.id) != nil {
				t.Errorf("Parse(%q) = %+v with %v", s, got, topics.ValidID(id.kind, id.id))
			}
		}
		if !topics.Match(topics.HospitalFilter(got.Hospital), s) {
			t.Errorf("Parse(%q) = %+v, but %q does not match it", s, got, topics.HospitalFilter(got.Hospital))
		}
	})
}

// FuzzMatch checks that Match and Within never panic, that Match agrees with
// refMatch, and that Within(f, scope) means what it says: every topic name
// matched by f is matched by scope. Besides t, the fuzzer's topic name, it
// tries a topic name built from f so that the implication is exercised
// often, not only when t happens to match f.
func FuzzMatch(f *testing.F) {
	for _, seed := range [][3]string{
		{"hospital/h1/+/x", topics.HospitalFilter("h1"), "hospital/h1/a/x"},
		{"hospital/+/alerts", topics.HospitalFilter("h1"), "hospital/h2/alerts"},
		{"#", "+/#", "a"},
		{"/#", "/+/#", "/"},
		{"$SYS/#", "#", "$SYS/x"},
		{topics.VitalsFilter, topics.SharedVitalsFilter, topics.Vitals("h1", "p1")},
		{topics.DeviceFilter("h1", "d1"), topics.DeviceFilter("h1", "d1"), topics.DeviceStatus("h1", "d1")},
		{"hospital/h1", topics.HospitalFilter("h1"), "hospital/h1"},
		{"a/+/#", "a/#", "a//"},
		{"$share/g/a/+", "a/+", "a/b"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, filter, scope, name string) {
		within := topics.Within(filter, scope)
		if within && topics.ValidFilter(filter) != nil {
			t.Errorf("Within(%q, %q) = true for an invalid filter", filter, scope)
		}
		if topics.ValidFilter(filter) == nil && !strings.HasPrefix(filter, "$share/") && !topics.Within(filter, filter) {
			t.Errorf("Within(%q, %q) = false; want true", filter, filter)
		}
		if h, ok := topics.FilterHospital(filter); ok && !topics.Within(filter, topics.HospitalFilter(h)) {
			t.Errorf("FilterHospital(%q) = %q, but Within(%q, %q) = false", filter, h, filter, topics.HospitalFilter(h))
		}
		fill, _, _ := strings.Cut(name, "/")
		for _, n := range []string{name, instantiate(filter, fill)} {
			m := topics.Match(filter, n)
			if want := refMatch(filter, n); m != want {
				t.Errorf("Match(%q, %q) = %v; want %v", filter, n, m, want)
			}
			if within && m && !topics.Match(scope, n) {
				t.Errorf("Within(%q, %q) = true and Match(%q, %q) = true, but Match(%q, %q) = false",
					filter, scope, filter, n, scope, n)
			}
		}
	})
}

// instantiate returns a topic name f matches, if f is a valid filter and
// fill a level for its wildcards that makes one: each '+' and a final '#'
// become fill. ("" is fine: it matches both.)
func instantiate(f, fill string) string {
	if _, inner, ok := topics.SplitShared(f); ok {
		f = inner
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if l == "+" || l == "#" {
			levels[i] = fill
		}
	}
	return strings.Join(levels, "/")
}
