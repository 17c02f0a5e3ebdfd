package ingest

import (
	"encoding/json"
	"time"

	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/store"
)

// Priorities (IEC 60601-1-8) and categories of alerts.
const (
	PriorityHigh   = "high"
	PriorityMedium = "medium"
	PriorityLow    = "low"

	CategoryPhysiological = "physiological"
	CategoryTechnical     = "technical"
)

func priorityRank(p string) int {
	switch p {
	case PriorityHigh:
		return 3
	case PriorityMedium:
		return 2
	case PriorityLow:
		return 1
	}
	return 0
}

// param is the last value of one NEWS2 parameter and when it was measured (Unix ms; 0: never).
type param struct {
	V      float64 `json:"v"`
	At     int64   `json:"at"`
	Manual bool    `json:"manual,omitempty"` // from a clinician's observation, not a device
}

// condition tracks one alarm rule of a patient.
type condition struct {
	Since      int64 `json:"since,omitempty"`       // condition true since (Unix ms), 0 when false
	ClearSince int64 `json:"clear_since,omitempty"` // condition false since, while an alert is open
	Suppressed bool  `json:"suppressed,omitempty"`  // resolved by hand while true: not raised again until it clears...
	// ...unless it becomes worse than the alert resolved: a higher priority than this one
	// raises a new alert ("": saved before this was kept; suppressed at any priority).
	SuppressedPriority string  `json:"suppressed_priority,omitempty"`
	Peak               float64 `json:"peak,omitempty"` // worst value the open alert has reported
}

// device is an assigned device as the patient's state sees it.
type device struct {
	Connected bool  `json:"connected"`
	Unclean   bool  `json:"unclean,omitempty"` // dropped without DISCONNECT
	LastSeen  int64 `json:"last_seen"`         // last sample, connect or assignment (Unix ms)
}

// patient is everything the pipeline keeps about one patient. Only its worker touches it.
type patient struct {
	h, p   string
	scale  news2.Scale
	limits Limits
	delay  time.Duration // threshold condition delay

	params      [news2.NumParams]param
	conds       map[string]*condition
	devices     map[string]*device
	implausible []int64 // times of refused implausible samples, within the window

	open map[string]*store.Alert // open alerts by kind
	// duplicates are further open alerts of a kind that has one in open (a raise whose store
	// write failed ambiguously, or two processes raising at once in shared mode): the next
	// evaluation resolves them. reloads counts setOpen calls. unsure: IDs of alerts whose
	// raise failed, which the store may hold all the same; the next evaluation reloads the
	// open alerts and announces those of them it finds.
	duplicates []*store.Alert
	reloads    int
	unsure     []string

	risk      news2.Risk // last published
	published bool

	dirty    bool
	version  int64 // stored state version (shared mode)
	admitted int64 // the admission's time (ms; 0: not known), which saved states name
	savedAt  int64 // when its state was last saved (ms; snapshots, not shared mode)
	loaded   bool
}

func newPatient(h, p string) *patient {
	return &patient{h: h, p: p, scale: news2.Scale1, conds: map[string]*condition{}, devices: map[string]*device{}, open: map[string]*store.Alert{}}
}

// setOpen takes the patient's open alerts as stored: one per kind (the earliest raised), the
// others as duplicates.
func (pt *patient) setOpen(open []store.Alert) {
	pt.open, pt.duplicates = map[string]*store.Alert{}, nil
	pt.reloads++
	for i := range open {
		a := &open[i]
		cur := pt.open[a.Kind]
		if cur == nil {
			pt.open[a.Kind] = a
			continue
		}
		if a.RaisedAt.Before(cur.RaisedAt) || (a.RaisedAt.Equal(cur.RaisedAt) && a.ID < cur.ID) {
			pt.open[a.Kind], a = a, cur
		}
		pt.duplicates = append(pt.duplicates, a)
	}
}

// notePeak records the worst reading an open alert has reported (NEWS2: its score), so that
// only a worse one updates it.
func (pt *patient) notePeak(a *store.Alert) {
	var r news2.Risk
	if a.Kind == KindNEWS2 && r.UnmarshalJSON(a.Risk) == nil {
		c := pt.cond(a.Kind)
		c.Peak = max(c.Peak, float64(r.Score))
	}
}

func (pt *patient) cond(kind string) *condition {
	c := pt.conds[kind]
	if c == nil {
		c = &condition{}
		pt.conds[kind] = c
	}
	return c
}

// configure applies the patient's record: SpO2 scale and alarm limits.
// effectiveLimits is a patient's alarm limits: the site's, with the patient's own in place of
// those they set.
func effectiveLimits(site Limits, own store.AlarmLimits) Limits {
	l := site
	set := func(dst *float64, v *float64) {
		if v != nil {
			*dst = *v
		}
	}
	set(&l.SpO2Low, own.SpO2Low)
	set(&l.HRLow, own.HRLow)
	set(&l.HRHigh, own.HRHigh)
	set(&l.RRLow, own.RRLow)
	set(&l.RRHigh, own.RRHigh)
	set(&l.SBPLow, own.SBPLow)
	set(&l.SBPHigh, own.SBPHigh)
	return l
}

func (pt *patient) configure(rec store.Patient, site Limits, delay time.Duration) {
	if !rec.AdmittedAt.IsZero() {
		pt.admitted = rec.AdmittedAt.UnixMilli()
	}
	pt.scale = news2.Scale1
	if rec.SpO2Scale == 2 {
		pt.scale = news2.Scale2
	}
	pt.limits = effectiveLimits(site, rec.Limits)
	pt.delay = delay
	if rec.Limits.DelaySeconds != nil {
		pt.delay = time.Duration(*rec.Limits.DelaySeconds * float64(time.Second))
	}
}

// merge takes a sample's measurements into the state: each parameter keeps its newest value, so
// samples handled out of order (or by several processes) end in the same state.
func (pt *patient) merge(v store.Vitals, at int64, manual bool) bool {
	changed := false
	take := func(f store.Fields, p news2.Param, val float64) {
		if v.Has&f != 0 && at >= pt.params[p].At {
			pt.params[p] = param{V: val, At: at, Manual: manual}
			changed = true
		}
	}
	take(store.FieldHR, news2.Pulse, v.HR)
	take(store.FieldRR, news2.RespRate, v.RR)
	take(store.FieldSpO2, news2.SpO2, v.SpO2)
	take(store.FieldSBP, news2.SystolicBP, v.SBP)
	take(store.FieldTemp, news2.Temperature, v.Temp)
	o2 := 0.0
	if v.O2 {
		o2 = 1
	}
	take(store.FieldO2, news2.Oxygen, o2)
	take(store.FieldACVPU, news2.Consciousness, float64(v.ACVPU))
	if changed {
		pt.dirty = true
	}
	return changed
}

// suppress records that an alert of kind and priority was resolved by hand while its condition
// holds: not raised again until the condition has cleared once, unless it gets worse.
func (pt *patient) suppress(kind, priority string) {
	if c := pt.conds[kind]; c != nil && c.Since != 0 {
		c.Suppressed, c.SuppressedPriority = true, priority
		pt.dirty = true
	}
}

// measured reports whether any parameter ever had a value.
func (pt *patient) measured() bool {
	for _, x := range pt.params {
		if x.At != 0 {
			return true
		}
	}
	return false
}

// fresh returns the parameters whose values are fresh at now, for scoring.
func (pt *patient) fresh(now int64, o *Options) news2.Vitals {
	var v news2.Vitals
	for p := news2.Param(0); p < news2.NumParams; p++ {
		x := pt.params[p]
		if x.At == 0 || now-x.At > o.Fresh[p].Milliseconds() {
			continue
		}
		v.Present = v.Present.With(p)
		switch p {
		case news2.RespRate:
			v.RespRate = x.V
		case news2.SpO2:
			v.SpO2 = x.V
		case news2.Oxygen:
			v.Oxygen = x.V != 0
		case news2.SystolicBP:
			v.SystolicBP = x.V
		case news2.Pulse:
			v.Pulse = x.V
		case news2.Consciousness:
			v.Consciousness = byte(x.V)
		case news2.Temperature:
			v.Temperature = x.V
		}
	}
	return v
}

// stateDoc is the stored form of a patient's state (snapshots, and shared mode).
type stateDoc struct {
	Params      [news2.NumParams]param `json:"params"`
	Conds       map[string]*condition  `json:"conds,omitempty"`
	Devices     map[string]*device     `json:"devices,omitempty"`
	Implausible []int64                `json:"implausible,omitempty"`
	Risk        *news2.Risk            `json:"risk,omitempty"`
	SavedAt     int64                  `json:"saved_at"`
	// Admitted names the admission the state is of (its time, ms); 0 in states saved before.
	Admitted int64 `json:"admitted,omitempty"`
}

func (pt *patient) encode(now int64) ([]byte, error) {
	d := stateDoc{Params: pt.params, Conds: pt.conds, Devices: pt.devices, Implausible: pt.implausible, SavedAt: now, Admitted: pt.admitted}
	if pt.published {
		r := pt.risk
		d.Risk = &r
	}
	return json.Marshal(d)
}

// decode restores a saved state; it returns when it was saved and the admission it names (0:
// none, a state saved before states named theirs). A state of another admission than the
// patient's (an earlier one's, written back after its discharge) is not restored: ours is
// false.
func (pt *patient) decode(b []byte) (savedAt, admission int64, ours bool, err error) {
	var d stateDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return 0, 0, false, err
	}
	if d.Admitted != 0 && pt.admitted != 0 && d.Admitted != pt.admitted {
		return d.SavedAt, d.Admitted, false, nil
	}
	pt.params = d.Params
	if d.Conds != nil {
		pt.conds = d.Conds
	}
	if d.Devices != nil {
		pt.devices = d.Devices
	}
	pt.implausible = d.Implausible
	if d.Risk != nil {
		pt.risk, pt.published = *d.Risk, true
	}
	return d.SavedAt, d.Admitted, true, nil
}
