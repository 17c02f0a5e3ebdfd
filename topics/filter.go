package topics

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// VitalsFilter matches the vitals topic of every patient of every hospital.
const VitalsFilter = "hospital/+/patient/+/vitals"

// SharedVitalsFilter is VitalsFilter as a shared subscription of the group
// vigil-ingest: in external-broker mode every Vigil process subscribes to it
// and the broker splits the vitals stream between them (DESIGN.md section 11).
const SharedVitalsFilter = "$share/vigil-ingest/hospital/+/patient/+/vitals"

// HospitalFilter is hospital/{h}/#: everything of hospital h.
func HospitalFilter(h string) string { return "hospital/" + h + "/#" }

// PatientFilter is hospital/{h}/patient/{p}/#: risk and alerts of patient p
// (the room patient_{p} of the earlier design), and its vitals.
func PatientFilter(h, p string) string { return "hospital/" + h + "/patient/" + p + "/#" }

// DeviceFilter is hospital/{h}/device/{d}/#, the only filter device d may
// subscribe within (DESIGN.md section 7).
func DeviceFilter(h, d string) string { return "hospital/" + h + "/device/" + d + "/#" }

// sharePrefix starts a shared subscription [MQTT-4.8.2-1]. Like every topic
// string it is case-sensitive: "$SHARE/g/x" is an ordinary filter whose
// first level is "$SHARE", and so is never Within a hospital's scope.
const sharePrefix = "$share/"

// maxTopicLen is the longest topic name or filter, in bytes: they are UTF-8
// Encoded Strings with a two-byte length [MQTT-4.7.3-3].
const maxTopicLen = 65535

// ValidFilter reports why f is not a valid MQTT 5 topic filter, or nil. A
// shared subscription ($share/{group}/{filter}) is checked as one. The error
// wraps ErrInvalidFilter.
func ValidFilter(f string) error {
	if reason := filterReason(f); reason != "" {
		return fmt.Errorf("%w %s: %s", ErrInvalidFilter, quote(f), reason)
	}
	return nil
}

// filterReason says why f is not a valid filter, or "" when it is. It does
// not allocate.
func filterReason(f string) string {
	switch {
	case f == "":
		return "empty" // [MQTT-4.7.3-1]
	case len(f) > maxTopicLen:
		return "longer than 65535 bytes" // [MQTT-4.7.3-3]
	case !utf8.ValidString(f):
		return "not valid UTF-8" // [MQTT-1.5.4-1]: well-formed, no surrogates
	}
	if rest, ok := strings.CutPrefix(f, sharePrefix); ok {
		group, filter, ok := strings.Cut(rest, "/")
		switch {
		case group == "":
			return "empty share name" // [MQTT-4.8.2-1]
		case strings.ContainsAny(group, "+#"):
			return "share name contains a wildcard" // [MQTT-4.8.2-2]
		case !ok || filter == "":
			return "no topic filter after the share name" // [MQTT-4.8.2-2]
		}
		// The share name holds no wildcard and ends at a '/', so the level
		// rules below read the filter after it exactly as they would alone.
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case 0:
			return "contains U+0000" // [MQTT-4.7.3-2], [MQTT-1.5.4-2]
		case '+':
			// [MQTT-4.7.1-2] '+' must occupy an entire level.
			if i > 0 && f[i-1] != '/' || i+1 < len(f) && f[i+1] != '/' {
				return "'+' must be alone in its level"
			}
		case '#':
			// [MQTT-4.7.1-1] '#' must be on its own or follow a '/', and be
			// the last character of the filter.
			if i > 0 && f[i-1] != '/' {
				return "'#' must be alone in its level"
			}
			if i+1 != len(f) {
				return "'#' must be the last level"
			}
		}
	}
	return ""
}

// validName reports whether t is a valid topic name.
func validName(t string) bool {
	if t == "" || len(t) > maxTopicLen { // [MQTT-4.7.3-1], [MQTT-4.7.3-3]
		return false
	}
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '+', '#': // [MQTT-4.7.0-1] no wildcard in a topic name
			return false
		case 0: // [MQTT-4.7.3-2]
			return false
		}
	}
	return utf8.ValidString(t) // [MQTT-1.5.4-1]
}

// SplitShared splits a shared subscription "$share/{group}/{filter}" into its
// share name and topic filter. ok is false, and group and filter are empty,
// when f is not of that form: no "$share/" prefix, an empty share name or one
// holding a wildcard, or nothing after it [MQTT-4.8.2-1], [MQTT-4.8.2-2].
// SplitShared does not check the filter; ValidFilter does.
func SplitShared(f string) (group, filter string, ok bool) {
	rest, ok := strings.CutPrefix(f, sharePrefix)
	if !ok {
		return "", "", false
	}
	group, filter, ok = strings.Cut(rest, "/")
	if !ok || group == "" || filter == "" || strings.ContainsAny(group, "+#") {
		return "", "", false
	}
	return group, filter, true
}

// level splits the first level off a topic name or filter.
func level(s string) (first, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// Match reports whether topic name t matches filter f (MQTT 5.0 section
// 4.7). It is false when f is not a valid filter or t not a valid topic
// name. A shared subscription matches what its filter matches
// [MQTT-4.8.2]. Match does not allocate.
func Match(f, t string) bool {
	if filterReason(f) != "" || !validName(t) {
		return false
	}
	if _, inner, ok := SplitShared(f); ok {
		f = inner
	}
	// [MQTT-4.7.2-1] A filter starting with a wildcard does not match a
	// topic name starting with '$' ($SYS and the like).
	if t[0] == '$' && (f[0] == '+' || f[0] == '#') {
		return false
	}
	for {
		fl, fr, fmore := level(f)
		if fl == "#" {
			// The filter is valid, so '#' is its last level: it matches
			// whatever is left of t, including nothing ("a/#" matches "a").
			return true
		}
		tl, tr, tmore := level(t)
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore:
			return !tmore
		case !tmore:
			// t has no level left; the rest of f matches only if it is
			// "#", which also matches the parent level [MQTT-4.7.1-1].
			return fr == "#"
		}
		f, t = fr, tr
	}
}

// validPlain reports whether f is a valid filter that is not a shared
// subscription.
func validPlain(f string) bool {
	return filterReason(f) == "" && !strings.HasPrefix(f, sharePrefix)
}

// Within reports whether every topic name matched by filter f is also matched
// by filter scope, e.g. Within("hospital/h1/+/x", HospitalFilter("h1")). The
// answer is exact (no false yes, no false no) for valid filters. It is false
// when either filter is invalid or a shared subscription: access control
// must decide about shared subscriptions explicitly. Within does not
// allocate.
func Within(f, scope string) bool {
	if !validPlain(f) || !validPlain(scope) {
		return false
	}
	// [MQTT-4.7.2-1] A scope starting with a wildcard leaves out topics
	// starting with '$', which f matches when its first level is a '$...'
	// literal (a filter starting with a wildcard leaves them out too).
	if f[0] == '$' && (scope[0] == '+' || scope[0] == '#') {
		return false
	}
	// '#' matches its parent level, except when that parent would be the
	// empty topic name, which is not a topic name [MQTT-4.7.3-1]: "#" and
	// "/#" match one or more further levels only, as "+/#" and "/+/#" do.
	noParent := f == "#" || f == "/#"
	for {
		sl, sr, smore := level(scope)
		if sl == "#" {
			// Every topic of f has matched the levels of scope so far
			// (f has had as many levels, none of them '#').
			return true
		}
		fl, fr, fmore := level(f)
		if fl == "#" {
			// f matches topics ending here (its parent level) and topics
			// with any number of further levels; only '#' in scope covers
			// both. Without the parent, "+/#" covers them too.
			return noParent && sl == "+" && smore && sr == "#"
		}
		if sl != "+" && fl != sl {
			// A '+' in f is covered only by '+' (or '#'); a literal by '+'
			// or the same literal.
			return false
		}
		switch {
		case !fmore && !smore:
			return true
		case !fmore:
			// f's topics end here; scope matches them only through a
			// final '#' matching its parent level.
			return sr == "#"
		case !smore:
			return false
		}
		f, scope = fr, sr
	}
}

// FilterHospital returns h when f is a valid filter, not a shared
// subscription, whose first two levels are literally "hospital" and a valid
// hospital ID h: everything f matches lies inside hospital h
// (hospital/{h} itself or below). Access control lets a browser of
// hospitals {h1} subscribe to f only if FilterHospital(f) returns ("h1",
// true). FilterHospital does not allocate.
func FilterHospital(f string) (h string, ok bool) {
	if !validPlain(f) {
		return "", false
	}
	rest, ok := strings.CutPrefix(f, "hospital/")
	if !ok {
		return "", false
	}
	h, _, _ = level(rest)
	if !validID(h) {
		return "", false
	}
	return h, true
}
