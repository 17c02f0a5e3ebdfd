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
			t.Errorf("%s: %d samples timed; want 3", name, n)
		}
		if s := out.GetHistogram().GetSampleSum(); s < 0 {
			t.Errorf("%s: sum %v s; want none negative", name, s)
		}
	}
}
