package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vigilhq/vigil/topics"
)

// run is one run on a fresh server: provisioning (Vigil), subscribers, monitors, warm-up, the
// measured window, a drain for the events still on their way. After Ctrl-C it returns what was
// measured so far (Interrupted) when the window had begun.
func (b *bench) run(ctx context.Context, spec runSpec) (*benchRun, error) {
	c := b.cfg
	subscribers := c.Subscribers
	if spec.idle {
		subscribers = 0
	}
	conns := c.Devices + subscribers
	b.status("%s: starting the server", spec)
	srv, err := b.startServer(ctx, spec.kind, spec.rate, conns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec, err)
	}
	defer srv.stop()

	// Credentials: Vigil's devices and a JWT; the relays' one password.
	var (
		secrets []string
		subPass []byte
		filters []string
		token   string
	)
	if spec.kind == kindVigil {
		tok, sec, err := provisionBench(ctx, srv.base, srv.user, srv.password, c.Devices, b.counter(spec, "provisioned", c.Devices))
		b.endLine()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec, err)
		}
		token, secrets, subPass = tok, sec, []byte(tok)
		filters = []string{topics.Risk(benchHospital, "+"), topics.PatientAlerts(benchHospital, "+"), topics.HospitalAlerts(benchHospital)}
	} else {
		subPass = []byte(srv.password)
		filters = []string{topics.Vitals(benchHospital, "+")}
	}
	creds := func(d int) (string, []byte) {
		if secrets != nil {
			return benchDevice(d), []byte(secrets[d])
		}
		return benchDevice(d), []byte(srv.password)
	}

	alerts := 0
	if spec.kind == kindVigil && !spec.idle {
		alerts = c.Alerts
	}
	plan := newBenchPlan(c.Devices, spec.rate, c.Warmup, c.Duration, alerts)
	if c.Target != "" && alerts > 0 {
		// A running Vigil keeps the alerts the critical samples raise: discharge their patients
		// afterwards (resolving the alerts), so that the next run raises new ones.
		defer func() {
			var ps []string
			for d, n := range plan.alertSeq {
				if n >= 0 {
					ps = append(ps, benchPatient(d))
				}
			}
			dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := dischargeBench(dctx, srv.base, token, ps); err != nil {
				b.status("%s: cleaning up the alert patients: %v", spec, err)
			}
		}()
	}
	dialer := newBenchDialer(srv.ep.mqtt, conns)
	r := &benchRun{Server: spec.kind, Pair: spec.pair, Rate: spec.rate, Devices: c.Devices, Subscribers: subscribers}
	_, rssBefore, local := srv.usage()
	if local {
		r.RSSBeforeMB = ptr(float64(rssBefore) / (1 << 20))
	}

	// Subscribers first, so that they hear every sample.
	subCtx, stopSubs := context.WithCancel(context.Background())
	var subs []*benchSub
	defer func() {
		stopSubs()
		for _, s := range subs {
			s.close()
		}
	}()
	for i := range subscribers {
		s := newBenchSub(i, srv.ep, c.WS, dialer, "bench", subPass, filters, newMatcher(plan, spec.kind != kindVigil))
		if err := s.connect(ctx); err != nil {
			return nil, fmt.Errorf("%s: subscriber %d: %w", spec, i, err)
		}
		s.supervise(subCtx)
		subs = append(subs, s)
	}

	load := newBenchLoad(plan, c.QoS, srv.ep, dialer, creds)
	defer func() {
		load.stop()
		load.closeAll()
	}()
	err = load.connectAll(ctx, 64, b.counter(spec, "connected", c.Devices))
	b.endLine()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec, err)
	}
	if spec.idle {
		return b.idle(ctx, spec, srv, load, r, rssBefore)
	}
	return b.load(ctx, spec, srv, plan, load, subs, r, rssBefore)
}

// load runs the schedule and measures.
func (b *bench) load(ctx context.Context, spec runSpec, srv *benchServer, plan *benchPlan, load *benchLoad, subs []*benchSub, r *benchRun, rssBefore int64) (*benchRun, error) {
	c := b.cfg
	t0 := time.Now().Add(100 * time.Millisecond)
	plan.start(t0)
	sendersDone := load.start()
	windowStart := t0.Add(c.Warmup)
	windowEnd := windowStart.Add(c.Duration)

	var (
		cpu0, cpu1     time.Duration
		self0, self1   time.Duration // the bench's own CPU: what the load takes
		selfOK         bool
		drops0, drops1 int64
		dropsOK        = srv.drops != nil
		rssMax         int64
		local          = srv.pid != 0
		inWindow       bool
		interrupted    bool
	)
	sample := func() {
		if _, rss, ok := srv.usage(); ok {
			rssMax = max(rssMax, rss)
		} else {
			local = false
		}
	}
	begin := func() {
		inWindow = true
		if cpu, _, ok := srv.usage(); ok {
			cpu0 = cpu
		}
		if cpu, err := procCPU(os.Getpid()); err == nil {
			self0, selfOK = cpu, true
		}
		sample()
		if dropsOK {
			drops0, dropsOK = srv.drops()
		}
	}
	finish := func() {
		if cpu, _, ok := srv.usage(); ok {
			cpu1 = cpu
		} else {
			local = false
		}
		if cpu, err := procCPU(os.Getpid()); err == nil {
			self1 = cpu
		} else {
			selfOK = false
		}
		sample()
		if dropsOK {
			drops1, dropsOK = srv.drops()
		}
	}

	prog := b.progress(spec, load, subs, plan)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	startTimer := time.NewTimer(time.Until(windowStart))
	endTimer := time.NewTimer(time.Until(windowEnd))
	defer startTimer.Stop()
	defer endTimer.Stop()
	var failure error
measure:
	for {
		select {
		case <-ctx.Done():
			interrupted = true
			now := time.Now()
			if !inWindow {
				b.endLine()
				return nil, ctx.Err()
			}
			plan.cut(now)
			finish()
			break measure
		case <-startTimer.C:
			begin()
		case <-endTimer.C:
			finish()
			break measure
		case now := <-tick.C:
			prog(now)
			if inWindow {
				sample()
			}
			if err := srv.alive(); err != nil {
				failure = err
				break measure
			}
		}
	}
	measuredEnd := time.Now()

	// Drain: the samples of the window still on their way, and monitors behind schedule.
	drain := c.Drain
	if interrupted || failure != nil {
		drain = min(drain, time.Second)
	}
	deadline := time.After(drain)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	senders := sendersDone
drain:
	for {
		select {
		case <-deadline:
			break drain
		case <-senders:
			senders = nil
		case now := <-tick.C:
			prog(now)
		case <-poll.C:
			if senders != nil {
				continue
			}
			caughtUp := true
			for _, s := range subs {
				if s.m.pending() > 0 {
					caughtUp = false
					break
				}
			}
			if caughtUp {
				break drain
			}
		}
	}
	load.stop()
	b.endLine()

	// Figures.
	window := plan.windowEnd() - plan.warm
	if interrupted {
		window = min(window, measuredEnd.Sub(windowStart))
	}
	r.WindowSeconds = window.Seconds()
	r.Offered, r.Sent = plan.offered()
	r.Sent -= load.failedWin.Load()
	r.Connections = int(load.connected.Load()) + len(subs)
	var lat, alert histogram
	for _, s := range subs {
		m := s.m.result(&lat, &alert)
		r.Delivered += m.delivered
		r.Gaps += m.gaps
		r.Unmatched += m.unmatched
		r.Reconnects += s.reconnects.Load()
	}
	expected := r.Offered * int64(len(subs))
	r.Lost = expected - r.Delivered
	if expected > 0 {
		r.LossRatio = float64(r.Lost) / float64(expected)
	}
	if secs := window.Seconds(); secs > 0 {
		r.OfferedPerSec = float64(r.Offered) / secs
		if len(subs) > 0 {
			r.DeliveredPerSec = float64(r.Delivered) / float64(len(subs)) / secs
		}
	}
	r.Latency = latencyOf(&lat)
	if n := countAlerts(plan); n > 0 {
		r.Alert = &benchAlert{Expected: int64(n * len(subs)), Received: int64(alert.Count()), Latency: latencyOf(&alert)}
	}
	if dropsOK {
		r.BrokerDrops = ptr(drops1 - drops0)
	}
	r.Errors = load.errs.Load()
	if err := load.lastError(); err != nil {
		r.LastError = err.Error()
	}
	if local && window > 0 {
		r.CPUPercent = ptr(100 * float64(cpu1-cpu0) / float64(window))
		r.RSSMB = ptr(float64(rssMax) / (1 << 20))
		if r.Connections > 0 {
			r.RSSPerConnKB = ptr(float64(rssMax-rssBefore) / 1024 / float64(r.Connections))
		}
	}
	if selfOK && window > 0 {
		r.LoadCPUPercent = ptr(100 * float64(self1-self0) / float64(window))
	}
	r.Interrupted = interrupted
	if failure != nil {
		return r, fmt.Errorf("%s: %w", spec, failure)
	}
	return r, nil
}

// idle holds the monitors' connections open without load for the duration and measures the
// memory they take.
func (b *bench) idle(ctx context.Context, spec runSpec, srv *benchServer, load *benchLoad, r *benchRun, rssBefore int64) (*benchRun, error) {
	c := b.cfg
	// Let the connections settle (handshakes, first allocations) before the window.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(2 * time.Second):
	}
	cpu0, _, _ := srv.usage()
	start := time.Now()
	var rssMax int64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.NewTimer(c.Duration)
	defer end.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			r.Interrupted = true
			break wait
		case <-end.C:
			break wait
		case now := <-tick.C:
			if _, rss, ok := srv.usage(); ok {
				rssMax = max(rssMax, rss)
			}
			b.line("%s: %s  %d connected  errors %d", spec, now.Sub(start).Truncate(time.Second), load.connected.Load(), load.errs.Load())
			if err := srv.alive(); err != nil {
				b.endLine()
				return r, fmt.Errorf("%s: %w", spec, err)
			}
		}
	}
	b.endLine()
	r.WindowSeconds = time.Since(start).Seconds()
	r.Connections = int(load.connected.Load())
	r.Errors = load.errs.Load()
	if err := load.lastError(); err != nil {
		r.LastError = err.Error()
	}
	if cpu1, rss, ok := srv.usage(); ok {
		rssMax = max(rssMax, rss)
		r.CPUPercent = ptr(100 * float64(cpu1-cpu0) / float64(time.Since(start)))
		r.RSSMB = ptr(float64(rssMax) / (1 << 20))
		if r.Connections > 0 {
			r.RSSPerConnKB = ptr(float64(rssMax-rssBefore) / 1024 / float64(r.Connections))
		}
	}
	return r, nil
}

// countAlerts is the number of critical samples scheduled in the window (all of them, unless
// Ctrl-C cut it short).
func countAlerts(p *benchPlan) int {
	n := 0
	for d, s := range p.alertSeq {
		if _, b := p.window(d); s >= 0 && uint32(s) < b {
			n++
		}
	}
	return n
}

func ptr[T any](v T) *T { return &v }

// progress returns the function that prints the progress line: each second, samples sent and
// events received per second, samples on their way, errors.
func (b *bench) progress(spec runSpec, load *benchLoad, subs []*benchSub, plan *benchPlan) func(time.Time) {
	var lastT time.Time
	var lastSent, lastRecv int64
	return func(now time.Time) {
		sent := load.published.Load()
		var recv, pending, reconnects int64
		for _, s := range subs {
			recv += s.m.received.Load()
			pending += s.m.pending()
			reconnects += s.reconnects.Load()
		}
		if !lastT.IsZero() {
			secs := now.Sub(lastT).Seconds()
			phase := "warm-up"
			el := now.Sub(plan.t0)
			switch {
			case el >= plan.windowEnd():
				phase = "drain"
			case el >= plan.warm:
				phase = "window"
			}
			b.line("%s: %-7s %5.1fs  sent %.0f/s  received %.0f/s  in flight %d  errors %d  reconnects %d", spec, phase,
				el.Seconds(), float64(sent-lastSent)/secs, float64(recv-lastRecv)/secs, pending/int64(max(len(subs), 1)), load.errs.Load(), reconnects)
		}
		lastT, lastSent, lastRecv = now, sent, recv
	}
}

// counter returns a progress callback for a count of total (provisioned, connected), printed
// at most every 200 ms on a terminal, every 2 s otherwise.
func (b *bench) counter(spec runSpec, what string, total int) func(int) {
	var mu sync.Mutex
	var last time.Time
	return func(n int) {
		mu.Lock()
		defer mu.Unlock()
		every := 2 * time.Second
		if isTerminal(b.stderr) {
			every = 200 * time.Millisecond
		}
		if n < total && time.Since(last) < every {
			return
		}
		last = time.Now()
		b.line("%s: %s %d/%d monitors", spec, what, n, total)
	}
}

// status prints a line of its own.
func (b *bench) status(format string, args ...any) {
	b.endLine()
	fmt.Fprintf(b.stderr, "vigil bench: "+format+"\n", args...)
}

// line prints a progress line: rewritten in place on a terminal, one line each otherwise.
func (b *bench) line(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := "vigil bench: " + fmt.Sprintf(format, args...)
	if isTerminal(b.stderr) {
		fmt.Fprint(b.stderr, "\r"+s+"\x1b[K")
		b.open = true
		return
	}
	fmt.Fprintln(b.stderr, strings.TrimSpace(s))
}

// endLine ends a progress line rewritten in place.
func (b *bench) endLine() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		fmt.Fprintln(b.stderr)
		b.open = false
	}
}
