package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/store"
)

// TestRestart stops the pipeline and starts a new one on the same store directory: open alerts
// keep their escalation timer, and parameter state comes back from the snapshot plus the samples
// stored since.
func TestRestart(t *testing.T) {
	tests := []struct {
		name  string
		crash bool // the process died after the snapshot at 5 s: the sample at 10 s is only in the samples
	}{
		{"clean stop", false},
		{"stopped after a snapshot", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.admit(pat, nil)
			e.mustSubmit(pat, highSample) // 7, high
			a := e.mustOpen(pat, KindNEWS2)
			e.at(5 * time.Second)
			e.snapshot()
			snap, err := e.db.GetPatientState(e.ctx(), hosp, pat)
			if err != nil {
				t.Fatalf("GetPatientState after a snapshot: %v", err)
			}
			e.at(10 * time.Second)
			e.mustSubmit(pat, `{"temp":39.5}`) // temp 1 -> 2: 8

			e.at(20 * time.Second)
			e.restart(func() {
				if !tt.crash {
					return
				}
				if err := e.db.SavePatientStates(e.ctx(), []store.PatientState{snap}); err != nil {
					t.Fatalf("SavePatientStates: %v", err)
				}
			})

			v, err := e.p.View(e.ctx(), hosp, pat)
			if err != nil {
				t.Fatalf("View after the restart: %v", err)
			}
			for _, want := range []struct {
				p  news2.Param
				v  float64
				at time.Duration
			}{{news2.Pulse, 115, 0}, {news2.RespRate, 24, 0}, {news2.SpO2, 92, 0}, {news2.Temperature, 39.5, 10 * time.Second}} {
				if got := v.Last[want.p]; got.Value != want.v || !got.At.Equal(t0.Add(want.at)) {
					t.Errorf("after the restart, %v = %v at %v; want %v at %v", want.p, got.Value, got.At, want.v, t0.Add(want.at))
				}
			}

			e.tick()
			evs := e.events()
			risks := onTopic(evs, riskTopic)
			if len(risks) != 1 || !risks[0].Retain {
				t.Fatalf("first evaluation after the restart: %d risk events; want 1, retained", len(risks))
			}
			if r := risks[0].risk(t); r.Score != 8 || r.Level != news2.High {
				t.Errorf("risk after the restart = %d (%v); want 8 (high)", r.Score, r.Level)
			}
			acts := alertActions(t, evs, alertsTopic)
			for _, act := range acts {
				if act == ActionRaised {
					t.Errorf("alert events after the restart %v; want no new alert (the open one carries on)", acts)
				}
			}
			// After a crash the snapshot predates the update at 10 s, so the worst score it holds
			// for the alert is 7 and the same update (NEWS2 8) is stored and published again; only
			// a clean stop is free of it.
			if !tt.crash && len(acts) != 0 {
				t.Errorf("alert events after a clean restart %v; want none", acts)
			}
			if got := e.mustOpen(pat, KindNEWS2); got.ID != a.ID || got.Priority != PriorityHigh {
				t.Errorf("open NEWS2 alert after the restart %s (%s); want %s", got.ID, got.Priority, a.ID)
			}

			e.tickAt(time.Minute - time.Millisecond)
			if evs := onTopic(e.events(), hospitalTopic); len(evs) != 0 {
				t.Fatalf("escalated before its timer (60 s): %d events on %s", len(evs), hospitalTopic)
			}
			e.tickAt(time.Minute)
			evs = e.events()
			pe, he := onTopic(evs, alertsTopic), onTopic(evs, hospitalTopic)
			if len(pe) != 1 || len(he) != 1 || pe[0].ID != he[0].ID {
				t.Fatalf("at 60 s: %d events on %s, %d on %s; want the escalation on both", len(pe), alertsTopic, len(he), hospitalTopic)
			}
			if ae := he[0].alert(t); ae.Action != ActionEscalated || ae.Alert.EscalationLevel != 1 || ae.Alert.ID != a.ID {
				t.Errorf("at 60 s: %s, level %d of %s; want escalated, level 1 of %s", ae.Action, ae.Alert.EscalationLevel, ae.Alert.ID, a.ID)
			}
			if n := len(e.alertsOf(pat, KindNEWS2)); n != 1 {
				t.Errorf("%d NEWS2 alerts stored; want 1", n)
			}
		})
	}
}

// TestSharedMode: two pipelines sharing one store and the patient's samples end where one
// pipeline fed every sample ends.
func TestSharedMode(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Shared = true })
	nodes := []*node{e.node, e.start(e.opts)}
	e.admit(pat, nil, nodes...)
	ref := newEnv(t, nil)
	ref.admit(pat, nil)

	samples := []string{
		`{"rr":22}`,                // 2
		`{"spo2":93}`,              // 4
		`{"hr":115}`,               // 6: medium, raised
		`{"temp":38.5}`,            // 7: high, updated
		`{"sbp":105}`,              // 8: updated
		`{"o2":false,"acvpu":"A"}`, // 8, complete
	}
	var shared, alone []pubEvent
	for i, s := range samples {
		d := time.Duration(i) * 5 * time.Second
		e.at(d)
		ref.at(d)
		nodes[i%2].mustSubmit(pat, s)
		ref.mustSubmit(pat, s)
		shared = append(shared, nodes[0].events()...)
		shared = append(shared, nodes[1].events()...)
		alone = append(alone, ref.events()...)
	}

	want, err := ref.p.View(ref.ctx(), hosp, pat)
	if err != nil {
		t.Fatal(err)
	}
	if want.Risk.Score != 8 || !want.Risk.Complete() {
		t.Fatalf("reference risk = %+v; want 8, complete", want.Risk)
	}
	for i, n := range nodes {
		n.tick() // the other pipeline learns the last sample from the store
		got, err := n.p.View(e.ctx(), hosp, pat)
		if err != nil || got.Risk != want.Risk {
			t.Errorf("pipeline %d risk = %+v, %v; want %+v", i, got.Risk, err, want.Risk)
		}
		shared = append(shared, n.events()...)
	}

	var sharedRisks, aloneRisks []news2.Risk
	for _, ev := range onTopic(shared, riskTopic) {
		sharedRisks = append(sharedRisks, ev.risk(t))
	}
	for _, ev := range onTopic(alone, riskTopic) {
		aloneRisks = append(aloneRisks, ev.risk(t))
	}
	if fmt.Sprint(sharedRisks) != fmt.Sprint(aloneRisks) {
		t.Errorf("shared pipelines published risks %v; want %v, as one pipeline does", sharedRisks, aloneRisks)
	}
	if got, want := alertActions(t, shared, alertsTopic), alertActions(t, alone, alertsTopic); fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(want) != "[raised updated updated]" {
		t.Errorf("shared pipelines published alert actions %v; one pipeline %v; want [raised updated updated] from both", got, want)
	}
	alerts := e.alertsOf(pat, KindNEWS2)
	if len(alerts) != 1 {
		t.Fatalf("%d NEWS2 alerts stored by the shared pipelines; want 1", len(alerts))
	}
	refAlert := ref.mustOpen(pat, KindNEWS2)
	if a := alerts[0]; a.Priority != refAlert.Priority || a.Message != refAlert.Message || a.State != store.StateActive {
		t.Errorf("shared alert %s/%s %q; want %s/active %q", a.Priority, a.State, a.Message, refAlert.Priority, refAlert.Message)
	}
	checkHistory(t, alerts[0], step{ActionRaised, SystemActor, ""}, step{ActionUpdated, SystemActor, ""}, step{ActionUpdated, SystemActor, ""})
}

// TestSharedRecordChangedElsewhere: in shared mode, a change of a patient's record through one
// process (here the SpO2 scale) applies to the samples another process scores.
func TestSharedRecordChangedElsewhere(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Shared = true })
	a, b := e.node, e.start(e.opts)
	ward := NewWard(e.db, a.p, nil)
	if _, err := ward.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: pat, Name: "A", SpO2Scale: 1}); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	const sample = `{"spo2":90,"o2":true}` // scale 1: 3 + 2 for oxygen; scale 2: 0 + 2
	// score is the risk as stored by the last process to score the patient.
	score := func() int {
		t.Helper()
		v, err := b.p.View(e.ctx(), hosp, pat)
		if err != nil || !v.HasRisk {
			t.Fatalf("View = %+v, %v; want a risk", v, err)
		}
		return v.Risk.Score
	}
	b.mustSubmit(pat, sample)
	if got := score(); got != 5 {
		t.Fatalf("NEWS2 on scale 1 = %d; want 5", got)
	}
	if _, err := ward.Update(e.ctx(), hosp, pat, func(p *store.Patient) { p.SpO2Scale = 2 }); err != nil {
		t.Fatalf("Update: %v", err)
	}
	e.at(time.Second)
	b.mustSubmit(pat, `{"spo2":91,"o2":true}`) // scale 1: still 5; scale 2: 2
	if got := score(); got != 2 {
		t.Fatalf("NEWS2 of a sample scored by the other process after the change to scale 2 = %d; want 2", got)
	}
}

// TestSharedDischargedElsewhere: a patient discharged through one process is forgotten by the
// others: no alert is raised for them again, their state is not written back, and their samples
// are refused as those of any patient not admitted.
func TestSharedDischargedElsewhere(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Shared = true; o.ConditionDelay = time.Second })
	a, b := e.node, e.start(e.opts)
	ward := admitOn(t, e, a)
	b.mustSubmit(pat, `{"hr":135}`)
	b.tickAt(2 * time.Second)
	raised := e.mustOpen(pat, KindHRHigh)
	e.at(3 * time.Second)
	if err := ward.Discharge(e.ctx(), hosp, pat, "dr1"); err != nil {
		t.Fatalf("Discharge: %v", err)
	}
	if got := e.alert(raised.ID); got.State != store.StateResolved {
		t.Fatalf("alert after the discharge: %s; want resolved", got.State)
	}

	b.tickAt(10 * time.Second)
	if open, err := e.db.OpenAlerts(e.ctx(), hosp, pat); err != nil || len(open) != 0 {
		var kinds []string
		for _, a := range open {
			kinds = append(kinds, a.Kind)
		}
		t.Fatalf("open alerts of the discharged patient after the other process's tick: %v, %v; want none", kinds, err)
	}
	if _, err := e.db.GetPatientState(e.ctx(), hosp, pat); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("patient state after the other process's tick: %v; want none (not written back)", err)
	}
	if err := b.submit(pat, `{"hr":140}`); err == nil || !strings.Contains(err.Error(), "not admitted") {
		t.Fatalf("a sample of the discharged patient through the other process: %v; want refused, not admitted", err)
	}
}

// TestSharedObserveAdmittedElsewhere: a manual observation through a process that has not seen
// the patient yet is taken (the patient was admitted through another).
func TestSharedObserveAdmittedElsewhere(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Shared = true })
	a, b := e.node, e.start(e.opts)
	admitOn(t, e, a)
	hr := 135.0
	r, err := b.p.Observe(e.ctx(), hosp, pat, "nurse1", store.Vitals{Has: store.FieldHR, HR: hr}, e.now())
	if err != nil {
		t.Fatalf("Observe through the other process: %v", err)
	}
	if r.Score != 3 {
		t.Fatalf("risk after the observation: %+v; want score 3 (HR 135)", r)
	}
}

// TestSharedConcurrentUpdates: two processes updating one patient at once both get their
// change stored: the later write finds the record changed, reads it again and applies its
// change on top.
func TestSharedConcurrentUpdates(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Shared = true })
	a, b := e.node, e.start(e.opts)
	wa, wb := NewWard(e.db, a.p, nil), NewWard(e.db, b.p, nil)
	if _, err := wa.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: pat, Name: "A", Bed: "b1"}); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	runs := 0
	_, err := wa.Update(e.ctx(), hosp, pat, func(p *store.Patient) {
		runs++
		if runs == 1 {
			// The other process's update lands between this one's read and its write.
			if _, err := wb.Update(e.ctx(), hosp, pat, func(p *store.Patient) { p.Bed = "b2" }); err != nil {
				t.Errorf("the other process's Update: %v", err)
			}
		}
		p.SpO2Scale = 2
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	got, err := e.db.GetPatient(e.ctx(), hosp, pat)
	if err != nil || got.Bed != "b2" || got.SpO2Scale != 2 || got.Version != 3 {
		t.Fatalf("patient after both updates: %+v, %v; want bed b2 (the other's change), SpO2 scale 2, version 3", got, err)
	}
	if runs != 2 {
		t.Errorf("the change was applied %d times; want 2 (once more on the newer record)", runs)
	}
}

// TestSharedDischargeThroughAnother: a discharge through a process that never held the
// patient still resolves the alerts another process raised, deletes the state and the retained
// risk; an observation through a process that held the patient is then refused (not a risk of
// 0 for a patient who is gone).
func TestSharedDischargeThroughAnother(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Shared = true; o.ConditionDelay = time.Second })
	a, b := e.node, e.start(e.opts)
	admitOn(t, e, a)
	a.mustSubmit(pat, `{"hr":135}`)
	a.tickAt(2 * time.Second)
	raised := e.mustOpen(pat, KindHRHigh)
	b.events()
	if err := NewWard(e.db, b.p, nil).Discharge(e.ctx(), hosp, pat, "dr1"); err != nil {
		t.Fatalf("Discharge through the other process: %v", err)
	}
	if got := e.alert(raised.ID); got.State != store.StateResolved || got.ResolvedBy != "dr1" {
		t.Fatalf("alert after a discharge through the other process: %s by %q; want resolved by dr1", got.State, got.ResolvedBy)
	}
	if _, err := e.db.GetPatientState(e.ctx(), hosp, pat); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("patient state after the discharge: %v; want none", err)
	}
	if risks := onTopic(b.events(), riskTopic); len(risks) != 1 || len(risks[0].Payload) != 0 || !risks[0].Retain {
		t.Fatalf("on %s: %+v; want one empty retained message from the discharging process", riskTopic, risks)
	}
	if _, err := a.p.Observe(e.ctx(), hosp, pat, "nurse1", store.Vitals{Has: store.FieldHR, HR: 80}, e.now()); code(err) != "not_found" {
		t.Fatalf("Observe through the process that held the patient, after the discharge: %v; want not found", err)
	}
}

// TestSharedScoredDuringDischarge: a sample scored by one process after another's discharge
// resolved the alerts and before it deleted the record raises an alert and saves state; the
// next tick of that process, finding the patient gone, resolves the alert and deletes the state.
func TestSharedScoredDuringDischarge(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Shared = true })
	a, b := e.node, e.start(e.opts)
	admitOn(t, e, a)
	if err := b.p.Discharge(e.ctx(), hosp, pat, "dr1"); err != nil { // the discharge's first step
		t.Fatalf("Discharge: %v", err)
	}
	a.mustSubmit(pat, `{"rr":30,"spo2":85,"hr":135,"temp":39.5}`) // the record is still there
	late := e.mustOpen(pat, KindNEWS2)
	if err := e.db.DeletePatient(e.ctx(), hosp, pat); err != nil { // the discharge's last step
		t.Fatal(err)
	}
	a.events()
	a.tickAt(time.Second)
	if got := e.alert(late.ID); got.State != store.StateResolved {
		t.Fatalf("alert raised during the discharge, after the tick: %s; want resolved", got.State)
	}
	if open, err := e.db.OpenAlerts(e.ctx(), hosp, pat); err != nil || len(open) != 0 {
		t.Fatalf("open alerts after the tick: %d, %v; want none", len(open), err)
	}
	if _, err := e.db.GetPatientState(e.ctx(), hosp, pat); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("patient state after the tick: %v; want none", err)
	}
	if risks := onTopic(a.events(), riskTopic); len(risks) != 1 || len(risks[0].Payload) != 0 {
		t.Fatalf("on %s: %+v; want the retained risk deleted", riskTopic, risks)
	}
}

// TestSharedForgetRetries: a process that cannot resolve what a patient discharged elsewhere
// left open (the store failing) keeps the patient and tries again at its next tick, rather than
// leaving the alert open with nobody to resolve it.
func TestSharedForgetRetries(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Shared = true })
	fs := startFailing(e)
	a, b := e.node, e.start(e.opts)
	admitOn(t, e, a)
	if err := b.p.Discharge(e.ctx(), hosp, pat, "dr1"); err != nil {
		t.Fatalf("Discharge: %v", err)
	}
	a.mustSubmit(pat, `{"rr":30,"spo2":85,"hr":135,"temp":39.5}`)
	late := e.mustOpen(pat, KindNEWS2)
	if err := e.db.DeletePatient(e.ctx(), hosp, pat); err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	a.tickAt(time.Second)
	if got := e.alert(late.ID); got.State == store.StateResolved {
		t.Fatal("alert resolved while the store refused updates")
	}
	fs.fail.Store(false)
	a.tickAt(2 * time.Second)
	if got := e.alert(late.ID); got.State != store.StateResolved {
		t.Fatalf("alert after the store recovered and the next tick: %s; want resolved", got.State)
	}
}

// TestRestartIgnoresEarlierAdmissionState: a saved state of an earlier admission (a snapshot
// written back after its discharge) is not restored at a restart: its readings would give the
// new admission an old risk and old alarms. States name their admission; one saved before they
// did is told by its time (saved before the admission).
func TestRestartIgnoresEarlierAdmissionState(t *testing.T) {
	for _, unnamed := range []bool{false, true} {
		t.Run(map[bool]string{false: "named", true: "unnamed"}[unnamed], func(t *testing.T) {
			e := newEnv(t, nil)
			w := NewWard(e.db, e.p, nil)
			if _, err := w.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: pat, Name: "A"}); err != nil {
				t.Fatalf("Admit: %v", err)
			}
			e.mustSubmit(pat, `{"rr":30,"spo2":85,"hr":135,"temp":39.5}`)
			e.snapshot()
			old, err := e.db.GetPatientState(e.ctx(), hosp, pat)
			if err != nil {
				t.Fatalf("GetPatientState: %v", err)
			}
			if unnamed {
				var doc map[string]any
				if err := json.Unmarshal(old.Data, &doc); err != nil {
					t.Fatal(err)
				}
				delete(doc, "admitted") // as saved before states named their admission
				old.Data, _ = json.Marshal(doc)
			}
			e.at(time.Minute)
			if err := w.Discharge(e.ctx(), hosp, pat, "dr1"); err != nil {
				t.Fatalf("Discharge: %v", err)
			}
			if err := e.db.SavePatientStates(e.ctx(), []store.PatientState{old}); err != nil { // written back
				t.Fatal(err)
			}
			e.at(2 * time.Minute)
			if _, err := w.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: pat, Name: "A again"}); err != nil {
				t.Fatalf("Admit again: %v", err)
			}
			e.restart(nil)
			v, err := e.p.View(e.ctx(), hosp, pat)
			if err != nil {
				t.Fatalf("View after the restart: %v", err)
			}
			if v.HasRisk || !v.Last[news2.Pulse].At.IsZero() {
				t.Fatalf("after the restart the new admission has %+v; want nothing of the earlier one", v)
			}
		})
	}
}

// TestLateSampleSavedSoon: after a crash, samples handled after the last snapshot but older
// than it still count: those a few minutes older (a monitor whose clock is behind) through the
// restart's replay, which goes back 5 min before the saved state; older ones (a backlog)
// because a sample that old has the state saved at once.
func TestLateSampleSavedSoon(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	e.at(10 * time.Minute)
	e.mustSubmit(pat, `{"hr":80}`)
	e.snapshot() // saved at 10 min
	backlog := t0.Add(2 * time.Minute).Format(time.RFC3339Nano)
	behind := t0.Add(9 * time.Minute).Format(time.RFC3339Nano)
	e.mustSubmit(pat, `{"temp":38.5,"ts":"`+backlog+`"}`) // a temperature from 2 min, arriving now
	e.mustSubmit(pat, `{"sbp":150,"ts":"`+behind+`"}`)    // from a monitor 1 min behind
	for _, w := range e.p.workers {
		e.node.sync()
		w.saves.Wait()
	}
	saved, err := e.db.GetPatientState(e.ctx(), hosp, pat)
	if err != nil {
		t.Fatal(err)
	}
	// A crash now: the state stored is the one on disk (the clean stop's snapshot is undone).
	e.restart(func() {
		if err := e.db.SavePatientStates(e.ctx(), []store.PatientState{saved}); err != nil {
			t.Fatal(err)
		}
	})
	v, err := e.p.View(e.ctx(), hosp, pat)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Last[news2.Temperature]; got.Value != 38.5 {
		t.Errorf("temperature after a crash and restart: %+v; want the backlog's 38.5", got)
	}
	if got := v.Last[news2.SystolicBP]; got.Value != 150 {
		t.Errorf("systolic BP after a crash and restart: %+v; want the late monitor's 150", got)
	}
}

// admitOn admits the patient through node n's ward (as through one process's API) and returns
// that ward.
func admitOn(t *testing.T, e *env, n *node) *Ward {
	t.Helper()
	w := NewWard(e.db, n.p, nil)
	if _, err := w.Admit(e.ctx(), store.Patient{Hospital: hosp, ID: pat, Name: "A"}); err != nil {
		t.Fatalf("Admit: %v", err)
	}
	return w
}
