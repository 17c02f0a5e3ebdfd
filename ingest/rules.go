package ingest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigilhq/vigil/news2"
)

// Alarm kinds. One alert at most is open per patient and kind.
const (
	KindNEWS2         = "news2"
	KindSpO2Low       = "spo2_low"
	KindHRLow         = "hr_low"
	KindHRHigh        = "hr_high"
	KindRRLow         = "rr_low"
	KindRRHigh        = "rr_high"
	KindSBPLow        = "sbp_low"
	KindSBPHigh       = "sbp_high"
	KindDeviceOffline = "device_offline"
	KindDataStale     = "data_stale"
	KindImplausible   = "implausible"
)

// Kinds lists every alarm kind.
var Kinds = []string{KindNEWS2, KindSpO2Low, KindHRLow, KindHRHigh, KindRRLow, KindRRHigh, KindSBPLow, KindSBPHigh, KindDeviceOffline, KindDataStale, KindImplausible}

// verdict is what a rule says about a patient now.
type verdict struct {
	active   bool
	priority string
	category string
	message  string
	// worse orders readings of the same priority: a larger value is a worse reading, which
	// updates an open alert. For NEWS2 it is the score; for a low limit the distance below it.
	worse float64
	// delay is how long the condition must hold before it alarms.
	delay time.Duration
}

// threshold describes one threshold alarm.
type threshold struct {
	kind   string
	param  news2.Param
	label  string
	unit   string
	low    bool
	limit  func(*Limits) float64
	margin float64
}

var thresholds = []threshold{
	{KindSpO2Low, news2.SpO2, "SpO2", "%", true, func(l *Limits) float64 { return l.SpO2Low }, spo2Margin},
	{KindHRLow, news2.Pulse, "HR", "/min", true, func(l *Limits) float64 { return l.HRLow }, hrLowMargin},
	{KindHRHigh, news2.Pulse, "HR", "/min", false, func(l *Limits) float64 { return l.HRHigh }, hrHighMargin},
	{KindRRLow, news2.RespRate, "RR", "/min", true, func(l *Limits) float64 { return l.RRLow }, rrLowMargin},
	{KindRRHigh, news2.RespRate, "RR", "/min", false, func(l *Limits) float64 { return l.RRHigh }, rrHighMargin},
	{KindSBPLow, news2.SystolicBP, "SBP", "mmHg", true, func(l *Limits) float64 { return l.SBPLow }, sbpLowMargin},
	{KindSBPHigh, news2.SystolicBP, "SBP", "mmHg", false, func(l *Limits) float64 { return l.SBPHigh }, sbpHighMargin},
}

// evaluate runs every rule against the patient's state at now.
func (pt *patient) evaluate(now int64, risk news2.Risk, fresh news2.Vitals, o *Options, out map[string]verdict) {
	// NEWS2 (RCP clinical-risk bands): high -> high priority, medium -> medium, low-medium -> low.
	v := verdict{category: CategoryPhysiological, delay: o.NEWS2Delay, worse: float64(risk.Score)}
	switch risk.Level {
	case news2.High:
		v.active, v.priority = true, PriorityHigh
	case news2.Medium:
		v.active, v.priority = true, PriorityMedium
	case news2.LowMedium:
		v.active, v.priority = true, PriorityLow
	}
	if v.active {
		v.message = fmt.Sprintf("NEWS2 %d (%s)", risk.Score, risk.Level)
	}
	out[KindNEWS2] = v

	for _, t := range thresholds {
		v := verdict{category: CategoryPhysiological, delay: pt.delay}
		if fresh.Present.Has(t.param) {
			x := value(fresh, t.param)
			limit := t.limit(&pt.limits)
			beyond := x - limit
			if t.low {
				beyond = limit - x
			}
			if beyond > 0 {
				v.active, v.priority, v.worse = true, PriorityMedium, beyond
				if beyond > t.margin {
					v.priority = PriorityHigh
				}
				dir := "above"
				if t.low {
					dir = "below"
				}
				v.message = fmt.Sprintf("%s %g %s %s limit %g", t.label, x, t.unit, dir, limit)
			}
		}
		out[t.kind] = v
	}

	// Technical: an assigned device dropped or silent.
	off := verdict{category: CategoryTechnical, priority: PriorityMedium}
	var offline []string
	for id, d := range pt.devices {
		if d.Unclean || now-d.LastSeen > o.DeviceOfflineAfter.Milliseconds() {
			offline = append(offline, id)
		}
	}
	if len(offline) > 0 {
		sort.Strings(offline)
		off.active = true
		off.worse = float64(len(offline))
		off.message = "Device offline: " + strings.Join(offline, ", ")
	}
	out[KindDeviceOffline] = off

	// Technical: continuous parameters that were arriving from a device have gone stale while
	// a device is assigned and connected (a sensor off the patient, say). A value a clinician
	// entered by hand was never arriving: its age is NEWS2's business (missing), not an alarm.
	stale := verdict{category: CategoryTechnical, priority: PriorityLow}
	if len(pt.devices) > 0 && !off.active {
		var names []string
		for _, p := range []news2.Param{news2.Pulse, news2.RespRate, news2.SpO2, news2.SystolicBP} {
			at := pt.params[p].At
			if at != 0 && !pt.params[p].Manual && now-at > o.Fresh[p].Milliseconds() {
				names = append(names, p.String())
			}
		}
		if len(names) > 0 {
			stale.active, stale.worse = true, float64(len(names))
			stale.message = "No fresh data: " + strings.Join(names, ", ")
		}
	}
	out[KindDataStale] = stale

	// Technical: repeated implausible values.
	imp := verdict{category: CategoryTechnical, priority: PriorityLow}
	cut := now - o.ImplausibleWindow.Milliseconds()
	pt.implausible = slices.DeleteFunc(pt.implausible, func(t int64) bool { return t < cut })
	if len(pt.implausible) >= o.ImplausibleCount {
		imp.active, imp.worse = true, float64(len(pt.implausible))
		imp.message = fmt.Sprintf("Implausible values: %d refused samples in %s", len(pt.implausible), o.ImplausibleWindow)
	}
	out[KindImplausible] = imp
}

func value(v news2.Vitals, p news2.Param) float64 {
	switch p {
	case news2.RespRate:
		return v.RespRate
	case news2.SpO2:
		return v.SpO2
	case news2.SystolicBP:
		return v.SystolicBP
	case news2.Pulse:
		return v.Pulse
	}
	return v.Temperature
}
