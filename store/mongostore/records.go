package mongostore

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/vigilhq/vigil/store"
)

// Document IDs: a username, a device ID, an alert ID, or "{hospital}/{id}" for records that
// belong to a hospital. IDs never contain '/', so sorting by _id sorts by hospital, then ID.
func hid(h, id string) string { return h + "/" + id }

type userDoc struct {
	ID         string `bson:"_id"`
	store.User `bson:",inline"`
}

type deviceDoc struct {
	ID           string `bson:"_id"`
	store.Device `bson:",inline"`
}

type patientDoc struct {
	ID            string `bson:"_id"`
	store.Patient `bson:",inline"`
}

type alertDoc struct {
	ID          string `bson:"_id"`
	store.Alert `bson:",inline"`
}

type stateDoc struct {
	ID                 string `bson:"_id"`
	store.PatientState `bson:",inline"`
}

type triageDoc struct {
	ID               string `bson:"_id"`
	store.TriageCase `bson:",inline"`
}

type bedDoc struct {
	ID        string `bson:"_id"`
	store.Bed `bson:",inline"`
}

type broadcastDoc struct {
	ID              string `bson:"_id"`
	store.Broadcast `bson:",inline"`
}

type staffDoc struct {
	ID                string `bson:"_id"`
	store.StaffMember `bson:",inline"`
}

// Cursors carry the _id the next page starts at (inclusive).
func encodeCursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 {
		return "", fmt.Errorf("bad cursor: %w", store.ErrInvalid)
	}
	return string(b), nil
}

// page runs a find sorted by _id (dir 1 or -1) from the cursor and decodes up to pg.Size()
// documents with conv; it returns the cursor of the next page.
func page[D any, T any](ctx context.Context, s *Store, c *mongo.Collection, filter bson.D, dir int, pg store.Page, conv func(D) T) ([]T, string, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	if pg.Cursor != "" {
		from, err := decodeCursor(pg.Cursor)
		if err != nil {
			return nil, "", err
		}
		op := "$gte"
		if dir < 0 {
			op = "$lte"
		}
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: op, Value: from}}})
	}
	limit := pg.Size()
	cur, err := c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: dir}}).SetLimit(int64(limit+1)))
	if err != nil {
		return nil, "", wrap(err)
	}
	defer cur.Close(ctx)
	var out []T
	next := ""
	for cur.Next(ctx) {
		if len(out) == limit {
			var id struct {
				ID string `bson:"_id"`
			}
			if err := cur.Decode(&id); err != nil {
				return nil, "", err
			}
			next = encodeCursor(id.ID)
			break
		}
		var d D
		if err := cur.Decode(&d); err != nil {
			return nil, "", err
		}
		out = append(out, conv(d))
	}
	return out, next, wrap(cur.Err())
}

func (s *Store) insert(ctx context.Context, c *mongo.Collection, doc any) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := c.InsertOne(ctx, doc)
	return wrap(err)
}

func (s *Store) findOne(ctx context.Context, c *mongo.Collection, filter bson.D, v any) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	return wrap(c.FindOne(ctx, filter).Decode(v))
}

// replace replaces the document matching filter; ErrNotFound when none does.
func (s *Store) replace(ctx context.Context, c *mongo.Collection, filter bson.D, doc any) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	res, err := c.ReplaceOne(ctx, filter, doc)
	if err != nil {
		return wrap(err)
	}
	if res.MatchedCount == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (s *Store) upsert(ctx context.Context, c *mongo.Collection, id string, doc any) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc, options.Replace().SetUpsert(true))
	return wrap(err)
}

func (s *Store) deleteOne(ctx context.Context, c *mongo.Collection, filter bson.D) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	res, err := c.DeleteOne(ctx, filter)
	if err != nil {
		return wrap(err)
	}
	if res.DeletedCount == 0 {
		return store.ErrNotFound
	}
	return nil
}

// versioned replaces the document id if its stored version is doc's version-1. It tells a
// missing document (ErrNotFound) from a newer one (ErrConflict).
// versioned replaces the document id with doc if its stored version is version-1
// (ErrConflict otherwise, ErrNotFound when there is none). Version 0 is also a document
// without the field, stored before it had one.
func (s *Store) versioned(ctx context.Context, c *mongo.Collection, id string, version int64, doc any) error {
	var want any = version - 1
	if version == 1 {
		want = bson.D{{Key: "$in", Value: bson.A{int64(0), nil}}}
	}
	err := s.replace(ctx, c, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: want}}, doc)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var cur struct {
		Version int64 `bson:"version"`
	}
	if err := s.findOne(ctx, c, bson.D{{Key: "_id", Value: id}}, &cur); err != nil {
		return err
	}
	return fmt.Errorf("version %d, stored %d: %w", version, cur.Version, store.ErrConflict)
}

func byHospital(h string) bson.D {
	if h == "" {
		return bson.D{}
	}
	return bson.D{{Key: "hospital", Value: h}}
}

// --- users ---

func (s *Store) CreateUser(ctx context.Context, u store.User) error {
	return what("user", u.Username, s.insert(ctx, s.users, userDoc{u.Username, u}))
}

func (s *Store) GetUser(ctx context.Context, name string) (store.User, error) {
	var d userDoc
	err := s.findOne(ctx, s.users, bson.D{{Key: "_id", Value: name}}, &d)
	return d.User, what("user", name, err)
}

func (s *Store) UpdateUser(ctx context.Context, u store.User) error {
	return what("user", u.Username, s.replace(ctx, s.users, bson.D{{Key: "_id", Value: u.Username}}, userDoc{u.Username, u}))
}

func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return what("user", name, s.deleteOne(ctx, s.users, bson.D{{Key: "_id", Value: name}}))
}

func (s *Store) ListUsers(ctx context.Context, pg store.Page) ([]store.User, string, error) {
	return page(ctx, s, s.users, bson.D{}, 1, pg, func(d userDoc) store.User { return d.User })
}

// --- devices ---

func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	return what("device", d.ID, s.insert(ctx, s.devices, deviceDoc{d.ID, d}))
}

func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	var d deviceDoc
	err := s.findOne(ctx, s.devices, bson.D{{Key: "_id", Value: id}}, &d)
	return d.Device, what("device", id, err)
}

func (s *Store) UpdateDevice(ctx context.Context, d store.Device) error {
	err := s.replace(ctx, s.devices, bson.D{{Key: "_id", Value: d.ID}, {Key: "hospital", Value: d.Hospital}}, deviceDoc{d.ID, d})
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := s.GetDevice(ctx, d.ID); gerr == nil {
			return fmt.Errorf("device %s: hospital cannot change: %w", d.ID, store.ErrInvalid)
		}
	}
	return what("device", d.ID, err)
}

func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	return what("device", id, s.deleteOne(ctx, s.devices, bson.D{{Key: "_id", Value: id}}))
}

func (s *Store) ListDevices(ctx context.Context, h string, pg store.Page) ([]store.Device, string, error) {
	return page(ctx, s, s.devices, byHospital(h), 1, pg, func(d deviceDoc) store.Device { return d.Device })
}

// --- patients ---

func (s *Store) CreatePatient(ctx context.Context, p store.Patient) error {
	id := hid(p.Hospital, p.ID)
	return what("patient", id, s.insert(ctx, s.patients, patientDoc{id, p}))
}

func (s *Store) GetPatient(ctx context.Context, h, id string) (store.Patient, error) {
	var d patientDoc
	err := s.findOne(ctx, s.patients, bson.D{{Key: "_id", Value: hid(h, id)}}, &d)
	return d.Patient, what("patient", hid(h, id), err)
}

func (s *Store) UpdatePatient(ctx context.Context, p store.Patient) error {
	id := hid(p.Hospital, p.ID)
	return what("patient", id, s.versioned(ctx, s.patients, id, p.Version, patientDoc{id, p}))
}

func (s *Store) DeletePatient(ctx context.Context, h, id string) error {
	return what("patient", hid(h, id), s.deleteOne(ctx, s.patients, bson.D{{Key: "_id", Value: hid(h, id)}}))
}

func (s *Store) ListPatients(ctx context.Context, h string, pg store.Page) ([]store.Patient, string, error) {
	return page(ctx, s, s.patients, byHospital(h), 1, pg, func(d patientDoc) store.Patient { return d.Patient })
}

// --- vitals ---

type sampleDoc struct {
	ID       string    `bson:"_id"`
	Hospital string    `bson:"hospital"`
	Patient  string    `bson:"patient"`
	TS       time.Time `bson:"ts"`
	Device   string    `bson:"device,omitempty"`
	Seq      int64     `bson:"seq,omitempty"`
	Author   string    `bson:"author,omitempty"`
	HR       *float64  `bson:"hr,omitempty"`
	RR       *float64  `bson:"rr,omitempty"`
	SpO2     *float64  `bson:"spo2,omitempty"`
	SBP      *float64  `bson:"sbp,omitempty"`
	Temp     *float64  `bson:"temp,omitempty"`
	O2       *bool     `bson:"o2,omitempty"`
	ACVPU    string    `bson:"acvpu,omitempty"`
}

// sampleID sorts by hospital, patient, then time: the time is 16 hex digits of the sign-flipped
// Unix milliseconds. A redelivered sample gets the same ID and is stored once; the content
// digest keeps two different samples of the same instant, device and seq apart.
func sampleID(s *store.Sample) string {
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(s.Time.UnixMilli())^(1<<63))
	return s.Hospital + "/" + s.Patient + "/" + hex.EncodeToString(t[:]) + "/" + s.Device + "/" + strconv.FormatInt(s.Seq, 10) +
		"/" + strconv.FormatUint(s.Digest(), 16)
}

func timePrefix(h, p string, t time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixMilli())^(1<<63))
	return h + "/" + p + "/" + hex.EncodeToString(b[:])
}

func toDoc(s *store.Sample) sampleDoc {
	d := sampleDoc{ID: sampleID(s), Hospital: s.Hospital, Patient: s.Patient, TS: store.Millis(s.Time), Device: s.Device, Seq: s.Seq, Author: s.Author}
	f := func(field store.Fields, v float64) *float64 {
		if s.Has&field == 0 {
			return nil
		}
		return &v
	}
	d.HR, d.RR, d.SpO2, d.SBP, d.Temp = f(store.FieldHR, s.HR), f(store.FieldRR, s.RR), f(store.FieldSpO2, s.SpO2), f(store.FieldSBP, s.SBP), f(store.FieldTemp, s.Temp)
	if s.Has&store.FieldO2 != 0 {
		o2 := s.O2
		d.O2 = &o2
	}
	if s.Has&store.FieldACVPU != 0 {
		d.ACVPU = string(s.ACVPU)
	}
	return d
}

func fromDoc(d sampleDoc) store.Sample {
	s := store.Sample{Hospital: d.Hospital, Patient: d.Patient, Time: d.TS.UTC(), Device: d.Device, Seq: d.Seq, Author: d.Author}
	set := func(p *float64, field store.Fields, dst *float64) {
		if p != nil {
			*dst = *p
			s.Has |= field
		}
	}
	set(d.HR, store.FieldHR, &s.HR)
	set(d.RR, store.FieldRR, &s.RR)
	set(d.SpO2, store.FieldSpO2, &s.SpO2)
	set(d.SBP, store.FieldSBP, &s.SBP)
	set(d.Temp, store.FieldTemp, &s.Temp)
	if d.O2 != nil {
		s.O2 = *d.O2
		s.Has |= store.FieldO2
	}
	if len(d.ACVPU) == 1 {
		s.ACVPU = d.ACVPU[0]
		s.Has |= store.FieldACVPU
	}
	return s
}

// AppendSamples inserts samples in one unordered bulk insert, with write concern majority and
// journal from the URI. A duplicate (a redelivered sample) is not an error.
func (s *Store) AppendSamples(ctx context.Context, samples []store.Sample) error {
	if len(samples) == 0 {
		return nil
	}
	docs := make([]any, len(samples))
	for i := range samples {
		if samples[i].Hospital == "" || samples[i].Patient == "" {
			return fmt.Errorf("sample without hospital or patient: %w", store.ErrInvalid)
		}
		docs[i] = toDoc(&samples[i])
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := s.vitals.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err != nil && onlyDuplicates(err) {
		return nil
	}
	return wrap(err)
}

// onlyDuplicates reports whether every error of a bulk insert is a duplicate key.
func onlyDuplicates(err error) bool {
	var bw mongo.BulkWriteException
	if !errors.As(err, &bw) || bw.WriteConcernError != nil || len(bw.WriteErrors) == 0 {
		return false
	}
	for _, we := range bw.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

func (s *Store) ListSamples(ctx context.Context, q store.SampleQuery, pg store.Page) ([]store.Sample, string, error) {
	lo := timePrefix(q.Hospital, q.Patient, q.From)
	if pg.Cursor != "" {
		c, err := decodeCursor(pg.Cursor)
		if err != nil {
			return nil, "", err
		}
		if c > lo {
			lo = c
		}
		pg.Cursor = ""
	}
	idRange := bson.D{{Key: "$gte", Value: lo}}
	if !q.To.IsZero() {
		idRange = append(idRange, bson.E{Key: "$lt", Value: timePrefix(q.Hospital, q.Patient, q.To)})
	} else {
		idRange = append(idRange, bson.E{Key: "$lt", Value: q.Hospital + "/" + q.Patient + "0"}) // '0' follows '/'
	}
	filter := bson.D{{Key: "hospital", Value: q.Hospital}, {Key: "patient", Value: q.Patient}, {Key: "_id", Value: idRange}}
	return page(ctx, s, s.vitals, filter, 1, pg, fromDoc)
}

func (s *Store) DeleteSamplesBefore(ctx context.Context, t time.Time) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := s.vitals.DeleteMany(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$lt", Value: t}}}})
	return wrap(err)
}

// --- alerts ---

func (s *Store) CreateAlert(ctx context.Context, a store.Alert) error {
	if a.Version != 1 || len(a.History) != 1 {
		return fmt.Errorf("new alert %s needs version 1 and one event: %w", a.ID, store.ErrInvalid)
	}
	return what("alert", a.ID, s.insert(ctx, s.alerts, alertDoc{a.ID, a}))
}

// UpdateAlert sets the alert's fields and pushes the event in one single-document update whose
// filter holds the expected version: atomic on MongoDB without transactions.
func (s *Store) UpdateAlert(ctx context.Context, a store.Alert, ev store.AlertEvent) error {
	a.History = nil
	raw, err := bson.Marshal(a)
	if err != nil {
		return err
	}
	var fields bson.D
	if err := bson.Unmarshal(raw, &fields); err != nil {
		return err
	}
	set := fields[:0]
	var unset bson.D
	for _, f := range fields {
		if f.Key != "history" {
			set = append(set, f)
		}
	}
	// Fields left empty (omitempty) must be cleared, not kept from the stored version.
	for _, k := range []string{"acked_by", "acked_at", "resolved_by", "resolved_at", "risk", "latched", "escalate_at"} {
		if !has(set, k) {
			unset = append(unset, bson.E{Key: k, Value: ""})
		}
	}
	update := bson.D{{Key: "$set", Value: set}, {Key: "$push", Value: bson.D{{Key: "history", Value: ev}}}}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	cctx, cancel := s.timeout(ctx)
	defer cancel()
	res, err := s.alerts.UpdateOne(cctx, bson.D{{Key: "_id", Value: a.ID}, {Key: "hospital", Value: a.Hospital}, {Key: "version", Value: a.Version - 1}}, update)
	if err != nil {
		return what("alert", a.ID, wrap(err))
	}
	if res.MatchedCount == 1 {
		return nil
	}
	cur, err := s.GetAlert(ctx, a.Hospital, a.ID)
	if err != nil {
		return err
	}
	return fmt.Errorf("alert %s version %d, stored %d: %w", a.ID, a.Version, cur.Version, store.ErrConflict)
}

func has(d bson.D, key string) bool {
	for _, e := range d {
		if e.Key == key {
			return true
		}
	}
	return false
}

func (s *Store) GetAlert(ctx context.Context, h, id string) (store.Alert, error) {
	var d alertDoc
	err := s.findOne(ctx, s.alerts, bson.D{{Key: "_id", Value: id}, {Key: "hospital", Value: h}}, &d)
	return d.Alert, what("alert", id, err)
}

func (s *Store) ListAlerts(ctx context.Context, q store.AlertQuery, pg store.Page) ([]store.Alert, string, error) {
	if q.Hospital == "" {
		return nil, "", fmt.Errorf("alerts query without hospital: %w", store.ErrInvalid)
	}
	filter := bson.D{{Key: "hospital", Value: q.Hospital}}
	if len(q.States) > 0 {
		filter = append(filter, bson.E{Key: "state", Value: bson.D{{Key: "$in", Value: q.States}}})
	}
	if len(q.Priorities) > 0 {
		filter = append(filter, bson.E{Key: "priority", Value: bson.D{{Key: "$in", Value: q.Priorities}}})
	}
	if q.Patient != "" {
		filter = append(filter, bson.E{Key: "patient", Value: q.Patient})
	}
	if q.Kind != "" {
		filter = append(filter, bson.E{Key: "kind", Value: q.Kind})
	}
	if !q.Since.IsZero() {
		filter = append(filter, bson.E{Key: "raised_at", Value: bson.D{{Key: "$gte", Value: q.Since}}})
	}
	return page(ctx, s, s.alerts, filter, -1, pg, func(d alertDoc) store.Alert { return d.Alert })
}

func (s *Store) OpenAlerts(ctx context.Context, h, p string) ([]store.Alert, error) {
	filter := append(byHospital(h), bson.E{Key: "state", Value: bson.D{{Key: "$ne", Value: store.StateResolved}}})
	if p != "" {
		filter = append(filter, bson.E{Key: "patient", Value: p})
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	cur, err := s.alerts.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, wrap(err)
	}
	var docs []alertDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap(err)
	}
	out := make([]store.Alert, len(docs))
	for i, d := range docs {
		out[i] = d.Alert
	}
	return out, nil
}

// --- patient state ---

func (s *Store) GetPatientState(ctx context.Context, h, p string) (store.PatientState, error) {
	var d stateDoc
	err := s.findOne(ctx, s.states, bson.D{{Key: "_id", Value: hid(h, p)}}, &d)
	return d.PatientState, what("patient state", hid(h, p), err)
}

func (s *Store) PutPatientState(ctx context.Context, st store.PatientState) error {
	id := hid(st.Hospital, st.Patient)
	if st.Version == 1 {
		return what("patient state", id, s.insert(ctx, s.states, stateDoc{id, st}))
	}
	err := s.versioned(ctx, s.states, id, st.Version, stateDoc{id, st})
	if errors.Is(err, store.ErrNotFound) {
		err = fmt.Errorf("version %d, none stored: %w", st.Version, store.ErrConflict)
	}
	return what("patient state", id, err)
}

func (s *Store) SavePatientStates(ctx context.Context, sts []store.PatientState) error {
	if len(sts) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, len(sts))
	for i, st := range sts {
		id := hid(st.Hospital, st.Patient)
		models[i] = mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: id}}).SetReplacement(stateDoc{id, st}).SetUpsert(true)
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, err := s.states.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	return wrap(err)
}

func (s *Store) DeletePatientState(ctx context.Context, h, p string) error {
	err := s.deleteOne(ctx, s.states, bson.D{{Key: "_id", Value: hid(h, p)}})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// --- triage, beds, staff ---

func (s *Store) CreateTriageCase(ctx context.Context, c store.TriageCase) error {
	if c.Version != 1 {
		return fmt.Errorf("new triage case %s needs version 1: %w", c.ID, store.ErrInvalid)
	}
	return what("triage case", c.ID, s.insert(ctx, s.triage, triageDoc{hid(c.Hospital, c.ID), c}))
}

func (s *Store) UpdateTriageCase(ctx context.Context, c store.TriageCase) error {
	id := hid(c.Hospital, c.ID)
	return what("triage case", c.ID, s.versioned(ctx, s.triage, id, c.Version, triageDoc{id, c}))
}

func (s *Store) GetTriageCase(ctx context.Context, h, id string) (store.TriageCase, error) {
	var d triageDoc
	err := s.findOne(ctx, s.triage, bson.D{{Key: "_id", Value: hid(h, id)}}, &d)
	return d.TriageCase, what("triage case", id, err)
}

func (s *Store) ListTriageCases(ctx context.Context, h string, pg store.Page) ([]store.TriageCase, string, error) {
	return page(ctx, s, s.triage, byHospital(h), 1, pg, func(d triageDoc) store.TriageCase { return d.TriageCase })
}

func (s *Store) PutBed(ctx context.Context, b store.Bed) error {
	return what("bed", b.ID, s.upsert(ctx, s.beds, hid(b.Hospital, b.ID), bedDoc{hid(b.Hospital, b.ID), b}))
}

func (s *Store) GetBed(ctx context.Context, h, id string) (store.Bed, error) {
	var d bedDoc
	err := s.findOne(ctx, s.beds, bson.D{{Key: "_id", Value: hid(h, id)}}, &d)
	return d.Bed, what("bed", id, err)
}

func (s *Store) ListBeds(ctx context.Context, h string, pg store.Page) ([]store.Bed, string, error) {
	return page(ctx, s, s.beds, byHospital(h), 1, pg, func(d bedDoc) store.Bed { return d.Bed })
}

func (s *Store) PutStaff(ctx context.Context, m store.StaffMember) error {
	return what("staff member", m.ID, s.upsert(ctx, s.staff, hid(m.Hospital, m.ID), staffDoc{hid(m.Hospital, m.ID), m}))
}

func (s *Store) GetStaff(ctx context.Context, h, id string) (store.StaffMember, error) {
	var d staffDoc
	err := s.findOne(ctx, s.staff, bson.D{{Key: "_id", Value: hid(h, id)}}, &d)
	return d.StaffMember, what("staff member", id, err)
}

func (s *Store) ListStaff(ctx context.Context, h string, pg store.Page) ([]store.StaffMember, string, error) {
	return page(ctx, s, s.staff, byHospital(h), 1, pg, func(d staffDoc) store.StaffMember { return d.StaffMember })
}

// --- broadcasts ---

func (s *Store) CreateBroadcast(ctx context.Context, b store.Broadcast) error {
	id := hid(b.Hospital, b.ID)
	return what("broadcast", b.ID, s.insert(ctx, s.broadcasts, broadcastDoc{id, b}))
}

func (s *Store) ListBroadcasts(ctx context.Context, h string, pg store.Page) ([]store.Broadcast, string, error) {
	if h == "" {
		return nil, "", fmt.Errorf("broadcasts query without hospital: %w", store.ErrInvalid)
	}
	return page(ctx, s, s.broadcasts, byHospital(h), -1, pg, func(d broadcastDoc) store.Broadcast { return d.Broadcast })
}
