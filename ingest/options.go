package ingest

import (
	"log/slog"
	"runtime"
	"time"

	"github.com/vigilhq/vigil/news2"
)

// Options configure a Pipeline. Zero values take the documented defaults.
type Options struct {
	// Fresh is how long each NEWS2 parameter's last value counts (index: news2.Param).
	// Defaults: respiration rate, SpO2 and pulse 5 min; systolic BP 1 h; temperature,
	// consciousness and air/oxygen 12 h. Older values count as missing.
	Fresh [news2.NumParams]time.Duration

	// Escalation: an alert left unacknowledged this long escalates (level + 1) and again after
	// each further timeout, up to MaxEscalation. Defaults 60 s (high), 3 min (medium), 10 min
	// (low), 3 levels.
	EscalateHigh, EscalateMedium, EscalateLow time.Duration
	MaxEscalation                             int

	// ConditionDelay is how long a threshold condition must hold before it alarms (default 10 s;
	// negative: none). NEWS2Delay is the same for NEWS2 alerts (default none: the score already
	// aggregates).
	ConditionDelay time.Duration
	NEWS2Delay     time.Duration
	// ClearDelay is how long a condition must stay clear before its alert resolves by itself
	// (default 30 s; negative: none). Latched (high-priority) alerts resolve only once
	// acknowledged.
	ClearDelay time.Duration

	// DeviceOfflineAfter: an assigned device silent this long is offline (default 30 s); an
	// unexpected disconnect is offline at once.
	DeviceOfflineAfter time.Duration
	// Implausible values: ImplausibleCount refused samples within ImplausibleWindow raise a
	// technical alarm (defaults 3 in 60 s).
	ImplausibleCount  int
	ImplausibleWindow time.Duration

	// Limits are the site's threshold-alarm limits; a patient's own limits override them.
	Limits Limits

	// Workers is the number of patient workers (default 2 x GOMAXPROCS). A patient always goes
	// to the same worker, so its samples are handled in order.
	Workers int
	// Tick is how often each worker checks timers: condition delays, escalations, silence and
	// freshness (default 1 s).
	Tick time.Duration
	// SnapshotEvery is how often changed patient state is saved for a fast restart (default 10 s).
	SnapshotEvery time.Duration

	// Shared is set when several Vigil processes share the vitals stream (external broker): each
	// event then reloads the patient's state from the store and saves it back with a version
	// check, so a patient whose samples move between processes stays correct.
	Shared bool

	Now    func() time.Time
	Logger *slog.Logger
}

// Limits are threshold-alarm limits. Below a low limit (above a high one) the alarm is medium
// priority; beyond it by the critical margin it is high priority.
type Limits struct {
	SpO2Low, HRLow, HRHigh, RRLow, RRHigh, SBPLow, SBPHigh float64
}

// DefaultLimits are common bedside-monitor defaults for adults.
var DefaultLimits = Limits{SpO2Low: 90, HRLow: 50, HRHigh: 120, RRLow: 8, RRHigh: 25, SBPLow: 90, SBPHigh: 180}

// Critical margins: how far past a limit a reading becomes high priority.
const (
	spo2Margin    = 5  // SpO2 below limit-5 %
	hrLowMargin   = 10 // HR below limit-10
	hrHighMargin  = 20 // HR above limit+20
	rrLowMargin   = 3
	rrHighMargin  = 5
	sbpLowMargin  = 10
	sbpHighMargin = 40
)

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	for p := news2.Param(0); p < news2.NumParams; p++ {
		switch p {
		case news2.RespRate, news2.SpO2, news2.Pulse:
			def(&o.Fresh[p], 5*time.Minute)
		case news2.SystolicBP:
			def(&o.Fresh[p], time.Hour)
		default:
			def(&o.Fresh[p], 12*time.Hour)
		}
	}
	def(&o.EscalateHigh, time.Minute)
	def(&o.EscalateMedium, 3*time.Minute)
	def(&o.EscalateLow, 10*time.Minute)
	if o.MaxEscalation <= 0 {
		o.MaxEscalation = 3
	}
	orNone := func(d *time.Duration, v time.Duration) {
		switch {
		case *d == 0:
			*d = v
		case *d < 0:
			*d = 0
		}
	}
	orNone(&o.ConditionDelay, 10*time.Second)
	orNone(&o.ClearDelay, 30*time.Second)
	if o.NEWS2Delay < 0 {
		o.NEWS2Delay = 0
	}
	def(&o.DeviceOfflineAfter, 30*time.Second)
	if o.ImplausibleCount <= 0 {
		o.ImplausibleCount = 3
	}
	def(&o.ImplausibleWindow, time.Minute)
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits
	}
	if o.Workers <= 0 {
		o.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	def(&o.Tick, time.Second)
	def(&o.SnapshotEvery, 10*time.Second)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (o *Options) escalateAfter(priority string) time.Duration {
	switch priority {
	case PriorityHigh:
		return o.EscalateHigh
	case PriorityMedium:
		return o.EscalateMedium
	}
	return o.EscalateLow
}
