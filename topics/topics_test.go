package topics_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/topics"
)

func TestValidID(t *testing.T) {
	for _, tt := range []struct {
		name, kind, id string
	}{
		{"one letter", "patient", "a"},
		{"one digit", "bed", "7"},
		{"64 characters", "device", strings.Repeat("x", 64)},
		{"dots", "bed", "icu.3.12"},
		{"dashes", "hospital", "st-marys-north"},
		{"underscores", "staff", "nurse_042"},
		{"mixed", "triage case", "A9_b.c-D"},
		{"ends with punctuation", "patient", "p7-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := topics.ValidID(tt.kind, tt.id); err != nil {
				t.Errorf("ValidID(%q, %q) = %v; want nil", tt.kind, tt.id, err)
			}
		})
	}
}

func TestValidIDRefused(t *testing.T) {
	for _, tt := range []struct {
		name, kind, id, reason string
	}{
		{"empty", "patient", "", "empty"},
		{"65 characters", "device", strings.Repeat("x", 65), "longer than 64 characters"},
		{"plus", "hospital", "h+1", "contains '+'"},
		{"hash", "hospital", "h#1", "contains '#'"},
		{"slash", "patient", "a/b", "contains '/'"},
		{"leading plus", "bed", "+", "contains '+'"},
		{"space", "staff", "ann smith", "contains ' '"},
		{"non-ASCII", "patient", "josé", "non-ASCII character"},
		{"invalid UTF-8", "patient", "p\xff", "non-ASCII character"},
		{"leading dash", "bed", "-b1", "must start with a letter or digit"},
		{"leading dot", "triage case", ".c1", "must start with a letter or digit"},
		{"leading underscore", "staff", "_s1", "must start with a letter or digit"},
		{"NUL", "device", "d\x001", `contains '\x00'`},
		{"newline", "device", "d1\n", `contains '\n'`},
		{"colon", "hospital", "h:1", "contains ':'"},
		{"65 characters with a slash", "patient", strings.Repeat("p", 64) + "/", "contains '/'"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := topics.ValidID(tt.kind, tt.id)
			if !errors.Is(err, topics.ErrInvalidID) {
				t.Fatalf("ValidID(%q, %q) = %v; want an error wrapping ErrInvalidID", tt.kind, tt.id, err)
			}
			var idErr *topics.IDError
			if !errors.As(err, &idErr) {
				t.Fatalf("ValidID(%q, %q) = %T; want *IDError", tt.kind, tt.id, err)
			}
			want := topics.IDError{Kind: tt.kind, ID: tt.id, Reason: tt.reason}
			if *idErr != want {
				t.Errorf("ValidID(%q, %q) = %+v; want %+v", tt.kind, tt.id, *idErr, want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "invalid "+tt.kind+" id ") || !strings.HasSuffix(msg, ": "+tt.reason) {
				t.Errorf("ValidID(%q, %q).Error() = %q; want it to name the %s id and end with %q", tt.kind, tt.id, msg, tt.kind, tt.reason)
			}
		})
	}
}

func TestIDErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  *topics.IDError
		want string
	}{
		{"slash", &topics.IDError{Kind: "patient", ID: "a/b", Reason: "contains '/'"}, `invalid patient id "a/b": contains '/'`},
		{"no kind", &topics.IDError{ID: "", Reason: "empty"}, `invalid id "": empty`},
		{"two-word kind", &topics.IDError{Kind: "triage case", ID: "-c", Reason: "must start with a letter or digit"},
			`invalid triage case id "-c": must start with a letter or digit`},
		{"long ID is cut", &topics.IDError{Kind: "bed", ID: strings.Repeat("b", 1000), Reason: "longer than 64 characters"},
			`invalid bed id "` + strings.Repeat("b", 64) + `"...: longer than 64 characters`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("%+v.Error() = %q; want %q", *tt.err, got, tt.want)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for _, tt := range []struct {
		kind topics.Kind
		want string
	}{
		{topics.KindUnknown, "unknown"},
		{topics.KindVitals, "vitals"},
		{topics.KindRisk, "risk"},
		{topics.KindPatientAlerts, "patient_alerts"},
		{topics.KindHospitalAlerts, "hospital_alerts"},
		{topics.KindTriageQueue, "triage_queue"},
		{topics.KindTriageCase, "triage_case"},
		{topics.KindBed, "bed"},
		{topics.KindStaff, "staff"},
		{topics.KindDeviceStatus, "device_status"},
		{topics.KindDeviceErrors, "device_errors"},
		{topics.Kind(200), "Kind(200)"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.kind.String(); got != tt.want {
				t.Errorf("Kind(%d).String() = %q; want %q", uint8(tt.kind), got, tt.want)
			}
		})
	}
}

// topicCases is every kind of topic, built by its builder, with the Topic
// Parse must return for it.
var topicCases = []struct {
	name  string
	topic string
	want  topics.Topic
}{
	{"vitals", topics.Vitals("h1", "p7"), topics.Topic{Kind: topics.KindVitals, Hospital: "h1", Patient: "p7"}},
	{"risk", topics.Risk("h1", "p7"), topics.Topic{Kind: topics.KindRisk, Hospital: "h1", Patient: "p7"}},
	{"patient alerts", topics.PatientAlerts("h1", "p7"), topics.Topic{Kind: topics.KindPatientAlerts, Hospital: "h1", Patient: "p7"}},
	{"hospital alerts", topics.HospitalAlerts("h1"), topics.Topic{Kind: topics.KindHospitalAlerts, Hospital: "h1"}},
	{"triage queue", topics.TriageQueue("h1"), topics.Topic{Kind: topics.KindTriageQueue, Hospital: "h1"}},
	{"triage case", topics.TriageCase("h1", "c-9"), topics.Topic{Kind: topics.KindTriageCase, Hospital: "h1", Case: "c-9"}},
	{"bed", topics.Bed("h1", "icu.3"), topics.Topic{Kind: topics.KindBed, Hospital: "h1", Bed: "icu.3"}},
	{"staff", topics.Staff("h1", "s_2"), topics.Topic{Kind: topics.KindStaff, Hospital: "h1", Staff: "s_2"}},
	{"device status", topics.DeviceStatus("h1", "mon-4"), topics.Topic{Kind: topics.KindDeviceStatus, Hospital: "h1", Device: "mon-4"}},
	{"device errors", topics.DeviceErrors("h1", "mon-4"), topics.Topic{Kind: topics.KindDeviceErrors, Hospital: "h1", Device: "mon-4"}},
	// IDs that look like level names are still IDs.
	{"ID named like a level", topics.Vitals("patient", "vitals"), topics.Topic{Kind: topics.KindVitals, Hospital: "patient", Patient: "vitals"}},
	{"longest IDs", topics.Bed(strings.Repeat("h", 64), strings.Repeat("b", 64)),
		topics.Topic{Kind: topics.KindBed, Hospital: strings.Repeat("h", 64), Bed: strings.Repeat("b", 64)}},
}

func TestBuilders(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{topics.Vitals("h", "p"), "hospital/h/patient/p/vitals"},
		{topics.Risk("h", "p"), "hospital/h/patient/p/risk"},
		{topics.PatientAlerts("h", "p"), "hospital/h/patient/p/alerts"},
		{topics.HospitalAlerts("h"), "hospital/h/alerts"},
		{topics.TriageQueue("h"), "hospital/h/triage/queue"},
		{topics.TriageCase("h", "c"), "hospital/h/triage/case/c"},
		{topics.Bed("h", "b"), "hospital/h/bed/b"},
		{topics.Staff("h", "s"), "hospital/h/staff/s"},
		{topics.DeviceStatus("h", "d"), "hospital/h/device/d/status"},
		{topics.DeviceErrors("h", "d"), "hospital/h/device/d/errors"},
		{topics.HospitalFilter("h"), "hospital/h/#"},
		{topics.PatientFilter("h", "p"), "hospital/h/patient/p/#"},
		{topics.DeviceFilter("h", "d"), "hospital/h/device/d/#"},
		{topics.VitalsFilter, "hospital/+/patient/+/vitals"},
		{topics.SharedVitalsFilter, "$share/vigil-ingest/hospital/+/patient/+/vitals"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q; want %q", tt.got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tt := range topicCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := topics.Parse(tt.topic)
			if err != nil || got != tt.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v, nil", tt.topic, got, err, tt.want)
			}
			if s := got.String(); s != tt.topic {
				t.Errorf("Parse(%q).String() = %q; want %q", tt.topic, s, tt.topic)
			}
		})
	}
}

func TestParseRefused(t *testing.T) {
	for _, tt := range []struct {
		name, topic string
		idKind      string // the ID named by the error; "" for a wrong shape
	}{
		{"empty", "", ""},
		{"slash only", "/", ""},
		{"hospital only", "hospital", ""},
		{"hospital and ID only", "hospital/h1", ""},
		{"wrong root", "hospitals/h1/alerts", ""},
		{"leading slash", "/hospital/h1/alerts", ""},
		{"root in capitals", "Hospital/h1/alerts", ""},
		{"unknown hospital level", "hospital/h1/alarms", ""},
		{"unknown patient leaf", "hospital/h1/patient/p1/vital", ""},
		{"unknown device leaf", "hospital/h1/device/d1/state", ""},
		{"unknown triage level", "hospital/h1/triage/list", ""},
		{"triage case without ID", "hospital/h1/triage/case", ""},
		{"unknown 5-level branch", "hospital/h1/ward/w1/beds", ""},
		{"patient without leaf", "hospital/h1/patient/p1", ""},
		{"bed without ID", "hospital/h1/bed", ""},
		{"trailing slash", "hospital/h1/alerts/", ""},
		{"trailing slash after vitals", "hospital/h1/patient/p1/vitals/", ""},
		{"too many levels", "hospital/h1/patient/p1/vitals/extra", ""},
		{"far too many levels", strings.Repeat("hospital/", 1000), ""},
		{"double slash", "hospital/h1//alerts", ""},
		{"wildcard leaf", "hospital/h1/patient/p1/#", ""},
		{"filter", topics.VitalsFilter, "hospital"},
		{"empty hospital", "hospital//alerts", "hospital"},
		{"empty patient", "hospital/h1/patient//vitals", "patient"},
		{"empty bed", "hospital/h1/bed/", "bed"},
		{"plus hospital", "hospital/+/alerts", "hospital"},
		{"hash patient", "hospital/h1/patient/#/risk", "patient"},
		{"plus device", "hospital/h1/device/+/status", "device"},
		{"plus case", "hospital/h1/triage/case/+", "triage case"},
		{"space in staff", "hospital/h1/staff/ann smith", "staff"},
		{"non-ASCII bed", "hospital/h1/bed/lit-é", "bed"},
		{"leading dash", "hospital/-h1/alerts", "hospital"},
		{"NUL", "hospital/h1/patient/p\x001/vitals", "patient"},
		{"long ID", topics.Risk("h1", strings.Repeat("p", 65)), "patient"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := topics.Parse(tt.topic)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, nil; want an error", tt.topic, got)
			}
			if got != (topics.Topic{}) {
				t.Errorf("Parse(%q) = %+v, %v; want the zero Topic with the error", tt.topic, got, err)
			}
			if !errors.Is(err, topics.ErrInvalidTopic) {
				t.Errorf("Parse(%q) = %v; want an error wrapping ErrInvalidTopic", tt.topic, err)
			}
			var idErr *topics.IDError
			switch {
			case tt.idKind == "" && errors.Is(err, topics.ErrInvalidID):
				t.Errorf("Parse(%q) = %v; want a shape error, not ErrInvalidID", tt.topic, err)
			case tt.idKind != "" && !errors.As(err, &idErr):
				t.Errorf("Parse(%q) = %v; want an error wrapping *IDError", tt.topic, err)
			case tt.idKind != "" && idErr.Kind != tt.idKind:
				t.Errorf("Parse(%q) = %v; want it to name the %s id", tt.topic, err, tt.idKind)
			}
			if len(err.Error()) > 200 {
				t.Errorf("Parse(%q): error message is %d bytes long; want it cut", tt.topic, len(err.Error()))
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		topic, want string
	}{
		{"hospital/h1/alarms", `invalid topic "hospital/h1/alarms": unknown level "alarms"`},
		{"hospital/h1/patient/p1/vital", `invalid topic "hospital/h1/patient/p1/vital": unknown level "vital"`},
		{"hospital/h1/patient/p1", `invalid topic "hospital/h1/patient/p1": unknown topic shape`},
		{"ward/h1/alerts", `invalid topic "ward/h1/alerts": does not start with "hospital/"`},
		{"hospital/a b/alerts", `invalid topic "hospital/a b/alerts": invalid hospital id "a b": contains ' '`},
	} {
		t.Run(tt.topic, func(t *testing.T) {
			_, err := topics.Parse(tt.topic)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse(%q) error = %v; want %q", tt.topic, err, tt.want)
			}
		})
	}
}

func TestTopicStringUnknown(t *testing.T) {
	if got := (topics.Topic{}).String(); got != "" {
		t.Errorf("Topic{}.String() = %q; want %q", got, "")
	}
	if got := (topics.Topic{Kind: topics.Kind(99), Hospital: "h1"}).String(); got != "" {
		t.Errorf("Topic{Kind: 99}.String() = %q; want %q", got, "")
	}
}

func TestAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are not checked in -short mode")
	}
	vitals := topics.Vitals("h1", "p7")
	for _, tt := range []struct {
		name string
		fn   func()
	}{
		{"Parse", func() {
			if _, err := topics.Parse(vitals); err != nil {
				t.Fatal(err)
			}
		}},
		{"ValidID", func() {
			if err := topics.ValidID("patient", "p7"); err != nil {
				t.Fatal(err)
			}
		}},
		{"Within", func() {
			if !topics.Within("hospital/h1/patient/+/risk", "hospital/h1/#") {
				t.Fatal("Within = false")
			}
		}},
		{"Within no", func() {
			if topics.Within("hospital/+/alerts", "hospital/h1/#") {
				t.Fatal("Within = true")
			}
		}},
		{"FilterHospital", func() {
			if _, ok := topics.FilterHospital("hospital/h1/patient/+/risk"); !ok {
				t.Fatal("FilterHospital = false")
			}
		}},
		{"Match", func() {
			if !topics.Match(topics.SharedVitalsFilter, vitals) {
				t.Fatal("Match = false")
			}
		}},
		{"ValidFilter", func() {
			if err := topics.ValidFilter(topics.SharedVitalsFilter); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
				t.Errorf("%s allocates %v times per run; want 0", tt.name, n)
			}
		})
	}
}

var (
	sinkTopic topics.Topic
	sinkErr   error
	sinkBool  bool
	sinkStr   string
)

func BenchmarkParse(b *testing.B) {
	s := topics.Vitals("st-marys", "p-000123")
	b.ReportAllocs()
	for b.Loop() {
		sinkTopic, sinkErr = topics.Parse(s)
	}
	if sinkErr != nil {
		b.Fatal(sinkErr)
	}
}

func BenchmarkValidID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkErr = topics.ValidID("patient", "p-000123")
	}
	if sinkErr != nil {
		b.Fatal(sinkErr)
	}
}

func BenchmarkVitals(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sinkStr = topics.Vitals("st-marys", "p-000123")
	}
}
