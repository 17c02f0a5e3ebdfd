// Package devices owns the device registry (provisioning, secrets, assignment to patients, and
// the fast lookups the broker's access control makes on every connect and publish) and the
// bedside-monitor simulator.
package devices

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vigilhq/vigil/topics"
)

// Record is a stored device. It has the same fields as the store's device record, so the two
// convert into each other.
type Record struct {
	ID         string
	Hospital   string
	Model      string
	SecretHash []byte
	Patient    string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Store keeps device records. Errors carry a Code() ("not_found", "conflict", ...).
type Store interface {
	CreateDevice(ctx context.Context, d Record) error
	GetDevice(ctx context.Context, id string) (Record, error)
	UpdateDevice(ctx context.Context, d Record) error
	DeleteDevice(ctx context.Context, id string) error
	ListDevices(ctx context.Context, hospital string, limit int, cursor string) ([]Record, string, error)
	// PatientExists returns nil when the patient is admitted in the hospital.
	PatientExists(ctx context.Context, hospital, patient string) error
}

// ChangeKind says what happened to a device.
type ChangeKind uint8

// Changes observers hear about.
const (
	Provisioned ChangeKind = iota + 1
	Assigned
	Unassigned
	SecretRotated
	Deleted
)

func (k ChangeKind) String() string {
	switch k {
	case Provisioned:
		return "provisioned"
	case Assigned:
		return "assigned"
	case Unassigned:
		return "unassigned"
	case SecretRotated:
		return "secret rotated"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change is one change of a device.
type Change struct {
	Kind       ChangeKind
	Hospital   string
	Device     string
	Patient    string // after the change
	OldPatient string // before it
}

// Error is a registry error with a code the HTTP layer maps to a status.
type Error struct {
	code, field, msg string
}

func (e *Error) Error() string { return e.msg }

// Code is "invalid", "not_found", "conflict" or "unauthorized".
func (e *Error) Code() string { return e.code }

// Field names the request field an invalid error is about.
func (e *Error) Field() string { return e.field }

// ErrBadSecret is returned for an unknown device or a wrong secret (the same error for both).
var ErrBadSecret = &Error{code: "unauthorized", msg: "unknown device or wrong secret"}

func notFound(h, id string) error {
	return &Error{code: "not_found", msg: fmt.Sprintf("device %s not found in hospital %s", id, h)}
}

type entry struct {
	hospital, patient string
	hash              [sha256.Size]byte
}

// Registry is the device registry. Reads for the broker (Device, AuthenticateDevice) come from
// memory; every change is stored first, then applied in memory, then announced.
type Registry struct {
	st     Store
	log    *slog.Logger
	now    func() time.Time
	shared bool

	mu    sync.RWMutex
	byID  map[string]entry
	write sync.Mutex // serialises changes

	obsMu     sync.RWMutex
	observers []func(Change)
}

// Options configure Open.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Shared is set when several processes share the store (external broker): this registry
	// then learns the others' changes only through Sync, so UnassignPatient searches the store.
	Shared bool
}

// Open loads every device into memory.
func Open(ctx context.Context, st Store, opts Options) (*Registry, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Registry{st: st, log: opts.Logger.With("component", "devices"), now: opts.Now, shared: opts.Shared, byID: map[string]entry{}}
	err := listAll(ctx, st, "", func(d Record) { r.byID[d.ID] = toEntry(d) })
	if err != nil {
		return nil, fmt.Errorf("loading devices: %w", err)
	}
	return r, nil
}

// listAll calls f with every stored device of hospital h ("": all).
func listAll(ctx context.Context, st Store, h string, f func(Record)) error {
	cursor := ""
	for {
		recs, next, err := st.ListDevices(ctx, h, 1000, cursor)
		if err != nil {
			return err
		}
		for _, d := range recs {
			f(d)
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// Sync takes in the changes other processes sharing the store made to devices (several Vigil
// processes on one MongoDB): every device is read again, and each difference from memory is
// applied and announced as the change itself was where it happened. A device newly found
// assigned to a patient who is not admitted (an assignment in one process that raced a
// discharge in another) is unassigned.
func (r *Registry) Sync(ctx context.Context) error {
	r.write.Lock()
	defer r.write.Unlock()
	stored := map[string]Record{}
	if err := listAll(ctx, r.st, "", func(d Record) { stored[d.ID] = d }); err != nil {
		return err
	}
	var changes []Change
	r.mu.Lock()
	for id, d := range stored {
		e, had := r.byID[id]
		n := toEntry(d)
		r.byID[id] = n
		switch {
		case !had:
			changes = append(changes, Change{Kind: Provisioned, Hospital: d.Hospital, Device: id})
			if d.Patient != "" {
				changes = append(changes, Change{Kind: Assigned, Hospital: d.Hospital, Device: id, Patient: d.Patient})
			}
			continue
		case e.patient != d.Patient && d.Patient == "":
			changes = append(changes, Change{Kind: Unassigned, Hospital: d.Hospital, Device: id, OldPatient: e.patient})
		case e.patient != d.Patient:
			changes = append(changes, Change{Kind: Assigned, Hospital: d.Hospital, Device: id, Patient: d.Patient, OldPatient: e.patient})
		}
		if e.hash != n.hash {
			changes = append(changes, Change{Kind: SecretRotated, Hospital: d.Hospital, Device: id, Patient: d.Patient, OldPatient: d.Patient})
		}
	}
	for id, e := range r.byID {
		if _, ok := stored[id]; !ok {
			delete(r.byID, id)
			changes = append(changes, Change{Kind: Deleted, Hospital: e.hospital, Device: id, OldPatient: e.patient})
		}
	}
	r.mu.Unlock()
	var errs []error
	for _, c := range changes {
		r.log.Info("device changed by another process", "hospital", c.Hospital, "device", c.Device, "change", c.Kind.String(), "patient", c.Patient, "was", c.OldPatient)
		r.announce(c)
		if c.Kind != Assigned {
			continue
		}
		switch err := r.st.PatientExists(ctx, c.Hospital, c.Patient); {
		case codeOf(err) == "not_found":
			d, err := r.get(ctx, c.Hospital, c.Device)
			if err == nil && d.Patient == c.Patient {
				r.log.Warn("device assigned to a patient not admitted; unassigned", "hospital", c.Hospital, "device", c.Device, "patient", c.Patient)
				_, err = r.setPatient(ctx, c.Hospital, c.Device, "")
			}
			if err != nil && codeOf(err) != "not_found" {
				errs = append(errs, err)
			}
		case err != nil:
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func toEntry(d Record) entry {
	e := entry{hospital: d.Hospital, patient: d.Patient}
	copy(e.hash[:], d.SecretHash)
	return e
}

// Observe registers f to hear about every change, after it is stored.
func (r *Registry) Observe(f func(Change)) {
	r.obsMu.Lock()
	r.observers = append(r.observers, f)
	r.obsMu.Unlock()
}

func (r *Registry) announce(c Change) {
	r.obsMu.RLock()
	defer r.obsMu.RUnlock()
	for _, f := range r.observers {
		f(c)
	}
}

// NewSecret returns a random device secret (32 bytes, base64url: 43 characters, never a dot)
// and its SHA-256 hash. A fast hash suits a random 256-bit secret: nothing to brute-force, and
// reconnect storms stay cheap.
func NewSecret() (secret string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	secret = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(secret))
	return secret, sum[:], nil
}

func invalid(field string, err error) error {
	return &Error{code: "invalid", field: field, msg: err.Error()}
}

// Provision creates a device in hospital h and returns it with its secret, shown only now.
func (r *Registry) Provision(ctx context.Context, h, id, model string) (Record, string, error) {
	if err := topics.ValidID("hospital", h); err != nil {
		return Record{}, "", invalid("hospital", err)
	}
	if err := topics.ValidID("device", id); err != nil {
		return Record{}, "", invalid("id", err)
	}
	if len(model) > 200 {
		return Record{}, "", &Error{code: "invalid", field: "model", msg: "model: longer than 200 characters"}
	}
	secret, hash, err := NewSecret()
	if err != nil {
		return Record{}, "", err
	}
	now := r.now().UTC().Truncate(time.Millisecond)
	d := Record{ID: id, Hospital: h, Model: model, SecretHash: hash, CreatedAt: now, UpdatedAt: now}
	r.write.Lock()
	defer r.write.Unlock()
	if err := r.st.CreateDevice(ctx, d); err != nil {
		if codeOf(err) == "conflict" {
			return Record{}, "", &Error{code: "conflict", field: "id", msg: fmt.Sprintf("device %s exists (device IDs are unique across hospitals)", id)}
		}
		return Record{}, "", err
	}
	r.mu.Lock()
	r.byID[id] = toEntry(d)
	r.mu.Unlock()
	r.log.Info("device provisioned", "hospital", h, "device", id)
	r.announce(Change{Kind: Provisioned, Hospital: h, Device: id})
	return d, secret, nil
}

// get returns the device if it belongs to hospital h (not found otherwise: a device of another
// hospital does not exist for this one).
func (r *Registry) get(ctx context.Context, h, id string) (Record, error) {
	d, err := r.st.GetDevice(ctx, id)
	if codeOf(err) == "not_found" || (err == nil && d.Hospital != h) {
		return Record{}, notFound(h, id)
	}
	return d, err
}

// Get returns device id of hospital h.
func (r *Registry) Get(ctx context.Context, h, id string) (Record, error) { return r.get(ctx, h, id) }

// List returns the devices of hospital h.
func (r *Registry) List(ctx context.Context, h string, limit int, cursor string) ([]Record, string, error) {
	return r.st.ListDevices(ctx, h, limit, cursor)
}

// Rotate gives the device a new secret; its connection is closed by the observers.
func (r *Registry) Rotate(ctx context.Context, h, id string) (Record, string, error) {
	r.write.Lock()
	defer r.write.Unlock()
	d, err := r.get(ctx, h, id)
	if err != nil {
		return Record{}, "", err
	}
	secret, hash, err := NewSecret()
	if err != nil {
		return Record{}, "", err
	}
	d.SecretHash, d.UpdatedAt = hash, r.now().UTC().Truncate(time.Millisecond)
	if err := r.st.UpdateDevice(ctx, d); err != nil {
		return Record{}, "", err
	}
	r.mu.Lock()
	r.byID[id] = toEntry(d)
	r.mu.Unlock()
	r.log.Info("device secret rotated", "hospital", h, "device", id)
	r.announce(Change{Kind: SecretRotated, Hospital: h, Device: id, Patient: d.Patient, OldPatient: d.Patient})
	return d, secret, nil
}

// Delete removes the device; its connection is closed by the observers.
func (r *Registry) Delete(ctx context.Context, h, id string) error {
	r.write.Lock()
	defer r.write.Unlock()
	d, err := r.get(ctx, h, id)
	if err != nil {
		return err
	}
	if err := r.st.DeleteDevice(ctx, id); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.byID, id)
	r.mu.Unlock()
	r.log.Info("device deleted", "hospital", h, "device", id)
	r.announce(Change{Kind: Deleted, Hospital: h, Device: id, OldPatient: d.Patient})
	return nil
}

// Assign points the device at patient p (who must be admitted in h). From then on it may
// publish only to p's vitals topic, without reconnecting.
// The check that p is admitted and the assignment happen under the registry's write lock, as
// UnassignPatient's whole pass does: a discharge (unassign, delete the patient, unassign again)
// then either sees the new assignment or makes the check fail, never leaves a device assigned
// to a discharged patient.
func (r *Registry) Assign(ctx context.Context, h, id, p string) (Record, error) {
	if err := topics.ValidID("patient", p); err != nil {
		return Record{}, invalid("patient", err)
	}
	r.write.Lock()
	defer r.write.Unlock()
	if err := r.st.PatientExists(ctx, h, p); err != nil {
		if codeOf(err) == "not_found" {
			return Record{}, &Error{code: "invalid", field: "patient", msg: fmt.Sprintf("patient %s is not admitted in hospital %s", p, h)}
		}
		return Record{}, err
	}
	return r.setPatient(ctx, h, id, p)
}

// Unassign detaches the device from its patient.
func (r *Registry) Unassign(ctx context.Context, h, id string) (Record, error) {
	r.write.Lock()
	defer r.write.Unlock()
	return r.setPatient(ctx, h, id, "")
}

// setPatient changes a device's patient; called with r.write held.
func (r *Registry) setPatient(ctx context.Context, h, id, p string) (Record, error) {
	d, err := r.get(ctx, h, id)
	if err != nil {
		return Record{}, err
	}
	old := d.Patient
	if old == p {
		return d, nil
	}
	d.Patient, d.UpdatedAt = p, r.now().UTC().Truncate(time.Millisecond)
	if err := r.st.UpdateDevice(ctx, d); err != nil {
		return Record{}, err
	}
	r.mu.Lock()
	r.byID[id] = toEntry(d)
	r.mu.Unlock()
	kind := Assigned
	if p == "" {
		kind = Unassigned
	}
	r.log.Info("device assignment changed", "hospital", h, "device", id, "patient", p, "was", old)
	r.announce(Change{Kind: kind, Hospital: h, Device: id, Patient: p, OldPatient: old})
	return d, nil
}

// UnassignPatient detaches every device of patient p (discharge). A device is unassigned only
// while the store still gives it to p: with a shared store, memory may be behind (another
// process moved or deleted it; Sync puts memory right), and the store is searched too, for
// devices assigned through another process.
func (r *Registry) UnassignPatient(ctx context.Context, h, p string) error {
	r.write.Lock()
	defer r.write.Unlock()
	ids := r.AssignedTo(h, p)
	if r.shared {
		err := listAll(ctx, r.st, h, func(d Record) {
			if d.Patient == p && !slices.Contains(ids, d.ID) {
				ids = append(ids, d.ID)
			}
		})
		if err != nil {
			return err
		}
	}
	var errs []error
	for _, id := range ids {
		d, err := r.get(ctx, h, id)
		if codeOf(err) == "not_found" || (err == nil && d.Patient != p) {
			continue // deleted or moved meanwhile
		}
		if err == nil {
			_, err = r.setPatient(ctx, h, id, "")
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// AssignedTo returns the devices assigned to patient p of hospital h.
func (r *Registry) AssignedTo(h, p string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for id, e := range r.byID {
		if e.hospital == h && e.patient == p {
			out = append(out, id)
		}
	}
	return out
}

// Device returns a device's hospital and current patient. It is the broker's per-publish check.
func (r *Registry) Device(id string) (hospital, patient string, ok bool) {
	r.mu.RLock()
	e, ok := r.byID[id]
	r.mu.RUnlock()
	return e.hospital, e.patient, ok
}

// AuthenticateDevice checks a device's secret in constant time and returns its hospital.
func (r *Registry) AuthenticateDevice(ctx context.Context, id string, secret []byte) (string, error) {
	r.mu.RLock()
	e, ok := r.byID[id]
	r.mu.RUnlock()
	sum := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(sum[:], e.hash[:]) != 1 || !ok {
		return "", ErrBadSecret
	}
	return e.hospital, nil
}

func codeOf(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return ""
}
