package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/embedded"
)

func TestDischarge(t *testing.T) {
	e := newEnv(t, nil)
	w := NewWard(e.db, e.p, nil)
	if _, err := w.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: pat, Name: "A"}); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	if _, err := w.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: pat, Name: "A"}); code(err) != "conflict" {
		t.Errorf("Admit twice = %v; want a conflict", err)
	}
	e.mustSubmit(pat, `{"rr":24,"spo2":88,"hr":115,"temp":38.5}`) // NEWS2 8 and SpO2 below 90
	e.tickAt(10 * time.Second)
	news := e.mustOpen(pat, KindNEWS2)
	spo2 := e.mustOpen(pat, KindSpO2Low)
	e.snapshot()
	if _, err := e.db.GetPatientState(e.ctx(), hosp, pat); err != nil {
		t.Fatalf("GetPatientState before the discharge: %v", err)
	}
	e.events()

	e.at(20 * time.Second)
	if err := w.Discharge(e.ctx(), hosp, pat, "dr1"); err != nil {
		t.Fatalf("Discharge: %v", err)
	}
	for _, id := range []string{news.ID, spo2.ID} {
		a := e.alert(id)
		last := a.History[len(a.History)-1]
		if a.State != store.StateResolved || a.ResolvedBy != "dr1" || last.Action != ActionResolved || last.Actor != "dr1" || last.Note != "patient discharged" {
			t.Errorf("%s alert after the discharge: %s by %q, last %+v; want resolved by dr1, \"patient discharged\"", a.Kind, a.State, a.ResolvedBy, last)
		}
	}
	evs := e.events()
	if acts := alertActions(t, evs, alertsTopic); strings.Join(acts, ",") != "resolved,resolved" {
		t.Errorf("alert events %v; want two resolved", acts)
	}
	risks := onTopic(evs, riskTopic)
	if len(risks) != 1 || len(risks[0].Payload) != 0 || !risks[0].Retain {
		t.Errorf("on %s: %d messages (%+v); want one empty retained message, deleting the retained risk", riskTopic, len(risks), risks)
	}
	if _, err := e.db.GetPatientState(e.ctx(), hosp, pat); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPatientState after the discharge = %v; want not found", err)
	}
	if _, err := e.db.GetPatient(e.ctx(), hosp, pat); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPatient after the discharge = %v; want not found", err)
	}
	if _, err := e.p.View(e.ctx(), hosp, pat); code(err) != "not_found" {
		t.Errorf("View after the discharge = %v; want not_found", err)
	}
	var fe *FieldError
	if err := e.submit(pat, lowSample); !errors.As(err, &fe) {
		t.Errorf("Submit after the discharge = %v; want a refusal", err)
	}
	if err := w.Discharge(e.ctx(), hosp, pat, "dr1"); code(err) != "not_found" {
		t.Errorf("Discharge twice = %v; want not_found", err)
	}
	e.node.close() // the last snapshot must not bring the state back
	if _, err := e.db.GetPatientState(e.ctx(), hosp, pat); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPatientState after stopping = %v; want not found", err)
	}
}

func TestTriage(t *testing.T) {
	e := newEnv(t, nil)
	w := NewWard(e.db, e.p, nil)
	var generated string
	create := func(id string, level int) func() (store.TriageCase, error) {
		return func() (store.TriageCase, error) {
			c, err := w.CreateTriage(e.ctx(), store.TriageCase{Hospital: hosp, ID: id, Level: level, Complaint: "complaint " + id})
			if id == "" {
				generated = c.ID
			}
			return c, err
		}
	}
	update := func(id string, edit func(*store.TriageCase)) func() (store.TriageCase, error) {
		return func() (store.TriageCase, error) { return w.UpdateTriage(e.ctx(), hosp, id, edit) }
	}
	tests := []struct {
		name       string
		do         func() (store.TriageCase, error)
		wantStatus string
		wantQueue  string // IDs in order; "gen" is the generated one
	}{
		{"first case", create("c1", 3), TriageWaiting, "c1"},
		{"more urgent first", create("c2", 1), TriageWaiting, "c2,c1"},
		{"same level: oldest first", create("c3", 3), TriageWaiting, "c2,c1,c3"},
		{"between", create("c4", 2), TriageWaiting, "c2,c4,c1,c3"},
		{"generated ID", create("", 5), TriageWaiting, "c2,c4,c1,c3,gen"},
		{"done cases leave the queue", update("c4", func(c *store.TriageCase) { c.Status = TriageDone }), TriageDone, "c2,c1,c3,gen"},
		{"raised level: created time orders within it", update("c1", func(c *store.TriageCase) { c.Level = 1; c.Status = TriageAssessment }), TriageAssessment, "c1,c2,c3,gen"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.at(time.Duration(i) * time.Second)
			c, err := tt.do()
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if c.Status != tt.wantStatus {
				t.Errorf("case %s status %q; want %q", c.ID, c.Status, tt.wantStatus)
			}
			evs := e.events()
			if len(evs) != 2 {
				t.Fatalf("%d events; want the case and the queue", len(evs))
			}
			ce, qe := evs[0], evs[1]
			if ce.Topic != "hospital/h1/triage/case/"+c.ID || ce.Type != TypeTriageUpdated || !ce.Retain {
				t.Errorf("case event %s on %s (retain %v); want triage_updated on hospital/h1/triage/case/%s, retained", ce.Type, ce.Topic, ce.Retain, c.ID)
			}
			var got map[string]any
			if err := json.Unmarshal(ce.Data, &got); err != nil || got["id"] != c.ID || got["status"] != c.Status || got["level"] != float64(c.Level) || got["version"] != nil {
				t.Errorf("case event data %s (%v); want case %+v", ce.Data, err, c)
			}
			if qe.Topic != "hospital/h1/triage/queue" || qe.Type != TypeTriageUpdated || !qe.Retain {
				t.Errorf("queue event %s on %s (retain %v); want triage_updated on hospital/h1/triage/queue, retained", qe.Type, qe.Topic, qe.Retain)
			}
			var snap QueueSnapshot
			if err := json.Unmarshal(qe.Data, &snap); err != nil {
				t.Fatalf("queue event data %s: %v", qe.Data, err)
			}
			var ids []string
			for _, q := range snap.Queue {
				if q.ID == generated && generated != "" {
					ids = append(ids, "gen")
				} else {
					ids = append(ids, q.ID)
				}
			}
			if strings.Join(ids, ",") != tt.wantQueue {
				t.Errorf("queue = %v; want %s", ids, tt.wantQueue)
			}
		})
	}
	if !strings.HasPrefix(generated, "t-") || len(generated) != 28 {
		t.Errorf("generated triage ID %q; want t- and an event ID", generated)
	}
	if _, err := w.CreateTriage(e.ctx(), store.TriageCase{Hospital: hosp, ID: "c1", Level: 2}); code(err) != "conflict" {
		t.Errorf("CreateTriage(c1) again = %v; want a conflict", err)
	}
	if _, err := w.UpdateTriage(e.ctx(), hosp, "c9", func(*store.TriageCase) {}); code(err) != "not_found" {
		t.Errorf("UpdateTriage(c9) = %v; want not_found", err)
	}
	if c, err := e.db.GetTriageCase(e.ctx(), hosp, "c1"); err != nil || c.Level != 1 || c.Version != 2 {
		t.Errorf("stored c1 = %+v, %v; want level 1, version 2", c, err)
	}
}

func TestBedsStaffBroadcast(t *testing.T) {
	e := newEnv(t, nil)
	w := NewWard(e.db, e.p, nil)
	e.admit(pat, nil) // a bed's patient must be admitted
	e.events()
	tests := []struct {
		name    string
		do      func() error
		topic   string
		typ     string
		retain  bool
		patient string
		check   func(data json.RawMessage) bool
	}{
		{"bed", func() error {
			_, err := w.PutBed(e.ctx(), store.Bed{Hospital: hosp, ID: "b1", Status: "occupied", Patient: pat})
			return err
		}, "hospital/h1/bed/b1", TypeBedChanged, true, pat, func(d json.RawMessage) bool {
			var b store.Bed
			return json.Unmarshal(d, &b) == nil && b.ID == "b1" && b.Status == "occupied" && b.Patient == pat
		}},
		{"staff", func() error {
			_, err := w.PutStaff(e.ctx(), store.StaffMember{Hospital: hosp, ID: "s1", Name: "Sam", Role: "nurse", Available: true, OnShift: true})
			return err
		}, "hospital/h1/staff/s1", TypeStaffChanged, true, "", func(d json.RawMessage) bool {
			var s store.StaffMember
			return json.Unmarshal(d, &s) == nil && s.ID == "s1" && s.Available && s.OnShift && s.Role == "nurse"
		}},
		{"broadcast", func() error {
			w.Broadcast(e.ctx(), hosp, PriorityHigh, "code blue, ward 3", "dr1")
			return nil
		}, hospitalTopic, TypeHospitalAlert, false, "", func(d json.RawMessage) bool {
			var b Broadcast
			return json.Unmarshal(d, &b) == nil && b.Priority == PriorityHigh && b.Message == "code blue, ward 3" && b.By == "dr1"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			evs := e.events()
			if len(evs) != 1 {
				t.Fatalf("%d events; want 1", len(evs))
			}
			ev := evs[0]
			if ev.Topic != tt.topic || ev.Type != tt.typ || ev.Retain != tt.retain || ev.Hospital != hosp || ev.Patient != tt.patient {
				t.Errorf("event %s on %s (retain %v, patient %q); want %s on %s (retain %v, patient %q)", ev.Type, ev.Topic, ev.Retain, ev.Patient, tt.typ, tt.topic, tt.retain, tt.patient)
			}
			if !tt.check(ev.Data) {
				t.Errorf("event data %s; want what was stored", ev.Data)
			}
		})
	}
	if b, err := e.db.GetBed(e.ctx(), hosp, "b1"); err != nil || b.Status != "occupied" || !b.UpdatedAt.Equal(t0) {
		t.Errorf("stored bed = %+v, %v; want occupied, updated at %v", b, err, t0)
	}
	if s, err := e.db.GetStaff(e.ctx(), hosp, "s1"); err != nil || !s.Available {
		t.Errorf("stored staff = %+v, %v; want available", s, err)
	}
}

// TestBedsFollowPatients: beds and patients' records stay in step whichever side changes: a
// patient's bed is occupied by them, the bed they leave is to be cleaned, a bed cannot hold two
// patients, and a bed's patient must be admitted.
func TestBedsFollowPatients(t *testing.T) {
	e := newEnv(t, nil)
	w := NewWard(e.db, e.p, nil)
	bed := func(id string) store.Bed {
		t.Helper()
		b, err := e.db.GetBed(e.ctx(), hosp, id)
		if err != nil {
			t.Fatalf("GetBed(%s): %v", id, err)
		}
		return b
	}
	bedOf := func(p string) string {
		t.Helper()
		rec, err := e.db.GetPatient(e.ctx(), hosp, p)
		if err != nil {
			t.Fatalf("GetPatient(%s): %v", p, err)
		}
		return rec.Bed
	}
	want := func(id, status, patient string) {
		t.Helper()
		if b := bed(id); b.Status != status || b.Patient != patient {
			t.Fatalf("bed %s: %s, patient %q; want %s, patient %q", id, b.Status, b.Patient, status, patient)
		}
	}

	if _, err := w.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: "p1", Name: "A", Bed: "b1"}); err != nil {
		t.Fatalf("Admit p1 in b1: %v", err)
	}
	want("b1", BedOccupied, "p1")
	if evs := onTopic(e.events(), "hospital/h1/bed/b1"); len(evs) != 1 || evs[0].Type != TypeBedChanged {
		t.Errorf("events on b1's topic after the admission: %+v; want one bed_status_changed", evs)
	}
	if _, err := w.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: "p2", Name: "B", Bed: "b1"}); code(err) != "conflict" {
		t.Fatalf("Admit p2 in p1's bed = %v; want a conflict", err)
	}
	if _, err := e.db.GetPatient(e.ctx(), hosp, "p2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("p2 after the refused admission: %v; want not admitted", err)
	}

	// The patient's record changes: the old bed is to be cleaned, the new one is theirs.
	if _, err := w.Update(e.ctx(), hosp, "p1", func(p *store.Patient) { p.Bed = "b2" }); err != nil {
		t.Fatalf("Update p1 to b2: %v", err)
	}
	want("b1", BedCleaning, "")
	want("b2", BedOccupied, "p1")

	// The bed changes: the patient's record follows.
	if _, err := w.PutBed(e.ctx(), store.Bed{Hospital: hosp, ID: "b3", Status: BedOccupied, Patient: "p1"}); err != nil {
		t.Fatalf("PutBed b3 with p1: %v", err)
	}
	if got := bedOf("p1"); got != "b3" {
		t.Fatalf("p1's bed after PutBed b3: %q; want b3", got)
	}
	want("b2", BedCleaning, "")
	e.admit("p2", nil)
	if _, err := w.PutBed(e.ctx(), store.Bed{Hospital: hosp, ID: "b3", Status: BedOccupied, Patient: "p2"}); code(err) != "conflict" {
		t.Fatalf("PutBed b3 with p2 while p1 is in it = %v; want a conflict", err)
	}
	if _, err := w.Update(e.ctx(), hosp, "p2", func(p *store.Patient) { p.Bed = "b3" }); code(err) != "conflict" {
		t.Fatalf("Update p2 into p1's bed = %v; want a conflict", err)
	}
	var fe *FieldError
	if _, err := w.PutBed(e.ctx(), store.Bed{Hospital: hosp, ID: "b4", Status: BedOccupied, Patient: "ghost"}); !errors.As(err, &fe) || fe.Key != "patient" {
		t.Fatalf("PutBed with a patient not admitted = %v; want an invalid patient", err)
	}
	if _, err := e.db.GetBed(e.ctx(), hosp, "b4"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bed b4 after the refused change: %v; want none stored", err)
	}
	if _, err := w.PutBed(e.ctx(), store.Bed{Hospital: hosp, ID: "b3", Status: BedFree}); err != nil {
		t.Fatalf("PutBed b3 free: %v", err)
	}
	if got := bedOf("p1"); got != "" {
		t.Fatalf("p1's bed after b3 was freed: %q; want none", got)
	}

	// A bed still naming a patient who is gone (data from before beds followed patients) is free.
	if err := e.db.PutBed(e.ctx(), store.Bed{Hospital: hosp, ID: "b9", Status: BedOccupied, Patient: "ghost"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: "p3", Name: "C", Bed: "b9"}); err != nil {
		t.Fatalf("Admit p3 into a bed naming a discharged patient: %v", err)
	}
	want("b9", BedOccupied, "p3")

	// A discharge leaves the bed to be cleaned.
	if _, err := w.PutBed(e.ctx(), store.Bed{Hospital: hosp, ID: "b5", Status: BedOccupied, Patient: "p1"}); err != nil {
		t.Fatalf("PutBed b5 with p1: %v", err)
	}
	if err := w.Discharge(e.ctx(), hosp, "p1", "dr1"); err != nil {
		t.Fatalf("Discharge: %v", err)
	}
	want("b5", BedCleaning, "")
}

// failingStore is the real store with alert updates failing on demand (a store outage), and
// patient state saves refused once on demand as another process's newer save would be.
type failingStore struct {
	*embedded.DB
	fail     atomic.Bool
	conflict atomic.Bool
	lostAck  atomic.Bool // the next CreateAlert is stored but reports a failure (a timeout after the insert)
	lostUpd  atomic.Bool // the next UpdateAlert is stored but reports a failure
	// otherUpd: the next UpdateAlert meets another's change of the same version, stored first
	// (another process's), and reports a failure that says nothing of its own write.
	otherUpd atomic.Bool
	noCreate atomic.Bool // the next CreateAlert fails and stores nothing
}

func (f *failingStore) CreateAlert(ctx context.Context, a store.Alert) error {
	if f.noCreate.Swap(false) {
		return fmt.Errorf("create alert: %w", store.ErrUnavailable)
	}
	if err := f.DB.CreateAlert(ctx, a); err != nil {
		return err
	}
	if f.lostAck.Swap(false) {
		return fmt.Errorf("create alert: %w", store.ErrUnavailable)
	}
	return nil
}

func (f *failingStore) PutPatientState(ctx context.Context, st store.PatientState) error {
	if f.conflict.Swap(false) {
		return fmt.Errorf("put patient state: %w", store.ErrConflict)
	}
	return f.DB.PutPatientState(ctx, st)
}

func (f *failingStore) UpdateAlert(ctx context.Context, a store.Alert, ev store.AlertEvent) error {
	if f.fail.Load() {
		return fmt.Errorf("update alert: %w", store.ErrUnavailable)
	}
	if f.otherUpd.Swap(false) {
		other := ev
		other.Actor, other.Note = "nurse2", "by another process"
		if err := f.DB.UpdateAlert(ctx, a, other); err != nil {
			return err
		}
		return fmt.Errorf("update alert: %w", store.ErrUnavailable)
	}
	if err := f.DB.UpdateAlert(ctx, a, ev); err != nil {
		return err
	}
	if f.lostUpd.Swap(false) {
		return fmt.Errorf("update alert: %w", store.ErrUnavailable)
	}
	return nil
}

// TestDischargeStoreFails: a discharge whose open alerts cannot be resolved is refused and
// changes nothing (the alert used to stay open for good, with the patient forgotten).
func TestDischargeStoreFails(t *testing.T) {
	e := newEnv(t, nil)
	fs := startFailing(e)
	w := NewWard(e.db, e.p, nil)
	if _, err := w.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: pat, Name: "A"}); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	e.mustSubmit(pat, highSample)
	e.tickAt(0)
	a := e.mustOpen(pat, KindNEWS2)

	fs.fail.Store(true)
	if err := w.Discharge(e.ctx(), hosp, pat, "dr1"); code(err) != "unavailable" {
		t.Fatalf("Discharge with the store failing = %v; want unavailable", err)
	}
	if _, err := e.db.GetPatient(e.ctx(), hosp, pat); err != nil {
		t.Errorf("GetPatient after the refused discharge = %v; want the patient still admitted", err)
	}
	if got := e.alert(a.ID); got.State != store.StateActive {
		t.Errorf("alert after the refused discharge: %s; want still active", got.State)
	}
	e.at(time.Second)
	if err := e.submit(pat, highSample); err != nil {
		t.Errorf("Submit after the refused discharge = %v; want accepted", err)
	}

	fs.fail.Store(false)
	if err := w.Discharge(e.ctx(), hosp, pat, "dr1"); err != nil {
		t.Fatalf("Discharge once the store is back: %v", err)
	}
	if got := e.alert(a.ID); got.State != store.StateResolved || got.ResolvedBy != "dr1" {
		t.Errorf("alert after the discharge: %s by %q; want resolved by dr1", got.State, got.ResolvedBy)
	}
}

// TestSharedCommandMeetsNewerState: in shared mode, an acknowledgement or resolution whose
// patient-state save meets another process's newer save is not done again (that answered 409
// for a change already stored and published, and lost the resolution's hold on the alert).
func TestSharedCommandMeetsNewerState(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Shared = true })
	fs := startFailing(e)
	e.admit(pat, nil)
	e.mustSubmit(pat, mediumSample)
	e.tickAt(0)
	a := e.mustOpen(pat, KindNEWS2)

	fs.conflict.Store(true)
	got, err := e.p.Acknowledge(e.ctx(), hosp, a.ID, "nurse1", "")
	if err != nil || got.State != store.StateAcknowledged {
		t.Fatalf("Acknowledge meeting a newer state = %s, %v; want acknowledged", got.State, err)
	}
	fs.conflict.Store(true)
	got, err = e.p.Resolve(e.ctx(), hosp, a.ID, "nurse1", "known")
	if err != nil || got.State != store.StateResolved {
		t.Fatalf("Resolve meeting a newer state = %s, %v; want resolved", got.State, err)
	}
	if n := len(e.alert(a.ID).History); n != 3 {
		t.Errorf("alert history has %d events; want 3 (raised, acknowledged, resolved), each once", n)
	}
	// The condition holds: the resolution keeps it from being raised again.
	e.at(time.Minute)
	e.mustSubmit(pat, mediumSample)
	e.tickAt(2 * time.Minute)
	if again := e.open(pat, KindNEWS2); again != nil {
		t.Errorf("NEWS2 alert %s raised again after the manual resolve; want it held back", again.ID)
	}
}

// startFailing replaces the env's pipeline with one on the real store wrapped by failingStore.
func startFailing(e *env) *failingStore {
	e.t.Helper()
	e.node.close()
	fs := &failingStore{DB: e.db}
	n := &node{e: e, rec: &recorder{}, b: store.NewBatcher(e.db, store.BatcherOptions{})}
	n.p = New(fs, n.b, n.rec, e.opts)
	e.t.Cleanup(n.close)
	if err := n.p.Start(e.ctx()); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	e.node = n
	return fs
}

// TestRaiseStoredDespiteError: a raise whose write reached the store but reported a failure
// is taken on (and announced) by the next raise, not raised a second time.
func TestRaiseStoredDespiteError(t *testing.T) {
	e := newEnv(t, nil)
	fs := startFailing(e)
	e.admit(pat, nil)
	fs.lostAck.Store(true)
	e.mustSubmit(pat, highSample) // raises: stored, reported failed
	if acts := alertActions(t, e.events(), alertsTopic); len(acts) != 0 {
		t.Fatalf("alert events %v after a failed raise; want none yet", acts)
	}
	e.tickAt(time.Second)
	open, err := e.db.OpenAlerts(e.ctx(), hosp, pat)
	if err != nil || len(open) != 1 {
		t.Fatalf("OpenAlerts = %d alerts, %v; want the one stored", len(open), err)
	}
	evs := onTopic(e.events(), alertsTopic)
	if acts := alertActions(t, evs, alertsTopic); len(acts) != 1 || acts[0] != ActionRaised || evs[0].alert(t).Alert.ID != open[0].ID {
		t.Errorf("alert events %v; want one raised for %s", acts, open[0].ID)
	}
}

// TestDuplicateOpenAlertsResolved: two open alerts of one kind in the store (two processes
// raising at once in shared mode, say) end as one: the earliest stays, the other is resolved.
func TestDuplicateOpenAlertsResolved(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	e.mustSubmit(pat, highSample)
	e.tickAt(0)
	first := e.mustOpen(pat, KindNEWS2)
	dup := first
	dup.ID, dup.RaisedAt, dup.Version, dup.History = first.ID+"x", first.RaisedAt.Add(time.Second), 1, first.History[:1]
	if err := e.db.CreateAlert(e.ctx(), dup); err != nil {
		t.Fatal(err)
	}
	e.restart(nil)
	e.at(2 * time.Second)
	e.mustSubmit(pat, highSample)
	open, err := e.db.OpenAlerts(e.ctx(), hosp, pat)
	if err != nil || len(open) != 1 || open[0].ID != first.ID {
		var ids []string
		for _, a := range open {
			ids = append(ids, a.ID)
		}
		t.Fatalf("open alerts %v, %v; want only %s", ids, err, first.ID)
	}
	got := e.alert(dup.ID)
	last := got.History[len(got.History)-1]
	if got.State != store.StateResolved || got.ResolvedBy != SystemActor || last.Note != "duplicate of alert "+first.ID {
		t.Errorf("duplicate: %s by %q, note %q; want resolved by vigil as a duplicate of %s", got.State, got.ResolvedBy, last.Note, first.ID)
	}
}

// withDuplicate raises a NEWS2 alert, stores a second open one of the kind behind the
// pipeline's back and restarts (shared mode: the next job reloads them), so the pipeline holds
// the first as the patient's alert and the second as its duplicate. It returns both.
func withDuplicate(t *testing.T, e *env) (kept, dup store.Alert) {
	t.Helper()
	e.admit(pat, nil)
	e.mustSubmit(pat, highSample)
	e.tickAt(0)
	kept = e.mustOpen(pat, KindNEWS2)
	dup = kept
	dup.ID, dup.RaisedAt, dup.Version, dup.History = kept.ID+"x", kept.RaisedAt.Add(time.Second), 1, kept.History[:1]
	if err := e.db.CreateAlert(e.ctx(), dup); err != nil {
		t.Fatal(err)
	}
	if !e.opts.Shared {
		e.restart(nil)
	}
	return kept, dup
}

// TestActOnDuplicate: acknowledging or resolving the duplicate by hand (in shared mode every
// job reloads the open alerts, so a duplicate can be acted on before an evaluation resolves
// it) neither displaces the patient's alert (which used to leave it open in the store for
// good, and raise a third) nor gets it resolved twice.
func TestActOnDuplicate(t *testing.T) {
	for _, act := range []string{"acknowledge", "resolve"} {
		t.Run(act, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Shared = true })
			kept, dup := withDuplicate(t, e)
			e.at(2 * time.Second)
			var err error
			if act == "acknowledge" {
				_, err = e.p.Acknowledge(e.ctx(), hosp, dup.ID, "nurse1", "")
			} else {
				_, err = e.p.Resolve(e.ctx(), hosp, dup.ID, "nurse1", "")
			}
			if err != nil {
				t.Fatalf("%s the duplicate: %v", act, err)
			}
			e.at(3 * time.Second)
			e.mustSubmit(pat, highSample)
			e.tickAt(4 * time.Second)
			open, err := e.db.OpenAlerts(e.ctx(), hosp, pat)
			if err != nil || len(open) != 1 || open[0].ID != kept.ID {
				t.Fatalf("open alerts %d (%v); want only %s", len(open), err, kept.ID)
			}
			if got := e.mustOpen(pat, KindNEWS2); got.ID != kept.ID {
				t.Errorf("the pipeline's NEWS2 alert is %s; want %s", got.ID, kept.ID)
			}
			got := e.alert(dup.ID)
			resolved := 0
			for _, ev := range got.History {
				if ev.Action == ActionResolved {
					resolved++
				}
			}
			if got.State != store.StateResolved || resolved != 1 {
				t.Errorf("duplicate %s with %d resolved events; want resolved once", got.State, resolved)
			}
			if act == "resolve" && got.ResolvedBy != "nurse1" {
				t.Errorf("duplicate resolved by %q; want nurse1 (by hand, not again by vigil)", got.ResolvedBy)
			}
		})
	}
}

// TestDischargeResolvesDuplicates: a discharge resolves the duplicates too (the patient is
// forgotten after it: an open duplicate would stay open for good). Shared mode: the discharge
// job itself reloads the duplicate.
func TestDischargeResolvesDuplicates(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Shared = true })
	kept, dup := withDuplicate(t, e)
	if err := e.p.Discharge(e.ctx(), hosp, pat, "dr1"); err != nil {
		t.Fatalf("Discharge: %v", err)
	}
	for _, id := range []string{kept.ID, dup.ID} {
		if got := e.alert(id); got.State != store.StateResolved {
			t.Errorf("alert %s after the discharge: %s; want resolved", id, got.State)
		}
	}
}

// TestRaiseStoredDespiteErrorThenClear: the alert a failed raise stored all the same is
// announced, and then resolved, even when the condition clears before any other raise.
func TestRaiseStoredDespiteErrorThenClear(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ClearDelay = 10 * time.Second })
	fs := startFailing(e)
	e.admit(pat, nil)
	fs.lostAck.Store(true)
	e.mustSubmit(pat, mediumSample)
	e.at(time.Second)
	e.mustSubmit(pat, normalSample) // clear: no raise to look again
	open, err := e.db.OpenAlerts(e.ctx(), hosp, pat)
	if err != nil || len(open) != 1 {
		t.Fatalf("OpenAlerts = %d, %v; want the one stored despite the error", len(open), err)
	}
	if acts := alertActions(t, e.events(), alertsTopic); len(acts) != 1 || acts[0] != ActionRaised {
		t.Errorf("alert events %v; want it announced (raised)", acts)
	}
	e.tickAt(12 * time.Second)
	if got := e.alert(open[0].ID); got.State != store.StateResolved {
		t.Errorf("after the clear delay: %s; want resolved", got.State)
	}
}

// TestSharedFailedRaiseAnnouncesOnlyItsOwn: in shared mode, after a raise failed here, the
// alert another process raised (and announced) meanwhile is taken on silently: only an alert
// the failed raise itself may have stored is announced again.
func TestSharedFailedRaiseAnnouncesOnlyItsOwn(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Shared = true })
	fs := startFailing(e)
	a := e.node
	b := e.start(e.opts)
	e.admit(pat, nil, a, b)
	fs.noCreate.Store(true)
	a.mustSubmit(pat, highSample) // A's raise fails, nothing stored
	e.at(time.Second)
	b.mustSubmit(pat, highSample) // B raises and announces
	raised := e.mustOpen(pat, KindNEWS2)
	a.events()
	e.at(2 * time.Second)
	a.mustSubmit(pat, highSample)
	for _, ev := range onTopic(a.events(), alertsTopic) {
		if ae := ev.alert(t); ae.Action == ActionRaised {
			t.Errorf("A announced %s (raised by B) again", ae.Alert.ID)
		}
	}
	if open, _ := e.db.OpenAlerts(e.ctx(), hosp, pat); len(open) != 1 || open[0].ID != raised.ID {
		t.Errorf("%d open alerts; want only B's %s", len(open), raised.ID)
	}
}

// TestUpdateDischargeRace: an update and a discharge of one patient at the same time end
// with the patient either admitted (update last) or gone from the store and the pipeline alike;
// the pipeline used to take back a patient the store no longer had when the update's word
// came after the discharge.
func TestUpdateDischargeRace(t *testing.T) {
	e := newEnv(t, nil)
	w := NewWard(e.db, e.p, nil)
	for i := range 200 {
		id := fmt.Sprintf("p%d", i)
		if _, err := w.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: id, Name: "A"}); err != nil {
			t.Fatalf("Admit(%s): %v", id, err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			w.Update(e.ctx(), hosp, id, func(p *store.Patient) { p.Name = "B" }) // not found if the discharge came first
		}()
		if err := w.Discharge(e.ctx(), hosp, id, "dr1"); err != nil && code(err) != "not_found" {
			t.Fatalf("Discharge(%s): %v", id, err)
		}
		<-done
		_, stored := e.db.GetPatient(e.ctx(), hosp, id)
		_, viewed := e.p.View(e.ctx(), hosp, id)
		if (stored == nil) != (viewed == nil) || e.p.isAdmitted(hosp, id) != (stored == nil) {
			t.Fatalf("%s after an update and a discharge at once: stored %v, pipeline view %v, admitted %v; want all the same", id, stored, viewed, e.p.isAdmitted(hosp, id))
		}
	}
}

// TestLimitsCheckedWhenChanged: the alarm limits are checked when a request changes them; a
// patient whose stored limits predate the check can still be renamed or moved.
func TestLimitsCheckedWhenChanged(t *testing.T) {
	e := newEnv(t, nil)
	w := NewWard(e.db, e.p, nil)
	high := 150.0
	old := store.Patient{Hospital: hosp, ID: pat, Name: "A", SpO2Scale: 1, Limits: store.AlarmLimits{HRLow: &high}}
	if err := e.db.CreatePatient(e.ctx(), old); err != nil { // stored before limits were checked
		t.Fatal(err)
	}
	if _, err := w.Update(e.ctx(), hosp, pat, func(p *store.Patient) { p.Name = "B" }); err != nil {
		t.Errorf("renaming a patient with old contradictory limits: %v; want it done", err)
	}
	var fe *FieldError
	_, err := w.Update(e.ctx(), hosp, pat, func(p *store.Patient) { v := 160.0; p.Limits.HRLow = &v })
	if !errors.As(err, &fe) || fe.Key != "limits.hr_low" {
		t.Errorf("changing hr_low to 160 over the site's hr_high: %v; want a refusal naming limits.hr_low", err)
	}
}

// TestUpdateStoredDespiteError: an acknowledgement whose write reached the store but reported a
// failure (a timeout after the write) is answered and announced as done: answered 503, its
// retry would get 409 and no dashboard would ever hear of it.
func TestUpdateStoredDespiteError(t *testing.T) {
	e, fs, a := raisedOnFailing(t)
	fs.lostUpd.Store(true)
	got, err := e.p.Acknowledge(e.ctx(), hosp, a.ID, "nurse1", "")
	if err != nil || got.State != store.StateAcknowledged {
		t.Fatalf("Acknowledge with the answer lost = %s, %v; want acknowledged", got.State, err)
	}
	if acts := alertActions(t, e.events(), alertsTopic); len(acts) != 1 || acts[0] != ActionAcknowledged {
		t.Fatalf("alert events %v; want the acknowledgement announced", acts)
	}
}

// TestUpdateFailedOtherStored: a change whose write reported a failure is not taken as stored
// because another change of the same version is (another process's): it fails, and nothing is
// announced in its name.
func TestUpdateFailedOtherStored(t *testing.T) {
	e, fs, a := raisedOnFailing(t)
	fs.otherUpd.Store(true)
	if _, err := e.p.Acknowledge(e.ctx(), hosp, a.ID, "nurse1", ""); code(err) != "unavailable" {
		t.Fatalf("Acknowledge meeting another's change = %v; want unavailable", err)
	}
	if acts := alertActions(t, e.events(), alertsTopic); len(acts) != 0 {
		t.Fatalf("alert events %v; want none announced in nurse1's name", acts)
	}
}

// bedMover is a Detacher that, on its first call (inside a discharge, after the alerts are
// resolved), moves the patient to another bed, as a bed change through the API can then.
type bedMover struct {
	w     *Ward
	moved bool
	t     *testing.T
}

func (m *bedMover) UnassignPatient(ctx context.Context, h, p string) error {
	if !m.moved {
		m.moved = true
		if _, err := m.w.PutBed(ctx, store.Bed{Hospital: h, ID: "b2", Status: BedOccupied, Patient: p}); err != nil {
			m.t.Errorf("PutBed during the discharge: %v", err)
		}
	}
	return nil
}

// TestDischargeAfterBedMove: a patient moved to another bed while their discharge is under way
// leaves that bed, not the one they were in when the discharge began, to be cleaned.
func TestDischargeAfterBedMove(t *testing.T) {
	e := newEnv(t, nil)
	m := &bedMover{t: t}
	w := NewWard(e.db, e.p, m)
	m.w = w
	if _, err := w.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: pat, Name: "A", Bed: "b1"}); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	if err := w.Discharge(e.ctx(), hosp, pat, "dr1"); err != nil {
		t.Fatalf("Discharge: %v", err)
	}
	for _, id := range []string{"b1", "b2"} {
		if b, err := e.db.GetBed(e.ctx(), hosp, id); err != nil || b.Status != BedCleaning || b.Patient != "" {
			t.Errorf("bed %s after the discharge: %+v, %v; want cleaning, no patient", id, b, err)
		}
	}
}

// raisedOnFailing is a pipeline on a failingStore with the patient's NEWS2 alert raised and
// the events so far taken.
func raisedOnFailing(t *testing.T) (*env, *failingStore, store.Alert) {
	t.Helper()
	e := newEnv(t, nil)
	fs := startFailing(e)
	e.admit(pat, nil)
	e.mustSubmit(pat, `{"rr":30,"spo2":85,"hr":135,"temp":39.5}`)
	a := e.mustOpen(pat, KindNEWS2)
	e.events()
	return e, fs, a
}
