package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilhq/vigil/internal/deadline"
	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/topics"
)

type jobKind uint8

const (
	jobSample jobKind = iota + 1
	jobImplausible
	jobAck
	jobResolve
	jobViews
	jobView
	jobPatient
	jobDischarge
	jobDevice
)

type devOp uint8

const (
	devAssigned devOp = iota + 1
	devUnassigned
	devConnected
	devDropped // disconnected without DISCONNECT
	devLeft    // disconnected cleanly
)

type job struct {
	kind     jobKind
	h, p     string
	sample   store.Sample
	received time.Time
	device   string
	devOp    devOp
	alertID  string
	actor    string
	note     string
	rec      store.Patient
	reply    chan result
}

type result struct {
	alert store.Alert
	risk  news2.Risk
	view  PatientView
	views map[string]PatientView
	err   error
}

// worker owns a share of the patients; only its goroutine touches them.
type worker struct {
	pl   *Pipeline
	opts *Options
	st   Store
	ids  *idGen
	m    *Metrics
	log  *slog.Logger

	in       chan job
	patients map[key]*patient
	verdicts map[string]verdict
	buf      []byte
	// deadlines bounds each job (jobDeadline); one context serves the jobs of 100 ms.
	deadlines *deadline.Shared

	// late: a sample older than a restart's replay would go back changed its patient's state
	// (see apply); it is saved right after the job, or at a later tick when a save is under
	// way or the last such save (lateSaved) was less than a second ago.
	late      bool
	lateSaved time.Time

	// The periodic snapshot is written by another goroutine (snapshotLater), one at a time.
	saving atomic.Bool    // a snapshot is being written
	saves  sync.WaitGroup // the goroutine writing it
	resave atomic.Bool    // a write failed: the next snapshot saves every patient
}

// replaySkew is how far before a saved state's time a restart replays samples: samples from
// monitors whose clocks are behind, handled after the snapshot, are then still replayed; only
// older ones make the worker save at once (see apply).
const replaySkew = 5 * time.Minute

// maxRetries bounds how often a job is retried after a version conflict (shared mode).
const maxRetries = 5

func newWorker(pl *Pipeline, i int) *worker {
	return &worker{pl: pl, opts: &pl.opts, st: pl.st, ids: &pl.ids, m: pl.m, log: pl.log.With("worker", i),
		in: make(chan job, 4096), patients: map[key]*patient{}, verdicts: make(map[string]verdict, len(Kinds)),
		deadlines: deadline.New(jobDeadline, 100*time.Millisecond)}
}

func (w *worker) run() {
	defer w.pl.wg.Done()
	tick := time.NewTicker(w.opts.Tick)
	defer tick.Stop()
	snap := time.NewTicker(w.opts.SnapshotEvery)
	defer snap.Stop()
	// One evaluation at once: the retained risks go out again (the broker does not keep them
	// across a restart) and timers that fell due while stopped run.
	w.tick()
	for {
		select {
		case j := <-w.in:
			w.handle(j)
		case <-tick.C:
			w.tick()
		case <-snap.C:
			w.snapshotLater()
		case <-w.pl.stop:
			for {
				select {
				case j := <-w.in:
					w.handle(j)
				default:
					w.snapshot()
					return
				}
			}
		}
	}
}

// load restores a patient at start: saved state, samples since it was saved, open alerts.
func (w *worker) load(ctx context.Context, rec store.Patient, open []store.Alert) error {
	pt := newPatient(rec.Hospital, rec.ID)
	pt.configure(rec, w.opts.Limits, w.opts.ConditionDelay)
	now := w.opts.Now()
	from := now.Add(-12 * time.Hour)
	savedAt := now.UnixMilli() // when the saved state was true
	st, err := w.st.GetPatientState(ctx, rec.Hospital, rec.ID)
	switch {
	case err == nil:
		saved, admission, ours, derr := pt.decode(st.Data)
		if ours && admission == 0 && st.UpdatedAt.Before(rec.AdmittedAt) {
			// A state that names no admission (saved before states did) but was saved before
			// this one began: an earlier admission's.
			pt = newPatient(rec.Hospital, rec.ID)
			pt.configure(rec, w.opts.Limits, w.opts.ConditionDelay)
			ours = false
		}
		switch {
		case derr != nil:
			w.log.Warn("saved patient state unreadable; rebuilding from samples", "hospital", rec.Hospital, "patient", rec.ID, "err", derr)
		case !ours:
			// An earlier admission's (a snapshot that outlived its discharge): its readings,
			// conditions and devices are not this patient's now.
			w.log.Warn("saved patient state is of an earlier admission; ignored", "hospital", rec.Hospital, "patient", rec.ID, "admitted", rec.AdmittedAt)
		default:
			pt.version = st.Version
			from = time.UnixMilli(saved).Add(-replaySkew)
			savedAt, pt.savedAt = saved, saved
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if from.Before(rec.AdmittedAt) {
		from = rec.AdmittedAt // an earlier admission's vitals are not this one's
	}
	if err := w.replay(ctx, pt, from); err != nil {
		return err
	}
	for id, d := range pt.devices {
		if w.opts.Shared {
			continue
		}
		if d.Unclean || savedAt-d.LastSeen > w.opts.DeviceOfflineAfter.Milliseconds() {
			continue // offline when the state was saved: still offline (its alert goes on)
		}
		// Connections did not survive the restart; give devices the offline delay to come back.
		pt.devices[id] = &device{LastSeen: max(d.LastSeen, now.UnixMilli())}
	}
	pt.setOpen(open)
	for _, a := range pt.open {
		// So a restart does not report the alert's reading again as an update (the snapshot
		// may be older than the alert's last change).
		pt.notePeak(a)
	}
	pt.published = false // republish the risk on the first evaluation
	pt.loaded = true
	w.patients[key{rec.Hospital, rec.ID}] = pt
	return nil
}

func (w *worker) replay(ctx context.Context, pt *patient, from time.Time) error {
	q := store.SampleQuery{Hospital: pt.h, Patient: pt.p, From: from}
	cursor := ""
	for {
		samples, next, err := w.st.ListSamples(ctx, q, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return err
		}
		for _, s := range samples {
			pt.merge(s.Vitals, s.Time.UnixMilli(), s.Device == "")
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// jobDeadline bounds the store calls of one job.
const jobDeadline = 30 * time.Second

// seedDevices gives the worker's patients the devices assigned to them when the pipeline
// starts that their saved state does not list, as a devAssigned job would (the offline delay
// starts now), and forgets devices the saved state still lists but the registry no longer
// assigns to them. Called by Start before the worker runs.
func (w *worker) seedDevices(assigned map[key][]string) {
	ms := w.opts.Now().UnixMilli()
	for k, pt := range w.patients {
		if !w.opts.Shared {
			for id := range pt.devices {
				if !slices.Contains(assigned[k], id) {
					w.device(pt, id, devUnassigned, ms)
				}
			}
		}
		for _, id := range assigned[k] {
			if pt.devices[id] == nil { // the saved state's devices were set by load
				w.device(pt, id, devAssigned, ms)
			}
		}
	}
}

func (w *worker) handle(j job) {
	ctx := w.deadlines.Context()
	var r result
	switch j.kind {
	case jobViews:
		r.views = map[string]PatientView{}
		for k, pt := range w.patients {
			if k.h == j.h {
				r.views[k.p] = pt.view()
			}
		}
	case jobView:
		if pt := w.patients[key{j.h, j.p}]; pt != nil {
			r.view = pt.view()
		} else {
			r.err = &Error{"not_found", "patient " + j.p + " not found in hospital " + j.h}
		}
	default:
		start := w.opts.Now()
		for attempt := 0; ; attempt++ {
			r = w.apply(ctx, j)
			if !errors.Is(r.err, store.ErrConflict) || !w.opts.Shared || attempt == maxRetries {
				break
			}
		}
		if j.kind == jobSample && !j.received.IsZero() {
			w.m.sampleTimes(j.received, start, w.opts.Now())
		}
		w.saveLate()
	}
	if j.reply != nil {
		j.reply <- r
	}
}

// saveLate starts the save a late sample asked for (see worker.late), if it can now.
func (w *worker) saveLate() {
	if w.late && time.Since(w.lateSaved) >= time.Second && w.snapshotLater() {
		w.late, w.lateSaved = false, time.Now()
	}
}

// apply runs one job against its patient. In shared mode the patient's state is reloaded first
// and saved after with a version check (ErrConflict: retry).
func (w *worker) apply(ctx context.Context, j job) result {
	k := key{j.h, j.p}
	pt := w.patients[k]
	if j.kind == jobPatient && pt == nil {
		pt = newPatient(j.h, j.p)
		pt.loaded = true
		w.patients[k] = pt
	}
	if pt == nil && w.opts.Shared {
		// Admitted by another process sharing the store: take the patient on here. A
		// discharge needs no record: it resolves whatever the store has open for the patient,
		// whoever raised it.
		switch rec, err := w.st.GetPatient(ctx, j.h, j.p); {
		case err == nil || j.kind == jobDischarge:
			pt = newPatient(j.h, j.p)
			pt.configure(rec, w.opts.Limits, w.opts.ConditionDelay)
			pt.loaded = true
			w.patients[k] = pt
		case !errors.Is(err, store.ErrNotFound):
			return result{err: err} // not known to be gone: a caller hears the store's trouble
		}
	}
	if pt == nil {
		return gone(j) // not admitted here (discharged meanwhile)
	}
	if w.opts.Shared {
		if j.kind == jobDischarge {
			if !w.reloadAlerts(ctx, pt) {
				return result{err: errDischargeUnresolved}
			}
		} else {
			switch err := w.refresh(ctx, pt); {
			case errors.Is(err, errGone):
				w.forget(ctx, pt)
				return gone(j)
			case err != nil:
				return result{err: err}
			}
		}
	}
	now := w.opts.Now()
	ms := now.UnixMilli()
	var r result
	switch j.kind {
	case jobSample:
		if pt.merge(j.sample.Vitals, j.sample.Time.UnixMilli(), j.sample.Device == "") && j.sample.Time.UnixMilli() < pt.savedAt-replaySkew.Milliseconds() {
			// Older than a restart's replay would go back (a backlog, a reading charted for
			// earlier): save the state right after this job, not at the next snapshot.
			w.late = true
		}
		if d := pt.devices[j.sample.Device]; d != nil {
			d.Connected, d.Unclean, d.LastSeen = true, false, ms
		} else if j.sample.Device == UnknownDevice {
			// Which device sent it is not known: the patient's devices are not silent.
			for _, d := range pt.devices {
				d.LastSeen = ms
			}
		}
		w.m.processed.Add(1)
	case jobImplausible:
		pt.implausible = append(pt.implausible, ms)
		if len(pt.implausible) > 100 {
			pt.implausible = pt.implausible[len(pt.implausible)-100:]
		}
		pt.dirty = true
	case jobDevice:
		w.device(pt, j.device, j.devOp, ms)
	case jobPatient:
		pt.configure(j.rec, w.opts.Limits, w.opts.ConditionDelay)
	case jobAck, jobResolve:
		a, err := w.command(ctx, pt, j, now)
		if err != nil {
			return result{err: err}
		}
		r.alert = a
	case jobDischarge:
		for _, a := range append(slices.Collect(maps.Values(pt.open)), pt.duplicates...) {
			if a.State == store.StateResolved {
				continue
			}
			if !w.resolve(ctx, pt, a, j.actor, "patient discharged", now) {
				// Forgetting the patient now would leave the alert open for good, with
				// nobody to escalate or resolve it: the patient stays admitted.
				return result{err: errDischargeUnresolved}
			}
		}
		w.saves.Wait() // a snapshot under way must not write the state back after its deletion
		if err := w.st.DeletePatientState(ctx, pt.h, pt.p); err != nil {
			w.log.Warn("deleting patient state failed", "hospital", pt.h, "patient", pt.p, "err", err)
		}
		w.pl.publish(ctx, topics.Risk(pt.h, pt.p), nil, true) // an empty retained message deletes it
		delete(w.patients, k)
		return result{}
	}
	r.risk = w.evaluate(ctx, pt, now)
	if w.opts.Shared {
		if err := w.save(ctx, pt, ms); err != nil {
			if (j.kind == jobAck || j.kind == jobResolve) && errors.Is(err, store.ErrConflict) {
				// The command is stored and published: doing it again would answer 409.
				// Only the patient's state is saved again, on top of the other's.
				w.saveAfterCommand(ctx, pt, r.alert, now)
				return r
			}
			return result{err: err}
		}
	}
	return r
}

// saveAfterCommand saves a patient's state after an alert command (shared mode) whose first
// save met another process's newer state: reload it, mark a manual resolution again,
// re-evaluate, save; a few times at most (the next tick saves it otherwise).
func (w *worker) saveAfterCommand(ctx context.Context, pt *patient, a store.Alert, now time.Time) {
	var err error
	for range maxRetries {
		if err = w.refresh(ctx, pt); err != nil {
			break
		}
		if a.State == store.StateResolved && pt.open[a.Kind] == nil {
			pt.suppress(a.Kind, a.Priority)
		}
		w.evaluate(ctx, pt, now)
		if err = w.save(ctx, pt, now.UnixMilli()); !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	if err != nil {
		w.log.Warn("saving patient state after an alert command failed; the next tick saves it", "hospital", pt.h, "patient", pt.p, "err", err)
	}
}

func (w *worker) device(pt *patient, id string, op devOp, ms int64) {
	d := pt.devices[id]
	switch op {
	case devAssigned:
		if d != nil {
			return // told again (shared mode: another process assigned it, and this one learnt it)
		}
		pt.devices[id] = &device{LastSeen: ms}
	case devUnassigned:
		delete(pt.devices, id)
	case devConnected:
		if d != nil {
			d.Connected, d.Unclean, d.LastSeen = true, false, ms
		}
	case devDropped:
		if d != nil {
			d.Connected, d.Unclean = false, true
		}
	case devLeft:
		if d != nil {
			d.Connected, d.Unclean = false, false
		}
	}
	pt.dirty = true
}

// command acknowledges or resolves one of the patient's alerts.
func (w *worker) command(ctx context.Context, pt *patient, j job, now time.Time) (store.Alert, error) {
	a := pt.alertByID(j.alertID)
	if a == nil {
		w.reloadAlerts(ctx, pt)
		a = pt.alertByID(j.alertID)
	}
	if a == nil {
		stored, err := w.st.GetAlert(ctx, pt.h, j.alertID)
		if err != nil {
			return store.Alert{}, alertNotFound(pt.h, j.alertID)
		}
		return stored, conflict("alert %s is %s already", j.alertID, stored.State)
	}
	switch j.kind {
	case jobAck:
		if a.State != store.StateActive {
			return *a, conflict("alert %s is %s already", a.ID, a.State)
		}
		if !w.acknowledge(ctx, pt, a, j.actor, j.note, now) {
			return store.Alert{}, &Error{"unavailable", "the acknowledgement could not be stored; try again"}
		}
	case jobResolve:
		kind, priority := a.Kind, a.Priority
		if !w.resolve(ctx, pt, a, j.actor, j.note, now) {
			return store.Alert{}, &Error{"unavailable", "the resolution could not be stored; try again"}
		}
		pt.suppress(kind, priority)
	}
	return w.st.GetAlert(ctx, pt.h, a.ID)
}

func (pt *patient) alertByID(id string) *store.Alert {
	for _, a := range pt.open {
		if a.ID == id {
			return a
		}
	}
	for _, a := range pt.duplicates {
		if a.ID == id {
			return a
		}
	}
	return nil
}

func (pt *patient) view() PatientView {
	v := PatientView{Risk: pt.risk, HasRisk: pt.published, OpenAlerts: len(pt.open)}
	for i, x := range pt.params {
		if x.At != 0 {
			v.Last[i].Value, v.Last[i].At = x.V, time.UnixMilli(x.At).UTC()
		}
	}
	return v
}

// evaluate scores the patient at now, publishes the risk when any part of it changed, and
// reconciles the alerts.
func (w *worker) evaluate(ctx context.Context, pt *patient, now time.Time) news2.Risk {
	ms := now.UnixMilli()
	fresh := pt.fresh(ms, w.opts)
	risk := news2.Score(fresh, pt.scale)
	// A patient never measured has no risk yet (null, not a reassuring 0); once measured, a risk
	// whose values have all gone stale is still published, with every parameter missing.
	if pt.measured() && (!pt.published || risk != pt.risk) {
		w.buf = appendRiskEvent(w.buf[:0], w.ids.next(now), now, pt.h, pt.p, risk)
		w.pl.publish(ctx, topics.Risk(pt.h, pt.p), w.buf, true)
		w.m.riskPublished.Add(1)
		pt.risk, pt.published, pt.dirty = risk, true, true
	}
	clear(w.verdicts)
	pt.evaluate(ms, risk, fresh, w.opts, w.verdicts)
	w.reconcile(ctx, pt, now, risk, w.verdicts)
	return risk
}

func (w *worker) tick() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := w.opts.Now()
	for _, pt := range w.patients {
		if w.opts.Shared {
			if err := w.refresh(ctx, pt); errors.Is(err, errGone) {
				w.forget(ctx, pt) // deleting the map entry being visited is safe in Go
				continue
			} else if err != nil {
				continue
			}
			w.evaluate(ctx, pt, now)
			_ = w.save(ctx, pt, now.UnixMilli())
			continue
		}
		w.evaluate(ctx, pt, now)
	}
	w.saveLate()
}

// snapshotLater is the periodic snapshot. The worker encodes the changed patients (it owns
// their state) and another goroutine writes them, so that samples do not wait for the synced
// write (a sample queued behind one waited up to 25 ms). One write at a time: while one is
// under way the patients stay changed for the next.
// It reports false when a write was under way (nothing done).
func (w *worker) snapshotLater() bool {
	if w.opts.Shared {
		return true // saved on every change
	}
	if w.saving.Load() {
		return false
	}
	batch := w.changedStates()
	if len(batch) == 0 {
		return true
	}
	w.saving.Store(true)
	w.saves.Go(func() {
		defer w.saving.Store(false)
		w.writeStates(batch)
	})
	return true
}

// snapshot saves the state of changed patients now, after any write under way (at shutdown),
// so a restart resumes from it.
func (w *worker) snapshot() {
	if w.opts.Shared {
		return // saved on every change
	}
	w.saves.Wait()
	if batch := w.changedStates(); len(batch) > 0 {
		w.writeStates(batch)
	}
}

// changedStates encodes the patients changed since the last snapshot (every patient after a
// failed write) and marks them saved.
func (w *worker) changedStates() []store.PatientState {
	all := w.resave.Swap(false)
	now := w.opts.Now().UnixMilli()
	var batch []store.PatientState
	for _, pt := range w.patients {
		if !pt.dirty && !all {
			continue
		}
		data, err := pt.encode(now)
		if err != nil {
			continue
		}
		batch = append(batch, store.PatientState{Hospital: pt.h, Patient: pt.p, Version: pt.version, Data: data, UpdatedAt: time.UnixMilli(now).UTC()})
		pt.dirty, pt.savedAt = false, now
	}
	return batch
}

// writeStates stores a snapshot; when that fails, the next one saves every patient.
func (w *worker) writeStates(batch []store.PatientState) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.st.SavePatientStates(ctx, batch); err != nil {
		w.log.Warn("saving patient state failed; will retry", "patients", len(batch), "err", err)
		w.resave.Store(true)
	}
}

// refresh reloads a patient's record, state and open alerts from the store (shared mode):
// another process may have changed any of them. errGone: the patient was discharged.
func (w *worker) refresh(ctx context.Context, pt *patient) error {
	rec, err := w.st.GetPatient(ctx, pt.h, pt.p)
	if errors.Is(err, store.ErrNotFound) {
		return errGone
	}
	if err != nil {
		return err
	}
	pt.configure(rec, w.opts.Limits, w.opts.ConditionDelay) // SpO2 scale and limits changed elsewhere
	fresh := newPatient(pt.h, pt.p)
	st, err := w.st.GetPatientState(ctx, pt.h, pt.p)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// None stored: nothing is known of this admission yet (a discharge elsewhere deleted
		// what this process still holds of an earlier one).
		pt.version = 0
	case err != nil:
		return err
	default:
		fresh.admitted = pt.admitted
		_, admission, ours, err := fresh.decode(st.Data)
		if err != nil {
			return err
		}
		if !ours || (admission == 0 && st.UpdatedAt.Before(rec.AdmittedAt)) {
			fresh = newPatient(pt.h, pt.p) // an earlier admission's: its data is not this one's
		}
		pt.version = st.Version
	}
	pt.params, pt.conds, pt.devices, pt.implausible = fresh.params, fresh.conds, fresh.devices, fresh.implausible
	pt.risk, pt.published = fresh.risk, fresh.published
	w.reloadAlerts(ctx, pt)
	return nil
}

// errGone: a patient this process holds was discharged by another (shared mode).
var errGone = errors.New("patient discharged")

// gone is the result of a job for a patient not admitted (any more): nothing for a device's
// sample, not found for a caller waiting for an answer.
func gone(j job) result {
	switch {
	case j.kind == jobAck || j.kind == jobResolve:
		return result{err: alertNotFound(j.h, j.alertID)}
	case j.reply != nil && j.kind != jobDischarge:
		return result{err: &Error{"not_found", fmt.Sprintf("patient %s not found in hospital %s", j.p, j.h)}}
	}
	return result{}
}

// forget drops a patient discharged by another process (shared mode): its samples are refused
// from now on, as any patient's not admitted. What a sample scored here while the discharge
// went on may have left behind (scored after the discharge resolved the alerts, before it
// deleted the record) goes too: open alerts are resolved, the state and the retained risk
// deleted.
//
// The patient stays held (not admitted) until all of that is done: the next tick tries again,
// so no alert is left open with nobody to resolve it. A patient admitted again meanwhile is
// left to the next refresh.
func (w *worker) forget(ctx context.Context, pt *patient) {
	if _, err := w.st.GetPatient(ctx, pt.h, pt.p); !errors.Is(err, store.ErrNotFound) {
		return // admitted again, or the store cannot say: not known to be gone
	}
	w.pl.setAdmitted(pt.h, pt.p, false)
	now := w.opts.Now()
	done := w.reloadAlerts(ctx, pt)
	if done {
		for _, a := range append(slices.Collect(maps.Values(pt.open)), pt.duplicates...) {
			if a.State != store.StateResolved && !w.resolve(ctx, pt, a, SystemActor, "patient discharged", now) {
				done = false
			}
		}
	}
	if err := w.st.DeletePatientState(ctx, pt.h, pt.p); err != nil {
		w.log.Warn("deleting a discharged patient's state failed", "hospital", pt.h, "patient", pt.p, "err", err)
		done = false
	}
	w.pl.publish(ctx, topics.Risk(pt.h, pt.p), nil, true)
	if !done {
		w.log.Warn("cleaning up after a patient discharged by another process failed; retrying at the next tick", "hospital", pt.h, "patient", pt.p)
		return
	}
	delete(w.patients, key{pt.h, pt.p})
	w.log.Info("patient discharged by another process; forgotten here", "hospital", pt.h, "patient", pt.p)
}

// save stores the patient's state with a version check (shared mode).
func (w *worker) save(ctx context.Context, pt *patient, now int64) error {
	data, err := pt.encode(now)
	if err != nil {
		return err
	}
	st := store.PatientState{Hospital: pt.h, Patient: pt.p, Version: pt.version + 1, Data: data, UpdatedAt: time.UnixMilli(now).UTC()}
	if err := w.st.PutPatientState(ctx, st); err != nil {
		return err
	}
	pt.version++
	pt.dirty = false
	return nil
}
