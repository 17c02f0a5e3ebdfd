package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// benchReport is the result of `vigil bench`: what the table shows, and --json writes.
type benchReport struct {
	Mode        string         `json:"mode"` // load, sweep or idle
	Machine     benchMachine   `json:"machine"`
	Settings    benchSettings  `json:"settings"`
	Runs        []benchRun     `json:"runs"`
	Summary     []benchSummary `json:"summary,omitempty"`  // per server, across pairs
	Ratios      []benchRatio   `json:"ratios,omitempty"`   // Vigil's medians over each relay's
	Capacity    []benchCap     `json:"capacity,omitempty"` // --sweep
	Interrupted bool           `json:"interrupted"`
	Notes       []string       `json:"notes,omitempty"`
}

type benchMachine struct {
	GOMAXPROCS   int    `json:"gomaxprocs"`
	NumCPU       int    `json:"num_cpu"`
	CPUModel     string `json:"cpu_model"`
	Kernel       string `json:"kernel"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	GoVersion    string `json:"go_version"`
	VigilVersion string `json:"vigil_version"`
	Mosquitto    string `json:"mosquitto,omitempty"`
}

// benchSettings are the flags of the bench (the password left out).
type benchSettings struct {
	Devices     int     `json:"devices"`
	Rate        float64 `json:"rate"`
	QoS         int     `json:"qos"`
	Duration    string  `json:"duration"`
	Warmup      string  `json:"warmup"`
	Drain       string  `json:"drain"`
	Subscribers int     `json:"subscribers"`
	Transport   string  `json:"transport"` // of the subscribers: tcp or ws
	Against     string  `json:"against,omitempty"`
	Pairs       int     `json:"pairs"`
	Sweep       string  `json:"sweep,omitempty"`
	SweepP99MS  float64 `json:"sweep_p99_ms,omitempty"` // the sweep's latency bound (0: none)
	Idle        bool    `json:"idle"`
	Alerts      int     `json:"alerts"`
	Target      string  `json:"target,omitempty"`
	MQTT        string  `json:"mqtt,omitempty"`
	LoadProcs   int     `json:"load_procs"` // cores the bench's monitors and subscribers ran on (GOMAXPROCS)
}

// benchRun is one run: a fresh server, one rate.
type benchRun struct {
	Server      string  `json:"server"`
	Pair        int     `json:"pair"`
	Rate        float64 `json:"rate"` // samples per monitor per second
	Devices     int     `json:"devices"`
	Subscribers int     `json:"subscribers"`
	Connections int     `json:"connections"` // connected when measured

	WindowSeconds   float64 `json:"window_seconds"`
	Offered         int64   `json:"offered"`         // samples scheduled in the window
	Sent            int64   `json:"sent"`            // of those, published
	Delivered       int64   `json:"delivered"`       // sample events received, all subscribers
	Lost            int64   `json:"lost"`            // offered x subscribers - delivered
	LossRatio       float64 `json:"loss_ratio"`      // lost / (offered x subscribers)
	Gaps            int64   `json:"gaps"`            // runs of lost samples
	Unmatched       int64   `json:"unmatched"`       // events matching no sample
	OfferedPerSec   float64 `json:"offered_per_s"`   // samples offered per second
	DeliveredPerSec float64 `json:"delivered_per_s"` // samples processed per second, per subscriber
	BrokerDrops     *int64  `json:"broker_drops"`    // counted by the server during the window; null: n/a
	Errors          int64   `json:"errors"`          // failed connects and publishes
	LastError       string  `json:"last_error,omitempty"`
	Reconnects      int64   `json:"subscriber_reconnects"`

	Latency *benchLatency `json:"latency,omitempty"` // sample to risk_updated (relays: to the sample)
	Alert   *benchAlert   `json:"alert,omitempty"`   // sample to patient_alert raised

	CPUPercent   *float64 `json:"cpu_percent"` // of one core, over the window; null: n/a
	RSSMB        *float64 `json:"rss_mb"`      // largest in the window
	RSSBeforeMB  *float64 `json:"rss_before_mb"`
	RSSPerConnKB *float64 `json:"rss_per_connection_kb"`

	LoadCPUPercent *float64 `json:"load_cpu_percent"` // the bench's monitors and subscribers, of one core; null: n/a

	Interrupted bool `json:"interrupted,omitempty"`
}

// benchLatency are latency figures, milliseconds.
type benchLatency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

type benchAlert struct {
	Expected int64         `json:"expected"` // critical samples x subscribers
	Received int64         `json:"received"`
	Latency  *benchLatency `json:"latency,omitempty"`
}

func latencyOf(h *histogram) *benchLatency {
	if h.Count() == 0 {
		return nil
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return &benchLatency{Count: h.Count(), P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.Max()), Mean: ms(h.Mean())}
}

// loadBoundNote names the runs in which the bench's own monitors and subscribers used nearly
// all the cores they may (--load-procs): there the load, not the server, may have been the
// limit. "" when none did.
func (rep *benchReport) loadBoundNote() string {
	limit := 90 * float64(rep.Settings.LoadProcs)
	var runs []string
	for _, r := range rep.Runs {
		if r.LoadCPUPercent != nil && *r.LoadCPUPercent >= limit {
			runs = append(runs, fmt.Sprintf("%s %g/s pair %d (%.0f%%)", r.Server, r.Rate, r.Pair, *r.LoadCPUPercent))
		}
	}
	if len(runs) == 0 {
		return ""
	}
	return fmt.Sprintf("the load itself used %d%% or more of its %d core(s) in %s: there it may have been the limit, not the server (see --load-procs)",
		int(limit), rep.Settings.LoadProcs, strings.Join(runs, ", "))
}

// passes tells whether a run at a sweep's rate passes: every sample of the window arrived at
// every subscriber, the server dropped nothing, and the p99 latency is within p99 (0: no
// bound). Otherwise it says why.
func (r *benchRun) passes(p99 time.Duration) (bool, string) {
	switch {
	case r.Offered == 0:
		return false, "nothing sent"
	case r.Lost != 0 && r.Sent < r.Offered:
		// Samples the monitors could not send in time (each waits for its last PUBACK) count as
		// lost, but say so: the server did not lose them.
		return false, fmt.Sprintf("lost %d samples, %d of them not sent (the monitors fell behind)", r.Lost, r.Offered-r.Sent)
	case r.Lost != 0:
		return false, fmt.Sprintf("lost %d samples", r.Lost)
	case r.BrokerDrops != nil && *r.BrokerDrops != 0:
		return false, fmt.Sprintf("%d broker drops", *r.BrokerDrops)
	case p99 > 0 && (r.Latency == nil || r.Latency.P99 > durationMS(p99)):
		if r.Latency == nil {
			return false, "no latency measured"
		}
		return false, fmt.Sprintf("p99 %s ms", formatFigure(r.Latency.P99, 1))
	}
	return true, ""
}

func durationMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// spread is a figure across pairs.
type spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

type benchSummary struct {
	Server  string            `json:"server"`
	Runs    int               `json:"runs"`
	Figures map[string]spread `json:"figures"`
}

type benchRatio struct {
	Of      string             `json:"of"` // vigil/mochi
	Figures map[string]float64 `json:"figures"`
}

// benchCap is a server's capacity found by the sweep.
type benchCap struct {
	Server string `json:"server"`
	// Rate is the highest rate (samples per monitor per second) that passed (no loss, no drop,
	// p99 within the bound), below the first that failed; 0 when even the first rate failed.
	Rate          float64 `json:"rate"`
	SamplesPerSec float64 `json:"samples_per_s"`
	FirstFailRate float64 `json:"first_fail_rate,omitempty"` // 0: none up to the sweep's end
	FailedBy      string  `json:"failed_by,omitempty"`       // why the first failing rate failed
}

// benchFigure is one column of the table.
type benchFigure struct {
	key, head string
	prec      int
	ratio     bool // Vigil / relay is meaningful
	get       func(*benchRun) (float64, bool)
}

func latencyFigure(key, head string, f func(*benchLatency) float64) benchFigure {
	return benchFigure{key: key, head: head, prec: 2, ratio: true, get: func(r *benchRun) (float64, bool) {
		if r.Latency == nil {
			return 0, false
		}
		return f(r.Latency), true
	}}
}

func optional(p *float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return *p, true
}

var loadFigures = []benchFigure{
	{key: "offered_per_s", head: "offered/s", get: func(r *benchRun) (float64, bool) { return r.OfferedPerSec, true }},
	{key: "delivered_per_s", head: "delivered/s", ratio: true, get: func(r *benchRun) (float64, bool) { return r.DeliveredPerSec, true }},
	{key: "lost", head: "lost", get: func(r *benchRun) (float64, bool) { return float64(r.Lost), true }},
	latencyFigure("p50_ms", "p50 ms", func(l *benchLatency) float64 { return l.P50 }),
	latencyFigure("p90_ms", "p90 ms", func(l *benchLatency) float64 { return l.P90 }),
	latencyFigure("p99_ms", "p99 ms", func(l *benchLatency) float64 { return l.P99 }),
	latencyFigure("p999_ms", "p99.9 ms", func(l *benchLatency) float64 { return l.P999 }),
	latencyFigure("max_ms", "max ms", func(l *benchLatency) float64 { return l.Max }),
	{key: "cpu_percent", head: "CPU %", prec: 1, ratio: true, get: func(r *benchRun) (float64, bool) { return optional(r.CPUPercent) }},
	{key: "rss_mb", head: "RSS MB", prec: 1, ratio: true, get: func(r *benchRun) (float64, bool) { return optional(r.RSSMB) }},
	{key: "rss_per_connection_kb", head: "KB/conn", prec: 1, ratio: true, get: func(r *benchRun) (float64, bool) { return optional(r.RSSPerConnKB) }},
	{key: "load_cpu_percent", head: "load CPU %", prec: 1, get: func(r *benchRun) (float64, bool) { return optional(r.LoadCPUPercent) }},
}

var idleFigures = []benchFigure{
	{key: "connections", head: "connections", get: func(r *benchRun) (float64, bool) { return float64(r.Connections), true }},
	{key: "rss_before_mb", head: "RSS before MB", prec: 1, get: func(r *benchRun) (float64, bool) { return optional(r.RSSBeforeMB) }},
	{key: "rss_mb", head: "RSS MB", prec: 1, ratio: true, get: func(r *benchRun) (float64, bool) { return optional(r.RSSMB) }},
	{key: "rss_per_connection_kb", head: "KB/conn", prec: 1, ratio: true, get: func(r *benchRun) (float64, bool) { return optional(r.RSSPerConnKB) }},
	{key: "cpu_percent", head: "CPU %", prec: 1, ratio: true, get: func(r *benchRun) (float64, bool) { return optional(r.CPUPercent) }},
}

func (rep *benchReport) figures() []benchFigure {
	if rep.Mode == "idle" {
		return idleFigures
	}
	return loadFigures
}

func newBenchReport(c benchConfig) *benchReport {
	rep := &benchReport{Mode: "load", Machine: machineInfo(slices.Contains(c.against, kindMosquitto))}
	switch {
	case c.Idle:
		rep.Mode = "idle"
	case c.sweep.Start > 0:
		rep.Mode = "sweep"
	}
	transport := "tcp"
	if c.WS {
		transport = "ws"
	}
	rep.Settings = benchSettings{Devices: c.Devices, Rate: c.Rate, QoS: c.QoS, Duration: c.Duration.String(), Warmup: c.Warmup.String(),
		Drain: c.Drain.String(), Subscribers: c.Subscribers, Transport: transport, Against: strings.Join(c.against, ","), Pairs: c.Pairs,
		Sweep: c.Sweep, SweepP99MS: durationMS(c.SweepP99), Idle: c.Idle, Alerts: c.Alerts, Target: c.Target, MQTT: c.MQTT}
	return rep
}

func machineInfo(mosquitto bool) benchMachine {
	m := benchMachine{GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		GoVersion: runtime.Version(), VigilVersion: versionString()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if mosquitto {
		if bin, err := exec.LookPath("mosquitto"); err == nil {
			out, _ := exec.Command(bin, "-h").CombinedOutput()
			m.Mosquitto, _, _ = strings.Cut(string(out), "\n")
		}
	}
	return m
}

// summarize computes the medians and ratios (several pairs), or the capacities (sweep).
func (rep *benchReport) summarize() {
	rep.Summary, rep.Ratios, rep.Capacity = nil, nil, nil
	if rep.Mode == "sweep" {
		rep.capacities()
		return
	}
	var servers []string
	for _, r := range rep.Runs {
		if !slices.Contains(servers, r.Server) {
			servers = append(servers, r.Server)
		}
	}
	figs := rep.figures()
	medians := map[string]map[string]spread{}
	for _, srv := range servers {
		s := benchSummary{Server: srv, Figures: map[string]spread{}}
		for i := range rep.Runs {
			if rep.Runs[i].Server == srv {
				s.Runs++
			}
		}
		for _, f := range figs {
			var vs []float64
			for i := range rep.Runs {
				if r := &rep.Runs[i]; r.Server == srv {
					if v, ok := f.get(r); ok {
						vs = append(vs, v)
					}
				}
			}
			if len(vs) > 0 {
				s.Figures[f.key] = spreadOf(vs)
			}
		}
		medians[srv] = s.Figures
		rep.Summary = append(rep.Summary, s)
	}
	vigil, ok := medians[kindVigil]
	if !ok {
		return
	}
	for _, srv := range servers {
		if srv == kindVigil {
			continue
		}
		ra := benchRatio{Of: kindVigil + "/" + srv, Figures: map[string]float64{}}
		for _, f := range figs {
			a, ok1 := vigil[f.key]
			b, ok2 := medians[srv][f.key]
			if f.ratio && ok1 && ok2 && b.Median > 0 {
				ra.Figures[f.key] = a.Median / b.Median
			}
		}
		rep.Ratios = append(rep.Ratios, ra)
	}
}

func spreadOf(vs []float64) spread {
	s := slices.Clone(vs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

func (rep *benchReport) capacities() {
	bound := time.Duration(rep.Settings.SweepP99MS * float64(time.Millisecond))
	var servers []string
	for _, r := range rep.Runs {
		if !slices.Contains(servers, r.Server) {
			servers = append(servers, r.Server)
		}
	}
	for _, srv := range servers {
		var runs []*benchRun
		for i := range rep.Runs {
			if r := &rep.Runs[i]; r.Server == srv && !r.Interrupted {
				runs = append(runs, r)
			}
		}
		// A rate passes when any of its runs passes (a failure is repeated to confirm it).
		c := benchCap{Server: srv}
		for i := 0; i < len(runs) && c.FirstFailRate == 0; {
			rate, pass, why := runs[i].Rate, false, ""
			for ; i < len(runs) && runs[i].Rate == rate; i++ {
				ok, w := runs[i].passes(bound)
				pass = pass || ok
				why = w
			}
			if pass {
				c.Rate, c.SamplesPerSec = rate, rate*float64(runs[0].Devices)
			} else {
				c.FirstFailRate, c.FailedBy = rate, why
			}
		}
		rep.Capacity = append(rep.Capacity, c)
	}
}

// writeBenchTable prints the report for people.
func writeBenchTable(w io.Writer, rep *benchReport) {
	s := rep.Settings
	fmt.Fprintf(w, "\nvigil bench: %d monitors", s.Devices)
	if rep.Mode != "idle" {
		fmt.Fprintf(w, " x %g/s QoS %d, %d subscribers over %s, window %s after a %s warm-up", s.Rate, s.QoS, s.Subscribers, s.Transport, s.Duration, s.Warmup)
	} else {
		fmt.Fprintf(w, " connected and idle for %s", s.Duration)
	}
	if rep.Mode == "load" && s.Pairs > 1 {
		fmt.Fprintf(w, ", %d pairs (median, then min-max)", s.Pairs)
	}
	fmt.Fprintf(w, "\n%s, %d CPUs (GOMAXPROCS %d; the load on %d), kernel %s, %s, vigil %s\n", orNA(rep.Machine.CPUModel), rep.Machine.NumCPU,
		rep.Machine.GOMAXPROCS, s.LoadProcs, orNA(rep.Machine.Kernel), rep.Machine.GoVersion, rep.Machine.VigilVersion)
	if rep.Interrupted {
		fmt.Fprintln(w, "INTERRUPTED: the figures cover what was measured before Ctrl-C")
	}
	fmt.Fprintln(w)
	if rep.Mode == "sweep" {
		writeSweepTable(w, rep)
	} else {
		writeSummaryTable(w, rep)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func writeSummaryTable(w io.Writer, rep *benchReport) {
	figs := rep.figures()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "server\t")
	for _, f := range figs {
		fmt.Fprint(tw, f.head+"\t")
	}
	fmt.Fprintln(tw)
	several := rep.Settings.Pairs > 1
	for _, s := range rep.Summary {
		fmt.Fprint(tw, s.Server+"\t")
		for _, f := range figs {
			if v, ok := s.Figures[f.key]; ok {
				fmt.Fprint(tw, formatFigure(v.Median, f.prec)+"\t")
			} else {
				fmt.Fprint(tw, "n/a\t")
			}
		}
		fmt.Fprintln(tw)
		if several && s.Runs > 1 {
			fmt.Fprint(tw, "  min-max\t")
			for _, f := range figs {
				if v, ok := s.Figures[f.key]; ok {
					fmt.Fprint(tw, formatFigure(v.Min, f.prec)+"-"+formatFigure(v.Max, f.prec)+"\t")
				} else {
					fmt.Fprint(tw, "\t")
				}
			}
			fmt.Fprintln(tw)
		}
	}
	for _, ra := range rep.Ratios {
		fmt.Fprint(tw, ra.Of+"\t")
		for _, f := range figs {
			if v, ok := ra.Figures[f.key]; ok {
				fmt.Fprintf(tw, "%.2fx\t", v)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()

	if rep.Mode != "load" {
		return
	}
	fmt.Fprintln(w)
	for i := range rep.Runs {
		r := &rep.Runs[i]
		fmt.Fprintf(w, "%s pair %d: %d/%d samples sent, %d delivered (%d subscribers), lost %d (%.4f%%) in %d gaps, broker drops %s, %d unmatched events, %d errors, %d subscriber reconnects",
			r.Server, r.Pair, r.Sent, r.Offered, r.Delivered, r.Subscribers, r.Lost, 100*r.LossRatio, r.Gaps, dropsText(r.BrokerDrops), r.Unmatched, r.Errors, r.Reconnects)
		if r.Interrupted {
			fmt.Fprint(w, " (interrupted)")
		}
		fmt.Fprintln(w)
		if r.LastError != "" {
			fmt.Fprintf(w, "  last error: %s\n", r.LastError)
		}
		if a := r.Alert; a != nil {
			fmt.Fprintf(w, "  sample to patient_alert (raised): %d/%d", a.Received, a.Expected)
			if l := a.Latency; l != nil {
				fmt.Fprintf(w, ", p50 %s ms, p99 %s ms, max %s ms", formatFigure(l.P50, 2), formatFigure(l.P99, 2), formatFigure(l.Max, 2))
			}
			fmt.Fprintln(w)
		}
	}
}

func writeSweepTable(w io.Writer, rep *benchReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\trate/monitor\toffered/s\tdelivered/s\tlost\tdrops\tp50 ms\tp99 ms\tmax ms\tCPU %\tRSS MB\t")
	for i := range rep.Runs {
		r := &rep.Runs[i]
		fmt.Fprintf(tw, "%s\t%g\t%s\t%s\t%d\t%s\t", r.Server, r.Rate, formatFigure(r.OfferedPerSec, 0), formatFigure(r.DeliveredPerSec, 0), r.Lost, dropsText(r.BrokerDrops))
		for _, f := range []benchFigure{loadFigures[3], loadFigures[5], loadFigures[7], loadFigures[8], loadFigures[9]} {
			if v, ok := f.get(r); ok {
				fmt.Fprint(tw, formatFigure(v, f.prec)+"\t")
			} else {
				fmt.Fprint(tw, "n/a\t")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
	rule := "no loss, no drop"
	if p := rep.Settings.SweepP99MS; p > 0 {
		rule += ", p99 within " + formatFigure(p, 0) + " ms"
	}
	for _, c := range rep.Capacity {
		switch {
		case c.Rate == 0:
			fmt.Fprintf(w, "capacity of %s (%s): below the first rate (%g/s per monitor: %s)\n", c.Server, rule, c.FirstFailRate, c.FailedBy)
		case c.FirstFailRate == 0:
			fmt.Fprintf(w, "capacity of %s (%s): at least %s samples/s (%g/s per monitor, the end of the sweep)\n", c.Server, rule, formatFigure(c.SamplesPerSec, 0), c.Rate)
		default:
			fmt.Fprintf(w, "capacity of %s (%s): %s samples/s (%g/s per monitor; at %g/s: %s)\n", c.Server, rule, formatFigure(c.SamplesPerSec, 0), c.Rate, c.FirstFailRate, c.FailedBy)
		}
	}
}

func formatFigure(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func dropsText(p *int64) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprint(*p)
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

// writeBenchJSON writes the report to file.
func writeBenchJSON(file string, rep *benchReport) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}
