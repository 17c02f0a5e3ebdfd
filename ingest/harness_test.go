package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/embedded"
)

// How these white-box tests drive the pipeline.
//
// Each test runs a real Pipeline (Start, its worker goroutines) on the real embedded store and a
// real store.Batcher; only the MQTT side is a recorder. Time is a fake clock (Options.Now) that
// the test moves. The workers' own tickers are set an hour apart (Tick, SnapshotEvery), so in a
// test's few seconds of real time they never fire: a worker only ever runs the jobs the test sends
// it through the pipeline's API (Submit, Observe, Acknowledge...).
//
// To run the timers, n.tick() first makes a round trip through every worker (Views: a job that
// answers once everything queued before it is handled), then calls worker.tick() on the test
// goroutine. That is safe: the worker's queue is empty, only the test goroutine sends it jobs and
// the test is busy ticking, so the worker goroutine sits in its select and touches nothing. The
// channel operations order the two goroutines' accesses (the race detector agrees). sync() is the
// same round trip, used after asynchronous calls (Submit queues the sample for the worker) before
// looking at the store or the recorded events.

const (
	hosp = "h1"
	pat  = "p1"
	dev  = "mon1"
)

// t0 is where every test's clock starts.
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// message is one Publish call.
type message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// recorder is the Publisher: it keeps what the pipeline publishes.
type recorder struct {
	mu   sync.Mutex
	msgs []message
}

func (r *recorder) Publish(_ context.Context, topic string, payload []byte, qos byte, retain bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, message{Topic: topic, Payload: slices.Clone(payload), QoS: qos, Retain: retain})
	return nil
}

// take returns the messages published since the last take.
func (r *recorder) take() []message {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.msgs
	r.msgs = nil
	return out
}

var _ Publisher = (*recorder)(nil)

// pubEvent is a published message decoded as an event envelope.
type pubEvent struct {
	message
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	TS       time.Time       `json:"ts"`
	Hospital string          `json:"hospital"`
	Patient  string          `json:"patient"`
	Data     json.RawMessage `json:"data"`
}

func decodeEvents(t *testing.T, msgs []message) []pubEvent {
	t.Helper()
	out := make([]pubEvent, 0, len(msgs))
	for _, m := range msgs {
		ev := pubEvent{message: m}
		if len(m.Payload) > 0 {
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatalf("published on %s: %q is not an event envelope: %v", m.Topic, m.Payload, err)
			}
		}
		out = append(out, ev)
	}
	return out
}

func (ev pubEvent) alert(t *testing.T) AlertEvent {
	t.Helper()
	var a AlertEvent
	if err := json.Unmarshal(ev.Data, &a); err != nil {
		t.Fatalf("%s event on %s: data %s: %v", ev.Type, ev.Topic, ev.Data, err)
	}
	return a
}

func (ev pubEvent) risk(t *testing.T) news2.Risk {
	t.Helper()
	var r news2.Risk
	if err := json.Unmarshal(ev.Data, &r); err != nil {
		t.Fatalf("%s event on %s: data %s: %v", ev.Type, ev.Topic, ev.Data, err)
	}
	return r
}

func onTopic(evs []pubEvent, topic string) []pubEvent {
	var out []pubEvent
	for _, ev := range evs {
		if ev.Topic == topic {
			out = append(out, ev)
		}
	}
	return out
}

// env is one test's store directory and clock, with the pipeline (node) running on them.
type env struct {
	t    *testing.T
	dir  string
	db   *embedded.DB
	clk  *clock
	opts Options
	*node
}

// node is one running pipeline with its batcher and recorder.
type node struct {
	e   *env
	p   *Pipeline
	b   *store.Batcher
	rec *recorder
}

// newEnv opens a store in a temporary directory and starts a pipeline with one worker on it.
// tune, when set, changes the options first.
func newEnv(t *testing.T, tune func(*Options)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clk: &clock{now: t0}}
	e.opts = Options{Workers: 1, Tick: time.Hour, SnapshotEvery: time.Hour, Now: e.clk.Now}
	if tune != nil {
		tune(&e.opts)
	}
	e.openStore()
	e.node = e.start(e.opts)
	return e
}

func (e *env) openStore() {
	e.t.Helper()
	db, err := embedded.Open(e.dir, embedded.Options{Now: e.clk.Now})
	if err != nil {
		e.t.Fatalf("embedded.Open(%s): %v", e.dir, err)
	}
	e.db = db
	e.t.Cleanup(func() { db.Close() })
}

// start starts another pipeline on the env's store. Like vigil serve, it tells the pipeline
// the device assignments (those of the given earlier pipeline) before starting it.
func (e *env) start(opts Options, assignedBy ...*Pipeline) *node {
	e.t.Helper()
	n := &node{e: e, rec: &recorder{}, b: store.NewBatcher(e.db, store.BatcherOptions{})}
	n.p = New(e.db, n.b, n.rec, opts)
	e.t.Cleanup(n.close)
	for _, prev := range assignedBy {
		prev.devMu.Lock()
		assigned := maps.Clone(prev.assigned)
		prev.devMu.Unlock()
		for d, k := range assigned {
			n.p.DeviceAssigned(e.ctx(), k.h, d, k.p)
		}
	}
	if err := n.p.Start(e.ctx()); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	return n
}

func (n *node) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.p.Close(ctx); err != nil {
		n.e.t.Errorf("Pipeline.Close: %v", err)
	}
	if err := n.b.Close(ctx); err != nil {
		n.e.t.Errorf("Batcher.Close: %v", err)
	}
}

// restart stops the pipeline, closes the store and opens both again, as a process restart does.
// stopped, when set, runs on the store between the two.
func (e *env) restart(stopped func()) {
	e.t.Helper()
	prev := e.node.p
	e.node.close()
	if stopped != nil {
		stopped()
	}
	if err := e.db.Close(); err != nil {
		e.t.Fatalf("closing the store: %v", err)
	}
	e.openStore()
	e.node = e.start(e.opts, prev)
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) now() time.Time { return e.clk.Now() }

// at moves the clock to t0+d.
func (e *env) at(d time.Duration) { e.clk.set(t0.Add(d)) }

// admit stores a patient of hospital h1 and tells every given pipeline (default: the env's).
func (e *env) admit(id string, edit func(*store.Patient), nodes ...*node) store.Patient {
	e.t.Helper()
	p := store.Patient{Hospital: hosp, ID: id, Name: "Patient " + id, SpO2Scale: 1, AdmittedAt: store.Millis(e.now()), UpdatedAt: store.Millis(e.now())}
	if edit != nil {
		edit(&p)
	}
	if err := e.db.CreatePatient(e.ctx(), p); err != nil {
		e.t.Fatalf("CreatePatient(%s): %v", id, err)
	}
	if len(nodes) == 0 {
		nodes = []*node{e.node}
	}
	for _, n := range nodes {
		if err := n.p.PatientChanged(e.ctx(), p); err != nil {
			e.t.Fatalf("PatientChanged(%s): %v", id, err)
		}
	}
	return p
}

// sync returns once every worker has handled everything queued so far: a round trip through
// each worker's queue (Views would not do: in shared mode it reads the store directly).
func (n *node) sync() {
	n.e.t.Helper()
	for _, w := range n.p.workers {
		reply := make(chan result, 1)
		w.in <- job{kind: jobViews, h: hosp, reply: reply}
		<-reply
	}
}

// tick runs every worker's timers at the clock's time (see the comment at the top).
func (n *node) tick() {
	n.e.t.Helper()
	n.sync()
	for _, w := range n.p.workers {
		w.tick()
	}
}

// snapshot saves changed patient state as the worker's snapshot timer does.
func (n *node) snapshot() {
	n.e.t.Helper()
	n.sync()
	for _, w := range n.p.workers {
		w.snapshot()
	}
}

// tickAt moves the clock to t0+d and runs the timers.
func (n *node) tickAt(d time.Duration) {
	n.e.at(d)
	n.tick()
}

// submit publishes a sample of patient p from device dev at the clock's time and waits until the
// worker has handled it.
func (n *node) submit(p, payload string) error {
	return n.submitFrom(dev, p, payload)
}

func (n *node) submitFrom(device, p, payload string) error {
	n.e.t.Helper()
	err := n.p.Submit(n.e.ctx(), hosp, p, device, []byte(payload), 1, n.e.now())
	n.sync()
	return err
}

// mustSubmit is submit for samples that must be accepted.
func (n *node) mustSubmit(p, payload string) {
	n.e.t.Helper()
	if err := n.submit(p, payload); err != nil {
		n.e.t.Fatalf("Submit(%s, %s) = %v; want nil", p, payload, err)
	}
}

// assign, connect and disconnect tell the pipeline about a device (as the registry and the
// broker do) and wait until the worker has taken it in at the clock's time.
func (n *node) assign(device, p string) {
	n.p.DeviceAssigned(n.e.ctx(), hosp, device, p)
	n.sync()
}

func (n *node) connect(device string) {
	n.p.DeviceConnected(hosp, device)
	n.sync()
}

func (n *node) disconnect(device string, clean bool) {
	n.p.DeviceDisconnected(hosp, device, clean)
	n.sync()
}

// events returns what the node published since the last call, decoded.
func (n *node) events() []pubEvent {
	n.e.t.Helper()
	return decodeEvents(n.e.t, n.rec.take())
}

// open returns the open alert of the patient's kind, nil when none.
func (e *env) open(p, kind string) *store.Alert {
	e.t.Helper()
	as, err := e.db.OpenAlerts(e.ctx(), hosp, p)
	if err != nil {
		e.t.Fatalf("OpenAlerts(%s, %s): %v", hosp, p, err)
	}
	var found *store.Alert
	for i := range as {
		if as[i].Kind != kind {
			continue
		}
		if found != nil {
			e.t.Fatalf("OpenAlerts(%s, %s): two open %s alerts (%s, %s); want one at most", hosp, p, kind, found.ID, as[i].ID)
		}
		found = &as[i]
	}
	return found
}

// mustOpen is open for an alert that must be open.
func (e *env) mustOpen(p, kind string) store.Alert {
	e.t.Helper()
	a := e.open(p, kind)
	if a == nil {
		e.t.Fatalf("no open %s alert for %s at %v; want one", kind, p, e.now().Sub(t0))
	}
	return *a
}

func (e *env) alert(id string) store.Alert {
	e.t.Helper()
	a, err := e.db.GetAlert(e.ctx(), hosp, id)
	if err != nil {
		e.t.Fatalf("GetAlert(%s, %s): %v", hosp, id, err)
	}
	return a
}

// alertsOf lists every alert (open or not) of a patient and kind.
func (e *env) alertsOf(p, kind string) []store.Alert {
	e.t.Helper()
	as, _, err := e.db.ListAlerts(e.ctx(), store.AlertQuery{Hospital: hosp, Patient: p, Kind: kind}, store.Page{Limit: store.MaxLimit})
	if err != nil {
		e.t.Fatalf("ListAlerts: %v", err)
	}
	return as
}

// step is one expected entry of an alert's history.
type step struct {
	action, actor, note string
}

func checkHistory(t *testing.T, a store.Alert, want ...step) {
	t.Helper()
	var got []step
	for _, h := range a.History {
		got = append(got, step{h.Action, h.Actor, h.Note})
	}
	if !slices.Equal(got, want) {
		t.Errorf("alert %s (%s) history = %+v; want %+v", a.ID, a.Kind, got, want)
	}
	for i, h := range a.History {
		if h.Version != int64(i+1) {
			t.Errorf("alert %s history[%d].Version = %d; want %d", a.ID, i, h.Version, i+1)
		}
	}
	if a.Version != int64(len(a.History)) {
		t.Errorf("alert %s Version = %d; want %d (one per history entry)", a.ID, a.Version, len(a.History))
	}
}

// alertActions returns the actions of the patient_alert events on topic, in order.
func alertActions(t *testing.T, evs []pubEvent, topic string) []string {
	t.Helper()
	var out []string
	for _, ev := range onTopic(evs, topic) {
		if ev.Type != TypePatientAlert {
			t.Errorf("event on %s has type %q; want %q", topic, ev.Type, TypePatientAlert)
		}
		if ev.Retain {
			t.Errorf("%s event on %s is retained; want not retained", ev.Type, topic)
		}
		out = append(out, ev.alert(t).Action)
	}
	return out
}

// code is the Code() of err ("" when it has none).
func code(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return ""
}
