// Package topics builds and parses the Vigil topic tree.
//
// Every topic lives under one hospital (DESIGN.md section 4):
//
//	hospital/{h}/patient/{p}/vitals   Vitals(h, p)          device -> Vigil
//	hospital/{h}/patient/{p}/risk     Risk(h, p)            Vigil -> clients, retained
//	hospital/{h}/patient/{p}/alerts   PatientAlerts(h, p)   Vigil -> clients
//	hospital/{h}/alerts               HospitalAlerts(h)     Vigil -> clients
//	hospital/{h}/triage/queue         TriageQueue(h)        Vigil -> clients, retained
//	hospital/{h}/triage/case/{c}      TriageCase(h, c)      Vigil -> clients, retained
//	hospital/{h}/bed/{b}              Bed(h, b)             Vigil -> clients, retained
//	hospital/{h}/staff/{s}            Staff(h, s)           Vigil -> clients, retained
//	hospital/{h}/device/{d}/status    DeviceStatus(h, d)    Vigil -> clients, retained
//	hospital/{h}/device/{d}/errors    DeviceErrors(h, d)    Vigil -> device
//
// IDs (hospital, patient, device, bed, staff, triage case) match
// ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$; see [ValidID]. The builders do not
// validate: callers check IDs once, at the edge (REST, provisioning), with
// ValidID. [Parse] validates everything it returns.
//
// The rooms of the earlier Socket.IO design map onto topics and filters:
//
//	room            MQTT                                        helper
//	patient_{p}     hospital/{h}/patient/{p}/#                  PatientFilter(h, p)
//	hospital_{h}    hospital/{h}/alerts, or hospital/{h}/#      HospitalAlerts(h), HospitalFilter(h)
//	triage_{c}      hospital/{h}/triage/case/{c}                TriageCase(h, c)
//	triage_queue    hospital/{h}/triage/queue                   TriageQueue(h)
//
// The filter functions ([ValidFilter], [Match], [SplitShared], [Within],
// [FilterHospital]) follow MQTT 5.0 section 4.7 (topic names and filters) and
// 4.8.2 (shared subscriptions); comments cite the normative clause they
// implement. They run per MQTT packet, so they use no regexp and allocate
// nothing when the answer is yes or no; only error values allocate.
package topics

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxIDLen is the longest ID, in bytes (IDs are ASCII, so also characters).
const MaxIDLen = 64

var (
	// ErrInvalidID is wrapped by every *IDError.
	ErrInvalidID = errors.New("invalid id")
	// ErrInvalidTopic is wrapped by every error Parse returns.
	ErrInvalidTopic = errors.New("invalid topic")
	// ErrInvalidFilter is wrapped by every error ValidFilter returns.
	ErrInvalidFilter = errors.New("invalid topic filter")
)

// IDError says which ID is wrong and why.
type IDError struct {
	Kind   string // what the ID names: "hospital", "patient", "device", "bed", "staff", "triage case"
	ID     string // the ID as given
	Reason string // e.g. "empty", "contains '/'"
}

// Error reads like `invalid patient id "a/b": contains '/'`.
func (e *IDError) Error() string {
	prefix := "invalid id "
	if e.Kind != "" {
		prefix = "invalid " + e.Kind + " id "
	}
	return prefix + quote(e.ID) + ": " + e.Reason
}

// Unwrap returns ErrInvalidID.
func (e *IDError) Unwrap() error { return ErrInvalidID }

// ValidID reports, as an *IDError naming kind, why id is not a valid ID, or
// nil when it matches ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$. kind names the ID
// in the message: "hospital", "patient", "device", "bed", "staff" or
// "triage case".
func ValidID(kind, id string) error {
	if validID(id) {
		return nil
	}
	return &IDError{Kind: kind, ID: id, Reason: idReason(id)}
}

// idByte[c] is true for the bytes an ID may contain.
var idByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['_'], t['.'], t['-'] = true, true, true
	return t
}()

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// validID is the allocation-free check behind ValidID, Parse and
// FilterHospital.
func validID(id string) bool {
	if id == "" || len(id) > MaxIDLen || !isAlnum(id[0]) {
		return false
	}
	for i := 1; i < len(id); i++ {
		if !idByte[id[i]] {
			return false
		}
	}
	return true
}

// idReason explains why validID(id) is false. The first bad character wins
// over the length, and both over the first-character rule, so that "a/b" and
// "+x" name the character rather than a rule it happens to break as well.
func idReason(id string) string {
	if id == "" {
		return "empty"
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case idByte[c]:
		case c == '+':
			return "contains '+'"
		case c == '#':
			return "contains '#'"
		case c == '/':
			return "contains '/'"
		case c >= utf8.RuneSelf:
			return "non-ASCII character"
		default:
			return fmt.Sprintf("contains %q", rune(c))
		}
	}
	if len(id) > MaxIDLen {
		return "longer than " + strconv.Itoa(MaxIDLen) + " characters"
	}
	if !isAlnum(id[0]) {
		return "must start with a letter or digit"
	}
	return "" // unreachable when !validID(id)
}

// maxQuoted bounds how much of an ID, topic or filter an error message
// repeats: they can be up to 64 KiB long and end up in logs.
const maxQuoted = 64

// quote quotes s for an error message, cut to about 70 characters.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strconv.Quote(s[:n]) + "..."
}

// Kind is the kind of a Vigil topic.
type Kind uint8

// The kinds of topic, one per row of the topic tree.
const (
	KindUnknown Kind = iota
	KindVitals
	KindRisk
	KindPatientAlerts
	KindHospitalAlerts
	KindTriageQueue
	KindTriageCase
	KindBed
	KindStaff
	KindDeviceStatus
	KindDeviceErrors
)

var kindNames = [...]string{
	KindUnknown:        "unknown",
	KindVitals:         "vitals",
	KindRisk:           "risk",
	KindPatientAlerts:  "patient_alerts",
	KindHospitalAlerts: "hospital_alerts",
	KindTriageQueue:    "triage_queue",
	KindTriageCase:     "triage_case",
	KindBed:            "bed",
	KindStaff:          "staff",
	KindDeviceStatus:   "device_status",
	KindDeviceErrors:   "device_errors",
}

// String returns the kind's snake_case name, e.g. "patient_alerts".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Topic is a parsed Vigil topic. Only the fields its Kind uses are set;
// Hospital is set for every kind.
type Topic struct {
	Kind     Kind
	Hospital string
	Patient  string // KindVitals, KindRisk, KindPatientAlerts
	Device   string // KindDeviceStatus, KindDeviceErrors
	Bed      string // KindBed
	Staff    string // KindStaff
	Case     string // KindTriageCase
}

// String builds the topic back; Parse(s).String() == s for every topic
// Parse accepts. It returns "" for KindUnknown (the zero Topic).
func (t Topic) String() string {
	switch t.Kind {
	case KindVitals:
		return Vitals(t.Hospital, t.Patient)
	case KindRisk:
		return Risk(t.Hospital, t.Patient)
	case KindPatientAlerts:
		return PatientAlerts(t.Hospital, t.Patient)
	case KindHospitalAlerts:
		return HospitalAlerts(t.Hospital)
	case KindTriageQueue:
		return TriageQueue(t.Hospital)
	case KindTriageCase:
		return TriageCase(t.Hospital, t.Case)
	case KindBed:
		return Bed(t.Hospital, t.Bed)
	case KindStaff:
		return Staff(t.Hospital, t.Staff)
	case KindDeviceStatus:
		return DeviceStatus(t.Hospital, t.Device)
	case KindDeviceErrors:
		return DeviceErrors(t.Hospital, t.Device)
	}
	return ""
}

// maxLevels is the depth of the deepest Vigil topic.
const maxLevels = 5

// Parse parses a Vigil topic name. The strings of the returned Topic are
// substrings of s: a valid topic costs no allocation.
//
// Every error wraps ErrInvalidTopic. When the shape is right but an ID is
// not (empty level, wildcard, bad character), the error also wraps the
// *IDError, so errors.Is(err, ErrInvalidID) tells the two cases apart.
func Parse(s string) (Topic, error) {
	var lv [maxLevels]string
	n := 0
	for rest := s; ; {
		if n == maxLevels {
			return Topic{}, topicError(s, "too many levels")
		}
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			lv[n] = rest
			n++
			break
		}
		lv[n] = rest[:i]
		n++
		rest = rest[i+1:]
	}
	if lv[0] != "hospital" {
		return Topic{}, topicError(s, `does not start with "hospital/"`)
	}
	if n < 3 {
		return Topic{}, topicError(s, "too few levels")
	}

	t := Topic{Hospital: lv[1]}
	idKind, id := "", "" // the second ID, if the kind has one
	bad := -1            // the level that did not fit, when one level is to blame
	switch n {
	case 3:
		if bad = 2; lv[2] == "alerts" {
			t.Kind = KindHospitalAlerts
		}
	case 4:
		switch lv[2] {
		case "bed":
			t.Kind, t.Bed, idKind, id = KindBed, lv[3], "bed", lv[3]
		case "staff":
			t.Kind, t.Staff, idKind, id = KindStaff, lv[3], "staff", lv[3]
		case "triage":
			if bad = 3; lv[3] == "queue" {
				t.Kind = KindTriageQueue
			}
		}
	case 5:
		switch lv[2] {
		case "patient":
			bad = 4
			switch lv[4] {
			case "vitals":
				t.Kind = KindVitals
			case "risk":
				t.Kind = KindRisk
			case "alerts":
				t.Kind = KindPatientAlerts
			}
			t.Patient, idKind, id = lv[3], "patient", lv[3]
		case "device":
			bad = 4
			switch lv[4] {
			case "status":
				t.Kind = KindDeviceStatus
			case "errors":
				t.Kind = KindDeviceErrors
			}
			t.Device, idKind, id = lv[3], "device", lv[3]
		case "triage":
			if bad = 3; lv[3] == "case" {
				t.Kind = KindTriageCase
			}
			t.Case, idKind, id = lv[4], "triage case", lv[4]
		}
	}
	if t.Kind == KindUnknown {
		if bad < 0 {
			return Topic{}, topicError(s, "unknown topic shape")
		}
		return Topic{}, topicError(s, "unknown level "+quote(lv[bad]))
	}
	if !validID(t.Hospital) {
		return Topic{}, topicIDError(s, "hospital", t.Hospital)
	}
	if idKind != "" && !validID(id) {
		return Topic{}, topicIDError(s, idKind, id)
	}
	return t, nil
}

func topicError(s, reason string) error {
	return fmt.Errorf("%w %s: %s", ErrInvalidTopic, quote(s), reason)
}

func topicIDError(s, kind, id string) error {
	return fmt.Errorf("%w %s: %w", ErrInvalidTopic, quote(s), &IDError{Kind: kind, ID: id, Reason: idReason(id)})
}

// Vitals is hospital/{h}/patient/{p}/vitals, where a monitor publishes samples.
func Vitals(h, p string) string { return "hospital/" + h + "/patient/" + p + "/vitals" }

// Risk is hospital/{h}/patient/{p}/risk (risk_updated, retained).
func Risk(h, p string) string { return "hospital/" + h + "/patient/" + p + "/risk" }

// PatientAlerts is hospital/{h}/patient/{p}/alerts (patient_alert).
func PatientAlerts(h, p string) string { return "hospital/" + h + "/patient/" + p + "/alerts" }

// HospitalAlerts is hospital/{h}/alerts (hospital_alert and escalated
// patient_alert).
func HospitalAlerts(h string) string { return "hospital/" + h + "/alerts" }

// TriageQueue is hospital/{h}/triage/queue (triage_updated snapshot, retained).
func TriageQueue(h string) string { return "hospital/" + h + "/triage/queue" }

// TriageCase is hospital/{h}/triage/case/{c} (triage_updated, retained).
func TriageCase(h, c string) string { return "hospital/" + h + "/triage/case/" + c }

// Bed is hospital/{h}/bed/{b} (bed_status_changed, retained).
func Bed(h, b string) string { return "hospital/" + h + "/bed/" + b }

// Staff is hospital/{h}/staff/{s} (staff_availability_changed, retained).
func Staff(h, s string) string { return "hospital/" + h + "/staff/" + s }

// DeviceStatus is hospital/{h}/device/{d}/status (device_status, retained).
func DeviceStatus(h, d string) string { return "hospital/" + h + "/device/" + d + "/status" }

// DeviceErrors is hospital/{h}/device/{d}/errors (sample_rejected, to the
// device).
func DeviceErrors(h, d string) string { return "hospital/" + h + "/device/" + d + "/errors" }
