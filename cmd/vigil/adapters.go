package main

// Adapters between the packages: cmd/vigil is the only place where they all meet. Record types
// with the same fields convert directly (the compiler checks they stay alike).

import (
	"context"
	"fmt"
	"time"

	"github.com/vigilhq/vigil/api"
	"github.com/vigilhq/vigil/auth"
	"github.com/vigilhq/vigil/broker"
	"github.com/vigilhq/vigil/devices"
	"github.com/vigilhq/vigil/ingest"
	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/store"
)

// deviceStore gives the device registry the store.
type deviceStore struct{ st store.Store }

func (d deviceStore) CreateDevice(ctx context.Context, r devices.Record) error {
	return d.st.CreateDevice(ctx, store.Device(r))
}

func (d deviceStore) GetDevice(ctx context.Context, id string) (devices.Record, error) {
	r, err := d.st.GetDevice(ctx, id)
	return devices.Record(r), err
}

func (d deviceStore) UpdateDevice(ctx context.Context, r devices.Record) error {
	return d.st.UpdateDevice(ctx, store.Device(r))
}

func (d deviceStore) DeleteDevice(ctx context.Context, id string) error {
	return d.st.DeleteDevice(ctx, id)
}

func (d deviceStore) ListDevices(ctx context.Context, h string, limit int, cursor string) ([]devices.Record, string, error) {
	rs, next, err := d.st.ListDevices(ctx, h, store.Page{Limit: limit, Cursor: cursor})
	out := make([]devices.Record, len(rs))
	for i, r := range rs {
		out[i] = devices.Record(r)
	}
	return out, next, err
}

func (d deviceStore) PatientExists(ctx context.Context, h, p string) error {
	_, err := d.st.GetPatient(ctx, h, p)
	return err
}

// tokenVerifier lets the broker verify browsers' JWTs against the stored user (auth.Service.Authenticate).
type tokenVerifier struct{ s *auth.Service }

func (v tokenVerifier) VerifyToken(token string) (broker.Principal, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := v.s.Authenticate(ctx, token)
	if err != nil {
		return broker.Principal{}, err
	}
	return broker.Principal{Subject: c.Subject, Admin: c.Role == auth.RoleAdmin, Hospitals: c.Hospitals, Expires: c.ExpiresAt.Time}, nil
}

// vitalsHandler hands the samples devices publish to the pipeline (set once it exists).
type vitalsHandler struct{ pl *ingest.Pipeline }

func (h *vitalsHandler) HandleVitals(ctx context.Context, v broker.Vitals) (func(context.Context) error, error) {
	device := v.Device
	if device == broker.UnknownDevice {
		device = ingest.UnknownDevice
	}
	pending, err := h.pl.Accept(ctx, v.Hospital, v.Patient, device, v.Payload, v.Received)
	if err != nil {
		return nil, err
	}
	return pending.Wait, nil
}

// deviceEvents tells the pipeline about device connections.
type deviceEvents struct{ pl *ingest.Pipeline }

func (e *deviceEvents) DeviceConnected(h, d string) { e.pl.DeviceConnected(h, d) }
func (e *deviceEvents) DeviceDisconnected(h, d string, clean bool) {
	e.pl.DeviceDisconnected(h, d, clean)
}

func storePage(p api.Page) store.Page { return store.Page{Limit: p.Limit, Cursor: p.Cursor} }

// authAPI serves the API's logins and users.
type authAPI struct {
	s *auth.Service
	v *vigil
}

func apiUser(u store.User) api.User {
	hs := u.Hospitals
	if hs == nil {
		hs = []string{}
	}
	out := api.User{Username: u.Username, Role: u.Role, Hospitals: hs}
	if !u.CreatedAt.IsZero() {
		t := u.CreatedAt
		out.CreatedAt = &t
	}
	return out
}

func (a authAPI) Login(ctx context.Context, user, pw, remote string) (api.LoginResult, error) {
	token, exp, u, err := a.s.Login(ctx, user, pw, remote)
	if err != nil {
		return api.LoginResult{}, err
	}
	return api.LoginResult{Token: token, ExpiresAt: exp, User: apiUser(u)}, nil
}

func (a authAPI) Verify(token string) (api.Principal, error) {
	// Tokens are stateless: a deleted user's token would verify until it expires. One read
	// per request makes deletion take effect at once (and rights come from the stored user).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.s.Authenticate(ctx, token)
	if err != nil {
		return api.Principal{}, err
	}
	p := api.Principal{Subject: c.Subject, Role: string(c.Role), Hospitals: c.Hospitals, Issuer: c.Issuer, Audience: c.Audience}
	if c.IssuedAt != nil {
		p.IssuedAt = c.IssuedAt.Time
	}
	if c.ExpiresAt != nil {
		p.ExpiresAt = c.ExpiresAt.Time
	}
	return p, nil
}

func (a authAPI) CreateUser(ctx context.Context, u api.NewUser) (api.User, error) {
	role, err := auth.ParseRole(u.Role)
	if err != nil {
		return api.User{}, err
	}
	su, err := a.s.CreateUser(ctx, u.Username, u.Password, role, u.Hospitals)
	return apiUser(su), err
}

func (a authAPI) DeleteUser(ctx context.Context, username string) error {
	if err := a.s.DeleteUser(ctx, username); err != nil {
		return err
	}
	if a.v != nil && a.v.broker != nil {
		a.v.broker.DisconnectUser(username)
	}
	return nil
}

func (a authAPI) ListUsers(ctx context.Context, pg api.Page) ([]api.User, string, error) {
	us, next, err := a.s.ListUsers(ctx, storePage(pg))
	out := make([]api.User, len(us))
	for i, u := range us {
		out[i] = apiUser(u)
	}
	return out, next, err
}

// devicesAPI serves the API's devices, with their online state from the broker.
type devicesAPI struct{ v *vigil }

func (d devicesAPI) device(r devices.Record) api.Device {
	out := api.Device{ID: r.ID, Hospital: r.Hospital, Model: r.Model, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if r.Patient != "" {
		p := r.Patient
		out.Patient = &p
	}
	if d.v.broker != nil {
		out.Online = d.v.broker.Connected(r.ID)
	}
	return out
}

func (d devicesAPI) Provision(ctx context.Context, h, id, model string) (api.Device, string, error) {
	r, secret, err := d.v.registry.Provision(ctx, h, id, model)
	return d.device(r), secret, err
}

func (d devicesAPI) List(ctx context.Context, h string, pg api.Page) ([]api.Device, string, error) {
	rs, next, err := d.v.registry.List(ctx, h, pg.Limit, pg.Cursor)
	out := make([]api.Device, len(rs))
	for i, r := range rs {
		out[i] = d.device(r)
	}
	return out, next, err
}

func (d devicesAPI) Assign(ctx context.Context, h, id, p string) (api.Device, error) {
	r, err := d.v.registry.Assign(ctx, h, id, p)
	return d.device(r), err
}

func (d devicesAPI) Unassign(ctx context.Context, h, id string) (api.Device, error) {
	r, err := d.v.registry.Unassign(ctx, h, id)
	return d.device(r), err
}

func (d devicesAPI) Rotate(ctx context.Context, h, id string) (api.Device, string, error) {
	r, secret, err := d.v.registry.Rotate(ctx, h, id)
	return d.device(r), secret, err
}

func (d devicesAPI) Delete(ctx context.Context, h, id string) error {
	return d.v.registry.Delete(ctx, h, id)
}

// patientsAPI serves the API's patients: records from the store, live state from the pipeline.
type patientsAPI struct{ v *vigil }

func (p patientsAPI) patient(rec store.Patient, view ingest.PatientView, known bool) api.Patient {
	out := api.Patient{Hospital: rec.Hospital, ID: rec.ID, Name: rec.Name, Bed: rec.Bed, SpO2Scale: rec.SpO2Scale,
		Limits: api.Limits(rec.Limits), AdmittedAt: rec.AdmittedAt, UpdatedAt: rec.UpdatedAt,
		Devices: p.v.registry.AssignedTo(rec.Hospital, rec.ID)}
	if out.Devices == nil {
		out.Devices = []string{}
	}
	if !known {
		return out
	}
	out.OpenAlerts = view.OpenAlerts
	if view.HasRisk {
		r := view.Risk
		out.Risk = &r
	}
	out.LastVitals = lastVitals(view)
	return out
}

func lastVitals(view ingest.PatientView) *api.LastVitals {
	lv := &api.LastVitals{Times: map[string]time.Time{}}
	any := false
	for i, x := range view.Last {
		if x.At.IsZero() {
			continue
		}
		any = true
		param := news2.Param(i)
		lv.Times[param.String()] = x.At
		if x.At.After(lv.TS) {
			lv.TS = x.At
		}
		v := x.Value
		switch param {
		case news2.Pulse:
			lv.HR = &v
		case news2.RespRate:
			lv.RR = &v
		case news2.SpO2:
			lv.SpO2 = &v
		case news2.SystolicBP:
			lv.SBP = &v
		case news2.Temperature:
			lv.Temp = &v
		case news2.Oxygen:
			o2 := v != 0
			lv.O2 = &o2
		case news2.Consciousness:
			s := string(rune(byte(v)))
			lv.ACVPU = &s
		}
	}
	if !any {
		return nil
	}
	return lv
}

func (p patientsAPI) Admit(ctx context.Context, h string, in api.NewPatient, actor string) (api.Patient, error) {
	rec := store.Patient{Hospital: h, ID: in.ID, Name: in.Name, Bed: in.Bed, SpO2Scale: 1}
	if in.SpO2Scale != nil {
		rec.SpO2Scale = *in.SpO2Scale
	}
	if in.Limits != nil {
		rec.Limits = store.AlarmLimits(*in.Limits)
	}
	rec, err := p.v.ward.Admit(ctx, rec)
	if err != nil {
		return api.Patient{}, err
	}
	p.v.log.Info("patient admitted", "hospital", h, "patient", rec.ID, "by", actor)
	return p.Get(ctx, h, rec.ID)
}

func (p patientsAPI) List(ctx context.Context, h string, pg api.Page) ([]api.Patient, string, error) {
	recs, next, err := p.v.st.ListPatients(ctx, h, storePage(pg))
	if err != nil {
		return nil, "", err
	}
	views, err := p.v.pipeline.Views(ctx, h)
	if err != nil {
		return nil, "", err
	}
	out := make([]api.Patient, len(recs))
	for i, r := range recs {
		view, known := views[r.ID]
		out[i] = p.patient(r, view, known)
	}
	return out, next, nil
}

func (p patientsAPI) Get(ctx context.Context, h, id string) (api.Patient, error) {
	rec, err := p.v.st.GetPatient(ctx, h, id)
	if err != nil {
		return api.Patient{}, fmt.Errorf("patient %s: %w", id, err)
	}
	view, err := p.v.pipeline.View(ctx, h, id)
	return p.patient(rec, view, err == nil), nil
}

func (p patientsAPI) Update(ctx context.Context, h, id string, in api.PatientPatch, actor string) (api.Patient, error) {
	_, err := p.v.ward.Update(ctx, h, id, func(rec *store.Patient) {
		if in.Name != nil {
			rec.Name = *in.Name
		}
		if in.Bed != nil {
			rec.Bed = *in.Bed
		}
		if in.SpO2Scale != nil {
			rec.SpO2Scale = *in.SpO2Scale
		}
		if in.Limits != nil {
			rec.Limits = store.AlarmLimits(*in.Limits)
		}
	})
	if err != nil {
		return api.Patient{}, err
	}
	p.v.log.Info("patient updated", "hospital", h, "patient", id, "by", actor)
	return p.Get(ctx, h, id)
}

func (p patientsAPI) Discharge(ctx context.Context, h, id, actor string) error {
	if err := p.v.ward.Discharge(ctx, h, id, actor); err != nil {
		return err
	}
	p.v.log.Info("patient discharged", "hospital", h, "patient", id, "by", actor)
	return nil
}

func (p patientsAPI) Observe(ctx context.Context, h, id, actor string, body []byte) (news2.Risk, error) {
	now := time.Now()
	d, ferr := ingest.Decode(body, now)
	if ferr != nil {
		return news2.Risk{}, ferr
	}
	t := d.Time
	if t.IsZero() {
		t = now
	}
	return p.v.pipeline.Observe(ctx, h, id, actor, d.Vitals, t)
}

func (p patientsAPI) Vitals(ctx context.Context, h, id string, from, to time.Time, pg api.Page) ([]api.Sample, string, error) {
	if _, err := p.v.st.GetPatient(ctx, h, id); err != nil {
		return nil, "", fmt.Errorf("patient %s: %w", id, err)
	}
	xs, next, err := p.v.st.ListSamples(ctx, store.SampleQuery{Hospital: h, Patient: id, From: from, To: to}, storePage(pg))
	out := make([]api.Sample, len(xs))
	for i, s := range xs {
		out[i] = apiSample(s)
	}
	return out, next, err
}

func apiSample(s store.Sample) api.Sample {
	out := api.Sample{TS: s.Time, Seq: s.Seq, Device: s.Device, Author: s.Author}
	f := func(field store.Fields, v float64) *float64 {
		if s.Has&field == 0 {
			return nil
		}
		return &v
	}
	out.HR, out.RR, out.SpO2, out.SBP, out.Temp = f(store.FieldHR, s.HR), f(store.FieldRR, s.RR), f(store.FieldSpO2, s.SpO2), f(store.FieldSBP, s.SBP), f(store.FieldTemp, s.Temp)
	if s.Has&store.FieldO2 != 0 {
		o2 := s.O2
		out.O2 = &o2
	}
	if s.Has&store.FieldACVPU != 0 {
		a := string(rune(s.ACVPU))
		out.ACVPU = &a
	}
	return out
}

func (p patientsAPI) Risk(ctx context.Context, h, id string) (*news2.Risk, error) {
	if _, err := p.v.st.GetPatient(ctx, h, id); err != nil {
		return nil, fmt.Errorf("patient %s: %w", id, err)
	}
	view, err := p.v.pipeline.View(ctx, h, id)
	if err != nil || !view.HasRisk {
		return nil, err
	}
	return &view.Risk, nil
}

// alertsAPI serves the API's alerts: lists from the store, lifecycle through the pipeline.
type alertsAPI struct{ v *vigil }

func apiAlert(a store.Alert) api.Alert { return api.Alert(ingest.View(&a)) }

func (a alertsAPI) List(ctx context.Context, h string, q api.AlertQuery, pg api.Page) ([]api.Alert, string, error) {
	xs, next, err := a.v.st.ListAlerts(ctx, store.AlertQuery{Hospital: h, States: q.States, Priorities: q.Priorities, Patient: q.Patient, Kind: q.Kind, Since: q.Since}, storePage(pg))
	out := make([]api.Alert, len(xs))
	for i, x := range xs {
		out[i] = apiAlert(x)
	}
	return out, next, err
}

func (a alertsAPI) Get(ctx context.Context, h, id string) (api.AlertDetail, error) {
	x, err := a.v.st.GetAlert(ctx, h, id)
	if err != nil {
		return api.AlertDetail{}, fmt.Errorf("alert %s: %w", id, err)
	}
	d := api.AlertDetail{Alert: apiAlert(x), History: make([]api.AlertChange, len(x.History))}
	for i, e := range x.History {
		d.History[i] = api.AlertChange(e)
	}
	return d, nil
}

func (a alertsAPI) Acknowledge(ctx context.Context, h, id, actor, note string) (api.Alert, error) {
	x, err := a.v.pipeline.Acknowledge(ctx, h, id, actor, note)
	return apiAlert(x), err
}

func (a alertsAPI) Resolve(ctx context.Context, h, id, actor, note string) (api.Alert, error) {
	x, err := a.v.pipeline.Resolve(ctx, h, id, actor, note)
	return apiAlert(x), err
}

// wardAPI serves triage, beds, staff and broadcasts.
type wardAPI struct{ v *vigil }

func apiTriage(c store.TriageCase) api.TriageCase {
	return api.TriageCase{Hospital: c.Hospital, ID: c.ID, Level: c.Level, Complaint: c.Complaint, Patient: c.Patient,
		Status: c.Status, Assignee: c.Assignee, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

func apiBroadcast(b store.Broadcast) api.Broadcast {
	return api.Broadcast{ID: b.ID, Hospital: b.Hospital, Priority: b.Priority, Message: b.Message, By: b.By, TS: b.At}
}

func (w wardAPI) Broadcast(ctx context.Context, h string, in api.NewBroadcast, actor string) (api.Broadcast, error) {
	b, err := w.v.ward.Broadcast(ctx, h, in.Priority, in.Message, actor)
	return apiBroadcast(b), err
}

func (w wardAPI) ListBroadcasts(ctx context.Context, h string, pg api.Page) ([]api.Broadcast, string, error) {
	xs, next, err := w.v.st.ListBroadcasts(ctx, h, storePage(pg))
	out := make([]api.Broadcast, len(xs))
	for i, x := range xs {
		out[i] = apiBroadcast(x)
	}
	return out, next, err
}

func (w wardAPI) CreateTriage(ctx context.Context, h string, in api.NewTriage, actor string) (api.TriageCase, error) {
	c, err := w.v.ward.CreateTriage(ctx, store.TriageCase{Hospital: h, ID: in.ID, Level: in.Level, Complaint: in.Complaint, Patient: in.Patient})
	return apiTriage(c), err
}

func (w wardAPI) UpdateTriage(ctx context.Context, h, id string, in api.TriagePatch, actor string) (api.TriageCase, error) {
	c, err := w.v.ward.UpdateTriage(ctx, h, id, func(c *store.TriageCase) {
		if in.Level != nil {
			c.Level = *in.Level
		}
		if in.Complaint != nil {
			c.Complaint = *in.Complaint
		}
		if in.Patient != nil {
			c.Patient = *in.Patient
		}
		if in.Status != nil {
			c.Status = *in.Status
		}
		if in.Assignee != nil {
			c.Assignee = *in.Assignee
		}
	})
	return apiTriage(c), err
}

func (w wardAPI) GetTriage(ctx context.Context, h, id string) (api.TriageCase, error) {
	c, err := w.v.st.GetTriageCase(ctx, h, id)
	if err != nil {
		return api.TriageCase{}, fmt.Errorf("triage case %s: %w", id, err)
	}
	return apiTriage(c), nil
}

func (w wardAPI) ListTriage(ctx context.Context, h string, pg api.Page) ([]api.TriageCase, string, error) {
	xs, next, err := w.v.st.ListTriageCases(ctx, h, storePage(pg))
	out := make([]api.TriageCase, len(xs))
	for i, x := range xs {
		out[i] = apiTriage(x)
	}
	return out, next, err
}

func (w wardAPI) PutBed(ctx context.Context, h, id string, in api.BedUpdate, actor string) (api.Bed, error) {
	b, err := w.v.ward.PutBed(ctx, store.Bed{Hospital: h, ID: id, Status: in.Status, Patient: in.Patient})
	return api.Bed(b), err
}

func (w wardAPI) ListBeds(ctx context.Context, h string, pg api.Page) ([]api.Bed, string, error) {
	xs, next, err := w.v.st.ListBeds(ctx, h, storePage(pg))
	out := make([]api.Bed, len(xs))
	for i, x := range xs {
		out[i] = api.Bed(x)
	}
	return out, next, err
}

func (w wardAPI) PutStaff(ctx context.Context, h, id string, in api.StaffUpdate, actor string) (api.StaffMember, error) {
	m, err := w.v.ward.PutStaff(ctx, store.StaffMember{Hospital: h, ID: id, Name: in.Name, Role: in.Role, Available: *in.Available, OnShift: *in.OnShift})
	return api.StaffMember(m), err
}

func (w wardAPI) ListStaff(ctx context.Context, h string, pg api.Page) ([]api.StaffMember, string, error) {
	xs, next, err := w.v.st.ListStaff(ctx, h, storePage(pg))
	out := make([]api.StaffMember, len(xs))
	for i, x := range xs {
		out[i] = api.StaffMember(x)
	}
	return out, next, err
}

// statsAPI answers GET /stats.
type statsAPI struct{ v *vigil }

type stats struct {
	broker.Snapshot
	OpenAlerts     map[string]int `json:"open_alerts"`
	VitalsRefused  int64          `json:"vitals_refused"`
	Broker         string         `json:"broker"`
	Store          string         `json:"store"`
	Version        string         `json:"version"`
	SubscribersTip string         `json:"subscribers_note"`
}

func (s statsAPI) Stats(ctx context.Context) (any, error) {
	open, err := s.v.st.OpenAlerts(ctx, "", "")
	if err != nil {
		return nil, err
	}
	out := stats{OpenAlerts: map[string]int{"high": 0, "medium": 0, "low": 0}, Broker: s.v.brokerName(), Store: s.v.storeName(), Version: versionString(),
		VitalsRefused:  s.v.pipeline.Metrics().Rejected(),
		SubscribersTip: "subscribers per topic filter: the rooms of the earlier design (patient_{id} = hospital/{h}/patient/{id}/#, hospital_{id} = hospital/{id}/alerts or hospital/{id}/#)"}
	for _, a := range open {
		out.OpenAlerts[a.Priority]++
	}
	if s.v.broker != nil {
		out.Snapshot = s.v.broker.Snapshot()
	} else {
		out.Snapshot = broker.Snapshot{Subscribers: map[string]int{}, Refusals: map[string]int64{}, Drops: map[string]int64{}}
	}
	return out, nil
}
