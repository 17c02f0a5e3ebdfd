package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/store"
)

const (
	statusTopic = "hospital/h1/device/mon1/status"
	errorsTopic = "hospital/h1/device/mon1/errors"
)

func deviceStatus(t *testing.T, evs []pubEvent) []string {
	t.Helper()
	var out []string
	for _, ev := range onTopic(evs, statusTopic) {
		var ds DeviceStatus
		if err := json.Unmarshal(ev.Data, &ds); err != nil {
			t.Fatalf("device status %s: %v", ev.Data, err)
		}
		if ev.Type != TypeDeviceStatus || !ev.Retain || ds.Device != dev || ds.Patient != pat {
			t.Errorf("event on %s = %s (retain %v) %+v; want device_status, retained, mon1 of p1", statusTopic, ev.Type, ev.Retain, ds)
		}
		out = append(out, ds.Status)
	}
	return out
}

func TestDeviceOffline(t *testing.T) {
	tests := []struct {
		name       string
		connected  bool // connected and sending at 0
		disconnect string
		wantAt     time.Duration // when device_offline is raised
		wantStatus []string      // device_status events
	}{
		{name: "assigned, never heard of", wantAt: 30*time.Second + time.Millisecond},
		{name: "unexpected disconnect: at once", connected: true, disconnect: "dropped", wantAt: time.Second, wantStatus: []string{"online", "offline"}},
		{name: "clean disconnect: after the silence", connected: true, disconnect: "clean", wantAt: 30*time.Second + time.Millisecond, wantStatus: []string{"online", "offline"}},
		{name: "silent while connected", connected: true, wantAt: 30*time.Second + time.Millisecond, wantStatus: []string{"online"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.admit(pat, nil)
			e.assign(dev, pat)
			if tt.connected {
				e.connect(dev)
				e.mustSubmit(pat, lowSample)
			}
			if tt.disconnect != "" {
				e.at(time.Second)
				e.disconnect(dev, tt.disconnect == "clean")
			}
			if tt.wantAt > time.Second {
				e.tickAt(tt.wantAt - time.Millisecond)
				if a := e.open(pat, KindDeviceOffline); a != nil {
					t.Fatalf("device_offline at %v; want none before %v", tt.wantAt-time.Millisecond, tt.wantAt)
				}
			}
			e.tickAt(tt.wantAt)
			a := e.mustOpen(pat, KindDeviceOffline)
			if a.Category != CategoryTechnical || a.Priority != PriorityMedium || a.Message != "Device offline: mon1" || a.Latched || !a.RaisedAt.Equal(t0.Add(tt.wantAt)) {
				t.Errorf("alert %s/%s %q latched %v raised %v; want technical/medium \"Device offline: mon1\", not latched, raised %v", a.Category, a.Priority, a.Message, a.Latched, a.RaisedAt, t0.Add(tt.wantAt))
			}
			evs := e.events()
			if got := deviceStatus(t, evs); strings.Join(got, ",") != strings.Join(tt.wantStatus, ",") {
				t.Errorf("device status events %v; want %v", got, tt.wantStatus)
			}
			if acts := alertActions(t, evs, alertsTopic); len(acts) != 1 || acts[0] != ActionRaised {
				t.Errorf("alert events %v; want [raised]", acts)
			}

			// Data returns: resolved once the clear delay has passed.
			back := tt.wantAt + 5*time.Second
			e.at(back)
			e.connect(dev)
			e.mustSubmit(pat, lowSample)
			e.tickAt(back + 30*time.Second - time.Millisecond)
			if got := e.alert(a.ID); got.State != store.StateActive {
				t.Fatalf("data back at %v: alert %s at %v; want active until the clear delay ends", back, got.State, back+30*time.Second-time.Millisecond)
			}
			e.tickAt(back + 30*time.Second)
			got := e.alert(a.ID)
			if got.State != store.StateResolved || got.ResolvedBy != SystemActor {
				t.Errorf("data back: alert %s by %q; want resolved by vigil", got.State, got.ResolvedBy)
			}
			checkHistory(t, got, step{ActionRaised, SystemActor, ""}, step{ActionResolved, SystemActor, "condition cleared"})
			if got := deviceStatus(t, e.events()); len(got) != 1 || got[0] != "online" {
				t.Errorf("device status events after reconnecting %v; want [online]", got)
			}
		})
	}
}

func TestDeviceUnassigned(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	e.assign(dev, pat)
	e.at(10 * time.Second)
	e.assign(dev, "")
	e.disconnect(dev, false)
	e.tickAt(time.Minute)
	if a := e.open(pat, KindDeviceOffline); a != nil {
		t.Errorf("device_offline %q for an unassigned device; want none", a.Message)
	}
}

func TestDataStale(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	e.assign(dev, pat)
	e.connect(dev)
	e.mustSubmit(pat, `{"hr":80,"spo2":97}`)
	// The monitor keeps sending, but SpO2 only: hr goes stale after its 5 min.
	for d := 20 * time.Second; d <= 5*time.Minute+20*time.Second; d += 20 * time.Second {
		e.at(d)
		e.mustSubmit(pat, `{"spo2":97}`)
		a := e.open(pat, KindDataStale)
		if d <= 5*time.Minute && a != nil {
			t.Fatalf("at %v: data_stale %q; want none while hr is fresh", d, a.Message)
		}
		if off := e.open(pat, KindDeviceOffline); off != nil {
			t.Fatalf("at %v: device_offline while the device sends; want none", d)
		}
	}
	a := e.mustOpen(pat, KindDataStale)
	if a.Category != CategoryTechnical || a.Priority != PriorityLow || a.Message != "No fresh data: hr" {
		t.Errorf("alert %s/%s %q; want technical/low \"No fresh data: hr\"", a.Category, a.Priority, a.Message)
	}

	back := 5*time.Minute + 40*time.Second
	e.at(back)
	e.mustSubmit(pat, `{"hr":80,"spo2":97}`)
	e.at(back + 20*time.Second)
	e.mustSubmit(pat, `{"hr":80,"spo2":97}`)
	if got := e.alert(a.ID); got.State != store.StateActive {
		t.Fatalf("hr back, within the clear delay: alert %s; want active", got.State)
	}
	e.at(back + 30*time.Second)
	e.mustSubmit(pat, `{"hr":80,"spo2":97}`)
	if got := e.alert(a.ID); got.State != store.StateResolved || got.ResolvedBy != SystemActor {
		t.Errorf("hr back for the clear delay: alert %s by %q; want resolved by vigil", got.State, got.ResolvedBy)
	}
}

func TestImplausible(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	tests := []struct {
		at          time.Duration
		sample      string
		field       string // the field the refusal names ("": the payload as a whole)
		implausible bool
		wantOpen    bool
	}{
		{0, `{"hr":400}`, "hr", true, false},
		{30 * time.Second, `{"spo2":101}`, "spo2", true, false},
		{35 * time.Second, `{"hr":80,"bp":1}`, `"bp"`, false, false}, // refused, but not implausible
		{40 * time.Second, `{"hr":80`, "", false, false},
		{45 * time.Second, `{"hr":"x"}`, "hr", false, false},
		{70 * time.Second, `{"temp":50}`, "temp", true, false}, // the one at 0 is out of the window: 2 in it
		{75 * time.Second, `{"sbp":-5}`, "sbp", true, true},    // 30 s, 70 s, 75 s: 3 within 60 s
	}
	for _, tt := range tests {
		t.Run(tt.sample, func(t *testing.T) {
			e.at(tt.at)
			err := e.submit(pat, tt.sample)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field() != tt.field || fe.Implausible != tt.implausible {
				t.Fatalf("Submit(%s) = %v; want a refusal of %q, implausible %v", tt.sample, err, tt.field, tt.implausible)
			}
			evs := e.events()
			rej := onTopic(evs, errorsTopic)
			if len(rej) != 1 {
				t.Fatalf("Submit(%s): %d events on %s; want 1", tt.sample, len(rej), errorsTopic)
			}
			var sr SampleRejected
			if err := json.Unmarshal(rej[0].Data, &sr); err != nil {
				t.Fatal(err)
			}
			if rej[0].Type != TypeSampleRejected || rej[0].Retain || sr.Device != dev || sr.Patient != pat || sr.Field != tt.field || sr.Reason == "" {
				t.Errorf("Submit(%s): %s (retain %v) %+v; want sample_rejected, not retained, naming %q with a reason", tt.sample, rej[0].Type, rej[0].Retain, sr, tt.field)
			}
			if got := e.open(pat, KindImplausible) != nil; got != tt.wantOpen {
				t.Errorf("after Submit(%s) at %v: implausible alert open = %v; want %v", tt.sample, tt.at, got, tt.wantOpen)
			}
		})
	}
	a := e.mustOpen(pat, KindImplausible)
	if a.Category != CategoryTechnical || a.Priority != PriorityLow || !strings.HasPrefix(a.Message, "Implausible values: 3 refused samples") {
		t.Errorf("alert %s/%s %q; want technical/low \"Implausible values: 3 refused samples...\"", a.Category, a.Priority, a.Message)
	}
	if n := e.p.Metrics().Rejected(); n != int64(len(tests)) {
		t.Errorf("Metrics().Rejected() = %d; want %d", n, len(tests))
	}
	// The window moves past them: resolved after the clear delay.
	e.tickAt(75*time.Second + time.Minute + time.Second)
	e.tickAt(75*time.Second + time.Minute + time.Second + 30*time.Second)
	if got := e.alert(a.ID); got.State != store.StateResolved {
		t.Errorf("implausible alert %s once the window holds none; want resolved", got.State)
	}
}

func TestSampleForUnknownPatient(t *testing.T) {
	e := newEnv(t, nil)
	err := e.submit("p9", `{"hr":80}`)
	var fe *FieldError
	if !errors.As(err, &fe) || !strings.Contains(fe.Reason(), "not admitted") {
		t.Fatalf("Submit(p9) = %v; want a refusal saying p9 is not admitted", err)
	}
	evs := e.events()
	if len(evs) != 1 || evs[0].Topic != errorsTopic || evs[0].Type != TypeSampleRejected {
		t.Errorf("events %+v; want one sample_rejected on %s", evs, errorsTopic)
	}
	if n, _, err := e.db.ListSamples(e.ctx(), store.SampleQuery{Hospital: hosp, Patient: "p9"}, store.Page{}); err != nil || len(n) != 0 {
		t.Errorf("ListSamples(p9) = %d, %v; want none stored", len(n), err)
	}
}

// TestAssignmentsBeforeStart: at start the registry tells the pipeline every assigned device
// before the workers run. More than a worker's queue holds (4,096) used to block the start for
// good; and a device the saved state lists but the registry no longer assigns is forgotten.
func TestAssignmentsBeforeStart(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	e.admit("p2", nil)
	e.assign("mon-gone", "p2") // saved with p2's state at close, then unassigned while down
	e.at(10 * time.Second)
	e.node.close()

	n := &node{e: e, rec: &recorder{}, b: store.NewBatcher(e.db, store.BatcherOptions{})}
	n.p = New(e.db, n.b, n.rec, e.opts)
	t.Cleanup(n.close)
	const devices = 5000
	ctx := e.ctx()
	told := make(chan struct{})
	go func() {
		defer close(told)
		for i := range devices {
			n.p.DeviceAssigned(ctx, hosp, fmt.Sprintf("mon-%d", i), pat)
		}
	}()
	select {
	case <-told:
	case <-time.After(10 * time.Second):
		t.Fatalf("telling the pipeline %d assignments before Start did not return", devices)
	}
	if err := n.p.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	e.node = n

	// The assigned devices are p1's, with the offline delay counted from the start.
	e.tickAt(40*time.Second - time.Millisecond)
	if a := e.open(pat, KindDeviceOffline); a != nil {
		t.Fatalf("device_offline %q before the offline delay from the start", a.Message)
	}
	e.tickAt(40*time.Second + time.Millisecond)
	e.mustOpen(pat, KindDeviceOffline)
	if a := e.open("p2", KindDeviceOffline); a != nil {
		t.Errorf("device_offline %q for a device no longer assigned to p2; want none", a.Message)
	}
}

// TestUnknownDeviceCountsForAll: behind an external broker a sample may not say which device
// sent it (UnknownDevice). It keeps every device of its patient from being taken as silent
// (each used to raise device_offline 30 s after assignment while data flowed); once nothing
// arrives, the offline alarm comes as usual.
func TestUnknownDeviceCountsForAll(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	e.assign(dev, pat)
	e.assign("mon2", pat)
	for at := time.Duration(0); at <= time.Minute; at += 10 * time.Second {
		e.at(at)
		if err := e.submitFrom(UnknownDevice, pat, lowSample); err != nil {
			t.Fatalf("Submit from an unknown device at %v: %v", at, err)
		}
		e.tickAt(at + 5*time.Second)
		if a := e.open(pat, KindDeviceOffline); a != nil {
			t.Fatalf("at %v, with data every 10 s: %q; want no device_offline", at+5*time.Second, a.Message)
		}
	}
	e.tickAt(time.Minute + 30*time.Second + time.Millisecond)
	if a := e.mustOpen(pat, KindDeviceOffline); a.Message != "Device offline: mon1, mon2" {
		t.Errorf("after the data stopped: %q; want both devices offline", a.Message)
	}
}

// TestDataStaleIgnoresManualValues: a value a clinician entered by hand (a blood pressure taken
// with a cuff, next to a pulse oximeter) never "stopped arriving": it ages out of NEWS2, but
// raises no data_stale alarm. The same value from the device does.
func TestDataStaleIgnoresManualValues(t *testing.T) {
	for _, manual := range []bool{true, false} {
		t.Run(map[bool]string{true: "by hand", false: "from the device"}[manual], func(t *testing.T) {
			e := newEnv(t, nil)
			e.admit(pat, nil)
			e.assign(dev, pat)
			e.connect(dev)
			if manual {
				e.mustSubmit(pat, `{"hr":80,"spo2":97}`)
				if _, err := e.p.Observe(e.ctx(), hosp, pat, "nurse.jo", store.Vitals{Has: store.FieldSBP, SBP: 120}, e.now()); err != nil {
					t.Fatalf("Observe: %v", err)
				}
			} else {
				e.mustSubmit(pat, `{"hr":80,"spo2":97,"sbp":120}`)
			}
			// The monitor keeps sending hr and SpO2 for 70 minutes (sbp is fresh for 60).
			for d := time.Minute; d <= 70*time.Minute; d += time.Minute {
				e.at(d)
				e.mustSubmit(pat, `{"hr":80,"spo2":97}`)
			}
			a := e.open(pat, KindDataStale)
			switch {
			case manual && a != nil:
				t.Errorf("sbp entered by hand 70 min ago: data_stale %q; want none", a.Message)
			case !manual && (a == nil || a.Message != "No fresh data: sbp"):
				t.Errorf("sbp from the device 70 min ago: data_stale %+v; want \"No fresh data: sbp\"", a)
			}
		})
	}
}

// TestOfflineAcrossRestart: a device offline before a restart is still offline after it: its
// alert goes on (acknowledged, escalation level kept) instead of resolving once the restart's
// grace period makes it look fresh, then being raised again. With an offline delay longer
// than the clear delay, that used to happen.
func TestOfflineAcrossRestart(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.DeviceOfflineAfter, o.ClearDelay = time.Minute, 10*time.Second })
	e.admit(pat, nil)
	e.assign(dev, pat)
	e.assign("mon2", pat)
	e.tickAt(time.Minute + time.Millisecond)
	a := e.mustOpen(pat, KindDeviceOffline)
	if _, err := e.p.Acknowledge(e.ctx(), hosp, a.ID, "nurse1", ""); err != nil {
		t.Fatalf("Acknowledge: %v", err)
	}
	e.at(70 * time.Second)
	e.restart(nil)
	e.tickAt(90 * time.Second)
	e.tickAt(105 * time.Second) // past the clear delay, within the grace period
	got := e.mustOpen(pat, KindDeviceOffline)
	if got.ID != a.ID || got.State != store.StateAcknowledged {
		t.Errorf("after the restart: device_offline %s %s; want %s still acknowledged", got.ID, got.State, a.ID)
	}
}

// TestRestartGraceAfterLongStop: devices online when Vigil stopped get the offline delay to
// come back however long it was stopped; judging them against the restart time would raise
// device_offline for every monitored patient at once.
func TestRestartGraceAfterLongStop(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	e.assign(dev, pat)
	e.connect(dev)
	e.mustSubmit(pat, lowSample)
	e.at(10 * time.Second)
	e.mustSubmit(pat, lowSample)
	e.restart(func() { e.at(10 * time.Minute) }) // stopped for almost ten minutes
	e.tickAt(10*time.Minute + 29*time.Second)
	if a := e.open(pat, KindDeviceOffline); a != nil {
		t.Fatalf("29 s after a restart: %q; want the device given the offline delay to come back", a.Message)
	}
	e.tickAt(10*time.Minute + 30*time.Second + time.Millisecond)
	e.mustOpen(pat, KindDeviceOffline)
}
