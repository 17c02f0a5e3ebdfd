package ingest

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestSampleTimes: every sample a worker handles is timed, from its arrival to the worker
// taking it up and from there to its events handed over; other jobs are not.
func TestSampleTimes(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	for range 3 {
		e.mustSubmit(pat, `{"hr":80,"rr":16}`)
	}
	e.sync()
	e.tickAt(time.Minute)
	m := e.p.Metrics()
	for name, h := range map[string]interface{ Write(*dto.Metric) error }{"queued": m.queued, "handled": m.handled} {
		var out dto.Metric
		if err := h.Write(&out); err != nil {
			t.Fatal(err)
		}
		if n := out.GetHistogram().GetSampleCount(); n != 3 {
			t.Errorf("%s: %d samples timed; want 3 (the admission and the tick are not samples)", name, n)
		}
	}
}

// TestSnapshotLater: the periodic snapshot is written by another goroutine; a patient changed
// since is saved by the next one, and after a failed write the next one saves every patient.
func TestSnapshotLater(t *testing.T) {
	e := newEnv(t, nil)
	e.admit(pat, nil)
	e.mustSubmit(pat, `{"hr":80,"rr":16}`)
	e.sync()
	w := e.p.workers[0]
	w.snapshotLater()
	w.saves.Wait()
	st, err := e.db.GetPatientState(e.ctx(), hosp, pat)
	if err != nil {
		t.Fatalf("GetPatientState after the snapshot: %v", err)
	}
	if batch := w.changedStates(); len(batch) != 0 {
		t.Errorf("%d patients still changed after the snapshot; want none", len(batch))
	}
	e.mustSubmit(pat, `{"hr":90,"rr":16}`)
	e.sync()
	w.snapshotLater()
	w.saves.Wait()
	st2, err := e.db.GetPatientState(e.ctx(), hosp, pat)
	if err != nil || string(st2.Data) == string(st.Data) {
		t.Errorf("the second snapshot did not save the changed patient (err %v)", err)
	}
	w.resave.Store(true) // as after a failed write
	if batch := w.changedStates(); len(batch) != 1 || w.resave.Load() {
		t.Errorf("after a failed write: %d patients to save, resave %v; want every patient (1), the flag cleared", len(batch), w.resave.Load())
	}
}
