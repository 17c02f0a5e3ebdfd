// Package ingest turns vitals into risk and alerts: it decodes and validates samples, keeps each
// patient's state (last value and time of every parameter, manual observations included), scores
// NEWS2, runs the alarm rules and the alert lifecycle (raise, update, escalate, acknowledge,
// resolve), and publishes the events. Every alert change is stored before it is published.
//
// Work is spread over workers by patient: a patient always goes to the same worker, so its
// samples are handled in order, and no lock is shared on the per-sample path.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/topics"
)

// Store is what the pipeline keeps in the store.
type Store interface {
	GetPatient(ctx context.Context, hospital, id string) (store.Patient, error)
	ListPatients(ctx context.Context, hospital string, pg store.Page) ([]store.Patient, string, error)
	ListSamples(ctx context.Context, q store.SampleQuery, pg store.Page) ([]store.Sample, string, error)
	CreateAlert(ctx context.Context, a store.Alert) error
	UpdateAlert(ctx context.Context, a store.Alert, ev store.AlertEvent) error
	GetAlert(ctx context.Context, hospital, id string) (store.Alert, error)
	OpenAlerts(ctx context.Context, hospital, patient string) ([]store.Alert, error)
	GetPatientState(ctx context.Context, hospital, patient string) (store.PatientState, error)
	PutPatientState(ctx context.Context, st store.PatientState) error
	SavePatientStates(ctx context.Context, sts []store.PatientState) error
	DeletePatientState(ctx context.Context, hospital, patient string) error
}

// Samples takes accepted samples for durable storage (store.Batcher: group commit).
type Samples interface {
	Add(ctx context.Context, s store.Sample) (*store.Pending, error)
}

// UnknownDevice is the device of a sample whose sender is not known (from an external broker,
// without the "device" user property). Such a sample counts as heard from every device
// assigned to its patient: their offline alarm cannot tell which one went silent, but it never
// sounds for devices that are sending.
const UnknownDevice = "external"

// Pipeline is the ingest pipeline.
type Pipeline struct {
	opts    Options
	st      Store
	samples Samples
	pub     Publisher
	log     *slog.Logger
	ids     idGen
	m       *Metrics

	workers []*worker
	wg      sync.WaitGroup
	closed  atomic.Bool
	stop    chan struct{}

	admitMu  sync.RWMutex
	admitted map[key]struct{}

	devMu    sync.Mutex
	assigned map[string]key // device -> patient
	started  bool           // Start has given the patients their devices (under devMu)

	statuses chan statusEvent
}

type key struct{ h, p string }

// New builds a pipeline. Start it before use.
func New(st Store, samples Samples, pub Publisher, opts Options) *Pipeline {
	opts.defaults()
	p := &Pipeline{opts: opts, st: st, samples: samples, pub: pub, log: opts.Logger.With("component", "ingest"),
		m: newMetrics(), stop: make(chan struct{}), assigned: map[string]key{}, statuses: make(chan statusEvent, 4096)}
	p.admitted = map[key]struct{}{}
	for i := range opts.Workers {
		p.workers = append(p.workers, newWorker(p, i))
	}
	return p
}

// Metrics returns the pipeline's counters.
func (p *Pipeline) Metrics() *Metrics { return p.m }

// Start loads the admitted patients (their saved state, open alerts and the samples since the
// last snapshot, so risk and alert timers continue across a restart) and starts the workers.
func (p *Pipeline) Start(ctx context.Context) error {
	var recs []store.Patient
	cursor := ""
	for {
		page, next, err := p.st.ListPatients(ctx, "", store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return fmt.Errorf("loading patients: %w", err)
		}
		recs = append(recs, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	adm := make(map[key]struct{}, len(recs))
	for _, r := range recs {
		adm[key{r.Hospital, r.ID}] = struct{}{}
	}
	p.admitMu.Lock()
	p.admitted = adm
	p.admitMu.Unlock()

	open, err := p.st.OpenAlerts(ctx, "", "")
	if err != nil {
		return fmt.Errorf("loading open alerts: %w", err)
	}
	alerts := map[key][]store.Alert{}
	for _, a := range open {
		k := key{a.Hospital, a.Patient}
		alerts[k] = append(alerts[k], a)
	}
	for _, r := range recs {
		w := p.worker(r.Hospital, r.ID)
		if err := w.load(ctx, r, alerts[key{r.Hospital, r.ID}]); err != nil {
			return fmt.Errorf("loading patient %s/%s: %w", r.Hospital, r.ID, err)
		}
	}
	// The assignments known before Start (DeviceAssigned only records them until then: the
	// workers' queues are bounded and nobody reads them yet) go to the loaded patients directly.
	p.devMu.Lock()
	p.started = true
	devices := map[key][]string{}
	for d, k := range p.assigned {
		devices[k] = append(devices[k], d)
	}
	p.devMu.Unlock()
	for _, w := range p.workers {
		w.seedDevices(devices)
	}
	for _, w := range p.workers {
		p.wg.Add(1)
		go w.run()
	}
	p.wg.Add(1)
	go p.publishStatuses()
	p.log.Info("ingest started", "patients", len(recs), "open_alerts", len(open), "workers", len(p.workers))
	return nil
}

// Close stops taking work, lets the workers finish what is queued, saves patient state and
// stops.
func (p *Pipeline) Close(ctx context.Context) error {
	if p.closed.Swap(true) {
		return nil
	}
	close(p.stop)
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ingest workers did not stop: %w", ctx.Err())
	}
}

func (p *Pipeline) worker(h, pt string) *worker {
	f := fnv.New32a()
	f.Write([]byte(h))
	f.Write([]byte{'/'})
	f.Write([]byte(pt))
	return p.workers[f.Sum32()%uint32(len(p.workers))]
}

func (p *Pipeline) isAdmitted(h, pt string) bool {
	p.admitMu.RLock()
	_, ok := p.admitted[key{h, pt}]
	p.admitMu.RUnlock()
	return ok
}

// admittedElsewhere looks a patient up in the store when several processes share it (shared
// mode): another process may have admitted them. Found, they are admitted here too.
func (p *Pipeline) admittedElsewhere(ctx context.Context, h, pt string) bool {
	if !p.opts.Shared {
		return false
	}
	if _, err := p.st.GetPatient(ctx, h, pt); err != nil {
		return false
	}
	p.setAdmitted(h, pt, true)
	return true
}

func (p *Pipeline) setAdmitted(h, pt string, on bool) {
	p.admitMu.Lock()
	defer p.admitMu.Unlock()
	if on {
		p.admitted[key{h, pt}] = struct{}{}
	} else {
		delete(p.admitted, key{h, pt})
	}
}

// send queues a job for the patient's worker.
func (p *Pipeline) send(ctx context.Context, j job) error {
	if p.closed.Load() {
		return ErrClosed
	}
	w := p.worker(j.h, j.p)
	select {
	case w.in <- j:
		return nil
	case <-p.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// call queues a job and waits for its result.
func (p *Pipeline) call(ctx context.Context, j job) (result, error) {
	j.reply = make(chan result, 1)
	if err := p.send(ctx, j); err != nil {
		return result{}, err
	}
	select {
	case r := <-j.reply:
		return r, r.err
	case <-ctx.Done():
		return result{}, ctx.Err()
	}
}

// Submit takes a sample a device published on hospital/{h}/patient/{pt}/vitals (see Accept) and
// for QoS 1 returns only once the sample is durable.
func (p *Pipeline) Submit(ctx context.Context, h, pt, device string, payload []byte, qos byte, received time.Time) error {
	pending, err := p.Accept(ctx, h, pt, device, payload, received)
	if err != nil || qos == 0 {
		return err
	}
	return pending.Wait(ctx)
}

// Accept decodes and validates a sample (a refused sample gets a sample_rejected event on the
// device's errors topic and a *FieldError back) and hands it to the group commit and to the
// patient's worker. Wait on the result tells when the sample is durable.
func (p *Pipeline) Accept(ctx context.Context, h, pt, device string, payload []byte, received time.Time) (*store.Pending, error) {
	d, ferr := Decode(payload, received)
	if ferr == nil && !p.isAdmitted(h, pt) && !p.admittedElsewhere(ctx, h, pt) {
		ferr = &FieldError{Why: fmt.Sprintf("patient %s is not admitted in hospital %s", pt, h)}
	}
	if ferr != nil {
		p.reject(ctx, h, pt, device, ferr)
		return nil, ferr
	}
	s := store.Sample{Hospital: h, Patient: pt, Time: d.Time, Device: device, Seq: d.Seq, Vitals: d.Vitals}
	if s.Time.IsZero() {
		s.Time = received
	}
	s.Time = store.Millis(s.Time)
	pending, err := p.samples.Add(ctx, s)
	if err != nil {
		return nil, err
	}
	p.m.accepted.Add(1)
	if err := p.send(ctx, job{kind: jobSample, h: h, p: pt, sample: s, received: received}); err != nil {
		return nil, err
	}
	return pending, nil
}

func (p *Pipeline) reject(ctx context.Context, h, pt, device string, e *FieldError) {
	p.m.rejected(e)
	p.log.Debug("sample refused", "hospital", h, "patient", pt, "device", device, "field", e.Key, "reason", e.Why)
	p.publishEnvelope(ctx, topics.DeviceErrors(h, device), TypeSampleRejected, h, pt,
		SampleRejected{Device: device, Patient: pt, Field: e.Key, Reason: e.Why}, false)
	if e.Implausible && p.isAdmitted(h, pt) {
		_ = p.send(ctx, job{kind: jobImplausible, h: h, p: pt, device: device})
	}
}

// Observe records a clinician's manual observation and rescores at once; it returns the new risk.
func (p *Pipeline) Observe(ctx context.Context, h, pt, author string, v store.Vitals, t time.Time) (news2.Risk, error) {
	if !p.isAdmitted(h, pt) && !p.admittedElsewhere(ctx, h, pt) {
		return news2.Risk{}, &Error{"not_found", fmt.Sprintf("patient %s not found in hospital %s", pt, h)}
	}
	s := store.Sample{Hospital: h, Patient: pt, Time: store.Millis(t), Author: author, Vitals: v}
	pending, err := p.samples.Add(ctx, s)
	if err != nil {
		return news2.Risk{}, err
	}
	if err := pending.Wait(ctx); err != nil {
		return news2.Risk{}, err
	}
	r, err := p.call(ctx, job{kind: jobSample, h: h, p: pt, sample: s, received: p.opts.Now()})
	return r.risk, err
}

// Acknowledge acknowledges an active alert (409 conflict in any other state).
func (p *Pipeline) Acknowledge(ctx context.Context, h, id, actor, note string) (store.Alert, error) {
	return p.alertCommand(ctx, jobAck, h, id, actor, note)
}

// Resolve resolves an open alert by hand (409 conflict once resolved).
func (p *Pipeline) Resolve(ctx context.Context, h, id, actor, note string) (store.Alert, error) {
	return p.alertCommand(ctx, jobResolve, h, id, actor, note)
}

func (p *Pipeline) alertCommand(ctx context.Context, kind jobKind, h, id, actor, note string) (store.Alert, error) {
	a, err := p.st.GetAlert(ctx, h, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Alert{}, alertNotFound(h, id)
	}
	if err != nil {
		return store.Alert{}, err
	}
	if !a.Open() {
		return a, conflict("alert %s is resolved already", id)
	}
	r, err := p.call(ctx, job{kind: kind, h: h, p: a.Patient, alertID: id, actor: actor, note: note})
	return r.alert, err
}

// PatientView is what the pipeline knows of a patient now.
type PatientView struct {
	Risk       news2.Risk
	HasRisk    bool
	OpenAlerts int
	// Last holds each parameter's last value and time (zero time: never measured).
	Last [news2.NumParams]struct {
		Value float64
		At    time.Time
	}
}

// Views returns the current view of every patient of hospital h that the pipeline holds.
func (p *Pipeline) Views(ctx context.Context, h string) (map[string]PatientView, error) {
	out := map[string]PatientView{}
	if p.opts.Shared {
		return p.sharedViews(ctx, h)
	}
	var mu sync.Mutex
	for _, w := range p.workers {
		reply := make(chan result, 1)
		j := job{kind: jobViews, h: h, reply: reply}
		if p.closed.Load() {
			return nil, ErrClosed
		}
		select {
		case w.in <- j:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case r := <-reply:
			mu.Lock()
			for k, v := range r.views {
				out[k] = v
			}
			mu.Unlock()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// View returns the current view of one patient.
func (p *Pipeline) View(ctx context.Context, h, pt string) (PatientView, error) {
	if p.opts.Shared {
		return p.sharedView(ctx, h, pt)
	}
	if !p.isAdmitted(h, pt) {
		return PatientView{}, &Error{"not_found", fmt.Sprintf("patient %s not found in hospital %s", pt, h)}
	}
	r, err := p.call(ctx, job{kind: jobView, h: h, p: pt})
	return r.view, err
}

// PatientChanged applies an admitted or updated patient record (SpO2 scale, alarm limits) and
// rescores.
func (p *Pipeline) PatientChanged(ctx context.Context, rec store.Patient) error {
	p.setAdmitted(rec.Hospital, rec.ID, true)
	_, err := p.call(ctx, job{kind: jobPatient, h: rec.Hospital, p: rec.ID, rec: rec})
	return err
}

// Discharge resolves the patient's open alerts (with the reason), forgets its state and deletes
// its retained risk.
func (p *Pipeline) Discharge(ctx context.Context, h, pt, actor string) error {
	_, err := p.call(ctx, job{kind: jobDischarge, h: h, p: pt, actor: actor})
	if err == errDischargeUnresolved {
		return err // still admitted: nothing was forgotten
	}
	p.setAdmitted(h, pt, false)
	return err
}

// errDischargeUnresolved refuses a discharge while one of the patient's open alerts cannot be
// resolved (the store failed).
var errDischargeUnresolved = &Error{"unavailable", "an open alert of the patient could not be resolved; the patient stays admitted; try again"}

// DeviceAssigned tells the pipeline a device now feeds patient pt ("" when unassigned). Before
// Start it only records the assignment, so a whole registry can be told without waiting.
func (p *Pipeline) DeviceAssigned(ctx context.Context, h, device, pt string) {
	p.devMu.Lock()
	old, had := p.assigned[device]
	if pt == "" {
		delete(p.assigned, device)
	} else {
		p.assigned[device] = key{h, pt}
	}
	started := p.started
	p.devMu.Unlock()
	if !started {
		return // Start gives the patients their devices
	}
	if had && old != (key{h, pt}) {
		_ = p.send(ctx, job{kind: jobDevice, h: old.h, p: old.p, device: device, devOp: devUnassigned})
	}
	if pt != "" && (!had || old != (key{h, pt})) {
		_ = p.send(ctx, job{kind: jobDevice, h: h, p: pt, device: device, devOp: devAssigned})
	}
}

// DeviceConnected and DeviceDisconnected come from the broker, on the device's connection
// goroutine: they only queue work (the alarm state to the patient's worker, the device_status
// event to the status publisher, in order), so a connection's goroutine stays light.
func (p *Pipeline) DeviceConnected(h, device string) {
	p.deviceEvent(h, device, devConnected)
	p.queueStatus(h, device, "online")
}

// DeviceDisconnected: clean is a DISCONNECT the device sent; anything else is unexpected and
// raises the device-offline alarm at once.
func (p *Pipeline) DeviceDisconnected(h, device string, clean bool) {
	op := devDropped
	if clean {
		op = devLeft
	}
	p.deviceEvent(h, device, op)
	p.queueStatus(h, device, "offline")
}

type statusEvent struct{ h, device, status string }

func (p *Pipeline) queueStatus(h, device, status string) {
	if p.closed.Load() {
		return
	}
	select {
	case p.statuses <- statusEvent{h, device, status}:
	case <-p.stop:
	}
}

// publishStatuses publishes device_status events (retained) in the order they came.
func (p *Pipeline) publishStatuses() {
	defer p.wg.Done()
	publish := func(e statusEvent) {
		p.publishEnvelope(context.Background(), topics.DeviceStatus(e.h, e.device), TypeDeviceStatus, e.h, "",
			DeviceStatus{Device: e.device, Status: e.status, Patient: p.patientOf(e.device)}, true)
	}
	for {
		select {
		case e := <-p.statuses:
			publish(e)
		case <-p.stop:
			for {
				select {
				case e := <-p.statuses:
					publish(e)
				default:
					return
				}
			}
		}
	}
}

func (p *Pipeline) patientOf(device string) string {
	p.devMu.Lock()
	defer p.devMu.Unlock()
	return p.assigned[device].p
}

func (p *Pipeline) deviceEvent(h, device string, op devOp) {
	p.devMu.Lock()
	k, ok := p.assigned[device]
	p.devMu.Unlock()
	if !ok || k.h != h {
		return
	}
	_ = p.send(context.Background(), job{kind: jobDevice, h: k.h, p: k.p, device: device, devOp: op})
}

// Score scores a sample for the scoring endpoint: the same validation as device samples, plus an
// optional "spo2_scale" (1 or 2). No side effect.
func (p *Pipeline) Score(payload []byte) (news2.Risk, error) {
	d, scale, ferr := DecodeForScoring(payload, p.opts.Now())
	if ferr != nil {
		return news2.Risk{}, ferr
	}
	pt := newPatient("", "")
	pt.merge(d.Vitals, 1, true)
	o := p.opts
	for i := range o.Fresh {
		o.Fresh[i] = time.Hour
	}
	return news2.Score(pt.fresh(1, &o), scale), nil
}

func (p *Pipeline) publishEnvelope(ctx context.Context, topic, typ, h, pt string, data any, retain bool) {
	p.publishEnvelopeTo(ctx, []string{topic}, typ, h, pt, data, retain)
}

// publishEnvelopeTo publishes one event (one ID) on several topics.
func (p *Pipeline) publishEnvelopeTo(ctx context.Context, topics []string, typ, h, pt string, data any, retain bool) {
	now := p.opts.Now()
	b, err := jsonEnvelope(Envelope{Type: typ, ID: p.ids.next(now), TS: store.Millis(now), Hospital: h, Patient: pt, Data: data})
	if err != nil {
		p.log.Error("encoding event failed", "type", typ, "err", err)
		return
	}
	for _, t := range topics {
		p.publish(ctx, t, b, retain)
	}
}

func (p *Pipeline) publish(ctx context.Context, topic string, payload []byte, retain bool) {
	if err := p.pub.Publish(ctx, topic, payload, 1, retain); err != nil {
		p.m.publishFailures.Add(1)
		p.log.Warn("publish failed", "topic", topic, "err", err)
		return
	}
	p.m.published.Add(1)
}

// sharedView reads a patient's view from the store: with several processes sharing the
// stream, the one asked may not be the one that handled the patient last.
func (p *Pipeline) sharedView(ctx context.Context, h, pt string) (PatientView, error) {
	rec, err := p.st.GetPatient(ctx, h, pt)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return PatientView{}, &Error{"not_found", fmt.Sprintf("patient %s not found in hospital %s", pt, h)}
		}
		return PatientView{}, err
	}
	x := newPatient(h, pt)
	x.configure(rec, p.opts.Limits, p.opts.ConditionDelay)
	st, err := p.st.GetPatientState(ctx, h, pt)
	switch {
	case err == nil:
		if _, _, _, err := x.decode(st.Data); err != nil {
			return PatientView{}, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return PatientView{}, err
	}
	open, err := p.st.OpenAlerts(ctx, h, pt)
	if err != nil {
		return PatientView{}, err
	}
	for i := range open {
		x.open[open[i].Kind] = &open[i]
	}
	return x.view(), nil
}

func (p *Pipeline) sharedViews(ctx context.Context, h string) (map[string]PatientView, error) {
	out := map[string]PatientView{}
	cursor := ""
	for {
		recs, next, err := p.st.ListPatients(ctx, h, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			v, err := p.sharedView(ctx, h, r.ID)
			if err != nil {
				return nil, err
			}
			out[r.ID] = v
		}
		if next == "" {
			return out, nil
		}
		cursor = next
	}
}
