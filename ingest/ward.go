package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/topics"
)

// WardStore is what the ward keeps.
type WardStore interface {
	CreatePatient(ctx context.Context, p store.Patient) error
	GetPatient(ctx context.Context, hospital, id string) (store.Patient, error)
	UpdatePatient(ctx context.Context, p store.Patient) error
	DeletePatient(ctx context.Context, hospital, id string) error
	CreateTriageCase(ctx context.Context, c store.TriageCase) error
	UpdateTriageCase(ctx context.Context, c store.TriageCase) error
	GetTriageCase(ctx context.Context, hospital, id string) (store.TriageCase, error)
	ListTriageCases(ctx context.Context, hospital string, pg store.Page) ([]store.TriageCase, string, error)
	PutBed(ctx context.Context, b store.Bed) error
	GetBed(ctx context.Context, hospital, id string) (store.Bed, error)
	PutStaff(ctx context.Context, s store.StaffMember) error
	CreateBroadcast(ctx context.Context, b store.Broadcast) error
}

// Detacher unassigns a discharged patient's devices.
type Detacher interface {
	UnassignPatient(ctx context.Context, hospital, patient string) error
}

// Ward runs the changes clinicians make besides alerts: admissions and discharges, triage,
// beds, staff and broadcasts. Each change is stored first, then published.
type Ward struct {
	st  WardStore
	pl  *Pipeline
	det Detacher
	// patients serialises admission, update and discharge of one patient within this process:
	// an update's read-change-write and its word to the pipeline must not interleave with
	// another update (one change lost) or a discharge (the pipeline would take the discharged
	// patient back). Striped by patient, so the lock set does not grow.
	patients [64]sync.Mutex
	// beds serialises, per hospital (striped), the bed checks and writes of admissions,
	// updates, discharges and bed changes. Taken after a patient's lock (never before one: a bed
	// change updates its patients' records with versioned writes, without their locks) and
	// held only around the bed work, so a discharge stalled on its alerts holds up its own
	// patient alone.
	beds [16]sync.Mutex
}

// lockPatient takes the lock of patient h/id and returns its unlock.
func (w *Ward) lockPatient(h, id string) func() {
	f := fnv.New32a()
	f.Write([]byte(h))
	f.Write([]byte{0})
	f.Write([]byte(id))
	mu := &w.patients[f.Sum32()%uint32(len(w.patients))]
	mu.Lock()
	return mu.Unlock
}

// lockBeds takes the bed lock of hospital h and returns its unlock, which may be called more
// than once (released early, and deferred).
func (w *Ward) lockBeds(h string) func() {
	f := fnv.New32a()
	f.Write([]byte(h))
	mu := &w.beds[f.Sum32()%uint32(len(w.beds))]
	mu.Lock()
	var once sync.Once
	return func() { once.Do(mu.Unlock) }
}

// NewWard builds the ward on the pipeline (which publishes and keeps patient state).
func NewWard(st WardStore, pl *Pipeline, det Detacher) *Ward { return &Ward{st: st, pl: pl, det: det} }

func (w *Ward) now() time.Time { return store.Millis(w.pl.opts.Now()) }

// Admit stores a new patient, occupies their bed (if they have one) and starts watching them.
func (w *Ward) Admit(ctx context.Context, p store.Patient) (store.Patient, error) {
	defer w.lockPatient(p.Hospital, p.ID)()
	now := w.now()
	p.AdmittedAt, p.UpdatedAt, p.Version = now, now, 1
	if p.SpO2Scale == 0 {
		p.SpO2Scale = 1
	}
	if err := w.checkLimits(p.Limits); err != nil {
		return store.Patient{}, err
	}
	unlockBeds := w.lockBeds(p.Hospital)
	defer unlockBeds()
	if err := w.bedFor(ctx, p.Hospital, p.Bed, p.ID); err != nil {
		return store.Patient{}, err
	}
	if err := w.st.CreatePatient(ctx, p); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Patient{}, conflict("patient %s is admitted already in hospital %s", p.ID, p.Hospital)
		}
		return store.Patient{}, err
	}
	w.moveBed(ctx, p.Hospital, p.ID, "", p.Bed)
	unlockBeds()
	if err := w.pl.PatientChanged(ctx, p); err != nil {
		return p, err
	}
	return p, nil
}

// Update stores changes of a patient (apply edits a copy) and rescores with the new SpO2
// scale and limits. The write is versioned: a change another process stored meanwhile is read
// again and apply runs on it, so neither change is lost.
func (w *Ward) Update(ctx context.Context, h, id string, apply func(*store.Patient)) (store.Patient, error) {
	defer w.lockPatient(h, id)()
	unlockBeds := w.lockBeds(h)
	defer unlockBeds()
	var oldBed string
	p, err := w.update(ctx, h, id, func(p *store.Patient) error {
		before := *p
		apply(p)
		if !sameLimits(before.Limits, p.Limits) { // limits stored before they were checked do not block other edits
			if err := w.checkLimits(p.Limits); err != nil {
				return err
			}
		}
		oldBed = before.Bed
		if p.Bed != before.Bed {
			return w.bedFor(ctx, h, p.Bed, id)
		}
		return nil
	})
	if err != nil {
		return p, err
	}
	w.moveBed(ctx, h, id, oldBed, p.Bed)
	unlockBeds()
	return p, w.pl.PatientChanged(ctx, p)
}

// update stores a change of a patient's record (edit changes a copy; an error from it stops the
// update) with a version check: a change stored meanwhile (by another process, or by a bed
// change here) is read again and edit runs on it.
func (w *Ward) update(ctx context.Context, h, id string, edit func(*store.Patient) error) (store.Patient, error) {
	for range maxRetries {
		p, err := w.st.GetPatient(ctx, h, id)
		if err != nil {
			return p, w.notFound(err, "patient", h, id)
		}
		if err := edit(&p); err != nil {
			return p, err
		}
		p.UpdatedAt = w.now()
		p.Version++
		err = w.st.UpdatePatient(ctx, p)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return p, w.notFound(err, "patient", h, id)
		}
		return p, nil
	}
	return store.Patient{}, conflict("patient %s keeps changing; try again", id)
}

// bedFor checks that bed b of hospital h can take patient p: no other patient is in it.
func (w *Ward) bedFor(ctx context.Context, h, b, p string) error {
	if b == "" {
		return nil
	}
	bed, err := w.st.GetBed(ctx, h, b)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	occ, err := w.occupant(ctx, bed)
	if err != nil {
		return err
	}
	if occ != "" && occ != p {
		return conflict("bed %s is occupied by patient %s; move or discharge them first", b, occ)
	}
	return nil
}

// occupant is the patient in a bed: the bed's patient if they are admitted and their record
// names the bed (the patient's record is the truth: a bed left naming a discharged or moved
// patient, by data from before beds followed patients or by a write that failed, is free).
func (w *Ward) occupant(ctx context.Context, bed store.Bed) (string, error) {
	if bed.Patient == "" {
		return "", nil
	}
	rec, err := w.st.GetPatient(ctx, bed.Hospital, bed.Patient)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	case rec.Bed != bed.ID:
		return "", nil
	}
	return bed.Patient, nil
}

// moveBed records that patient p left bed from (which is to be cleaned, if p was still in it)
// and is in bed to (occupied by p), and publishes each bed changed. The patient's record is
// stored already: a bed that fails to follow is logged, and put right by the next change.
func (w *Ward) moveBed(ctx context.Context, h, p, from, to string) {
	if from == to {
		return
	}
	if from != "" {
		if bed, err := w.st.GetBed(ctx, h, from); err == nil && bed.Patient == p {
			w.storeBed(ctx, store.Bed{Hospital: h, ID: from, Status: BedCleaning})
		}
	}
	if to != "" {
		w.storeBed(ctx, store.Bed{Hospital: h, ID: to, Status: BedOccupied, Patient: p})
	}
}

func (w *Ward) storeBed(ctx context.Context, b store.Bed) {
	if _, err := w.putBed(ctx, b); err != nil {
		w.pl.log.Warn("bed not updated after its patient's change", "hospital", b.Hospital, "bed", b.ID, "patient", b.Patient, "err", store.Cause(err))
	}
}

// checkLimits refuses a patient's own alarm limits that, with the site's limits for those
// they leave unset, put a low limit at or above its high one (hr_low 150 with the site's
// hr_high of 120 would alarm at every heart rate). The error names a limit the patient set.
func (w *Ward) checkLimits(own store.AlarmLimits) error {
	l := effectiveLimits(w.pl.opts.Limits, own)
	for _, c := range []struct {
		name            string
		low, high       float64
		lowSet, highSet bool
	}{
		{"hr", l.HRLow, l.HRHigh, own.HRLow != nil, own.HRHigh != nil},
		{"rr", l.RRLow, l.RRHigh, own.RRLow != nil, own.RRHigh != nil},
		{"sbp", l.SBPLow, l.SBPHigh, own.SBPLow != nil, own.SBPHigh != nil},
	} {
		if c.low < c.high || (!c.lowSet && !c.highSet) {
			continue
		}
		if c.lowSet {
			return &FieldError{Key: "limits." + c.name + "_low", Why: fmt.Sprintf("must be below the high limit in effect (%g)", c.high)}
		}
		return &FieldError{Key: "limits." + c.name + "_high", Why: fmt.Sprintf("must be above the low limit in effect (%g)", c.low)}
	}
	return nil
}

// sameLimits reports whether two sets of a patient's own limits are equal.
func sameLimits(a, b store.AlarmLimits) bool {
	eq := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return eq(a.SpO2Low, b.SpO2Low) && eq(a.HRLow, b.HRLow) && eq(a.HRHigh, b.HRHigh) && eq(a.RRLow, b.RRLow) &&
		eq(a.RRHigh, b.RRHigh) && eq(a.SBPLow, b.SBPLow) && eq(a.SBPHigh, b.SBPHigh) && eq(a.DelaySeconds, b.DelaySeconds)
}

// Discharge resolves the patient's open alerts ("patient discharged"), unassigns their devices
// and removes them; their bed is then to be cleaned.
func (w *Ward) Discharge(ctx context.Context, h, id, actor string) error {
	defer w.lockPatient(h, id)()
	if _, err := w.st.GetPatient(ctx, h, id); err != nil {
		return w.notFound(err, "patient", h, id)
	}
	if err := w.pl.Discharge(ctx, h, id, actor); err != nil {
		return err
	}
	if w.det != nil {
		if err := w.det.UnassignPatient(ctx, h, id); err != nil {
			return err
		}
	}
	// The record's bed is read again, and the record deleted, under the bed lock: a bed
	// change meanwhile (which does not wait for the patient's lock) may have moved them.
	unlockBeds := w.lockBeds(h)
	rec, err := w.st.GetPatient(ctx, h, id)
	if err == nil {
		err = w.st.DeletePatient(ctx, h, id)
	}
	if err != nil {
		unlockBeds()
		return w.notFound(err, "patient", h, id)
	}
	w.moveBed(ctx, h, id, rec.Bed, "")
	unlockBeds()
	if w.det != nil {
		// Once more: a device assigned meanwhile (its check saw the patient still admitted) is
		// found now; an assignment after this finds the patient gone (see devices.Registry.Assign).
		return w.det.UnassignPatient(ctx, h, id)
	}
	return nil
}

func isNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.code == "not_found"
}

func (w *Ward) notFound(err error, what, h, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return &Error{"not_found", fmt.Sprintf("%s %s not found in hospital %s", what, id, h)}
	}
	return err
}

// Broadcast stores a hospital-wide alert, then publishes it as hospital_alert on
// hospital/{h}/alerts.
func (w *Ward) Broadcast(ctx context.Context, h, priority, message, actor string) (store.Broadcast, error) {
	now := w.now()
	b := store.Broadcast{Hospital: h, ID: w.pl.ids.next(now), Priority: priority, Message: message, By: actor, At: now}
	if err := w.st.CreateBroadcast(ctx, b); err != nil {
		return b, err
	}
	env, err := jsonEnvelope(Envelope{Type: TypeHospitalAlert, ID: b.ID, TS: now, Hospital: h, Data: Broadcast{Priority: priority, Message: message, By: actor}})
	if err != nil {
		return b, err
	}
	w.pl.publish(ctx, topics.HospitalAlerts(h), env, false)
	w.pl.log.Info("broadcast", "hospital", h, "priority", priority, "by", actor, "id", b.ID)
	return b, nil
}

// Triage statuses.
const (
	TriageWaiting      = "waiting"
	TriageAssessment   = "in_assessment"
	TriageAssigned     = "assigned"
	TriageDone         = "done"
	triageQueuePageMax = 1000
)

// CreateTriage opens a case (ID generated when empty) and publishes it and the queue.
func (w *Ward) CreateTriage(ctx context.Context, c store.TriageCase) (store.TriageCase, error) {
	now := w.now()
	if c.ID == "" {
		c.ID = "t-" + w.pl.ids.next(now)
	}
	c.Status, c.CreatedAt, c.UpdatedAt, c.Version = TriageWaiting, now, now, 1
	if err := w.st.CreateTriageCase(ctx, c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return c, conflict("triage case %s exists", c.ID)
		}
		return c, err
	}
	w.publishTriage(ctx, c)
	return c, nil
}

// UpdateTriage changes a case (apply edits a copy) with a version check, then publishes it and
// the queue.
func (w *Ward) UpdateTriage(ctx context.Context, h, id string, apply func(*store.TriageCase)) (store.TriageCase, error) {
	for range maxRetries {
		c, err := w.st.GetTriageCase(ctx, h, id)
		if err != nil {
			return c, w.notFound(err, "triage case", h, id)
		}
		apply(&c)
		c.UpdatedAt, c.Version = w.now(), c.Version+1
		err = w.st.UpdateTriageCase(ctx, c)
		if errors.Is(err, store.ErrConflict) {
			continue // changed meanwhile: apply to the new version
		}
		if err != nil {
			return c, err
		}
		w.publishTriage(ctx, c)
		return c, nil
	}
	return store.TriageCase{}, conflict("triage case %s keeps changing; try again", id)
}

// Queue returns the open cases of hospital h: most urgent level first, then oldest.
func (w *Ward) Queue(ctx context.Context, h string) ([]store.TriageCase, error) {
	var all []store.TriageCase
	cursor := ""
	for {
		xs, next, err := w.st.ListTriageCases(ctx, h, store.Page{Limit: triageQueuePageMax, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, c := range xs {
			if c.Status != TriageDone {
				all = append(all, c)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	slices.SortStableFunc(all, func(a, b store.TriageCase) int {
		return cmp.Or(cmp.Compare(a.Level, b.Level), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return all, nil
}

// TriageView is a triage case as clients see it (the REST answer's shape).
type TriageView struct {
	Hospital  string    `json:"hospital"`
	ID        string    `json:"id"`
	Level     int       `json:"level"`
	Complaint string    `json:"complaint"`
	Patient   string    `json:"patient,omitempty"`
	Status    string    `json:"status"`
	Assignee  string    `json:"assignee,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func triageView(c store.TriageCase) TriageView {
	return TriageView{Hospital: c.Hospital, ID: c.ID, Level: c.Level, Complaint: c.Complaint, Patient: c.Patient,
		Status: c.Status, Assignee: c.Assignee, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// QueueSnapshot is the data of triage_updated on the queue topic.
type QueueSnapshot struct {
	Queue []TriageView `json:"queue"`
}

func (w *Ward) publishTriage(ctx context.Context, c store.TriageCase) {
	w.pl.publishEnvelope(ctx, topics.TriageCase(c.Hospital, c.ID), TypeTriageUpdated, c.Hospital, c.Patient, triageView(c), true)
	q, err := w.Queue(ctx, c.Hospital)
	if err != nil {
		w.pl.log.Warn("triage queue snapshot failed", "hospital", c.Hospital, "err", err)
		return
	}
	snap := QueueSnapshot{Queue: make([]TriageView, len(q))}
	for i, x := range q {
		snap.Queue[i] = triageView(x)
	}
	w.pl.publishEnvelope(ctx, topics.TriageQueue(c.Hospital), TypeTriageUpdated, c.Hospital, "", snap, true)
}

// Bed statuses.
const (
	BedFree     = "free"
	BedOccupied = "occupied"
	BedCleaning = "cleaning"
	BedBlocked  = "blocked"
)

// PutBed stores a bed's status and patient and publishes bed_status_changed (retained). Beds
// and patients stay in step: the bed's patient must be admitted, and their record then names
// this bed (the bed they leave is to be cleaned); a patient the bed no longer has loses it from
// their record; a bed with a patient cannot be given to another (409: move or discharge first).
// Only an occupied bed has a patient: any other status takes the bed from its patient.
func (w *Ward) PutBed(ctx context.Context, b store.Bed) (store.Bed, error) {
	defer w.lockBeds(b.Hospital)()
	var occ string // the patient in the bed now
	switch cur, err := w.st.GetBed(ctx, b.Hospital, b.ID); {
	case err == nil:
		if occ, err = w.occupant(ctx, cur); err != nil {
			return b, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return b, err
	}
	if b.Patient != "" {
		if occ != "" && occ != b.Patient {
			return b, conflict("bed %s is occupied by patient %s; move or discharge them first", b.ID, occ)
		}
		if _, err := w.st.GetPatient(ctx, b.Hospital, b.Patient); errors.Is(err, store.ErrNotFound) {
			return b, &FieldError{Key: "patient", Why: fmt.Sprintf("patient %s is not admitted in hospital %s", b.Patient, b.Hospital)}
		} else if err != nil {
			return b, err
		}
	}
	// The bed first: should a record then fail to follow, the records (the truth) still say
	// where each patient is, and the bed counts as free.
	stored, err := w.putBed(ctx, b)
	if err != nil {
		return b, err
	}
	if b.Patient != "" {
		var from string
		err := w.setBed(ctx, b.Hospital, b.Patient, func(bed string) (string, bool) {
			from = bed
			return b.ID, bed != b.ID
		})
		if err != nil {
			return stored, err
		}
		if from != b.ID {
			w.moveBed(ctx, b.Hospital, b.Patient, from, "")
		}
	}
	if occ != "" && occ != b.Patient {
		// The bed's patient leaves it (to no bed): their record no longer names it.
		err := w.setBed(ctx, b.Hospital, occ, func(bed string) (string, bool) { return "", bed == b.ID })
		if err != nil && !isNotFound(err) {
			return stored, err
		}
	}
	return stored, nil
}

// setBed changes the bed patient p's record names to what change returns, if it says so.
// Called with the hospital's bed lock held, so without the patient's lock (the lock order):
// the versioned write keeps a concurrent change of the record.
func (w *Ward) setBed(ctx context.Context, h, p string, change func(bed string) (string, bool)) error {
	_, err := w.update(ctx, h, p, func(rec *store.Patient) error {
		bed, ok := change(rec.Bed)
		if !ok {
			return errSkip
		}
		rec.Bed = bed
		return nil
	})
	if err == errSkip {
		return nil
	}
	return err
}

// errSkip stops an update that finds nothing to change.
var errSkip = errors.New("nothing to change")

func (w *Ward) putBed(ctx context.Context, b store.Bed) (store.Bed, error) {
	b.UpdatedAt = w.now()
	if err := w.st.PutBed(ctx, b); err != nil {
		return b, err
	}
	w.pl.publishEnvelope(ctx, topics.Bed(b.Hospital, b.ID), TypeBedChanged, b.Hospital, b.Patient, b, true)
	return b, nil
}

// PutStaff stores a staff member's availability and publishes staff_availability_changed
// (retained).
func (w *Ward) PutStaff(ctx context.Context, s store.StaffMember) (store.StaffMember, error) {
	s.UpdatedAt = w.now()
	if err := w.st.PutStaff(ctx, s); err != nil {
		return s, err
	}
	w.pl.publishEnvelope(ctx, topics.Staff(s.Hospital, s.ID), TypeStaffChanged, s.Hospital, "", s, true)
	return s, nil
}
