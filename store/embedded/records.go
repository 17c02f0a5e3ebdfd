package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble"

	"github.com/vigilhq/vigil/store"
)

func userKey(name string) string            { return "user/" + name }
func deviceKey(id string) string            { return "dev/" + id }
func deviceHospitalKey(h, id string) string { return "devh/" + h + "/" + id }
func patientKey(h, p string) string         { return "pat/" + h + "/" + p }
func alertKey(h, id string) string          { return "alert/" + h + "/" + id }
func openAlertKey(h, id string) string      { return "aopen/" + h + "/" + id }
func stateKey(h, p string) string           { return "pstate/" + h + "/" + p }
func triageKey(h, id string) string         { return "triage/" + h + "/" + id }
func bedKey(h, id string) string            { return "bed/" + h + "/" + id }
func broadcastKey(h, id string) string      { return "bcast/" + h + "/" + id }
func staffKey(h, id string) string          { return "staff/" + h + "/" + id }

// hospitalPrefix is the prefix of a kind's keys in hospital h, or of all its keys when h is "".
func hospitalPrefix(kind, h string) string {
	if h == "" {
		return kind + "/"
	}
	return kind + "/" + h + "/"
}

// --- users ---

func (d *DB) CreateUser(ctx context.Context, u store.User) error {
	return notFound("user "+u.Username, d.create(userKey(u.Username), u))
}

func (d *DB) GetUser(ctx context.Context, name string) (store.User, error) {
	var u store.User
	return u, notFound("user "+name, d.get(userKey(name), &u))
}

func (d *DB) UpdateUser(ctx context.Context, u store.User) error {
	return notFound("user "+u.Username, d.replace(userKey(u.Username), u))
}

func (d *DB) DeleteUser(ctx context.Context, name string) error {
	return notFound("user "+name, d.del(userKey(name)))
}

func (d *DB) ListUsers(ctx context.Context, pg store.Page) ([]store.User, string, error) {
	return jsonList[store.User](d, "user/", pg)
}

// --- devices ---

func (d *DB) CreateDevice(ctx context.Context, dev store.Device) error {
	return notFound("device "+dev.ID, d.create(deviceKey(dev.ID), dev, deviceHospitalKey(dev.Hospital, dev.ID)))
}

func (d *DB) GetDevice(ctx context.Context, id string) (store.Device, error) {
	var dev store.Device
	return dev, notFound("device "+id, d.get(deviceKey(id), &dev))
}

func (d *DB) UpdateDevice(ctx context.Context, dev store.Device) error {
	var old store.Device
	if err := d.get(deviceKey(dev.ID), &old); err != nil {
		return notFound("device "+dev.ID, err)
	}
	if old.Hospital != dev.Hospital {
		return fmt.Errorf("device %s: hospital cannot change: %w", dev.ID, store.ErrInvalid)
	}
	return notFound("device "+dev.ID, d.replace(deviceKey(dev.ID), dev))
}

func (d *DB) DeleteDevice(ctx context.Context, id string) error {
	var dev store.Device
	if err := d.get(deviceKey(id), &dev); err != nil {
		return notFound("device "+id, err)
	}
	return notFound("device "+id, d.del(deviceKey(id), deviceHospitalKey(dev.Hospital, id)))
}

func (d *DB) ListDevices(ctx context.Context, h string, pg store.Page) ([]store.Device, string, error) {
	if h == "" {
		return jsonList[store.Device](d, "dev/", pg)
	}
	prefix := hospitalPrefix("devh", h)
	var ids []string
	next, err := d.list(prefix, pg, func(key, _ []byte) error {
		ids = append(ids, string(key[len(prefix):]))
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	out := make([]store.Device, 0, len(ids))
	for _, id := range ids {
		var dev store.Device
		if err := d.get(deviceKey(id), &dev); errors.Is(err, store.ErrNotFound) {
			continue // deleted between the index read and now
		} else if err != nil {
			return nil, "", err
		}
		out = append(out, dev)
	}
	return out, next, nil
}

// --- patients ---

func (d *DB) CreatePatient(ctx context.Context, p store.Patient) error {
	return notFound("patient "+p.Hospital+"/"+p.ID, d.create(patientKey(p.Hospital, p.ID), p))
}

func (d *DB) GetPatient(ctx context.Context, h, id string) (store.Patient, error) {
	var p store.Patient
	return p, notFound("patient "+h+"/"+id, d.get(patientKey(h, id), &p))
}

func (d *DB) UpdatePatient(ctx context.Context, p store.Patient) error {
	return notFound("patient "+p.Hospital+"/"+p.ID, d.versioned(patientKey(p.Hospital, p.ID), p.Version, p, true))
}

func (d *DB) DeletePatient(ctx context.Context, h, id string) error {
	return notFound("patient "+h+"/"+id, d.del(patientKey(h, id)))
}

func (d *DB) ListPatients(ctx context.Context, h string, pg store.Page) ([]store.Patient, string, error) {
	return jsonList[store.Patient](d, hospitalPrefix("pat", h), pg)
}

// --- alerts ---

func (d *DB) CreateAlert(ctx context.Context, a store.Alert) error {
	if a.Version != 1 || len(a.History) != 1 {
		return fmt.Errorf("new alert %s needs version 1 and one event: %w", a.ID, store.ErrInvalid)
	}
	var index []string
	if a.Open() {
		index = append(index, openAlertKey(a.Hospital, a.ID))
	}
	return notFound("alert "+a.ID, d.create(alertKey(a.Hospital, a.ID), a, index...))
}

func (d *DB) UpdateAlert(ctx context.Context, a store.Alert, ev store.AlertEvent) error {
	key := alertKey(a.Hospital, a.ID)
	return d.use(func() error {
		d.writeMu.Lock()
		defer d.writeMu.Unlock()
		var cur store.Alert
		if err := d.getLocked(key, &cur); err != nil {
			return notFound("alert "+a.ID, err)
		}
		if cur.Version != a.Version-1 {
			return fmt.Errorf("alert %s version %d, stored %d: %w", a.ID, a.Version, cur.Version, store.ErrConflict)
		}
		a.History = append(cur.History, ev)
		val, err := json.Marshal(a)
		if err != nil {
			return err
		}
		b := d.db.NewBatch()
		defer b.Close()
		b.Set([]byte(key), val, nil)
		if a.Open() {
			b.Set([]byte(openAlertKey(a.Hospital, a.ID)), nil, nil)
		} else {
			b.Delete([]byte(openAlertKey(a.Hospital, a.ID)), nil)
		}
		return b.Commit(pebble.Sync)
	})
}

func (d *DB) GetAlert(ctx context.Context, h, id string) (store.Alert, error) {
	var a store.Alert
	return a, notFound("alert "+id, d.get(alertKey(h, id), &a))
}

func (d *DB) ListAlerts(ctx context.Context, q store.AlertQuery, pg store.Page) ([]store.Alert, string, error) {
	if q.Hospital == "" {
		return nil, "", fmt.Errorf("alerts query without hospital: %w", store.ErrInvalid)
	}
	if onlyOpen(q.States) {
		return d.listOpenAlerts(q, pg)
	}
	prefix := hospitalPrefix("alert", q.Hospital)
	var out []store.Alert
	var next string
	err := d.use(func() error {
		upper := prefixEnd([]byte(prefix))
		if pg.Cursor != "" {
			k, err := decodeCursor(pg.Cursor, prefix)
			if err != nil {
				return err
			}
			upper = append(k, 0) // the cursor key itself starts the page
		}
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: upper})
		if err != nil {
			return err
		}
		defer it.Close()
		limit := pg.Size()
		for ok := it.Last(); ok; ok = it.Prev() {
			var a store.Alert
			if err := json.Unmarshal(it.Value(), &a); err != nil {
				return err
			}
			if !matchAlert(&a, &q) {
				continue
			}
			if len(out) == limit {
				next = encodeCursor(it.Key())
				break
			}
			out = append(out, a)
		}
		return it.Error()
	})
	return out, next, err
}

// onlyOpen reports whether a state filter selects open alerts only, so the open-alert index
// (usually a few keys) can be scanned instead of every alert.
func onlyOpen(states []string) bool {
	if len(states) == 0 {
		return false
	}
	for _, s := range states {
		if s == store.StateResolved {
			return false
		}
	}
	return true
}

// listOpenAlerts answers ListAlerts from the open-alert index, newest ID first.
func (d *DB) listOpenAlerts(q store.AlertQuery, pg store.Page) ([]store.Alert, string, error) {
	prefix := hospitalPrefix("aopen", q.Hospital)
	var ids []string
	err := d.use(func() error {
		upper := prefixEnd([]byte(prefix))
		if pg.Cursor != "" {
			k, err := decodeCursor(pg.Cursor, hospitalPrefix("alert", q.Hospital))
			if err != nil {
				return err
			}
			upper = append([]byte(prefix+string(k[len(hospitalPrefix("alert", q.Hospital)):])), 0)
		}
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: upper})
		if err != nil {
			return err
		}
		defer it.Close()
		for ok := it.Last(); ok; ok = it.Prev() {
			ids = append(ids, string(it.Key()[len(prefix):]))
		}
		return it.Error()
	})
	if err != nil {
		return nil, "", err
	}
	var out []store.Alert
	limit := pg.Size()
	for _, id := range ids {
		var a store.Alert
		if err := d.get(alertKey(q.Hospital, id), &a); errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, "", err
		}
		if !matchAlert(&a, &q) {
			continue
		}
		if len(out) == limit {
			return out, encodeCursor([]byte(alertKey(q.Hospital, id))), nil
		}
		out = append(out, a)
	}
	return out, "", nil
}

func matchAlert(a *store.Alert, q *store.AlertQuery) bool {
	return (len(q.States) == 0 || slices.Contains(q.States, a.State)) &&
		(len(q.Priorities) == 0 || slices.Contains(q.Priorities, a.Priority)) &&
		(q.Patient == "" || a.Patient == q.Patient) &&
		(q.Kind == "" || a.Kind == q.Kind) &&
		(q.Since.IsZero() || !a.RaisedAt.Before(q.Since))
}

func (d *DB) OpenAlerts(ctx context.Context, h, p string) ([]store.Alert, error) {
	prefix := hospitalPrefix("aopen", h)
	var keys []string
	err := d.use(func() error {
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd([]byte(prefix))})
		if err != nil {
			return err
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			keys = append(keys, "alert/"+string(it.Key()[len("aopen/"):]))
		}
		return it.Error()
	})
	if err != nil {
		return nil, err
	}
	var out []store.Alert
	for _, k := range keys {
		var a store.Alert
		if err := d.get(k, &a); errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		if a.Open() && (p == "" || a.Patient == p) {
			out = append(out, a)
		}
	}
	return out, nil
}

// --- patient state ---

func (d *DB) GetPatientState(ctx context.Context, h, p string) (store.PatientState, error) {
	var st store.PatientState
	return st, notFound("patient state "+h+"/"+p, d.get(stateKey(h, p), &st))
}

func (d *DB) PutPatientState(ctx context.Context, st store.PatientState) error {
	return notFound("patient state "+st.Hospital+"/"+st.Patient, d.versioned(stateKey(st.Hospital, st.Patient), st.Version, st, false))
}

func (d *DB) SavePatientStates(ctx context.Context, sts []store.PatientState) error {
	return d.use(func() error {
		d.writeMu.Lock()
		defer d.writeMu.Unlock()
		b := d.db.NewBatch()
		defer b.Close()
		for _, st := range sts {
			val, err := json.Marshal(st)
			if err != nil {
				return err
			}
			b.Set([]byte(stateKey(st.Hospital, st.Patient)), val, nil)
		}
		return b.Commit(pebble.Sync)
	})
}

func (d *DB) DeletePatientState(ctx context.Context, h, p string) error {
	err := d.del(stateKey(h, p))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// --- triage, beds, staff ---

func (d *DB) CreateTriageCase(ctx context.Context, c store.TriageCase) error {
	if c.Version != 1 {
		return fmt.Errorf("new triage case %s needs version 1: %w", c.ID, store.ErrInvalid)
	}
	return notFound("triage case "+c.ID, d.create(triageKey(c.Hospital, c.ID), c))
}

func (d *DB) UpdateTriageCase(ctx context.Context, c store.TriageCase) error {
	return notFound("triage case "+c.ID, d.versioned(triageKey(c.Hospital, c.ID), c.Version, c, true))
}

func (d *DB) GetTriageCase(ctx context.Context, h, id string) (store.TriageCase, error) {
	var c store.TriageCase
	return c, notFound("triage case "+id, d.get(triageKey(h, id), &c))
}

func (d *DB) ListTriageCases(ctx context.Context, h string, pg store.Page) ([]store.TriageCase, string, error) {
	return jsonList[store.TriageCase](d, hospitalPrefix("triage", h), pg)
}

func (d *DB) PutBed(ctx context.Context, b store.Bed) error {
	return d.put(bedKey(b.Hospital, b.ID), b)
}

func (d *DB) GetBed(ctx context.Context, h, id string) (store.Bed, error) {
	var b store.Bed
	return b, notFound("bed "+id, d.get(bedKey(h, id), &b))
}

func (d *DB) ListBeds(ctx context.Context, h string, pg store.Page) ([]store.Bed, string, error) {
	return jsonList[store.Bed](d, hospitalPrefix("bed", h), pg)
}

func (d *DB) PutStaff(ctx context.Context, s store.StaffMember) error {
	return d.put(staffKey(s.Hospital, s.ID), s)
}

func (d *DB) GetStaff(ctx context.Context, h, id string) (store.StaffMember, error) {
	var s store.StaffMember
	return s, notFound("staff member "+id, d.get(staffKey(h, id), &s))
}

func (d *DB) ListStaff(ctx context.Context, h string, pg store.Page) ([]store.StaffMember, string, error) {
	return jsonList[store.StaffMember](d, hospitalPrefix("staff", h), pg)
}

// --- broadcasts ---

func (d *DB) CreateBroadcast(ctx context.Context, b store.Broadcast) error {
	return notFound("broadcast "+b.ID, d.create(broadcastKey(b.Hospital, b.ID), b))
}

func (d *DB) ListBroadcasts(ctx context.Context, h string, pg store.Page) ([]store.Broadcast, string, error) {
	if h == "" {
		return nil, "", fmt.Errorf("broadcasts query without hospital: %w", store.ErrInvalid)
	}
	prefix := hospitalPrefix("bcast", h)
	var out []store.Broadcast
	var next string
	err := d.use(func() error {
		upper := prefixEnd([]byte(prefix))
		if pg.Cursor != "" {
			k, err := decodeCursor(pg.Cursor, prefix)
			if err != nil {
				return err
			}
			upper = append(k, 0)
		}
		it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: upper})
		if err != nil {
			return err
		}
		defer it.Close()
		limit := pg.Size()
		for ok := it.Last(); ok; ok = it.Prev() {
			if len(out) == limit {
				next = encodeCursor(it.Key())
				break
			}
			var b store.Broadcast
			if err := json.Unmarshal(it.Value(), &b); err != nil {
				return err
			}
			out = append(out, b)
		}
		return it.Error()
	})
	return out, next, err
}
