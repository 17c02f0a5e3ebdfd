package topics_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigilhq/vigil/topics"
)

func TestValidFilter(t *testing.T) {
	for _, f := range []string{
		"#", "+", "a", "/", "//", "+/+", "/+", "a/+/b", "a/#", "/#", "+/#", "a//b",
		"$SYS/#", "$SYS/monitor/+", "é/+/ü", "sport/tennis/player1/#",
		topics.VitalsFilter, topics.SharedVitalsFilter, topics.HospitalFilter("h1"),
		topics.PatientFilter("h1", "p1"), topics.DeviceFilter("h1", "d1"),
		"$share/g/#", "$share/g/a/+", "$share/g//", "$SHARE/x", "$share", "$sharex/y",
		strings.Repeat("a", 65535),
	} {
		t.Run(f, func(t *testing.T) {
			if err := topics.ValidFilter(f); err != nil {
				t.Errorf("ValidFilter(%q) = %v; want nil", f, err)
			}
		})
	}
}

func TestValidFilterRefused(t *testing.T) {
	for _, tt := range []struct {
		name, filter, reason string
	}{
		{"empty", "", "empty"}, // [MQTT-4.7.3-1]
		{"too long", strings.Repeat("a", 65536), "longer than 65535 bytes"}, // [MQTT-4.7.3-3]
		{"invalid UTF-8", "a/\xff", "not valid UTF-8"},                      // [MQTT-1.5.4-1]
		{"surrogate", "a/\xed\xa0\x80", "not valid UTF-8"},                  // [MQTT-1.5.4-1]
		{"NUL", "a/\x00/b", "contains U+0000"},                              // [MQTT-4.7.3-2]
		{"hash not last", "a/#/b", "'#' must be the last level"},            // [MQTT-4.7.1-1]
		{"hash first of two", "#/a", "'#' must be the last level"},
		{"hash glued", "a#", "'#' must be alone in its level"},
		{"hash glued after slash", "a/b#", "'#' must be alone in its level"},
		{"double hash", "##", "'#' must be the last level"},
		{"hash then plus", "#+", "'#' must be the last level"},
		{"plus glued after", "a+", "'+' must be alone in its level"}, // [MQTT-4.7.1-2]
		{"plus glued before", "+a/b", "'+' must be alone in its level"},
		{"plus inside", "a/x+y/b", "'+' must be alone in its level"},
		{"double plus", "++", "'+' must be alone in its level"},
		{"share prefix only", "$share/", "empty share name"}, // [MQTT-4.8.2-1]
		{"empty share name", "$share//a", "empty share name"},
		{"no filter after share name", "$share/g", "no topic filter after the share name"}, // [MQTT-4.8.2-2]
		{"empty filter after share name", "$share/g/", "no topic filter after the share name"},
		{"plus in share name", "$share/g+/a", "share name contains a wildcard"},
		{"hash in share name", "$share/#/a", "share name contains a wildcard"},
		{"invalid shared filter", "$share/g/a/#/b", "'#' must be the last level"},
		{"NUL in share name", "$share/g\x00/a", "contains U+0000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := topics.ValidFilter(tt.filter)
			if !errors.Is(err, topics.ErrInvalidFilter) {
				t.Fatalf("ValidFilter(%q) = %v; want an error wrapping ErrInvalidFilter", tt.filter, err)
			}
			if !strings.HasSuffix(err.Error(), ": "+tt.reason) {
				t.Errorf("ValidFilter(%q) = %q; want the reason %q", tt.filter, err, tt.reason)
			}
			if len(err.Error()) > 200 {
				t.Errorf("ValidFilter(%q): error message is %d bytes long; want it cut", tt.filter, len(err.Error()))
			}
		})
	}
}

func TestMatch(t *testing.T) {
	for _, tt := range []struct {
		filter, topic string
		want          bool
	}{
		// MQTT 5.0 section 4.7.1 examples.
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true}, // '#' matches the parent level
		{"#", "sport", true},
		{"#", "/", true},
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+", "finance", true},
		// [MQTT-4.7.2-1] '$' topics and filters starting with a wildcard.
		{"#", "$SYS/broker/uptime", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"+", "$SYS", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/#", "$SYS", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"a/#", "a/$b", true}, // the rule is about the first character only
		// Literal levels are compared byte for byte.
		{"Sport", "sport", false},
		{"a/b", "a/b", true},
		{"a/b", "a/b/", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"é/+", "é/ü", true},
		// Vigil topics.
		{topics.VitalsFilter, topics.Vitals("h1", "p7"), true},
		{topics.VitalsFilter, topics.Risk("h1", "p7"), false},
		{topics.HospitalFilter("h1"), topics.TriageCase("h1", "c1"), true},
		{topics.HospitalFilter("h1"), "hospital/h1", true},
		{topics.HospitalFilter("h1"), topics.HospitalAlerts("h10"), false},
		{topics.PatientFilter("h1", "p7"), topics.PatientAlerts("h1", "p7"), true},
		{topics.PatientFilter("h1", "p7"), topics.PatientAlerts("h1", "p8"), false},
		{topics.DeviceFilter("h1", "d1"), topics.DeviceErrors("h1", "d1"), true},
		{topics.DeviceFilter("h1", "d1"), topics.DeviceErrors("h1", "d2"), false},
		// Shared subscriptions match what their filter matches.
		{topics.SharedVitalsFilter, topics.Vitals("h1", "p7"), true},
		{topics.SharedVitalsFilter, topics.Risk("h1", "p7"), false},
		{"$share/g/#", "a/b", true},
		{"$share/g/#", "$SYS/x", false},
		{"$share/g/a", "$share/g/a", false},
		// Invalid filters match nothing.
		{"sport/#/x", "sport/a/x", false},
		{"sport#", "sport#", false},
		{"a+", "a+", false},
		{"", "", false},
		{"", "a", false},
		{"a\x00", "a\x00", false},
		{"$share/g", "$share/g", false},
		{"\xff", "\xff", false},
		// Invalid topic names match nothing [MQTT-4.7.0-1], [MQTT-4.7.3-1].
		{"#", "", false},
		{"#", "a/+", false},
		{"#", "a/#", false},
		{"+/+", "a/+", false},
		{"#", "a\x00", false},
		{"#", "\xff", false},
		{"#", strings.Repeat("a", 65536), false},
		{"#", strings.Repeat("a", 65535), true},
	} {
		t.Run(tt.filter+" "+tt.topic, func(t *testing.T) {
			if got := topics.Match(tt.filter, tt.topic); got != tt.want {
				t.Errorf("Match(%q, %q) = %v; want %v", tt.filter, tt.topic, got, tt.want)
			}
		})
	}
}

func TestSplitShared(t *testing.T) {
	for _, tt := range []struct {
		f, group, filter string
		ok               bool
	}{
		{topics.SharedVitalsFilter, "vigil-ingest", topics.VitalsFilter, true},
		{"$share/g/#", "g", "#", true},
		{"$share/g//", "g", "/", true},
		{"$share/g/a/#/b", "g", "a/#/b", true}, // SplitShared does not check the filter
		{"$share/g", "", "", false},
		{"$share/g/", "", "", false},
		{"$share//a", "", "", false},
		{"$share/", "", "", false},
		{"$share", "", "", false},
		{"$share/+/a", "", "", false},
		{"$share/g#/a", "", "", false},
		{"$SHARE/g/a", "", "", false},
		{"share/g/a", "", "", false},
		{topics.VitalsFilter, "", "", false},
		{"", "", "", false},
	} {
		t.Run(tt.f, func(t *testing.T) {
			group, filter, ok := topics.SplitShared(tt.f)
			if group != tt.group || filter != tt.filter || ok != tt.ok {
				t.Errorf("SplitShared(%q) = %q, %q, %v; want %q, %q, %v", tt.f, group, filter, ok, tt.group, tt.filter, tt.ok)
			}
		})
	}
}

func TestWithin(t *testing.T) {
	h1 := topics.HospitalFilter("h1")
	d1 := topics.DeviceFilter("h1", "d1")
	for _, tt := range []struct {
		f, scope string
		want     bool
	}{
		{"hospital/h1/+/x", h1, true},
		{"hospital/+/alerts", h1, false},
		{"#", h1, false},
		{h1, h1, true},
		{"hospital/h1", h1, true}, // '#' matches the parent level
		{"hospital/h1/", h1, true},
		{"hospital/h1/+", h1, true},
		{"hospital/h1/patient/+/vitals", h1, true},
		{topics.PatientFilter("h1", "p1"), h1, true},
		{"hospital/h10/#", h1, false},
		{"hospital/h", h1, false},
		{"hospital", h1, false},
		{"hospital/#", h1, false},
		{"hospital/+", h1, false},
		{"+/h1/#", h1, false},
		{"Hospital/h1/#", h1, false},
		{d1, d1, true},
		{"hospital/h1/device/d1", d1, true},
		{"hospital/h1/device/d1/status", d1, true},
		{"hospital/h1/device/d1/+", d1, true},
		{"hospital/h1/device/d1/+/+/#", d1, true},
		{"hospital/h1/device/+/status", d1, false},
		{"hospital/h1/device/d2/#", d1, false},
		{"hospital/h1/device/#", d1, false},
		{"hospital/h1/device", d1, false},
		{"hospital/h1/#", d1, false},
		{topics.Vitals("h1", "p1"), topics.VitalsFilter, true},
		{"hospital/+/patient/+/vitals", topics.VitalsFilter, true},
		{topics.VitalsFilter, h1, false},
		{h1, topics.VitalsFilter, false},
		// Wildcards against wildcards.
		{"#", "#", true},
		{"+", "#", true},
		{"+/#", "#", true},
		{"a/b/c", "#", true},
		{"#", "+/#", true}, // every topic has at least one level
		{"+", "+/#", true},
		{"+/+", "+/#", true},
		{"#", "+", false},
		{"#", "+/+/#", false},
		{"/#", "/+/#", true}, // "/" is the shortest topic "/#" matches: "" is no topic
		{"/#", "+/+/#", true},
		{"/#", "/+", false},
		{"//#", "//+/#", false}, // "/" itself
		{"a/#", "a/+/#", false}, // "a" itself
		{"a/+/#", "a/#", true},
		{"a/#", "a/+", false},
		{"a/+", "a/#", true},
		{"a/+", "a/b", false},
		{"a", "a/+", false},
		{"a/", "a/+", true},
		{"a/b", "a", false},
		{"a", "a/b", false},
		{"+", "a", false},
		{"a", "+", true},
		{"/", "+/+", true},
		{"/", "+", false},
		// [MQTT-4.7.2-1] A scope starting with a wildcard leaves out '$' topics.
		{"$SYS/#", "#", false},
		{"$SYS/x", "+/x", false},
		{"$SYS", "+", false},
		{"$SYS/x", "$SYS/#", true},
		{"+/x", "+/#", true},
		{"a/$b", "a/+", true},
		// Invalid or shared filters are never within anything.
		{"hospital/h1/a#", h1, false},
		{"hospital/h1/#/x", h1, false},
		{"hospital/h1/x", "hospital/#/x", false},
		{"", "#", false},
		{"a", "", false},
		{"hospital/h1/\x00", h1, false},
		{"$share/g/hospital/h1/#", h1, false},
		{"hospital/h1/x", "$share/g/hospital/h1/#", false},
		{"$SHARE/g/hospital/h1/#", h1, false},
	} {
		t.Run(tt.f+" in "+tt.scope, func(t *testing.T) {
			if got := topics.Within(tt.f, tt.scope); got != tt.want {
				t.Errorf("Within(%q, %q) = %v; want %v", tt.f, tt.scope, got, tt.want)
			}
		})
	}
}

// TestWithinExhaustive checks Within against its definition over a small
// universe: all filters of up to 3 levels built from a few literals and the
// wildcards, and all topic names of up to 4 levels built from the same
// literals, one more ("c", standing for any other level) and a '$' level.
// Such a universe holds a witness for every pair of these filters where one
// is not within the other, so the check is exact, not a sample. It also
// checks Match against refMatch, a naive matcher, on the same universe.
func TestWithinExhaustive(t *testing.T) {
	literals := []string{"a", "b", "", "$a"}
	filters := combine(3, slices.Concat(literals, []string{"+"}), slices.Concat(literals, []string{"+", "#"}))
	others := slices.Concat(literals, []string{"c"})
	names := combine(4, others, others)
	matched := make([][]bool, len(filters))
	for i, f := range filters {
		matched[i] = make([]bool, len(names))
		for j, n := range names {
			got, want := topics.Match(f, n), refMatch(f, n)
			if got != want {
				t.Errorf("Match(%q, %q) = %v; want %v", f, n, got, want)
			}
			matched[i][j] = want
		}
	}
	for i, f := range filters {
		for k, scope := range filters {
			want := true
			for j := range names {
				if matched[i][j] && !matched[k][j] {
					want = false
					break
				}
			}
			if got := topics.Within(f, scope); got != want {
				t.Errorf("Within(%q, %q) = %v; want %v", f, scope, got, want)
			}
		}
	}
	t.Logf("%d filters, %d topic names", len(filters), len(names))
}

// combine returns every string of 1 to n levels whose last level is taken
// from last and the others from inner, leaving out "" (no name or filter is
// empty).
func combine(n int, inner, last []string) []string {
	var out []string
	var rec func(prefix string, depth int)
	rec = func(prefix string, depth int) {
		for _, l := range last {
			if s := prefix + l; s != "" {
				out = append(out, s)
			}
		}
		if depth+1 < n {
			for _, l := range inner {
				rec(prefix+l+"/", depth+1)
			}
		}
	}
	rec("", 0)
	return out
}

// refMatch is a naive matcher written straight from MQTT 5.0 section 4.7,
// to check Match against.
func refMatch(f, t string) bool {
	if topics.ValidFilter(f) != nil {
		return false
	}
	if t == "" || len(t) > 65535 || strings.ContainsAny(t, "+#\x00") || !utf8.ValidString(t) {
		return false
	}
	if _, inner, ok := topics.SplitShared(f); ok {
		f = inner
	}
	if t[0] == '$' && (f[0] == '+' || f[0] == '#') {
		return false
	}
	fl, tl := strings.Split(f, "/"), strings.Split(t, "/")
	for i, l := range fl {
		if l == "#" {
			return true
		}
		if i >= len(tl) || l != "+" && l != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

func TestFilterHospital(t *testing.T) {
	for _, tt := range []struct {
		f, h string
		ok   bool
	}{
		{"hospital/h1", "h1", true},
		{"hospital/h1/", "h1", true},
		{topics.HospitalFilter("h1"), "h1", true},
		{topics.PatientFilter("h1", "p1"), "h1", true},
		{topics.DeviceFilter("st-marys", "d1"), "st-marys", true},
		{"hospital/h1/patient/+/risk", "h1", true},
		{"hospital/h1/+/+/#", "h1", true},
		{topics.TriageQueue("h1"), "h1", true},
		{topics.Vitals("h1", "p1"), "h1", true},
		{"hospital/+/alerts", "", false},
		{"hospital/#", "", false},
		{"hospital/+", "", false},
		{"hospital", "", false},
		{"hospital/", "", false},
		{"hospital//alerts", "", false},
		{"#", "", false},
		{"+/h1/#", "", false},
		{"Hospital/h1/#", "", false},
		{"hospitals/h1/#", "", false},
		{"/hospital/h1/#", "", false},
		{topics.VitalsFilter, "", false},
		{topics.SharedVitalsFilter, "", false},
		{"$share/g/hospital/h1/#", "", false},
		{"$SHARE/g/hospital/h1/#", "", false},
		{"hospital/h1/a#", "", false}, // invalid filter
		{"hospital/h1/#/x", "", false},
		{"hospital/h1/x+", "", false},
		{"hospital/h1/\x00", "", false},
		{"hospital/h1/\xff", "", false},
		{"hospital/-h1/#", "", false},
		{"hospital/h 1/#", "", false},
		{"hospital/h1+/#", "", false},
		{"hospital/" + strings.Repeat("h", 65) + "/#", "", false},
	} {
		t.Run(tt.f, func(t *testing.T) {
			h, ok := topics.FilterHospital(tt.f)
			if h != tt.h || ok != tt.ok {
				t.Errorf("FilterHospital(%q) = %q, %v; want %q, %v", tt.f, h, ok, tt.h, tt.ok)
			}
			if ok && !topics.Within(tt.f, topics.HospitalFilter(h)) {
				t.Errorf("FilterHospital(%q) = %q, but Within(%q, %q) = false", tt.f, h, tt.f, topics.HospitalFilter(h))
			}
		})
	}
}

func BenchmarkWithin(b *testing.B) {
	scope := topics.HospitalFilter("st-marys")
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = topics.Within("hospital/st-marys/patient/+/risk", scope)
	}
	if !sinkBool {
		b.Fatal("Within = false")
	}
}

func BenchmarkFilterHospital(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkStr, sinkBool = topics.FilterHospital("hospital/st-marys/patient/+/risk")
	}
	if !sinkBool {
		b.Fatal("FilterHospital = false")
	}
}

func BenchmarkMatch(b *testing.B) {
	t := topics.Vitals("st-marys", "p-000123")
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = topics.Match(topics.SharedVitalsFilter, t)
	}
	if !sinkBool {
		b.Fatal("Match = false")
	}
}
