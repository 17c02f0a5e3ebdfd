package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

// `vigil bench` drives simulated monitors and browser-like subscribers through a Vigil (its own
// child process, or --target) and, with --against, through plain relays (a bare mochi configured
// like Vigil's broker, and Mosquitto), and reports end-to-end latency, throughput, loss, and the
// servers' CPU and memory. Files:
//
//	bench.go          flags and the order of the runs (pairs, sweep, idle)
//	bench_run.go      one run: a fresh server, subscribers, devices, warm-up, window, drain
//	bench_server.go   the servers as child processes; /proc figures
//	bench_relay.go    the hidden `vigil bench-relay` command (the bare mochi relay)
//	bench_load.go     MQTT clients: devices on a fixed schedule, subscribers, provisioning
//	bench_match.go    the schedule and the matching of events to samples
//	bench_hist.go     the latency histogram
//	bench_report.go   the table and the JSON

// benchHospital is where the bench provisions its patients and devices.
const benchHospital = "bench"

// Server kinds.
const (
	kindVigil     = "vigil"
	kindMochi     = "mochi"
	kindMosquitto = "mosquitto"
)

// benchConfig is everything `vigil bench` reads from flags and the environment.
type benchConfig struct {
	Devices     int
	Rate        float64 // samples per device per second
	QoS         int
	Duration    time.Duration
	Warmup      time.Duration
	Drain       time.Duration
	Subscribers int
	WS          bool
	JSON        string
	Against     string
	Pairs       int
	Sweep       string
	SweepP99    time.Duration // a sweep's rate passes only with p99 latency at most this (0: no bound)
	Idle        bool
	Alerts      int // -1: 1 % of the devices, at least 1
	Target      string
	MQTT        string
	User        string
	Password    string
	CPUProfile  string
	LoadProcs   int

	against []string  // parsed Against
	sweep   sweepPlan // parsed Sweep
	exe     string    // the vigil binary the servers run from
}

// sweepPlan is a rate sweep: Start, Start*Factor, ... up to Max samples per device per second.
type sweepPlan struct {
	Start, Factor, Max float64
}

func (c *benchConfig) flags(s *settings) {
	s.Int(&c.Devices, "devices", "VIGIL_BENCH_DEVICES", 1000, "simulated monitors (one MQTT connection each)")
	s.Float(&c.Rate, "rate", "VIGIL_BENCH_RATE", 1, "samples per second per monitor")
	s.Int(&c.QoS, "qos", "VIGIL_BENCH_QOS", 1, "QoS of the samples: 0 or 1 (QoS 1: one sample in flight per monitor)")
	s.Duration(&c.Duration, "duration", "VIGIL_BENCH_DURATION", 30*time.Second, "measured window of each run")
	s.Duration(&c.Warmup, "warmup", "VIGIL_BENCH_WARMUP", 3*time.Second, "load before the measured window")
	s.Duration(&c.Drain, "drain", "VIGIL_BENCH_DRAIN", 5*time.Second, "how long to wait after the window for events still on their way")
	s.Int(&c.Subscribers, "subscribers", "VIGIL_BENCH_SUBSCRIBERS", 2, "browser-like subscribers (JWT) to risk and alert topics, each receiving every event")
	s.Bool(&c.WS, "ws", "VIGIL_BENCH_WS", false, "subscribers over WebSocket (/mqtt) instead of TCP")
	s.String(&c.JSON, "json", "VIGIL_BENCH_JSON", "", "also write the result as JSON to this file")
	s.String(&c.Against, "against", "VIGIL_BENCH_AGAINST", "", "comma list of plain relays run in the same bench for comparison: mochi, mosquitto")
	s.Int(&c.Pairs, "pairs", "VIGIL_BENCH_PAIRS", 1, "interleaved repetitions (vigil, relays, vigil, ...), each on a fresh server; the report gives medians and min-max")
	s.String(&c.Sweep, "sweep", "VIGIL_BENCH_SWEEP", "", "rate sweep START,FACTOR[,MAX] (samples per monitor per second) until a rate fails (twice: a failing run is repeated once); reports the capacity: the highest rate with no loss, no drop and p99 within --sweep-p99")
	s.Duration(&c.SweepP99, "sweep-p99", "VIGIL_BENCH_SWEEP_P99", 100*time.Millisecond, "with --sweep: the p99 latency a rate must stay within to pass (0: no bound, loss alone decides)")
	s.Bool(&c.Idle, "idle", "VIGIL_BENCH_IDLE", false, "open the monitors' connections without load and report RSS per connection")
	s.Int(&c.Alerts, "alerts", "VIGIL_BENCH_ALERTS", -1, "monitors sending one critical sample mid-window, to time sample-to-alert (default 1 % of --devices, at least 1; 0: none)")
	s.String(&c.Target, "target", "VIGIL_BENCH_TARGET", "", "measure a running Vigil at this URL (http(s)://host:port) instead of starting one")
	s.String(&c.MQTT, "mqtt", "VIGIL_BENCH_MQTT", "", "with --target: the MQTT address (host:port) monitors and subscribers use (default: the target's host, port 1883)")
	s.String(&c.User, "user", "VIGIL_BENCH_USER", "admin", "with --target: the admin user that provisions the monitors")
	s.String(&c.Password, "password", "VIGIL_BENCH_PASSWORD", "", "with --target: their password")
	s.Int(&c.LoadProcs, "load-procs", "VIGIL_BENCH_LOAD_PROCS", 1, "cores the bench's own monitors and subscribers may run on at once (GOMAXPROCS; 0: all): one leaves the most to a local server and costs the least per sample; the report's \"load CPU %\" near 100 x this means the load, not the server, was the limit")
	s.String(&c.CPUProfile, "cpuprofile", "VIGIL_BENCH_CPUPROFILE", "", "write a CPU profile of the bench itself (its monitors and subscribers, not the servers) to this file")
}

// check validates the settings and parses the lists.
func (c *benchConfig) check() error {
	switch {
	case c.Devices < 1 || c.Devices > 1_000_000:
		return errors.New("--devices: 1 to 1000000")
	case !(c.Rate > 0 && c.Rate <= maxBenchRate):
		return fmt.Errorf("--rate: more than 0, at most %d", maxBenchRate)
	case c.QoS != 0 && c.QoS != 1:
		return errors.New("--qos: 0 or 1")
	case c.Duration < time.Second:
		return errors.New("--duration: at least 1s")
	case c.Warmup < 0 || c.Drain < 0:
		return errors.New("--warmup and --drain: not negative")
	case c.Subscribers < 0 || c.Subscribers > 10_000:
		return errors.New("--subscribers: 0 to 10000")
	case c.Subscribers == 0 && !c.Idle:
		return errors.New("--subscribers: at least 1 (latency is measured at the subscribers)")
	case c.Pairs < 1 || c.Pairs > 100:
		return errors.New("--pairs: 1 to 100")
	case c.LoadProcs < 0 || c.LoadProcs > 1024:
		return errors.New("--load-procs: 0 to 1024")
	case c.Alerts < -1 || c.Alerts > c.Devices:
		return errors.New("--alerts: 0 to --devices")
	case c.Idle && c.Sweep != "":
		return errors.New("--idle and --sweep: one or the other")
	case c.Pairs > 1 && c.Sweep != "":
		return errors.New("--pairs: not with --sweep (each rate of a sweep runs once per server)")
	}
	if c.Alerts == -1 {
		c.Alerts = max(1, c.Devices/100)
	}
	c.against = nil
	seen := map[string]bool{}
	for _, a := range strings.Split(c.Against, ",") {
		a = strings.ToLower(strings.TrimSpace(a))
		switch {
		case a == "":
		case a != kindMochi && a != kindMosquitto:
			return fmt.Errorf("--against %q: want mochi, mosquitto or both", a)
		case !seen[a]:
			seen[a] = true
			c.against = append(c.against, a)
		}
	}
	if c.Sweep != "" {
		sp, err := parseSweep(c.Sweep)
		if err != nil {
			return fmt.Errorf("--sweep: %v", err)
		}
		c.sweep = sp
	}
	if c.Target != "" {
		u, err := url.Parse(c.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--target %q: want http(s)://host:port", c.Target)
		}
		c.Target = strings.TrimRight(c.Target, "/")
		if c.MQTT == "" {
			c.MQTT = net.JoinHostPort(u.Hostname(), "1883")
		}
		if err := checkAddr("mqtt", c.MQTT); err != nil {
			return err
		}
		if c.Password == "" {
			return errors.New("--password: required with --target ($VIGIL_BENCH_PASSWORD)")
		}
	} else if c.MQTT != "" {
		return errors.New("--mqtt: only with --target")
	}
	return nil
}

// maxBenchRate bounds --rate and sweeps (samples per monitor per second).
const maxBenchRate = 1000

func parseSweep(s string) (sweepPlan, error) {
	parts := strings.Split(s, ",")
	if len(parts) < 2 || len(parts) > 3 {
		return sweepPlan{}, fmt.Errorf("%q: want START,FACTOR[,MAX], e.g. 1,2", s)
	}
	var v [3]float64
	v[2] = maxBenchRate
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return sweepPlan{}, fmt.Errorf("%q: %q is not a number", s, p)
		}
		v[i] = f
	}
	sp := sweepPlan{Start: v[0], Factor: v[1], Max: v[2]}
	switch {
	case !(sp.Start > 0 && sp.Start <= maxBenchRate):
		return sweepPlan{}, fmt.Errorf("start %g: more than 0, at most %d", sp.Start, maxBenchRate)
	case !(sp.Factor > 1 && sp.Factor <= 100):
		return sweepPlan{}, fmt.Errorf("factor %g: more than 1, at most 100", sp.Factor)
	case !(sp.Max >= sp.Start && sp.Max <= maxBenchRate):
		return sweepPlan{}, fmt.Errorf("max %g: from the start rate to %d", sp.Max, maxBenchRate)
	}
	return sp, nil
}

// rates are the sweep's steps.
func (sp sweepPlan) rates() []float64 {
	var out []float64
	for r := sp.Start; r <= sp.Max*(1+1e-9) && len(out) < 64; r *= sp.Factor {
		out = append(out, math.Round(r*1000)/1000)
	}
	return out
}

// servers are the kinds measured, Vigil first.
func (c *benchConfig) servers() []string { return append([]string{kindVigil}, c.against...) }

func cmdBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the vigil binary: %w", err)
	}
	return runBenchCommand(ctx, args, getenv, stdout, stderr, exe)
}

// runBenchCommand is `vigil bench` with the binary its servers run from (tests pass one they
// built).
func runBenchCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, exe string) error {
	var c benchConfig
	s := newSettings("vigil bench")
	s.fs.SetOutput(stderr)
	c.flags(s)
	if err := s.Parse(args, getenv); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", s.fs.Arg(0))
	}
	if err := c.check(); err != nil {
		return err
	}
	c.exe = exe
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := runBench(ctx, c, stderr)
	if rep != nil {
		writeBenchTable(stdout, rep)
		if c.JSON != "" {
			if jerr := writeBenchJSON(c.JSON, rep); jerr != nil {
				err = errors.Join(err, fmt.Errorf("--json: %w", jerr))
			} else {
				fmt.Fprintf(stderr, "wrote %s\n", c.JSON)
			}
		}
	}
	return err
}

// runBench runs every run the settings ask for, in order, and returns the report of what was
// measured: after Ctrl-C, or a run that fails, the runs done so far.
func runBench(ctx context.Context, c benchConfig, stderr io.Writer) (*benchReport, error) {
	rep := newBenchReport(c)
	if c.LoadProcs > 0 {
		// The servers are other processes: this bounds the monitors and subscribers only.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(c.LoadProcs))
	}
	rep.Settings.LoadProcs = runtime.GOMAXPROCS(0)
	for _, n := range raiseFileLimit(c.Devices + c.Subscribers + 256) {
		fmt.Fprintln(stderr, "vigil bench:", n)
		rep.Notes = append(rep.Notes, n)
	}
	if c.Target != "" {
		rep.Notes = append(rep.Notes, "vigil is the running Vigil at "+c.Target+": no server CPU or memory figures (n/a)")
	}
	b := &bench{cfg: c, stderr: stderr}

	do := func(kind string, rate float64, pair int) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := b.run(ctx, runSpec{kind: kind, rate: rate, pair: pair, idle: c.Idle})
		if r != nil {
			rep.Runs = append(rep.Runs, *r)
			if r.Interrupted {
				rep.Interrupted = true
			}
		}
		return err
	}
	var err error
	if c.sweep.Start > 0 {
		err = b.sweep(ctx, rep, do)
	} else {
	pairs:
		for p := 1; p <= c.Pairs; p++ {
			for _, kind := range c.servers() {
				if err = do(kind, c.Rate, p); err != nil {
					break pairs
				}
			}
		}
	}
	if ctx.Err() != nil {
		rep.Interrupted = true
		err = nil // Ctrl-C: report what was measured
	}
	rep.summarize()
	if n := rep.loadBoundNote(); n != "" {
		rep.Notes = append(rep.Notes, n)
	}
	return rep, err
}

// sweepTries is how many runs a rate gets before it fails a server: a failing run is repeated
// once on a fresh server, so one passing hiccup (a slow disk flush on a virtual disk, a
// compaction) does not decide the capacity; a server that cannot carry the rate fails twice.
const sweepTries = 2

// sweep runs every server at each rate of the sweep until a rate fails (a sample lost, a drop
// counted by the broker, or p99 latency past --sweep-p99, in sweepTries runs in a row): its
// capacity is the highest rate before that.
func (b *bench) sweep(ctx context.Context, rep *benchReport, do func(string, float64, int) error) error {
	failed := map[string]bool{}
	for _, rate := range b.cfg.sweep.rates() {
		ran := false
		for _, kind := range b.cfg.servers() {
			if failed[kind] {
				continue
			}
			ran = true
			for try := 1; try <= sweepTries; try++ {
				if err := do(kind, rate, try); err != nil {
					return err
				}
				r := rep.Runs[len(rep.Runs)-1]
				ok, why := r.passes(b.cfg.SweepP99)
				if ok {
					break
				}
				if try < sweepTries {
					b.status("%s: %s; running the rate again to confirm", runSpec{kind: kind, rate: rate, pair: try}, why)
				} else {
					failed[kind] = true
				}
			}
		}
		if !ran {
			break
		}
	}
	return nil
}

// bench runs the runs of one `vigil bench`.
type bench struct {
	cfg    benchConfig
	stderr io.Writer

	mu   sync.Mutex // progress output
	open bool       // a progress line is open on a terminal
}

// runSpec is one run: a fresh server of a kind, at a rate.
type runSpec struct {
	kind string
	rate float64
	pair int
	idle bool
}

func (s runSpec) String() string {
	if s.idle {
		return s.kind + " idle"
	}
	return fmt.Sprintf("%s %g/s pair %d", s.kind, s.rate, s.pair)
}
