package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/topics"
)

// Alert actions, as published in patient_alert events and kept in an alert's history.
const (
	ActionRaised       = "raised"
	ActionUpdated      = "updated"
	ActionEscalated    = "escalated"
	ActionAcknowledged = "acknowledged"
	ActionResolved     = "resolved"
)

// SystemActor is the actor of changes Vigil makes by itself.
const SystemActor = "vigil"

// Error is an ingest error with a code the HTTP layer maps to a status.
type Error struct{ code, msg string }

func (e *Error) Error() string { return e.msg }

// Code is "not_found", "conflict", "invalid" or "unavailable".
func (e *Error) Code() string { return e.code }

// ErrClosed is returned once the pipeline has stopped.
var ErrClosed = &Error{"unavailable", "ingest pipeline stopped"}

func conflict(format string, args ...any) error {
	return &Error{"conflict", fmt.Sprintf(format, args...)}
}

func alertNotFound(h, id string) error {
	return &Error{"not_found", fmt.Sprintf("alert %s not found in hospital %s", id, h)}
}

// reconcile brings the patient's alerts in line with the rules' verdicts at now: raise after
// the condition delay, update on a worse reading, resolve after the clear delay (latched alerts
// once acknowledged), escalate when unacknowledged past the timeout.
func (w *worker) reconcile(ctx context.Context, pt *patient, now time.Time, risk news2.Risk, verdicts map[string]verdict) {
	ms := now.UnixMilli()
	if len(pt.unsure) > 0 {
		w.reloadAlerts(ctx, pt) // announces an alert a failed raise stored all the same
	}
	if len(pt.duplicates) > 0 {
		w.resolveDuplicates(ctx, pt, now)
	}
	for _, kind := range Kinds {
		v := verdicts[kind]
		c := pt.cond(kind)
		a := pt.open[kind]
		if v.active {
			if c.ClearSince != 0 {
				c.ClearSince = 0
				pt.dirty = true
			}
			if c.Since == 0 {
				c.Since = ms
				pt.dirty = true
			}
			if a == nil {
				if c.suppresses(v.priority) || ms-c.Since < v.delay.Milliseconds() {
					continue
				}
				if w.raise(ctx, pt, kind, v, risk, now) {
					c.Peak = v.worse
					c.Suppressed, c.SuppressedPriority = false, ""
				}
				continue
			}
			raised := priorityRank(v.priority) > priorityRank(a.Priority)
			if raised || (kind == KindNEWS2 && v.worse > c.Peak) {
				if w.update(ctx, pt, a, v, risk, now, raised) {
					c.Peak = max(c.Peak, v.worse)
				}
			}
			continue
		}
		if c.Since != 0 || c.Suppressed {
			c.Since, c.Suppressed, c.SuppressedPriority = 0, false, ""
			pt.dirty = true
		}
		if a == nil {
			continue
		}
		if c.ClearSince == 0 {
			c.ClearSince = ms
			pt.dirty = true
		}
		if ms-c.ClearSince < w.opts.ClearDelay.Milliseconds() {
			continue
		}
		if a.Latched && a.State == store.StateActive {
			continue // a latched alarm stays until someone acknowledges it
		}
		w.resolve(ctx, pt, a, SystemActor, "condition cleared", now)
	}
	for _, a := range pt.open {
		if a.State == store.StateActive && a.EscalateAt != nil && !now.Before(*a.EscalateAt) {
			w.escalate(ctx, pt, a, now)
		}
	}
}

// suppresses reports whether a manual resolution still holds back an alert of priority p: the
// condition has not cleared since, and p is no higher than the resolved alert's.
func (c *condition) suppresses(p string) bool {
	return c.Suppressed && (c.SuppressedPriority == "" || priorityRank(p) <= priorityRank(c.SuppressedPriority))
}

// resolveDuplicates resolves the open alerts that double one of the patient's open alerts
// (see patient.duplicates). A failure leaves one for the next evaluation; a reload meanwhile
// (a conflict) brings the store's list instead.
func (w *worker) resolveDuplicates(ctx context.Context, pt *patient, now time.Time) {
	list, gen := pt.duplicates, pt.reloads
	pt.duplicates = nil
	for _, d := range list {
		if pt.reloads != gen {
			return
		}
		if d.State == store.StateResolved {
			continue // resolved by hand meanwhile
		}
		keep := pt.open[d.Kind]
		if keep != nil && keep.ID == d.ID {
			continue // it took the place of its alert, gone meanwhile
		}
		note := "duplicate"
		if keep != nil {
			note = "duplicate of alert " + keep.ID
		}
		if !w.resolve(ctx, pt, d, SystemActor, note, now) && pt.reloads == gen {
			pt.duplicates = append(pt.duplicates, d)
		}
	}
}

func riskJSON(r news2.Risk) json.RawMessage { return r.AppendJSON(make([]byte, 0, 192)) }

func at(t time.Time) *time.Time { t = store.Millis(t); return &t }

func event(a *store.Alert, action, actor, note string, now time.Time) store.AlertEvent {
	return store.AlertEvent{Version: a.Version, Action: action, Actor: actor, At: store.Millis(now), Note: note,
		Priority: a.Priority, State: a.State, EscalationLevel: a.EscalationLevel, Message: a.Message}
}

func (w *worker) raise(ctx context.Context, pt *patient, kind string, v verdict, risk news2.Risk, now time.Time) bool {
	now = store.Millis(now)
	if len(pt.unsure) > 0 {
		// An earlier raise failed; its write may have reached the store all the same (a
		// timeout after the insert). Such an alert is taken on (and announced), not doubled.
		if !w.reloadAlerts(ctx, pt) {
			return false
		}
		if pt.open[kind] != nil {
			return true
		}
	}
	a := &store.Alert{
		ID: w.ids.next(now), Hospital: pt.h, Patient: pt.p, Kind: kind, Category: v.category,
		Priority: v.priority, State: store.StateActive, Message: v.message,
		RaisedAt: now, UpdatedAt: now, Risk: riskJSON(risk),
		Latched:    v.priority == PriorityHigh, // IEC 60601-1-8: high-priority alarms latch
		EscalateAt: at(now.Add(w.opts.escalateAfter(v.priority))),
		Version:    1,
	}
	a.History = []store.AlertEvent{event(a, ActionRaised, SystemActor, "", now)}
	if err := w.st.CreateAlert(ctx, *a); err != nil {
		w.fail("raise", pt, kind, err)
		pt.unsure = append(pt.unsure, a.ID)
		return false
	}
	pt.open[kind] = a
	w.m.alerts(ActionRaised)
	w.publishAlert(ctx, a, ActionRaised)
	return true
}

func (w *worker) update(ctx context.Context, pt *patient, a *store.Alert, v verdict, risk news2.Risk, now time.Time, raised bool) bool {
	now = store.Millis(now)
	b := *a
	b.Message, b.UpdatedAt, b.Risk, b.Version = v.message, now, riskJSON(risk), a.Version+1
	if raised {
		b.Priority = v.priority
		b.Latched = b.Latched || v.priority == PriorityHigh
		if b.State == store.StateAcknowledged {
			// A worse condition than the one acknowledged alarms again.
			b.State, b.AckedBy, b.AckedAt = store.StateActive, "", nil
		}
		due := now.Add(w.opts.escalateAfter(b.Priority))
		if b.State == store.StateActive && b.EscalationLevel < w.opts.MaxEscalation && (b.EscalateAt == nil || due.Before(*b.EscalateAt)) {
			b.EscalateAt = at(due)
		}
	}
	return w.commit(ctx, pt, a, &b, ActionUpdated, SystemActor, "", now, false)
}

func (w *worker) escalate(ctx context.Context, pt *patient, a *store.Alert, now time.Time) {
	now = store.Millis(now)
	b := *a
	b.EscalationLevel, b.UpdatedAt, b.Version = a.EscalationLevel+1, now, a.Version+1
	b.EscalateAt = nil
	if b.EscalationLevel < w.opts.MaxEscalation {
		b.EscalateAt = at(now.Add(w.opts.escalateAfter(b.Priority)))
	}
	w.commit(ctx, pt, a, &b, ActionEscalated, SystemActor, "", now, true)
}

func (w *worker) resolve(ctx context.Context, pt *patient, a *store.Alert, actor, note string, now time.Time) bool {
	now = store.Millis(now)
	b := *a
	b.State, b.ResolvedBy, b.ResolvedAt, b.UpdatedAt, b.EscalateAt, b.Version = store.StateResolved, actor, at(now), now, nil, a.Version+1
	return w.commit(ctx, pt, a, &b, ActionResolved, actor, note, now, false)
}

func (w *worker) acknowledge(ctx context.Context, pt *patient, a *store.Alert, actor, note string, now time.Time) bool {
	now = store.Millis(now)
	b := *a
	b.State, b.AckedBy, b.AckedAt, b.UpdatedAt, b.EscalateAt, b.Version = store.StateAcknowledged, actor, at(now), now, nil, a.Version+1
	return w.commit(ctx, pt, a, &b, ActionAcknowledged, actor, note, now, false)
}

// commit stores the change (durably, with its history event) and only then publishes it.
func (w *worker) commit(ctx context.Context, pt *patient, old, b *store.Alert, action, actor, note string, now time.Time, hospital bool) bool {
	b.History = nil
	ev := event(b, action, actor, note, now)
	err := w.st.UpdateAlert(ctx, *b, ev)
	if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) && w.landed(ctx, b, ev) {
		err = nil // stored after all: announced like any other change
	}
	if err != nil {
		w.fail(action, pt, b.Kind, err)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			w.reloadAlerts(ctx, pt) // someone else changed it: start again from the stored alert
		}
		return false
	}
	switch cur := pt.open[b.Kind]; {
	case cur != nil && cur.ID != b.ID:
		// A duplicate (see patient.duplicates): changed in place through old, below.
	case b.State == store.StateResolved:
		delete(pt.open, b.Kind)
	default:
		pt.open[b.Kind] = b
		// A duplicate whose alert has gone takes its place.
		pt.duplicates = slices.DeleteFunc(pt.duplicates, func(d *store.Alert) bool { return d.ID == b.ID })
	}
	*old = *b // callers holding the pointer see the new state
	w.m.alerts(action)
	if hospital {
		// One event, on the patient's topic and on the hospital's (same ID, so clients that see
		// both can tell it is one).
		w.pl.publishEnvelopeTo(ctx, []string{topics.PatientAlerts(b.Hospital, b.Patient), topics.HospitalAlerts(b.Hospital)},
			TypePatientAlert, b.Hospital, b.Patient, AlertEvent{Action: action, Alert: View(b)}, false)
	} else {
		w.publishAlert(ctx, b, action)
	}
	return true
}

// landed reports whether a change whose write reported a failure that says nothing of the
// write (a timeout after it) is stored all the same: the stored history holds this very
// change (not another's of the same version, in shared mode). It reads with a context of its
// own, the job's may be what ran out. The stored alert (which may have changed again since)
// then replaces b.
func (w *worker) landed(ctx context.Context, b *store.Alert, ev store.AlertEvent) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	stored, err := w.st.GetAlert(ctx, b.Hospital, b.ID)
	if err != nil {
		return false
	}
	ours := slices.ContainsFunc(stored.History, func(h store.AlertEvent) bool {
		return h.Version == ev.Version && h.Action == ev.Action && h.Actor == ev.Actor && h.At.Equal(ev.At) && h.Note == ev.Note
	})
	if !ours {
		return false
	}
	if stored.Version == b.Version {
		stored.History = nil
		*b = stored
	} // else changed again since: b, this change as made, is what is announced
	return true
}

func (w *worker) fail(action string, pt *patient, kind string, err error) {
	w.m.alertFailures.Add(1)
	w.log.Error("alert change not stored; will retry", "action", action, "hospital", pt.h, "patient", pt.p, "kind", kind, "err", err)
}

// reloadAlerts reads the patient's open alerts from the store; false if that failed. An alert
// a failed raise stored all the same (unsure) is announced now.
func (w *worker) reloadAlerts(ctx context.Context, pt *patient) bool {
	open, err := w.st.OpenAlerts(ctx, pt.h, pt.p)
	if err != nil {
		w.log.Error("reloading alerts failed", "hospital", pt.h, "patient", pt.p, "err", err)
		return false
	}
	pt.setOpen(open)
	if len(pt.unsure) > 0 {
		for _, a := range pt.open {
			if slices.Contains(pt.unsure, a.ID) && a.State == store.StateActive {
				pt.notePeak(a)
				w.publishAlert(ctx, a, ActionRaised)
			}
		}
		pt.unsure = nil
	}
	return true
}

func (w *worker) publishAlert(ctx context.Context, a *store.Alert, action string) {
	w.publishEnvelope(ctx, topics.PatientAlerts(a.Hospital, a.Patient), TypePatientAlert, a.Hospital, a.Patient, AlertEvent{Action: action, Alert: View(a)}, false)
}

func (w *worker) publishEnvelope(ctx context.Context, topic, typ, h, p string, data any, retain bool) {
	w.pl.publishEnvelope(ctx, topic, typ, h, p, data, retain)
}
