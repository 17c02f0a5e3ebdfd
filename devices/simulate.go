package devices

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigilhq/vigil/topics"
)

// Monitor is one simulated bedside monitor, provisioned and assigned to Patient.
type Monitor struct {
	Device   string // MQTT client ID and username
	Secret   string // MQTT password
	Hospital string
	Patient  string
	Scenario Scenario
}

// WatchOptions make the simulator also subscribe as a browser would, to count the alerts that
// Vigil raises for the simulated ward.
type WatchOptions struct {
	Username string // free for browsers; "vigil-simulate" when empty
	Token    string // a JWT from POST /api/v1/auth/login (the MQTT password)
}

// SimOptions configure Simulate.
type SimOptions struct {
	// URL of the MQTT server: tcp:// or mqtt:// (plain), ssl://, tls:// or mqtts:// (TLS),
	// ws:// or wss:// with the path (e.g. ws://127.0.0.1:8080/mqtt).
	URL string
	// TLS configures ssl://, tls://, mqtts:// and wss:// connections; nil uses the defaults.
	TLS      *tls.Config
	Monitors []Monitor
	// Rate is samples per second per monitor; 1 when zero.
	Rate float64
	// QoS of the samples: 0 or 1; the zero value means 1 (PUBACKs are counted), so QoS 0 is
	// asked for with AtMostOnce.
	QoS        byte
	AtMostOnce bool
	// TimeScale speeds scenarios up: at 10, the 5 minutes of deteriorating take 30 s. It also
	// scales the dropout timing and how often temperature is sent. 1 when zero.
	TimeScale float64
	// Seed makes the samples reproducible: a monitor's samples depend on Seed, its device ID and
	// its scenario only.
	Seed  uint64
	Watch *WatchOptions
	// Progress, when set, is called every ProgressEvery (1 s when zero) from one goroutine; it
	// should return quickly.
	Progress      func(Progress)
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

// Progress is how a simulation is going.
type Progress struct {
	Sent       int // samples published
	Acked      int // samples acknowledged by a successful PUBACK (QoS 1)
	Refused    int // samples refused by a PUBACK with a reason code >= 0x80
	Rejected   int // sample_rejected events received on the monitors' errors topics
	Errors     int // publishes that failed otherwise (connection lost, timeout)
	AlertsSeen int // patient_alert events raised or escalated (with Watch)
	Connected  int // monitors connected now
	Connects   int // successful connections, reconnections included
	Elapsed    time.Duration
}

// Counts are one scenario's share of a simulation.
type Counts struct {
	Monitors, Sent, Acked, Refused, Rejected, Errors, Connects int
}

// Summary is the outcome of a simulation: the final progress (Connected is the number of
// monitors connected when it was stopped) and the counts per scenario.
type Summary struct {
	Progress
	Scenarios map[Scenario]Counts
}

// Defaults and limits.
const (
	maxRate         = 1000
	keepAlive       = 30 // seconds
	connectTimeout  = 10 * time.Second
	packetTimeout   = 10 * time.Second // PUBACK, SUBACK
	disconnectGrace = 5 * time.Second
)

// Simulate runs the monitors until ctx is done, then disconnects them all (DISCONNECT) and
// returns what happened. Each monitor is a real MQTT 5 client; it reconnects with backoff when
// its connection drops. The error is about the options only: a broker that cannot be reached
// shows in the counts (Connected 0).
func Simulate(ctx context.Context, opts SimOptions) (Summary, error) {
	s, err := newSim(opts)
	if err != nil {
		return Summary{}, err
	}
	s.log.Info("simulation starting", "url", s.url.Redacted(), "monitors", len(opts.Monitors),
		"rate", s.rate, "time_scale", s.scale, "qos", s.qos)

	// The monitors stop only once the summary has counted those connected at the stop, so
	// none of them disconnecting first can change that count.
	run, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	var wg sync.WaitGroup
	n := len(opts.Monitors)
	for i, m := range opts.Monitors {
		r := s.newRunner(m)
		// Spread the monitors over one sample period: connects and publishes come evenly.
		offset := time.Duration(float64(s.period) * float64(i) / float64(n))
		wg.Go(func() { r.run(run, offset) })
	}
	if opts.Watch != nil {
		w := s.newWatcher(*opts.Watch)
		wg.Go(func() { w.run(run) })
	}
	if opts.Progress != nil {
		wg.Go(func() { s.report(run) })
	}

	<-ctx.Done()
	end, connected := time.Now(), int(s.connected.Load())
	stop()
	wg.Wait()
	sum := s.summary()
	sum.Connected, sum.Elapsed = connected, end.Sub(s.start)
	s.log.Info("simulation stopped", "sent", sum.Sent, "acked", sum.Acked, "refused", sum.Refused,
		"rejected", sum.Rejected, "errors", sum.Errors, "alerts_seen", sum.AlertsSeen)
	return sum, nil
}

// tally counts for one scenario; monitors add to it concurrently.
type tally struct {
	monitors                                             int
	sent, acked, refused, rejected, publishErr, connects atomic.Int64
}

type sim struct {
	opts   SimOptions
	log    *slog.Logger
	url    *url.URL
	rate   float64
	scale  float64
	qos    byte
	period time.Duration
	start  time.Time

	tallies   map[Scenario]*tally // fixed before the goroutines start
	connected atomic.Int64
	alerts    atomic.Int64
}

var schemes = []string{"tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"}

func newSim(opts SimOptions) (*sim, error) {
	s := &sim{opts: opts, rate: opts.Rate, scale: opts.TimeScale, qos: 1, tallies: map[Scenario]*tally{}}
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("broker url: %w", err)
	}
	ok := false
	for _, sc := range schemes {
		ok = ok || strings.EqualFold(u.Scheme, sc)
	}
	if !ok || u.Host == "" {
		return nil, fmt.Errorf("broker url %q: want scheme://host:port with a scheme of %s", u.Redacted(), strings.Join(schemes, ", "))
	}
	s.url = u

	if len(opts.Monitors) == 0 {
		return nil, errors.New("no monitors")
	}
	devs := make(map[string]bool, len(opts.Monitors))
	for _, m := range opts.Monitors {
		for _, id := range [...][2]string{{"hospital", m.Hospital}, {"device", m.Device}, {"patient", m.Patient}} {
			if err := topics.ValidID(id[0], id[1]); err != nil {
				return nil, fmt.Errorf("monitor %q: %w", m.Device, err)
			}
		}
		if !m.Scenario.Valid() {
			_, err := ParseScenario(string(m.Scenario))
			return nil, fmt.Errorf("monitor %s: %w", m.Device, err)
		}
		if devs[m.Device] {
			return nil, fmt.Errorf("monitor %s appears twice (a device ID is its MQTT client ID)", m.Device)
		}
		devs[m.Device] = true
		t := s.tallies[m.Scenario]
		if t == nil {
			t = &tally{}
			s.tallies[m.Scenario] = t
		}
		t.monitors++
	}

	if s.rate == 0 {
		s.rate = 1
	}
	if !(s.rate > 0 && s.rate <= maxRate) {
		return nil, fmt.Errorf("rate %g: want more than 0 and at most %d samples per second", opts.Rate, maxRate)
	}
	s.period = time.Duration(float64(time.Second) / s.rate)
	if s.scale == 0 {
		s.scale = 1
	}
	if !(s.scale > 0 && s.scale < math.Inf(1)) {
		return nil, fmt.Errorf("time scale %g: want more than 0", opts.TimeScale)
	}
	switch {
	case opts.QoS > 1:
		return nil, fmt.Errorf("qos %d: vitals go at QoS 0 or 1", opts.QoS)
	case opts.AtMostOnce:
		s.qos = 0
	}
	if w := opts.Watch; w != nil && w.Token == "" {
		return nil, errors.New("watch: no token")
	}
	if s.opts.ProgressEvery <= 0 {
		s.opts.ProgressEvery = time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.log = log.With("component", "simulator")
	s.start = time.Now()
	return s, nil
}

// scenarioTime is the scenario time at wall time now.
func (s *sim) scenarioTime(now time.Time) time.Duration {
	return time.Duration(float64(now.Sub(s.start)) * s.scale)
}

// wallTime converts a scenario duration into wall time.
func (s *sim) wallTime(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.scale)
}

func (s *sim) summary() Summary {
	sum := Summary{Scenarios: make(map[Scenario]Counts, len(s.tallies))}
	for sc, t := range s.tallies {
		c := Counts{
			Monitors: t.monitors,
			Sent:     int(t.sent.Load()),
			Acked:    int(t.acked.Load()),
			Refused:  int(t.refused.Load()),
			Rejected: int(t.rejected.Load()),
			Errors:   int(t.publishErr.Load()),
			Connects: int(t.connects.Load()),
		}
		sum.Scenarios[sc] = c
		sum.Sent += c.Sent
		sum.Acked += c.Acked
		sum.Refused += c.Refused
		sum.Rejected += c.Rejected
		sum.Errors += c.Errors
		sum.Connects += c.Connects
	}
	sum.AlertsSeen = int(s.alerts.Load())
	sum.Connected = int(s.connected.Load())
	sum.Elapsed = time.Since(s.start)
	return sum
}

func (s *sim) report(ctx context.Context) {
	t := time.NewTicker(s.opts.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.opts.Progress(s.summary().Progress)
		}
	}
}

// clientConfig is the part of a connection's configuration monitors and the watcher share.
func (s *sim) clientConfig(log *slog.Logger) autopaho.ClientConfig {
	return autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{s.url},
		TlsCfg:                        s.opts.TLS,
		KeepAlive:                     keepAlive,
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                connectTimeout,
		// Every connection starts clean: a monitor has nothing to resume.
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			cp.CleanStart = true
			return cp, nil
		},
		Errors:     pahoLog{log},
		PahoErrors: pahoLog{log},
		ClientConfig: paho.ClientConfig{
			PacketTimeout: packetTimeout,
		},
	}
}

// pahoLog passes paho's error log to slog, at debug level: what matters reaches the callbacks.
type pahoLog struct{ l *slog.Logger }

func (p pahoLog) Println(v ...any) { p.l.Debug(strings.TrimSpace(fmt.Sprintln(v...))) }
func (p pahoLog) Printf(format string, v ...any) {
	p.l.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// utf8Payload is the payload format indicator of JSON [MQTT-3.3.2.3.2].
var utf8Payload byte = 1

// runner runs one monitor: its goroutine owns the generator and the connection manager.
type runner struct {
	s        *sim
	m        Monitor
	log      *slog.Logger
	t        *tally
	gen      *Generator
	topic    string
	errTopic string

	dropped int64 // dropouts done (owned by the run goroutine)

	up        chan struct{} // a connection came up: subscribe (from autopaho's goroutine)
	online    atomic.Bool
	awayUntil atomic.Int64 // dropout: no reconnect before this (Unix ns)
	everUp    atomic.Bool
	failing   atomic.Bool // the current streak of failed connects is logged
}

func (s *sim) newRunner(m Monitor) *runner {
	h := fnv.New64a()
	h.Write([]byte(m.Device))
	return &runner{
		s:        s,
		m:        m,
		log:      s.log.With("hospital", m.Hospital, "device", m.Device),
		t:        s.tallies[m.Scenario],
		gen:      NewGenerator(m.Scenario, s.opts.Seed^h.Sum64()),
		topic:    topics.Vitals(m.Hospital, m.Patient),
		errTopic: topics.DeviceErrors(m.Hospital, m.Device),
		up:       make(chan struct{}, 1),
	}
}

func (r *runner) run(ctx context.Context, offset time.Duration) {
	select {
	case <-time.After(offset):
	case <-ctx.Done():
		return
	}
	cfg := r.s.clientConfig(r.log)
	cfg.ClientID = r.m.Device
	cfg.ConnectUsername = r.m.Device
	cfg.ConnectPassword = []byte(r.m.Secret)
	cfg.ReconnectBackoff = r.backoff
	cfg.OnConnectionUp = r.connectionUp
	cfg.OnConnectionDown = r.connectionDown
	cfg.OnConnectError = r.connectError
	cfg.OnServerDisconnect = r.serverDisconnect
	cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){r.received}
	// The connection outlives ctx so that it can be closed with a DISCONNECT below.
	cm, err := autopaho.NewConnection(context.WithoutCancel(ctx), cfg)
	if err != nil {
		r.log.Error("monitor cannot start", "err", err)
		return
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), disconnectGrace)
		defer cancel()
		if err := cm.Disconnect(dctx); err != nil {
			r.log.Warn("monitor did not disconnect in time", "err", err)
		}
		r.setOnline(false)
	}()

	tick := time.NewTicker(r.s.period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.up:
			r.subscribe(ctx, cm)
		case <-tick.C:
			r.tick(ctx, cm)
		}
	}
}

func (r *runner) tick(ctx context.Context, cm *autopaho.ConnectionManager) {
	now := time.Now()
	t := r.s.scenarioTime(now)
	if away, left, n := r.m.Scenario.away(t); away {
		if n >= r.dropped {
			r.dropped = n + 1
			back := r.s.wallTime(left)
			r.awayUntil.Store(now.Add(back).UnixNano())
			r.log.Info("dropout: closing the connection without DISCONNECT", "back_in", back.Round(time.Millisecond))
			r.setOnline(false)
			// Closes the network connection under the client, as a pulled cable would.
			cm.TerminateConnectionForTest()
		}
		return
	}
	if !r.online.Load() {
		return // a monitor offline does not queue: samples resume when it is back
	}
	smp := r.gen.Next(now, t)
	// A new buffer per sample: a QoS 1 publish stays in the session until its PUBACK.
	payload := smp.AppendJSON(make([]byte, 0, 128))
	r.t.sent.Add(1)
	// A publish in flight finishes even when ctx is done, so the counts add up.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), packetTimeout)
	resp, err := cm.Publish(pctx, &paho.Publish{
		QoS:        r.s.qos,
		Topic:      r.topic,
		Payload:    payload,
		Properties: &paho.PublishProperties{PayloadFormat: &utf8Payload},
	})
	cancel()
	switch {
	case resp != nil && resp.ReasonCode >= 0x80:
		r.t.refused.Add(1)
		reason := ""
		if resp.Properties != nil {
			reason = resp.Properties.ReasonString
		}
		r.log.Debug("sample refused", "seq", smp.Seq, "reason_code", fmt.Sprintf("0x%02x", resp.ReasonCode), "reason", reason)
	case err != nil:
		r.t.publishErr.Add(1)
		r.log.Debug("publish failed", "seq", smp.Seq, "err", err)
	case r.s.qos > 0:
		r.t.acked.Add(1)
	}
}

func (r *runner) subscribe(ctx context.Context, cm *autopaho.ConnectionManager) {
	sctx, cancel := context.WithTimeout(ctx, packetTimeout)
	defer cancel()
	_, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: r.errTopic, QoS: 0}}})
	if err != nil && ctx.Err() == nil {
		r.log.Warn("monitor cannot subscribe to its errors topic", "topic", r.errTopic, "err", err)
	}
}

// received counts the sample_rejected events of the device's errors topic.
func (r *runner) received(pr paho.PublishReceived) (bool, error) {
	if pr.Packet.Topic != r.errTopic {
		return false, nil
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Field  string `json:"field"`
			Reason string `json:"reason"`
		} `json:"data"`
	}
	if err := json.Unmarshal(pr.Packet.Payload, &ev); err != nil {
		r.log.Debug("undecodable message on the errors topic", "err", err)
		return true, nil
	}
	if ev.Type == "sample_rejected" {
		r.t.rejected.Add(1)
		r.log.Debug("sample rejected", "field", ev.Data.Field, "reason", ev.Data.Reason)
	}
	return true, nil
}

func (r *runner) setOnline(on bool) {
	if r.online.Swap(on) != on {
		if on {
			r.s.connected.Add(1)
		} else {
			r.s.connected.Add(-1)
		}
	}
}

func (r *runner) connectionUp(_ *autopaho.ConnectionManager, _ *paho.Connack) {
	r.everUp.Store(true)
	r.failing.Store(false)
	r.setOnline(true)
	r.t.connects.Add(1)
	r.log.Debug("monitor connected")
	select {
	case r.up <- struct{}{}:
	default: // a subscribe is already due
	}
}

func (r *runner) connectionDown() bool {
	r.setOnline(false)
	r.log.Debug("monitor connection lost")
	return true
}

func (r *runner) connectError(err error) {
	if r.failing.Swap(true) {
		r.log.Debug("monitor cannot connect", "err", err)
		return
	}
	r.log.Warn("monitor cannot connect; retrying with backoff", "err", err)
}

func (r *runner) serverDisconnect(d *paho.Disconnect) {
	reason := ""
	if d.Properties != nil {
		reason = d.Properties.ReasonString
	}
	r.log.Info("server disconnected the monitor", "reason_code", fmt.Sprintf("0x%02x", d.ReasonCode), "reason", reason)
}

// reconnectBackoff is the delay before attempt n (n >= 1) of a streak of failed connects.
var reconnectBackoff = autopaho.NewExponentialBackoff(500*time.Millisecond, 30*time.Second, 2*time.Second, 1.5)

// backoff is the delay before connect attempt n. A dropout monitor stays away until its time
// is up; after an unplanned drop the first attempt is jittered, so that a restarted broker does
// not see every monitor at once.
func (r *runner) backoff(n int) time.Duration {
	if left := time.Until(time.Unix(0, r.awayUntil.Load())); left > 0 {
		return left
	}
	if n > 0 {
		return reconnectBackoff(n)
	}
	if r.everUp.Load() {
		return rand.N(500 * time.Millisecond)
	}
	return 0
}

// watcher subscribes like a browser and counts raised and escalated alerts.
type watcher struct {
	s         *sim
	opts      WatchOptions
	log       *slog.Logger
	hospitals []string
	up        chan struct{}

	mu   sync.Mutex
	seen map[string]bool // alert ID, action and escalation level
}

func (s *sim) newWatcher(o WatchOptions) *watcher {
	if o.Username == "" {
		o.Username = "vigil-simulate"
	}
	w := &watcher{s: s, opts: o, log: s.log.With("watch", o.Username), up: make(chan struct{}, 1), seen: map[string]bool{}}
	hs := map[string]bool{}
	for _, m := range s.opts.Monitors {
		if !hs[m.Hospital] {
			hs[m.Hospital] = true
			w.hospitals = append(w.hospitals, m.Hospital)
		}
	}
	return w
}

func (w *watcher) run(ctx context.Context) {
	cfg := w.s.clientConfig(w.log)
	cfg.ClientID = "vigil-simulate-watch-" + strconv.FormatUint(rand.Uint64(), 36)
	cfg.ConnectUsername = w.opts.Username
	cfg.ConnectPassword = []byte(w.opts.Token)
	cfg.ReconnectBackoff = reconnectBackoff
	cfg.OnConnectionUp = func(*autopaho.ConnectionManager, *paho.Connack) {
		select {
		case w.up <- struct{}{}:
		default:
		}
	}
	cfg.OnConnectError = func(err error) { w.log.Warn("watch cannot connect", "err", err) }
	cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){w.received}
	cm, err := autopaho.NewConnection(context.WithoutCancel(ctx), cfg)
	if err != nil {
		w.log.Error("watch cannot start", "err", err)
		return
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), disconnectGrace)
		defer cancel()
		_ = cm.Disconnect(dctx)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.up:
			subs := make([]paho.SubscribeOptions, 0, 2*len(w.hospitals))
			for _, h := range w.hospitals {
				subs = append(subs,
					paho.SubscribeOptions{Topic: topics.HospitalAlerts(h), QoS: 1},
					paho.SubscribeOptions{Topic: topics.PatientAlerts(h, "+"), QoS: 1})
			}
			sctx, cancel := context.WithTimeout(ctx, packetTimeout)
			if _, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs}); err != nil && ctx.Err() == nil {
				w.log.Warn("watch cannot subscribe", "err", err)
			}
			cancel()
		}
	}
}

// received counts a patient_alert raised or escalated once, although an escalation arrives on
// both the patient's and the hospital's alerts topics.
func (w *watcher) received(pr paho.PublishReceived) (bool, error) {
	var ev struct {
		Type     string `json:"type"`
		Hospital string `json:"hospital"`
		Patient  string `json:"patient"`
		Data     struct {
			Action string `json:"action"`
			Alert  struct {
				ID              string `json:"id"`
				Kind            string `json:"kind"`
				Priority        string `json:"priority"`
				EscalationLevel int    `json:"escalation_level"`
			} `json:"alert"`
		} `json:"data"`
	}
	if err := json.Unmarshal(pr.Packet.Payload, &ev); err != nil {
		w.log.Debug("undecodable alert event", "topic", pr.Packet.Topic, "err", err)
		return true, nil
	}
	a := ev.Data.Alert
	if ev.Type != "patient_alert" || (ev.Data.Action != "raised" && ev.Data.Action != "escalated") {
		return true, nil
	}
	key := a.ID + "/" + ev.Data.Action + "/" + strconv.Itoa(a.EscalationLevel)
	w.mu.Lock()
	dup := w.seen[key]
	w.seen[key] = true
	w.mu.Unlock()
	if !dup {
		w.s.alerts.Add(1)
		w.log.Info("alert", "action", ev.Data.Action, "hospital", ev.Hospital, "patient", ev.Patient,
			"kind", a.Kind, "priority", a.Priority, "escalation_level", a.EscalationLevel)
	}
	return true, nil
}
