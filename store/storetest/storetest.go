// Package storetest is the conformance suite every Vigil store backend passes: CRUD, not-found
// and conflict errors, time-range queries, cursor pagination, concurrent writers and
// reopen-after-close. Backends call Run from their own tests.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/store"
)

// Factory opens stores for the suite.
type Factory interface {
	// Open returns a fresh, empty store; the factory closes it when the test ends.
	Open(t *testing.T) store.Store
	// Reopen closes s and opens the same data again.
	Reopen(t *testing.T, s store.Store) store.Store
}

// Run runs the whole suite.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"Users", testUsers},
		{"Devices", testDevices},
		{"Patients", testPatients},
		{"Samples", testSamples},
		{"SampleRetention", testSampleRetention},
		{"Alerts", testAlerts},
		{"AlertQueries", testAlertQueries},
		{"PatientStates", testPatientStates},
		{"Triage", testTriage},
		{"BedsAndStaff", testBedsAndStaff},
		{"Broadcasts", testBroadcasts},
		{"ConcurrentWriters", testConcurrentWriters},
		{"Reopen", testReopen},
		{"BatcherDurable", testBatcherDurable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, f) })
	}
}

var ctx = context.Background()

// base is a fixed time at millisecond precision.
var base = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v; want %v", what, err, want)
	}
}

// collect pages through a list with the given page size and checks that no page is larger.
func collect[T any](t *testing.T, size int, list func(store.Page) ([]T, string, error)) []T {
	t.Helper()
	var all []T
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("pagination does not end")
		}
		items, next, err := list(store.Page{Limit: size, Cursor: cursor})
		must(t, err, "list")
		if len(items) > size {
			t.Fatalf("page of %d items; limit %d", len(items), size)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		if len(items) == 0 {
			t.Fatal("empty page with a next cursor")
		}
		cursor = next
	}
}

func testUsers(t *testing.T, f Factory) {
	s := f.Open(t)
	u := store.User{Username: "alice", PasswordHash: "$2a$10$x", Role: "nurse", Hospitals: []string{"h1", "h2"}, CreatedAt: base, UpdatedAt: base}
	must(t, s.CreateUser(ctx, u), "CreateUser")
	wantErr(t, s.CreateUser(ctx, u), store.ErrConflict, "CreateUser(existing)")

	got, err := s.GetUser(ctx, "alice")
	must(t, err, "GetUser")
	if got.Username != "alice" || got.Role != "nurse" || !slices.Equal(got.Hospitals, u.Hospitals) || got.PasswordHash != u.PasswordHash || !got.CreatedAt.Equal(base) {
		t.Fatalf("GetUser(alice) = %+v; want %+v", got, u)
	}
	_, err = s.GetUser(ctx, "bob")
	wantErr(t, err, store.ErrNotFound, "GetUser(missing)")

	u.Role = "clinician"
	must(t, s.UpdateUser(ctx, u), "UpdateUser")
	if got, _ := s.GetUser(ctx, "alice"); got.Role != "clinician" {
		t.Fatalf("after UpdateUser role = %q; want clinician", got.Role)
	}
	wantErr(t, s.UpdateUser(ctx, store.User{Username: "nobody"}), store.ErrNotFound, "UpdateUser(missing)")

	for i := range 24 {
		must(t, s.CreateUser(ctx, store.User{Username: fmt.Sprintf("user%02d", i), Role: "viewer"}), "CreateUser")
	}
	all := collect(t, 10, func(pg store.Page) ([]store.User, string, error) { return s.ListUsers(ctx, pg) })
	if len(all) != 25 {
		t.Fatalf("ListUsers returned %d users; want 25", len(all))
	}
	if !slices.IsSortedFunc(all, func(a, b store.User) int { return cmp(a.Username, b.Username) }) {
		t.Fatal("ListUsers not ordered by username")
	}

	must(t, s.DeleteUser(ctx, "alice"), "DeleteUser")
	wantErr(t, s.DeleteUser(ctx, "alice"), store.ErrNotFound, "DeleteUser(deleted)")
	_, err = s.GetUser(ctx, "alice")
	wantErr(t, err, store.ErrNotFound, "GetUser(deleted)")

	_, _, err = s.ListUsers(ctx, store.Page{Cursor: "!!not-a-cursor!!"})
	wantErr(t, err, store.ErrInvalid, "ListUsers(bad cursor)")
}

func cmp(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testDevices(t *testing.T, f Factory) {
	s := f.Open(t)
	for i := range 12 {
		h := "h1"
		if i%3 == 0 {
			h = "h10"
		}
		must(t, s.CreateDevice(ctx, store.Device{ID: fmt.Sprintf("mon-%02d", i), Hospital: h, SecretHash: []byte{1, 2, 3, byte(i)}, CreatedAt: base, UpdatedAt: base}), "CreateDevice")
	}
	wantErr(t, s.CreateDevice(ctx, store.Device{ID: "mon-01", Hospital: "h2"}), store.ErrConflict, "CreateDevice(existing ID in another hospital)")

	d, err := s.GetDevice(ctx, "mon-04")
	must(t, err, "GetDevice")
	if d.Hospital != "h1" || string(d.SecretHash) != string([]byte{1, 2, 3, 4}) || d.Patient != "" {
		t.Fatalf("GetDevice(mon-04) = %+v", d)
	}
	d.Patient = "p7"
	d.UpdatedAt = base.Add(time.Minute)
	must(t, s.UpdateDevice(ctx, d), "UpdateDevice")
	if got, _ := s.GetDevice(ctx, "mon-04"); got.Patient != "p7" || !got.UpdatedAt.Equal(d.UpdatedAt) {
		t.Fatalf("after assignment GetDevice = %+v; want patient p7", got)
	}
	moved := d
	moved.Hospital = "h2"
	wantErr(t, s.UpdateDevice(ctx, moved), store.ErrInvalid, "UpdateDevice(other hospital)")
	wantErr(t, s.UpdateDevice(ctx, store.Device{ID: "ghost", Hospital: "h1"}), store.ErrNotFound, "UpdateDevice(missing)")

	h1 := collect(t, 3, func(pg store.Page) ([]store.Device, string, error) { return s.ListDevices(ctx, "h1", pg) })
	h10 := collect(t, 3, func(pg store.Page) ([]store.Device, string, error) { return s.ListDevices(ctx, "h10", pg) })
	all := collect(t, 5, func(pg store.Page) ([]store.Device, string, error) { return s.ListDevices(ctx, "", pg) })
	if len(h1) != 8 || len(h10) != 4 || len(all) != 12 {
		t.Fatalf("ListDevices: h1 %d, h10 %d, all %d; want 8, 4, 12", len(h1), len(h10), len(all))
	}
	for _, d := range h1 {
		if d.Hospital != "h1" {
			t.Fatalf("ListDevices(h1) returned %+v", d)
		}
	}
	if !slices.IsSortedFunc(h1, func(a, b store.Device) int { return cmp(a.ID, b.ID) }) {
		t.Fatal("ListDevices not ordered by ID")
	}

	must(t, s.DeleteDevice(ctx, "mon-00"), "DeleteDevice")
	wantErr(t, s.DeleteDevice(ctx, "mon-00"), store.ErrNotFound, "DeleteDevice(deleted)")
	h10 = collect(t, 10, func(pg store.Page) ([]store.Device, string, error) { return s.ListDevices(ctx, "h10", pg) })
	if len(h10) != 3 {
		t.Fatalf("ListDevices(h10) after delete = %d devices; want 3", len(h10))
	}
}

func testPatients(t *testing.T, f Factory) {
	s := f.Open(t)
	delay := 15.0
	p := store.Patient{Hospital: "h1", ID: "p1", Name: "Ada", Bed: "b1", SpO2Scale: 2, Limits: store.AlarmLimits{DelaySeconds: &delay}, AdmittedAt: base, UpdatedAt: base}
	must(t, s.CreatePatient(ctx, p), "CreatePatient")
	wantErr(t, s.CreatePatient(ctx, p), store.ErrConflict, "CreatePatient(existing)")
	// The same patient ID in another hospital is another patient.
	must(t, s.CreatePatient(ctx, store.Patient{Hospital: "h10", ID: "p1", Name: "Other", SpO2Scale: 1}), "CreatePatient(h10)")

	got, err := s.GetPatient(ctx, "h1", "p1")
	must(t, err, "GetPatient")
	if got.Name != "Ada" || got.SpO2Scale != 2 || got.Limits.DelaySeconds == nil || *got.Limits.DelaySeconds != 15 || got.Limits.HRHigh != nil {
		t.Fatalf("GetPatient(h1, p1) = %+v", got)
	}
	_, err = s.GetPatient(ctx, "h2", "p1")
	wantErr(t, err, store.ErrNotFound, "GetPatient(other hospital)")

	// Updates are versioned: p was stored with version 0 (as records stored before versions).
	hr := 130.0
	got.Limits.HRHigh = &hr
	got.Bed = "b9"
	got.Version = 1
	must(t, s.UpdatePatient(ctx, got), "UpdatePatient")
	if again, _ := s.GetPatient(ctx, "h1", "p1"); again.Bed != "b9" || again.Limits.HRHigh == nil || *again.Limits.HRHigh != 130 || again.Version != 1 {
		t.Fatalf("after UpdatePatient = %+v", again)
	}
	stale := got
	stale.Bed = "b7"
	wantErr(t, s.UpdatePatient(ctx, stale), store.ErrConflict, "UpdatePatient(stale version)")
	got.Bed, got.Version = "b8", 2
	must(t, s.UpdatePatient(ctx, got), "UpdatePatient(version 2)")
	if again, _ := s.GetPatient(ctx, "h1", "p1"); again.Bed != "b8" || again.Version != 2 {
		t.Fatalf("after the second UpdatePatient = %+v; want bed b8, version 2", again)
	}
	wantErr(t, s.UpdatePatient(ctx, store.Patient{Hospital: "h1", ID: "nobody", Version: 1}), store.ErrNotFound, "UpdatePatient(missing)")
	wantErr(t, s.UpdatePatient(ctx, store.Patient{Hospital: "h1", ID: "nobody", Version: 5}), store.ErrNotFound, "UpdatePatient(missing, version 5)")

	for i := range 7 {
		must(t, s.CreatePatient(ctx, store.Patient{Hospital: "h1", ID: fmt.Sprintf("q%d", i), SpO2Scale: 1}), "CreatePatient")
	}
	h1 := collect(t, 3, func(pg store.Page) ([]store.Patient, string, error) { return s.ListPatients(ctx, "h1", pg) })
	all := collect(t, 100, func(pg store.Page) ([]store.Patient, string, error) { return s.ListPatients(ctx, "", pg) })
	if len(h1) != 8 || len(all) != 9 {
		t.Fatalf("ListPatients: h1 %d, all %d; want 8, 9", len(h1), len(all))
	}
	must(t, s.DeletePatient(ctx, "h1", "p1"), "DeletePatient")
	wantErr(t, s.DeletePatient(ctx, "h1", "p1"), store.ErrNotFound, "DeletePatient(deleted)")
	if _, err := s.GetPatient(ctx, "h10", "p1"); err != nil {
		t.Fatalf("deleting h1/p1 touched h10/p1: %v", err)
	}
}

func sample(h, p string, at time.Time, seq int64, hr float64) store.Sample {
	return store.Sample{Hospital: h, Patient: p, Time: at, Device: "mon-1", Seq: seq,
		Vitals: store.Vitals{Has: store.FieldHR | store.FieldSpO2, HR: hr, SpO2: 97}}
}

func testSamples(t *testing.T, f Factory) {
	s := f.Open(t)
	full := store.Sample{Hospital: "h1", Patient: "p1", Time: base.Add(-time.Hour), Device: "mon-9", Seq: 1 << 40,
		Vitals: store.Vitals{Has: store.FieldHR | store.FieldRR | store.FieldSpO2 | store.FieldSBP | store.FieldTemp | store.FieldO2 | store.FieldACVPU,
			HR: 88.5, RR: 18, SpO2: 96, SBP: 121, Temp: 37.2, O2: true, ACVPU: 'V'}}
	manual := store.Sample{Hospital: "h1", Patient: "p1", Time: base.Add(-30 * time.Minute), Author: "nurse.jo",
		Vitals: store.Vitals{Has: store.FieldTemp | store.FieldACVPU, Temp: 38.4, ACVPU: 'A'}}
	var batch []store.Sample
	for i := range 50 {
		batch = append(batch, sample("h1", "p1", base.Add(time.Duration(i)*time.Second), int64(i+1), float64(60+i)))
		batch = append(batch, sample("h1", "p10", base.Add(time.Duration(i)*time.Second), int64(i+1), 100))
	}
	must(t, s.AppendSamples(ctx, append([]store.Sample{full, manual}, batch...)), "AppendSamples")
	// A redelivered sample is stored once.
	must(t, s.AppendSamples(ctx, batch[:10]), "AppendSamples(again)")

	got := collect(t, 7, func(pg store.Page) ([]store.Sample, string, error) {
		return s.ListSamples(ctx, store.SampleQuery{Hospital: "h1", Patient: "p1"}, pg)
	})
	if len(got) != 52 {
		t.Fatalf("ListSamples(h1/p1) = %d samples; want 52", len(got))
	}
	if !slices.IsSortedFunc(got, func(a, b store.Sample) int { return a.Time.Compare(b.Time) }) {
		t.Fatal("ListSamples not oldest first")
	}
	if g := got[0]; !g.Time.Equal(full.Time) || g.Vitals != full.Vitals || g.Device != "mon-9" || g.Seq != full.Seq || g.Hospital != "h1" || g.Patient != "p1" {
		t.Fatalf("full sample read back as %+v; want %+v", g, full)
	}
	if g := got[1]; g.Author != "nurse.jo" || g.Device != "" || g.Vitals != manual.Vitals {
		t.Fatalf("manual observation read back as %+v; want %+v", g, manual)
	}

	// [From, To) bounds.
	ranged := collect(t, 100, func(pg store.Page) ([]store.Sample, string, error) {
		return s.ListSamples(ctx, store.SampleQuery{Hospital: "h1", Patient: "p1", From: base.Add(10 * time.Second), To: base.Add(20 * time.Second)}, pg)
	})
	if len(ranged) != 10 || !ranged[0].Time.Equal(base.Add(10*time.Second)) || ranged[9].HR != 79 {
		t.Fatalf("ListSamples([10s, 20s)) = %d samples, first %v; want 10 from %v", len(ranged), ranged[0].Time, base.Add(10*time.Second))
	}
	// Different samples sharing time, device and seq are all kept (charting for the same
	// instant, a device without seq); repeating one of them stores nothing new.
	at := base.Add(time.Hour)
	same := []store.Sample{
		{Hospital: "h1", Patient: "p3", Time: at, Author: "nurse.jo", Vitals: store.Vitals{Has: store.FieldTemp, Temp: 38.5}},
		{Hospital: "h1", Patient: "p3", Time: at, Author: "nurse.jo", Vitals: store.Vitals{Has: store.FieldACVPU, ACVPU: 'V'}},
		{Hospital: "h1", Patient: "p3", Time: at, Author: "dr.kim", Vitals: store.Vitals{Has: store.FieldTemp, Temp: 38.5}},
		{Hospital: "h1", Patient: "p3", Time: at, Device: "mon-1", Vitals: store.Vitals{Has: store.FieldHR, HR: 80}},
		{Hospital: "h1", Patient: "p3", Time: at, Device: "mon-1", Vitals: store.Vitals{Has: store.FieldHR, HR: 81}},
	}
	must(t, s.AppendSamples(ctx, same), "AppendSamples(same instant)")
	must(t, s.AppendSamples(ctx, same[1:2]), "AppendSamples(same instant, again)")
	kept := collect(t, 100, func(pg store.Page) ([]store.Sample, string, error) {
		return s.ListSamples(ctx, store.SampleQuery{Hospital: "h1", Patient: "p3"}, pg)
	})
	if len(kept) != len(same) {
		t.Fatalf("ListSamples(h1/p3) = %d samples of the same instant; want %d: %+v", len(kept), len(same), kept)
	}
	for _, want := range same {
		if !slices.ContainsFunc(kept, func(g store.Sample) bool {
			return g.Vitals == want.Vitals && g.Author == want.Author && g.Device == want.Device && g.Time.Equal(at)
		}) {
			t.Errorf("sample %+v not read back", want)
		}
	}

	none, next, err := s.ListSamples(ctx, store.SampleQuery{Hospital: "h1", Patient: "p2"}, store.Page{})
	if err != nil || len(none) != 0 || next != "" {
		t.Fatalf("ListSamples(unknown patient) = %d, %q, %v; want 0, \"\", nil", len(none), next, err)
	}
}

func testSampleRetention(t *testing.T, f Factory) {
	s := f.Open(t)
	var batch []store.Sample
	for i := range 20 {
		batch = append(batch, sample("h1", "p1", base.Add(time.Duration(i)*time.Minute), int64(i), 70))
		batch = append(batch, sample("h2", "p2", base.Add(time.Duration(i)*time.Minute), int64(i), 70))
	}
	must(t, s.AppendSamples(ctx, batch), "AppendSamples")
	must(t, s.DeleteSamplesBefore(ctx, base.Add(15*time.Minute)), "DeleteSamplesBefore")
	for _, hp := range [][2]string{{"h1", "p1"}, {"h2", "p2"}} {
		left, _, err := s.ListSamples(ctx, store.SampleQuery{Hospital: hp[0], Patient: hp[1]}, store.Page{})
		must(t, err, "ListSamples")
		if len(left) != 5 || !left[0].Time.Equal(base.Add(15*time.Minute)) {
			t.Fatalf("after retention %s/%s keeps %d samples; want the 5 from %v", hp[0], hp[1], len(left), base.Add(15*time.Minute))
		}
	}
}

func newAlert(id, h, p, kind, priority string, at time.Time) store.Alert {
	ev := store.AlertEvent{Version: 1, Action: "raised", Actor: "vigil", At: at, Priority: priority, State: store.StateActive, Message: kind}
	return store.Alert{ID: id, Hospital: h, Patient: p, Kind: kind, Category: "physiological", Priority: priority,
		State: store.StateActive, Message: kind, RaisedAt: at, UpdatedAt: at, Version: 1,
		Risk: json.RawMessage(`{"score":7}`), History: []store.AlertEvent{ev}}
}

func testAlerts(t *testing.T, f Factory) {
	s := f.Open(t)
	a := newAlert("01A", "h1", "p1", "news2", "high", base)
	esc := base.Add(time.Minute)
	a.EscalateAt = &esc
	a.Latched = true
	must(t, s.CreateAlert(ctx, a), "CreateAlert")
	wantErr(t, s.CreateAlert(ctx, a), store.ErrConflict, "CreateAlert(existing)")
	bad := newAlert("01B", "h1", "p1", "news2", "high", base)
	bad.Version = 2
	wantErr(t, s.CreateAlert(ctx, bad), store.ErrInvalid, "CreateAlert(version 2)")

	got, err := s.GetAlert(ctx, "h1", "01A")
	must(t, err, "GetAlert")
	if got.Priority != "high" || !got.Latched || got.EscalateAt == nil || !got.EscalateAt.Equal(esc) || len(got.History) != 1 || string(got.Risk) != `{"score":7}` {
		t.Fatalf("GetAlert = %+v", got)
	}
	_, err = s.GetAlert(ctx, "h2", "01A")
	wantErr(t, err, store.ErrNotFound, "GetAlert(other hospital)")

	// Acknowledge: version 2, one more event.
	now := base.Add(30 * time.Second)
	got.State, got.AckedBy, got.AckedAt, got.Version, got.UpdatedAt = store.StateAcknowledged, "nurse.jo", &now, 2, now
	got.EscalateAt = nil
	ack := store.AlertEvent{Version: 2, Action: "acknowledged", Actor: "nurse.jo", At: now, Note: "on my way", Priority: "high", State: store.StateAcknowledged}
	must(t, s.UpdateAlert(ctx, got, ack), "UpdateAlert")
	// A second writer holding version 1 loses.
	stale := got
	stale.Version = 2
	wantErr(t, s.UpdateAlert(ctx, stale, ack), store.ErrConflict, "UpdateAlert(stale version)")
	wantErr(t, s.UpdateAlert(ctx, newAlert("nope", "h1", "p1", "x", "low", base), ack), store.ErrNotFound, "UpdateAlert(missing)")

	got, _ = s.GetAlert(ctx, "h1", "01A")
	if got.State != store.StateAcknowledged || got.AckedBy != "nurse.jo" || got.EscalateAt != nil || got.Version != 2 || len(got.History) != 2 || got.History[1].Note != "on my way" || got.History[1].Actor != "nurse.jo" {
		t.Fatalf("after ack GetAlert = %+v", got)
	}
	open, err := s.OpenAlerts(ctx, "h1", "")
	must(t, err, "OpenAlerts")
	if len(open) != 1 || open[0].ID != "01A" {
		t.Fatalf("OpenAlerts(h1) = %d alerts; want 01A", len(open))
	}

	// Resolve: it leaves the open set.
	got.State, got.ResolvedBy, got.ResolvedAt, got.Version = store.StateResolved, "dr.who", &now, 3
	must(t, s.UpdateAlert(ctx, got, store.AlertEvent{Version: 3, Action: "resolved", Actor: "dr.who", At: now, State: store.StateResolved}), "UpdateAlert(resolve)")
	open, err = s.OpenAlerts(ctx, "", "")
	must(t, err, "OpenAlerts")
	if len(open) != 0 {
		t.Fatalf("OpenAlerts after resolve = %+v; want none", open)
	}
	got, _ = s.GetAlert(ctx, "h1", "01A")
	if len(got.History) != 3 || got.History[2].Action != "resolved" || got.ResolvedBy != "dr.who" {
		t.Fatalf("history after resolve = %+v", got.History)
	}
}

func testAlertQueries(t *testing.T, f Factory) {
	s := f.Open(t)
	prios := []string{"high", "medium", "low"}
	for i := range 30 {
		h := "h1"
		if i%5 == 0 {
			h = "h2"
		}
		a := newAlert(fmt.Sprintf("A%03d", i), h, fmt.Sprintf("p%d", i%3), []string{"news2", "spo2_low"}[i%2], prios[i%3], base.Add(time.Duration(i)*time.Minute))
		must(t, s.CreateAlert(ctx, a), "CreateAlert")
		if i%4 == 0 {
			a.State, a.Version = store.StateResolved, 2
			must(t, s.UpdateAlert(ctx, a, store.AlertEvent{Version: 2, Action: "resolved", At: a.RaisedAt, State: store.StateResolved}), "UpdateAlert")
		}
	}
	list := func(q store.AlertQuery) []store.Alert {
		return collect(t, 4, func(pg store.Page) ([]store.Alert, string, error) { return s.ListAlerts(ctx, q, pg) })
	}
	all := list(store.AlertQuery{Hospital: "h1"})
	if len(all) != 24 {
		t.Fatalf("ListAlerts(h1) = %d; want 24", len(all))
	}
	if !slices.IsSortedFunc(all, func(a, b store.Alert) int { return cmp(b.ID, a.ID) }) {
		t.Fatal("ListAlerts not newest first")
	}
	count := func(pred func(i int) bool) int {
		n := 0
		for i := range 30 {
			if i%5 != 0 && pred(i) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name string
		q    store.AlertQuery
		want int
	}{
		{"open", store.AlertQuery{Hospital: "h1", States: []string{store.StateActive, store.StateAcknowledged}}, count(func(i int) bool { return i%4 != 0 })},
		{"resolved", store.AlertQuery{Hospital: "h1", States: []string{store.StateResolved}}, count(func(i int) bool { return i%4 == 0 })},
		{"high", store.AlertQuery{Hospital: "h1", Priorities: []string{"high"}}, count(func(i int) bool { return i%3 == 0 })},
		{"high or low", store.AlertQuery{Hospital: "h1", Priorities: []string{"high", "low"}}, count(func(i int) bool { return i%3 != 1 })},
		{"patient", store.AlertQuery{Hospital: "h1", Patient: "p1"}, count(func(i int) bool { return i%3 == 1 })},
		{"kind", store.AlertQuery{Hospital: "h1", Kind: "spo2_low"}, count(func(i int) bool { return i%2 == 1 })},
		{"since", store.AlertQuery{Hospital: "h1", Since: base.Add(20 * time.Minute)}, count(func(i int) bool { return i >= 20 })},
		{"combined", store.AlertQuery{Hospital: "h1", Kind: "news2", Priorities: []string{"high"}, Since: base.Add(5 * time.Minute)}, count(func(i int) bool { return i%2 == 0 && i%3 == 0 && i >= 5 })},
		{"other hospital", store.AlertQuery{Hospital: "h2"}, 6},
		{"unknown hospital", store.AlertQuery{Hospital: "h3"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := list(tt.q); len(got) != tt.want {
				t.Fatalf("ListAlerts(%+v) = %d alerts; want %d", tt.q, len(got), tt.want)
			}
		})
	}
	open, err := s.OpenAlerts(ctx, "h1", "p2")
	must(t, err, "OpenAlerts")
	if want := count(func(i int) bool { return i%4 != 0 && i%3 == 2 }); len(open) != want {
		t.Fatalf("OpenAlerts(h1, p2) = %d; want %d", len(open), want)
	}
	for _, a := range open {
		if a.Patient != "p2" || a.Hospital != "h1" || !a.Open() {
			t.Fatalf("OpenAlerts(h1, p2) returned %+v", a)
		}
	}
}

func testPatientStates(t *testing.T, f Factory) {
	s := f.Open(t)
	_, err := s.GetPatientState(ctx, "h1", "p1")
	wantErr(t, err, store.ErrNotFound, "GetPatientState(missing)")
	st := store.PatientState{Hospital: "h1", Patient: "p1", Version: 1, Data: []byte(`{"hr":88}`), UpdatedAt: base}
	must(t, s.PutPatientState(ctx, st), "PutPatientState(v1)")
	wantErr(t, s.PutPatientState(ctx, st), store.ErrConflict, "PutPatientState(v1 again)")
	st.Version, st.Data = 2, []byte(`{"hr":90}`)
	must(t, s.PutPatientState(ctx, st), "PutPatientState(v2)")
	got, err := s.GetPatientState(ctx, "h1", "p1")
	must(t, err, "GetPatientState")
	if got.Version != 2 || string(got.Data) != `{"hr":90}` {
		t.Fatalf("GetPatientState = %+v", got)
	}
	must(t, s.SavePatientStates(ctx, []store.PatientState{
		{Hospital: "h1", Patient: "p1", Version: 7, Data: []byte("a")},
		{Hospital: "h1", Patient: "p2", Version: 1, Data: []byte("b")},
	}), "SavePatientStates")
	if got, _ := s.GetPatientState(ctx, "h1", "p1"); got.Version != 7 || string(got.Data) != "a" {
		t.Fatalf("after SavePatientStates = %+v", got)
	}
	must(t, s.DeletePatientState(ctx, "h1", "p1"), "DeletePatientState")
	must(t, s.DeletePatientState(ctx, "h1", "p1"), "DeletePatientState(again)")
	_, err = s.GetPatientState(ctx, "h1", "p1")
	wantErr(t, err, store.ErrNotFound, "GetPatientState(deleted)")
}

func testTriage(t *testing.T, f Factory) {
	s := f.Open(t)
	c := store.TriageCase{Hospital: "h1", ID: "c1", Level: 2, Complaint: "chest pain", Status: "waiting", CreatedAt: base, UpdatedAt: base, Version: 1}
	must(t, s.CreateTriageCase(ctx, c), "CreateTriageCase")
	wantErr(t, s.CreateTriageCase(ctx, c), store.ErrConflict, "CreateTriageCase(existing)")
	c.Status, c.Assignee, c.Version = "assigned", "dr.who", 2
	must(t, s.UpdateTriageCase(ctx, c), "UpdateTriageCase")
	wantErr(t, s.UpdateTriageCase(ctx, c), store.ErrConflict, "UpdateTriageCase(stale)")
	wantErr(t, s.UpdateTriageCase(ctx, store.TriageCase{Hospital: "h1", ID: "c9", Version: 2}), store.ErrNotFound, "UpdateTriageCase(missing)")
	got, err := s.GetTriageCase(ctx, "h1", "c1")
	must(t, err, "GetTriageCase")
	if got.Status != "assigned" || got.Assignee != "dr.who" || got.Level != 2 {
		t.Fatalf("GetTriageCase = %+v", got)
	}
	for i := range 5 {
		must(t, s.CreateTriageCase(ctx, store.TriageCase{Hospital: "h1", ID: fmt.Sprintf("d%d", i), Level: 3, Status: "waiting", Version: 1}), "CreateTriageCase")
	}
	must(t, s.CreateTriageCase(ctx, store.TriageCase{Hospital: "h2", ID: "c1", Level: 1, Version: 1}), "CreateTriageCase(h2)")
	if all := collect(t, 2, func(pg store.Page) ([]store.TriageCase, string, error) { return s.ListTriageCases(ctx, "h1", pg) }); len(all) != 6 {
		t.Fatalf("ListTriageCases(h1) = %d; want 6", len(all))
	}
}

func testBedsAndStaff(t *testing.T, f Factory) {
	s := f.Open(t)
	must(t, s.PutBed(ctx, store.Bed{Hospital: "h1", ID: "b1", Status: "free", UpdatedAt: base}), "PutBed")
	must(t, s.PutBed(ctx, store.Bed{Hospital: "h1", ID: "b1", Status: "occupied", Patient: "p1", UpdatedAt: base}), "PutBed(replace)")
	must(t, s.PutBed(ctx, store.Bed{Hospital: "h1", ID: "b2", Status: "cleaning"}), "PutBed")
	b, err := s.GetBed(ctx, "h1", "b1")
	must(t, err, "GetBed")
	if b.Status != "occupied" || b.Patient != "p1" {
		t.Fatalf("GetBed = %+v", b)
	}
	_, err = s.GetBed(ctx, "h2", "b1")
	wantErr(t, err, store.ErrNotFound, "GetBed(other hospital)")
	if beds := collect(t, 1, func(pg store.Page) ([]store.Bed, string, error) { return s.ListBeds(ctx, "h1", pg) }); len(beds) != 2 {
		t.Fatalf("ListBeds = %d; want 2", len(beds))
	}

	must(t, s.PutStaff(ctx, store.StaffMember{Hospital: "h1", ID: "s1", Name: "Jo", Role: "nurse", Available: true, OnShift: true}), "PutStaff")
	must(t, s.PutStaff(ctx, store.StaffMember{Hospital: "h1", ID: "s1", Name: "Jo", Role: "nurse", Available: false, OnShift: true}), "PutStaff(replace)")
	st, err := s.GetStaff(ctx, "h1", "s1")
	must(t, err, "GetStaff")
	if st.Available || !st.OnShift || st.Name != "Jo" {
		t.Fatalf("GetStaff = %+v", st)
	}
	_, err = s.GetStaff(ctx, "h1", "s2")
	wantErr(t, err, store.ErrNotFound, "GetStaff(missing)")
	if all := collect(t, 10, func(pg store.Page) ([]store.StaffMember, string, error) { return s.ListStaff(ctx, "h1", pg) }); len(all) != 1 {
		t.Fatalf("ListStaff = %d; want 1", len(all))
	}
}

func testConcurrentWriters(t *testing.T, f Factory) {
	s := f.Open(t)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*3)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("p%d", w)
			for i := range each {
				if err := s.AppendSamples(ctx, []store.Sample{sample("h1", p, base.Add(time.Duration(i)*time.Second), int64(i), 70)}); err != nil {
					errs <- err
					return
				}
			}
			if err := s.CreateUser(ctx, store.User{Username: fmt.Sprintf("u%d", w), Role: "viewer"}); err != nil {
				errs <- err
			}
		}()
	}
	// Racing updates of one alert at the same version: exactly one wins.
	a := newAlert("RACE", "h1", "p1", "news2", "high", base)
	must(t, s.CreateAlert(ctx, a), "CreateAlert")
	var wins sync.WaitGroup
	won := make(chan int, writers)
	for w := range writers {
		wins.Add(1)
		go func() {
			defer wins.Done()
			b := a
			b.Version = 2
			b.Message = fmt.Sprintf("writer %d", w)
			err := s.UpdateAlert(ctx, b, store.AlertEvent{Version: 2, Action: "updated", At: base})
			switch {
			case err == nil:
				won <- w
			case !errors.Is(err, store.ErrConflict):
				errs <- err
			}
		}()
	}
	wg.Wait()
	wins.Wait()
	close(errs)
	close(won)
	for err := range errs {
		t.Fatalf("concurrent write: %v", err)
	}
	var winners []int
	for w := range won {
		winners = append(winners, w)
	}
	if len(winners) != 1 {
		t.Fatalf("%d concurrent updates at the same version succeeded; want exactly 1", len(winners))
	}
	got, _ := s.GetAlert(ctx, "h1", "RACE")
	if got.Message != fmt.Sprintf("writer %d", winners[0]) || len(got.History) != 2 {
		t.Fatalf("alert after race = %+v; want writer %d's update", got, winners[0])
	}
	for w := range writers {
		n := collect(t, 1000, func(pg store.Page) ([]store.Sample, string, error) {
			return s.ListSamples(ctx, store.SampleQuery{Hospital: "h1", Patient: fmt.Sprintf("p%d", w)}, pg)
		})
		if len(n) != each {
			t.Fatalf("writer %d: %d samples stored; want %d", w, len(n), each)
		}
	}
	if users := collect(t, 100, func(pg store.Page) ([]store.User, string, error) { return s.ListUsers(ctx, pg) }); len(users) != writers {
		t.Fatalf("%d users stored; want %d", len(users), writers)
	}
}

func testReopen(t *testing.T, f Factory) {
	s := f.Open(t)
	must(t, s.CreateUser(ctx, store.User{Username: "alice", Role: "admin"}), "CreateUser")
	must(t, s.CreateDevice(ctx, store.Device{ID: "mon-1", Hospital: "h1", Patient: "p1"}), "CreateDevice")
	must(t, s.CreatePatient(ctx, store.Patient{Hospital: "h1", ID: "p1", SpO2Scale: 1}), "CreatePatient")
	must(t, s.AppendSamples(ctx, []store.Sample{sample("h1", "p1", base, 1, 99)}), "AppendSamples")
	a := newAlert("01A", "h1", "p1", "news2", "high", base)
	must(t, s.CreateAlert(ctx, a), "CreateAlert")
	a.Version, a.State = 2, store.StateAcknowledged
	must(t, s.UpdateAlert(ctx, a, store.AlertEvent{Version: 2, Action: "acknowledged", Actor: "alice", At: base}), "UpdateAlert")
	must(t, s.PutPatientState(ctx, store.PatientState{Hospital: "h1", Patient: "p1", Version: 1, Data: []byte("x")}), "PutPatientState")
	must(t, s.CreateTriageCase(ctx, store.TriageCase{Hospital: "h1", ID: "c1", Level: 1, Version: 1}), "CreateTriageCase")
	must(t, s.PutBed(ctx, store.Bed{Hospital: "h1", ID: "b1", Status: "free"}), "PutBed")
	must(t, s.PutStaff(ctx, store.StaffMember{Hospital: "h1", ID: "s1", Role: "nurse"}), "PutStaff")

	s = f.Reopen(t, s)
	if _, err := s.GetUser(ctx, "alice"); err != nil {
		t.Fatalf("user lost across reopen: %v", err)
	}
	if d, err := s.GetDevice(ctx, "mon-1"); err != nil || d.Patient != "p1" {
		t.Fatalf("device lost across reopen: %+v, %v", d, err)
	}
	if devs, _, err := s.ListDevices(ctx, "h1", store.Page{}); err != nil || len(devs) != 1 {
		t.Fatalf("device index lost across reopen: %d, %v", len(devs), err)
	}
	if _, err := s.GetPatient(ctx, "h1", "p1"); err != nil {
		t.Fatalf("patient lost across reopen: %v", err)
	}
	if got, _, err := s.ListSamples(ctx, store.SampleQuery{Hospital: "h1", Patient: "p1"}, store.Page{}); err != nil || len(got) != 1 || got[0].HR != 99 {
		t.Fatalf("sample lost across reopen: %+v, %v", got, err)
	}
	if got, err := s.GetAlert(ctx, "h1", "01A"); err != nil || got.Version != 2 || len(got.History) != 2 {
		t.Fatalf("alert lost across reopen: %+v, %v", got, err)
	}
	if open, err := s.OpenAlerts(ctx, "h1", "p1"); err != nil || len(open) != 1 {
		t.Fatalf("open alert index lost across reopen: %d, %v", len(open), err)
	}
	if st, err := s.GetPatientState(ctx, "h1", "p1"); err != nil || string(st.Data) != "x" {
		t.Fatalf("patient state lost across reopen: %+v, %v", st, err)
	}
	if _, err := s.GetTriageCase(ctx, "h1", "c1"); err != nil {
		t.Fatalf("triage case lost across reopen: %v", err)
	}
	if _, err := s.GetBed(ctx, "h1", "b1"); err != nil {
		t.Fatalf("bed lost across reopen: %v", err)
	}
	if _, err := s.GetStaff(ctx, "h1", "s1"); err != nil {
		t.Fatalf("staff member lost across reopen: %v", err)
	}
}

// testBatcherDurable: every sample whose Append returned nil is there after a reopen.
func testBatcherDurable(t *testing.T, f Factory) {
	s := f.Open(t)
	b := store.NewBatcher(s, store.BatcherOptions{MaxBatch: 64})
	const writers, each = 16, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := b.Append(ctx, sample("h1", fmt.Sprintf("p%d", w), base.Add(time.Duration(i)*time.Millisecond), int64(i), 70)); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				acked++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// QoS 0 samples: enqueued, written by Close.
	for i := range 10 {
		must(t, b.Enqueue(sample("h1", "q0", base.Add(time.Duration(i)*time.Second), int64(i), 70)), "Enqueue")
	}
	must(t, b.Close(ctx), "Batcher.Close")
	if err := b.Append(ctx, sample("h1", "late", base, 1, 70)); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Append after Close = %v; want ErrClosed", err)
	}
	s = f.Reopen(t, s)
	total := 0
	for w := range writers {
		got := collect(t, 1000, func(pg store.Page) ([]store.Sample, string, error) {
			return s.ListSamples(ctx, store.SampleQuery{Hospital: "h1", Patient: fmt.Sprintf("p%d", w)}, pg)
		})
		total += len(got)
	}
	if total != acked || acked != writers*each {
		t.Fatalf("%d samples stored, %d acknowledged; want %d", total, acked, writers*each)
	}
	q0, _, err := s.ListSamples(ctx, store.SampleQuery{Hospital: "h1", Patient: "q0"}, store.Page{})
	if err != nil || len(q0) != 10 {
		t.Fatalf("enqueued samples stored = %d, %v; want 10", len(q0), err)
	}
}

func testBroadcasts(t *testing.T, f Factory) {
	s := f.Open(t)
	for i := range 7 {
		h := "h1"
		if i == 3 {
			h = "h10"
		}
		must(t, s.CreateBroadcast(ctx, store.Broadcast{Hospital: h, ID: fmt.Sprintf("B%03d", i), Priority: "high", Message: fmt.Sprintf("m%d", i), By: "dr.who", At: base.Add(time.Duration(i) * time.Minute)}), "CreateBroadcast")
	}
	wantErr(t, s.CreateBroadcast(ctx, store.Broadcast{Hospital: "h1", ID: "B000"}), store.ErrConflict, "CreateBroadcast(existing)")
	got := collect(t, 2, func(pg store.Page) ([]store.Broadcast, string, error) { return s.ListBroadcasts(ctx, "h1", pg) })
	if len(got) != 6 {
		t.Fatalf("ListBroadcasts(h1) = %d; want 6", len(got))
	}
	if got[0].ID != "B006" || got[5].ID != "B000" || got[0].Message != "m6" || got[0].By != "dr.who" || !got[0].At.Equal(base.Add(6*time.Minute)) {
		t.Fatalf("ListBroadcasts(h1) = %+v; want newest first", got)
	}
	if h10, _, err := s.ListBroadcasts(ctx, "h10", store.Page{}); err != nil || len(h10) != 1 {
		t.Fatalf("ListBroadcasts(h10) = %d, %v; want 1", len(h10), err)
	}
}
