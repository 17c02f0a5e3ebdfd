package ingest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/store"
)

// Topics of patient p1 in hospital h1 ([DESIGN.md section 4]).
const (
	riskTopic     = "hospital/h1/patient/p1/risk"
	alertsTopic   = "hospital/h1/patient/p1/alerts"
	hospitalTopic = "hospital/h1/alerts"
)

// Samples and their NEWS2 scores (RCP Chart 1). None of them crosses a threshold-alarm limit.
const (
	highSample      = `{"rr":24,"spo2":92,"hr":115,"temp":38.5}`            // 2+2+2+1 = 7: high
	mediumSample    = `{"rr":22,"spo2":93,"temp":38.5}`                     // 2+2+1 = 5: medium
	lowMediumSample = `{"acvpu":"V"}`                                       // a single 3: low-medium
	lowSample       = `{"hr":80,"rr":16,"spo2":97}`                         // 0: low
	normalSample    = `{"rr":16,"spo2":97,"hr":80,"temp":37.0,"acvpu":"A"}` // 0, replacing all of the above
)

func TestNEWS2Priority(t *testing.T) {
	tests := []struct {
		name      string
		sample    string
		wantScore int
		wantLevel news2.Level
		priority  string // "": no alert
		escalate  time.Duration
	}{
		{"high score is a high-priority alert", highSample, 7, news2.High, PriorityHigh, time.Minute},
		{"medium score is a medium-priority alert", mediumSample, 5, news2.Medium, PriorityMedium, 3 * time.Minute},
		{"a single 3 is a low-priority alert", lowMediumSample, 3, news2.LowMedium, PriorityLow, 10 * time.Minute},
		{"low score raises no alert", lowSample, 0, news2.Low, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.admit(pat, nil)
			e.at(time.Second)
			e.mustSubmit(pat, tt.sample)
			evs := e.events()

			risks := onTopic(evs, riskTopic)
			if len(risks) != 1 {
				t.Fatalf("after %s: %d events on %s; want 1", tt.sample, len(risks), riskTopic)
			}
			ev := risks[0]
			if ev.Type != TypeRiskUpdated || !ev.Retain || ev.Hospital != hosp || ev.Patient != pat || ev.QoS != 1 {
				t.Errorf("risk event = %s on %s (retain %v, qos %d, hospital %q, patient %q); want risk_updated, retained, qos 1, h1/p1", ev.Type, ev.Topic, ev.Retain, ev.QoS, ev.Hospital, ev.Patient)
			}
			risk := ev.risk(t)
			if risk.Score != tt.wantScore || risk.Level != tt.wantLevel {
				t.Errorf("risk of %s = %d (%v); want %d (%v)", tt.sample, risk.Score, risk.Level, tt.wantScore, tt.wantLevel)
			}

			a := e.open(pat, KindNEWS2)
			if tt.priority == "" {
				if a != nil {
					t.Errorf("after %s: open NEWS2 alert %+v; want none", tt.sample, *a)
				}
				if got := onTopic(evs, alertsTopic); len(got) != 0 {
					t.Errorf("after %s: %d alert events; want none", tt.sample, len(got))
				}
				return
			}
			if a == nil {
				t.Fatalf("after %s: no open NEWS2 alert; want a %s one", tt.sample, tt.priority)
			}
			now := e.now()
			if a.Priority != tt.priority || a.State != store.StateActive || a.EscalationLevel != 0 || a.Category != CategoryPhysiological {
				t.Errorf("alert = %s/%s/level %d/%s; want %s/active/level 0/physiological", a.Priority, a.State, a.EscalationLevel, a.Category, tt.priority)
			}
			if want := fmt.Sprintf("NEWS2 %d (%s)", tt.wantScore, tt.wantLevel); a.Message != want {
				t.Errorf("alert message = %q; want %q", a.Message, want)
			}
			if a.Latched != (tt.priority == PriorityHigh) {
				t.Errorf("alert latched = %v; want %v (only high priority latches)", a.Latched, tt.priority == PriorityHigh)
			}
			if !a.RaisedAt.Equal(now) || a.EscalateAt == nil || !a.EscalateAt.Equal(now.Add(tt.escalate)) {
				t.Errorf("alert raised %v, escalates %v; want raised %v, escalating %v later", a.RaisedAt, a.EscalateAt, now, tt.escalate)
			}
			var stored news2.Risk
			if err := json.Unmarshal(a.Risk, &stored); err != nil || stored != risk {
				t.Errorf("alert risk = %s (%v); want the published risk %+v", a.Risk, err, risk)
			}
			checkHistory(t, *a, step{ActionRaised, SystemActor, ""})

			if got := alertActions(t, evs, alertsTopic); len(got) != 1 || got[0] != ActionRaised {
				t.Fatalf("alert events on %s = %v; want [raised]", alertsTopic, got)
			}
			view := onTopic(evs, alertsTopic)[0].alert(t).Alert
			if view.ID != a.ID || view.Priority != tt.priority || view.State != store.StateActive || view.Kind != KindNEWS2 {
				t.Errorf("published alert = %+v; want the stored alert %s", view, a.ID)
			}
			if got := onTopic(evs, hospitalTopic); len(got) != 0 {
				t.Errorf("%d events on %s for a new alert; want none (only escalations go there)", len(got), hospitalTopic)
			}
		})
	}
}

func TestRiskUpdated(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Fresh[news2.Pulse] = 2 * time.Minute })
	e.admit(pat, nil)
	e.tickAt(time.Minute)
	if evs := e.events(); len(evs) != 0 {
		t.Fatalf("a patient never measured published %d events (first on %s); want none", len(evs), evs[0].Topic)
	}

	missing := func(ps ...news2.Param) news2.Set {
		var s news2.Set
		for _, p := range ps {
			s = s.With(p)
		}
		return s
	}
	neverMeasured := []news2.Param{news2.SpO2, news2.Oxygen, news2.SystolicBP, news2.Consciousness, news2.Temperature}
	tests := []struct {
		name        string
		at          time.Duration
		sample      string // "": a tick
		wantEvent   bool
		wantScore   int
		wantMissing news2.Set
	}{
		{"first measurement", time.Minute, `{"hr":80,"rr":16}`, true, 0, missing(neverMeasured...)},
		{"same sub-scores: no event", time.Minute + 10*time.Second, `{"hr":85,"rr":17}`, false, 0, 0},
		{"a sub-score changes", time.Minute + 20*time.Second, `{"hr":95}`, true, 1, missing(neverMeasured...)},
		{"hr still fresh at its window", time.Minute + 20*time.Second + 2*time.Minute, "", false, 0, 0},
		{"hr stale past its window", time.Minute + 21*time.Second + 2*time.Minute, "", true, 0, missing(append(neverMeasured, news2.Pulse)...)},
		{"rr still fresh at 5 min", time.Minute + 10*time.Second + 5*time.Minute, "", false, 0, 0},
		{"rr stale past 5 min", time.Minute + 11*time.Second + 5*time.Minute, "", true, 0, news2.AllParams()},
		{"nothing changes", time.Hour, "", false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.at(tt.at)
			if tt.sample != "" {
				e.mustSubmit(pat, tt.sample)
			} else {
				e.tick()
			}
			evs := e.events()
			risks := onTopic(evs, riskTopic)
			if len(evs) != len(risks) {
				t.Errorf("%d events, %d of them on %s; want only risk events", len(evs), len(risks), riskTopic)
			}
			if !tt.wantEvent {
				if len(risks) != 0 {
					t.Errorf("published %d risk events (%s); want none", len(risks), risks[0].Data)
				}
				return
			}
			if len(risks) != 1 {
				t.Fatalf("published %d risk events; want 1", len(risks))
			}
			if !risks[0].Retain {
				t.Errorf("risk event not retained; want retained")
			}
			r := risks[0].risk(t)
			if r.Score != tt.wantScore || r.Missing != tt.wantMissing || r.Complete() {
				t.Errorf("risk = %s; want score %d, missing %08b, incomplete", risks[0].Data, tt.wantScore, tt.wantMissing)
			}
		})
	}
	v, err := e.p.View(e.ctx(), hosp, pat)
	if err != nil || !v.HasRisk || v.Risk.Missing != news2.AllParams() {
		t.Errorf("View = %+v, %v; want a risk with every parameter missing", v, err)
	}
}

// TestAlertUpdatedNotDuplicated: one open alert per kind; a worse reading updates it (same ID)
// and raises its priority; a worse condition than the one acknowledged makes it active again.
func TestAlertUpdatedNotDuplicated(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)

	risk, err := e.p.Observe(e.ctx(), hosp, pat, "nurse1", store.Vitals{Has: store.FieldACVPU, ACVPU: 'C'}, e.now())
	if err != nil || risk.Score != 3 || risk.Level != news2.LowMedium {
		t.Fatalf("Observe(acvpu C) = %+v, %v; want score 3, low-medium", risk, err)
	}
	first := e.mustOpen(pat, KindNEWS2)
	if first.Priority != PriorityLow {
		t.Fatalf("alert after acvpu C: %s; want low", first.Priority)
	}
	e.events()

	tests := []struct {
		name     string
		at       time.Duration
		sample   string
		ack      bool
		action   string // "": no alert event
		priority string
		state    string
		message  string
	}{
		{"worse: medium", 10 * time.Second, `{"rr":21}`, false, ActionUpdated, PriorityMedium, store.StateActive, "NEWS2 5 (medium)"},
		{"worse score, same priority", 20 * time.Second, `{"hr":95}`, false, ActionUpdated, PriorityMedium, store.StateActive, "NEWS2 6 (medium)"},
		{"better reading: no change", 25 * time.Second, `{"hr":85}`, false, "", PriorityMedium, store.StateActive, "NEWS2 6 (medium)"},
		{"acknowledged", 30 * time.Second, "", true, ActionAcknowledged, PriorityMedium, store.StateAcknowledged, "NEWS2 6 (medium)"},
		{"same score again: stays acknowledged", 35 * time.Second, `{"hr":95}`, false, "", PriorityMedium, store.StateAcknowledged, "NEWS2 6 (medium)"},
		{"worse: high, active again", 40 * time.Second, `{"spo2":91}`, false, ActionUpdated, PriorityHigh, store.StateActive, "NEWS2 9 (high)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.at(tt.at)
			if tt.ack {
				got, err := e.p.Acknowledge(e.ctx(), hosp, first.ID, "nurse1", "seen")
				if err != nil || got.State != store.StateAcknowledged || got.AckedBy != "nurse1" {
					t.Fatalf("Acknowledge = %s by %q, %v; want acknowledged by nurse1", got.State, got.AckedBy, err)
				}
			} else {
				e.mustSubmit(pat, tt.sample)
			}
			a := e.mustOpen(pat, KindNEWS2)
			if a.ID != first.ID {
				t.Errorf("open NEWS2 alert %s; want the first one, %s", a.ID, first.ID)
			}
			if a.Priority != tt.priority || a.State != tt.state || a.Message != tt.message {
				t.Errorf("alert = %s/%s/%q; want %s/%s/%q", a.Priority, a.State, a.Message, tt.priority, tt.state, tt.message)
			}
			evs := e.events()
			acts := alertActions(t, evs, alertsTopic)
			switch {
			case tt.action == "" && len(acts) != 0:
				t.Errorf("alert events %v; want none", acts)
			case tt.action != "" && (len(acts) != 1 || acts[0] != tt.action):
				t.Errorf("alert events %v; want [%s]", acts, tt.action)
			case tt.action != "":
				if v := onTopic(evs, alertsTopic)[0].alert(t).Alert; v.ID != first.ID || v.Priority != tt.priority || v.State != tt.state {
					t.Errorf("published alert %s %s/%s; want %s %s/%s", v.ID, v.Priority, v.State, first.ID, tt.priority, tt.state)
				}
			}
		})
	}

	a := e.alert(first.ID)
	if a.AckedBy != "" || a.AckedAt != nil || !a.Latched {
		t.Errorf("alert after a worse reading: acked by %q at %v, latched %v; want no acknowledgement, latched", a.AckedBy, a.AckedAt, a.Latched)
	}
	if want := t0.Add(40*time.Second + time.Minute); a.EscalateAt == nil || !a.EscalateAt.Equal(want) {
		t.Errorf("alert escalates at %v; want %v (high-priority timeout from the worsening)", a.EscalateAt, want)
	}
	checkHistory(t, a,
		step{ActionRaised, SystemActor, ""},
		step{ActionUpdated, SystemActor, ""},
		step{ActionUpdated, SystemActor, ""},
		step{ActionAcknowledged, "nurse1", "seen"},
		step{ActionUpdated, SystemActor, ""},
	)
	if all := e.alertsOf(pat, KindNEWS2); len(all) != 1 {
		t.Errorf("%d NEWS2 alerts stored; want 1", len(all))
	}
}

func TestHighPriorityLatches(t *testing.T) {
	tests := []struct {
		name       string
		active     []time.Duration // ticks before the acknowledgement: still active
		ackAt      time.Duration
		wantAcked  bool          // still acknowledged right after the acknowledgement
		resolvedAt time.Duration // when it resolves by itself
	}{
		// The condition cleared at 5 s; the clear delay is 30 s.
		{"acknowledged long after the clear delay: resolves at once", []time.Duration{35 * time.Second, 10*time.Minute - time.Millisecond}, 10 * time.Minute, false, 10 * time.Minute},
		{"acknowledged within the clear delay: resolves when it ends", []time.Duration{20*time.Second - time.Millisecond}, 20 * time.Second, true, 35 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.EscalateHigh = time.Hour })
			e.admit(pat, nil)
			e.mustSubmit(pat, highSample)
			a := e.mustOpen(pat, KindNEWS2)
			e.at(5 * time.Second)
			e.mustSubmit(pat, normalSample)
			for _, d := range tt.active {
				e.tickAt(d)
				if got := e.alert(a.ID); got.State != store.StateActive {
					t.Fatalf("at %v, condition clear since 5s: alert %s; want active (latched)", d, got.State)
				}
			}
			e.events()

			e.at(tt.ackAt)
			got, err := e.p.Acknowledge(e.ctx(), hosp, a.ID, "nurse1", "checked")
			if err != nil || got.State != store.StateAcknowledged {
				t.Fatalf("Acknowledge = %s, %v; want acknowledged", got.State, err)
			}
			if tt.wantAcked {
				e.tickAt(tt.resolvedAt - time.Millisecond)
				if got := e.alert(a.ID); got.State != store.StateAcknowledged {
					t.Fatalf("at %v: alert %s; want acknowledged until the clear delay ends", tt.resolvedAt-time.Millisecond, got.State)
				}
				e.tickAt(tt.resolvedAt)
			}
			got = e.alert(a.ID)
			if got.State != store.StateResolved || got.ResolvedBy != SystemActor || got.ResolvedAt == nil || !got.ResolvedAt.Equal(t0.Add(tt.resolvedAt)) {
				t.Errorf("alert %s by %q at %v; want resolved by vigil at %v", got.State, got.ResolvedBy, got.ResolvedAt, t0.Add(tt.resolvedAt))
			}
			checkHistory(t, got,
				step{ActionRaised, SystemActor, ""},
				step{ActionAcknowledged, "nurse1", "checked"},
				step{ActionResolved, SystemActor, "condition cleared"},
			)
			if acts := alertActions(t, e.events(), alertsTopic); fmt.Sprint(acts) != "[acknowledged resolved]" {
				t.Errorf("alert events %v; want [acknowledged resolved]", acts)
			}
			if e.open(pat, KindNEWS2) != nil {
				t.Errorf("a NEWS2 alert is still open; want none")
			}
		})
	}
}

func TestAutoResolve(t *testing.T) {
	tests := []struct {
		name     string
		sample   string
		priority string
		ack      bool
		relapse  bool // the condition returns within the clear delay, then clears again at 50 s
		resolve  time.Duration
	}{
		{"medium, unacknowledged", mediumSample, PriorityMedium, false, false, 40 * time.Second},
		{"low, acknowledged", lowMediumSample, PriorityLow, true, false, 40 * time.Second},
		{"condition back within the clear delay", mediumSample, PriorityMedium, false, true, 80 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.admit(pat, nil)
			e.mustSubmit(pat, tt.sample)
			a := e.mustOpen(pat, KindNEWS2)
			if a.Priority != tt.priority || a.Latched {
				t.Fatalf("alert %s, latched %v; want %s, not latched", a.Priority, a.Latched, tt.priority)
			}
			if tt.ack {
				e.at(5 * time.Second)
				if _, err := e.p.Acknowledge(e.ctx(), hosp, a.ID, "nurse1", ""); err != nil {
					t.Fatalf("Acknowledge: %v", err)
				}
			}
			e.at(10 * time.Second)
			e.mustSubmit(pat, normalSample)
			if tt.relapse {
				e.at(20 * time.Second)
				e.mustSubmit(pat, tt.sample)
				e.tickAt(45 * time.Second)
				if got := e.alert(a.ID); !got.Open() {
					t.Fatalf("at 45s, condition back at 20s: alert %s; want open", got.State)
				}
				e.at(50 * time.Second)
				e.mustSubmit(pat, normalSample)
			}
			e.events()

			e.tickAt(tt.resolve - time.Millisecond)
			if got := e.alert(a.ID); !got.Open() {
				t.Fatalf("at %v, before the clear delay ends: alert %s; want open", tt.resolve-time.Millisecond, got.State)
			}
			e.tickAt(tt.resolve)
			got := e.alert(a.ID)
			if got.State != store.StateResolved || got.ResolvedBy != SystemActor || !got.ResolvedAt.Equal(t0.Add(tt.resolve)) {
				t.Fatalf("at %v: alert %s by %q at %v; want resolved by vigil", tt.resolve, got.State, got.ResolvedBy, got.ResolvedAt)
			}
			if last := got.History[len(got.History)-1]; last.Action != ActionResolved || last.Actor != SystemActor || last.Note != "condition cleared" {
				t.Errorf("last history entry = %+v; want resolved by vigil, condition cleared", last)
			}
			if acts := alertActions(t, e.events(), alertsTopic); fmt.Sprint(acts) != "[resolved]" {
				t.Errorf("alert events %v; want [resolved]", acts)
			}
		})
	}
}

func TestEscalation(t *testing.T) {
	tests := []struct {
		name   string
		tune   func(*Options)
		sample string
		every  time.Duration
		max    int
	}{
		{"high, defaults", nil, highSample, time.Minute, 3},
		{"medium", func(o *Options) { o.EscalateMedium, o.MaxEscalation = 90*time.Second, 2 }, mediumSample, 90 * time.Second, 2},
		{"low", func(o *Options) { o.EscalateLow, o.MaxEscalation = 45*time.Second, 1 }, lowMediumSample, 45 * time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.tune)
			e.admit(pat, nil)
			e.mustSubmit(pat, tt.sample)
			a := e.mustOpen(pat, KindNEWS2)
			e.events()
			for level := 1; level <= tt.max; level++ {
				due := time.Duration(level) * tt.every
				e.tickAt(due - time.Millisecond)
				evs := e.events()
				if n := len(onTopic(evs, alertsTopic)) + len(onTopic(evs, hospitalTopic)); n != 0 {
					t.Fatalf("at %v, before the timeout: %d alert events; want none", due-time.Millisecond, n)
				}
				e.tickAt(due)
				evs = e.events()
				pe, he := onTopic(evs, alertsTopic), onTopic(evs, hospitalTopic)
				if len(pe) != 1 || len(he) != 1 {
					t.Fatalf("at %v: %d events on %s, %d on %s; want 1 and 1", due, len(pe), alertsTopic, len(he), hospitalTopic)
				}
				if pe[0].ID != he[0].ID || string(pe[0].Payload) != string(he[0].Payload) {
					t.Errorf("escalation events differ: %s vs %s; want one event (same ID) on both topics", pe[0].Payload, he[0].Payload)
				}
				for _, ev := range []pubEvent{pe[0], he[0]} {
					ae := ev.alert(t)
					if ev.Type != TypePatientAlert || ev.Retain || ae.Action != ActionEscalated || ae.Alert.EscalationLevel != level || ae.Alert.ID != a.ID {
						t.Errorf("event on %s = %s, retain %v, %s, level %d; want patient_alert, not retained, escalated, level %d", ev.Topic, ev.Type, ev.Retain, ae.Action, ae.Alert.EscalationLevel, level)
					}
				}
				got := e.alert(a.ID)
				if got.EscalationLevel != level || got.State != store.StateActive {
					t.Errorf("at %v: alert level %d, %s; want level %d, active", due, got.EscalationLevel, got.State, level)
				}
				if level < tt.max {
					if want := t0.Add(due + tt.every); got.EscalateAt == nil || !got.EscalateAt.Equal(want) {
						t.Errorf("at level %d: next escalation %v; want %v", level, got.EscalateAt, want)
					}
				} else if got.EscalateAt != nil {
					t.Errorf("at the last level: next escalation %v; want none", *got.EscalateAt)
				}
			}
			for _, d := range []time.Duration{time.Duration(tt.max+1) * tt.every, time.Duration(tt.max+2) * tt.every} {
				e.tickAt(d)
				evs := e.events()
				if n := len(onTopic(evs, alertsTopic)) + len(onTopic(evs, hospitalTopic)); n != 0 {
					t.Errorf("at %v, past the last level: %d alert events; want none", d, n)
				}
			}
			got := e.alert(a.ID)
			if got.EscalationLevel != tt.max {
				t.Errorf("alert level %d; want %d at most", got.EscalationLevel, tt.max)
			}
			want := []step{{ActionRaised, SystemActor, ""}}
			for range tt.max {
				want = append(want, step{ActionEscalated, SystemActor, ""})
			}
			checkHistory(t, got, want...)
		})
	}
}

func TestAcknowledgedNeverEscalates(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	e.mustSubmit(pat, highSample)
	a := e.mustOpen(pat, KindNEWS2)
	e.at(10 * time.Second)
	if _, err := e.p.Acknowledge(e.ctx(), hosp, a.ID, "nurse1", ""); err != nil {
		t.Fatalf("Acknowledge: %v", err)
	}
	for _, d := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute} {
		e.tickAt(d)
		if got := e.alert(a.ID); got.EscalationLevel != 0 || got.EscalateAt != nil || got.State != store.StateAcknowledged {
			t.Errorf("at %v: alert %s, level %d, escalates %v; want acknowledged, level 0, no escalation", d, got.State, got.EscalationLevel, got.EscalateAt)
		}
	}
	if evs := onTopic(e.events(), hospitalTopic); len(evs) != 0 {
		t.Errorf("%d events on %s; want none", len(evs), hospitalTopic)
	}
}

func ptr(v float64) *float64 { return &v }

func TestThresholdAlarms(t *testing.T) {
	tests := []struct {
		name     string
		limits   store.AlarmLimits
		sample   string
		kind     string
		delay    time.Duration
		priority string // "": no alarm
		message  string // checked when set
	}{
		{name: "spo2 below the site limit", sample: `{"spo2":88}`, kind: KindSpO2Low, delay: 10 * time.Second, priority: PriorityMedium, message: "SpO2 88 % below limit 90"},
		{name: "spo2 past the critical margin", sample: `{"spo2":84}`, kind: KindSpO2Low, delay: 10 * time.Second, priority: PriorityHigh},
		{name: "spo2 at the limit", sample: `{"spo2":90}`, kind: KindSpO2Low, delay: 10 * time.Second},
		{name: "patient limit: no alarm where the site's would", limits: store.AlarmLimits{SpO2Low: ptr(85)}, sample: `{"spo2":88}`, kind: KindSpO2Low, delay: 10 * time.Second},
		{name: "patient limit: medium where the site's is high", limits: store.AlarmLimits{SpO2Low: ptr(85)}, sample: `{"spo2":84}`, kind: KindSpO2Low, delay: 10 * time.Second, priority: PriorityMedium, message: "SpO2 84 % below limit 85"},
		{name: "patient limit: high past its margin", limits: store.AlarmLimits{SpO2Low: ptr(85)}, sample: `{"spo2":79}`, kind: KindSpO2Low, delay: 10 * time.Second, priority: PriorityHigh},
		{name: "patient condition delay", limits: store.AlarmLimits{DelaySeconds: ptr(30)}, sample: `{"spo2":88}`, kind: KindSpO2Low, delay: 30 * time.Second, priority: PriorityMedium},
		{name: "hr above the limit", sample: `{"hr":130}`, kind: KindHRHigh, delay: 10 * time.Second, priority: PriorityMedium, message: "HR 130 /min above limit 120"},
		{name: "hr at the critical margin", sample: `{"hr":140}`, kind: KindHRHigh, delay: 10 * time.Second, priority: PriorityMedium},
		{name: "hr past the critical margin", sample: `{"hr":141}`, kind: KindHRHigh, delay: 10 * time.Second, priority: PriorityHigh},
		{name: "patient hr limit", limits: store.AlarmLimits{HRHigh: ptr(140)}, sample: `{"hr":130}`, kind: KindHRHigh, delay: 10 * time.Second},
		{name: "hr below the limit", sample: `{"hr":45}`, kind: KindHRLow, delay: 10 * time.Second, priority: PriorityMedium},
		{name: "hr far below the limit", sample: `{"hr":39}`, kind: KindHRLow, delay: 10 * time.Second, priority: PriorityHigh},
		{name: "rr below the limit", sample: `{"rr":6}`, kind: KindRRLow, delay: 10 * time.Second, priority: PriorityMedium},
		{name: "rr far below the limit", sample: `{"rr":4}`, kind: KindRRLow, delay: 10 * time.Second, priority: PriorityHigh},
		{name: "rr above the limit", sample: `{"rr":28}`, kind: KindRRHigh, delay: 10 * time.Second, priority: PriorityMedium},
		{name: "rr far above the limit", sample: `{"rr":31}`, kind: KindRRHigh, delay: 10 * time.Second, priority: PriorityHigh},
		{name: "sbp below the limit", sample: `{"sbp":85}`, kind: KindSBPLow, delay: 10 * time.Second, priority: PriorityMedium},
		{name: "sbp far below the limit", sample: `{"sbp":79}`, kind: KindSBPLow, delay: 10 * time.Second, priority: PriorityHigh},
		{name: "sbp above the limit", sample: `{"sbp":200}`, kind: KindSBPHigh, delay: 10 * time.Second, priority: PriorityMedium, message: "SBP 200 mmHg above limit 180"},
		{name: "sbp far above the limit", sample: `{"sbp":221}`, kind: KindSBPHigh, delay: 10 * time.Second, priority: PriorityHigh},
		{name: "patient sbp limit", limits: store.AlarmLimits{SBPLow: ptr(80)}, sample: `{"sbp":85}`, kind: KindSBPLow, delay: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.admit(pat, func(p *store.Patient) { p.Limits = tt.limits })
			e.mustSubmit(pat, tt.sample)
			e.tickAt(tt.delay - time.Millisecond)
			if a := e.open(pat, tt.kind); a != nil {
				t.Fatalf("%s: %s alert at %v, before the condition delay %v; want none yet", tt.sample, tt.kind, tt.delay-time.Millisecond, tt.delay)
			}
			e.tickAt(tt.delay)
			a := e.open(pat, tt.kind)
			if tt.priority == "" {
				e.tickAt(2 * time.Minute)
				if a == nil {
					a = e.open(pat, tt.kind)
				}
				if a != nil {
					t.Errorf("%s: %s alert %s %q; want none", tt.sample, tt.kind, a.Priority, a.Message)
				}
				return
			}
			if a == nil {
				t.Fatalf("%s: no %s alert at %v; want a %s one", tt.sample, tt.kind, tt.delay, tt.priority)
			}
			if a.Priority != tt.priority || a.Category != CategoryPhysiological || a.State != store.StateActive || !a.RaisedAt.Equal(t0.Add(tt.delay)) {
				t.Errorf("%s: alert %s/%s/%s raised %v; want %s/physiological/active raised %v", tt.sample, a.Priority, a.Category, a.State, a.RaisedAt, tt.priority, t0.Add(tt.delay))
			}
			if a.Latched != (tt.priority == PriorityHigh) {
				t.Errorf("%s: alert latched %v; want %v", tt.sample, a.Latched, tt.priority == PriorityHigh)
			}
			if tt.message != "" && a.Message != tt.message {
				t.Errorf("%s: alert message %q; want %q", tt.sample, a.Message, tt.message)
			}
		})
	}
}

// TestConditionMustHold: the condition delay counts from when the condition last became true.
func TestConditionMustHold(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	steps := []struct {
		at     time.Duration
		sample string // "": a tick
		open   bool
	}{
		{0, `{"spo2":88}`, false},
		{5 * time.Second, `{"spo2":95}`, false},
		{8 * time.Second, `{"spo2":88}`, false},
		{12 * time.Second, "", false}, // 12 s after the first low reading, but only 4 s of this one
		{18*time.Second - time.Millisecond, "", false},
		{18 * time.Second, "", true},
	}
	for _, s := range steps {
		e.at(s.at)
		if s.sample != "" {
			e.mustSubmit(pat, s.sample)
		} else {
			e.tick()
		}
		if got := e.open(pat, KindSpO2Low) != nil; got != s.open {
			t.Errorf("at %v: spo2_low open = %v; want %v", s.at, got, s.open)
		}
	}
}

func TestAcknowledgeResolveErrors(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	e.mustSubmit(pat, highSample)
	a := e.mustOpen(pat, KindNEWS2)

	// An alert of another hospital.
	other := store.Patient{Hospital: "h2", ID: pat, Name: "Other", SpO2Scale: 1}
	if err := e.db.CreatePatient(e.ctx(), other); err != nil {
		t.Fatal(err)
	}
	if err := e.p.PatientChanged(e.ctx(), other); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Submit(e.ctx(), "h2", pat, "mon2", []byte(highSample), 1, e.now()); err != nil {
		t.Fatal(err)
	}
	e.sync()
	theirs, err := e.db.OpenAlerts(e.ctx(), "h2", pat)
	if err != nil || len(theirs) != 1 {
		t.Fatalf("OpenAlerts(h2) = %d alerts, %v; want 1", len(theirs), err)
	}
	b := theirs[0]

	const (
		ack = iota
		resolve
	)
	tests := []struct {
		name      string
		op        int
		hospital  string
		id        string
		wantCode  string // "": success
		wantState string
	}{
		{"acknowledge", ack, hosp, a.ID, "", store.StateAcknowledged},
		{"acknowledge twice", ack, hosp, a.ID, "conflict", ""},
		{"resolve acknowledged", resolve, hosp, a.ID, "", store.StateResolved},
		{"resolve twice", resolve, hosp, a.ID, "conflict", ""},
		{"acknowledge resolved", ack, hosp, a.ID, "conflict", ""},
		{"acknowledge unknown", ack, hosp, "01KAAAAAAAAAAAAAAAAAAAAAAA", "not_found", ""},
		{"resolve unknown", resolve, hosp, "01KAAAAAAAAAAAAAAAAAAAAAAA", "not_found", ""},
		{"acknowledge another hospital's alert", ack, hosp, b.ID, "not_found", ""},
		{"resolve another hospital's alert", resolve, hosp, b.ID, "not_found", ""},
		{"resolve it in its own hospital", resolve, "h2", b.ID, "", store.StateResolved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.at(e.now().Sub(t0) + time.Second)
			var got store.Alert
			var err error
			if tt.op == ack {
				got, err = e.p.Acknowledge(e.ctx(), tt.hospital, tt.id, "nurse1", tt.name)
			} else {
				got, err = e.p.Resolve(e.ctx(), tt.hospital, tt.id, "nurse1", tt.name)
			}
			if code(err) != tt.wantCode {
				t.Fatalf("%s(%s, %s) = %v (code %q); want code %q", tt.name, tt.hospital, tt.id, err, code(err), tt.wantCode)
			}
			if tt.wantCode == "" && (got.State != tt.wantState || got.ID != tt.id) {
				t.Errorf("%s(%s, %s) = %s %s; want %s", tt.name, tt.hospital, tt.id, got.ID, got.State, tt.wantState)
			}
		})
	}
	checkHistory(t, e.alert(a.ID),
		step{ActionRaised, SystemActor, ""},
		step{ActionAcknowledged, "nurse1", "acknowledge"},
		step{ActionResolved, "nurse1", "resolve acknowledged"},
	)
	if got, err := e.db.GetAlert(e.ctx(), "h2", b.ID); err != nil || got.Version != 2 || got.ResolvedBy != "nurse1" {
		t.Errorf("h2 alert = version %d resolved by %q, %v; want version 2 (untouched by the other hospital's calls)", got.Version, got.ResolvedBy, err)
	}
}

// raiseOn admits the patient, submits sample and returns the alert of kind raised once delay
// (the condition delay) has passed.
func (e *env) raiseOn(sample, kind string, delay time.Duration) store.Alert {
	e.t.Helper()
	e.admit(pat, nil)
	e.mustSubmit(pat, sample)
	e.tickAt(delay)
	return e.mustOpen(pat, kind)
}

// TestManualResolveSuppresses: an alert resolved by hand while its condition holds is not raised
// again until the condition has cleared; then it is.
func TestManualResolveSuppresses(t *testing.T) {
	tests := []struct {
		name      string
		bad, good string
		kind      string
		delay     time.Duration
	}{
		{"news2", highSample, normalSample, KindNEWS2, 0},
		{"threshold", `{"spo2":88}`, `{"spo2":95}`, KindSpO2Low, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			first := e.raiseOn(tt.bad, tt.kind, tt.delay)

			e.at(tt.delay + 5*time.Second)
			got, err := e.p.Resolve(e.ctx(), hosp, first.ID, "dr1", "known, treated")
			if err != nil || got.State != store.StateResolved || got.ResolvedBy != "dr1" {
				t.Fatalf("Resolve = %s by %q, %v; want resolved by dr1", got.State, got.ResolvedBy, err)
			}
			e.events()
			e.at(tt.delay + 10*time.Second)
			e.mustSubmit(pat, tt.bad)
			e.tickAt(tt.delay + 2*time.Minute)
			if a := e.open(pat, tt.kind); a != nil {
				t.Fatalf("condition still true after the manual resolve: %s alert %s raised again; want none until it clears", tt.kind, a.ID)
			}
			for _, ev := range onTopic(e.events(), alertsTopic) {
				if ae := ev.alert(t); ae.Alert.Kind == tt.kind {
					t.Errorf("%s event for %s while suppressed; want none", ae.Action, tt.kind)
				}
			}

			clearAt := tt.delay + 2*time.Minute + 10*time.Second
			e.at(clearAt)
			e.mustSubmit(pat, tt.good)
			e.at(clearAt + 10*time.Second)
			e.mustSubmit(pat, tt.bad)
			if tt.delay > 0 {
				e.tickAt(clearAt + 10*time.Second + tt.delay - time.Millisecond)
				if a := e.open(pat, tt.kind); a != nil {
					t.Fatalf("back again, before the condition delay: %s alert open; want none yet", tt.kind)
				}
				e.tickAt(clearAt + 10*time.Second + tt.delay)
			}
			again := e.mustOpen(pat, tt.kind)
			if again.ID == first.ID {
				t.Errorf("raised again with the resolved alert's ID %s; want a new alert", again.ID)
			}
			if n := len(e.alertsOf(pat, tt.kind)); n != 2 {
				t.Errorf("%d %s alerts stored; want 2", n, tt.kind)
			}
		})
	}
}

// TestManualResolveWorse: a manual resolve holds back only what was resolved. The hold survives
// a restart, but a reading worse than the resolved alert (a higher priority) raises a new alert.
func TestManualResolveWorse(t *testing.T) {
	tests := []struct {
		name             string
		bad, worse, kind string
		delay            time.Duration
	}{
		{"news2 medium, then high", mediumSample, highSample, KindNEWS2, 0},
		{"spo2 medium, then high", `{"spo2":88}`, `{"spo2":80}`, KindSpO2Low, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			first := e.raiseOn(tt.bad, tt.kind, tt.delay)
			if first.Priority != PriorityMedium {
				t.Fatalf("first alert priority %s; want medium", first.Priority)
			}
			e.at(tt.delay + 5*time.Second)
			if _, err := e.p.Resolve(e.ctx(), hosp, first.ID, "dr1", "known"); err != nil {
				t.Fatalf("Resolve: %v", err)
			}

			e.restart(nil)
			e.at(tt.delay + 10*time.Second)
			e.mustSubmit(pat, tt.bad)
			e.tickAt(tt.delay + 2*time.Minute)
			if a := e.open(pat, tt.kind); a != nil {
				t.Fatalf("after a restart, the resolved %s condition raised %s (%s) again; want it held back", tt.kind, a.ID, a.Priority)
			}

			worseAt := tt.delay + 2*time.Minute + time.Second
			e.at(worseAt)
			e.mustSubmit(pat, tt.worse)
			e.tickAt(worseAt + tt.delay)
			again := e.mustOpen(pat, tt.kind)
			if again.ID == first.ID || again.Priority != PriorityHigh {
				t.Errorf("worse reading: alert %s priority %s; want a new high-priority alert", again.ID, again.Priority)
			}
		})
	}
}
