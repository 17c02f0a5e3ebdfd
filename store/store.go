// Package store defines what Vigil keeps and the interfaces every storage backend implements:
// users, devices, patients, vitals samples and manual observations, alerts with their history,
// per-patient processing state, triage cases, beds and staff.
//
// Two backends implement Store: store/embedded (Pebble in the data directory, the default) and
// store/mongostore (MongoDB). store/storetest is the conformance suite both pass.
//
// Conventions shared by every backend:
//   - Times are kept at millisecond precision, in UTC.
//   - Lists are cursor-paginated: a method returns the items and the cursor of the next page ("" on
//     the last page). Cursors are opaque.
//   - Records with a Version field use optimistic concurrency: an update carries the version it
//     was read at plus one and fails with ErrConflict when someone else got there first.
//   - Errors wrap ErrNotFound, ErrConflict, ErrInvalid or ErrUnavailable.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"
)

// Sentinel errors. Backends wrap them with context; test with errors.Is. Each has a Code, the
// error-code convention the HTTP layer maps to statuses.
var (
	ErrNotFound    = &Error{"not_found", "not found"}
	ErrConflict    = &Error{"conflict", "conflict"}
	ErrInvalid     = &Error{"invalid", "invalid request"}
	ErrUnavailable = &Error{"unavailable", "store unavailable"}
)

// Error is a store error class.
type Error struct{ code, msg string }

func (e *Error) Error() string { return e.msg }

// Code is the class: "not_found", "conflict", "invalid" or "unavailable".
func (e *Error) Code() string { return e.code }

// Page asks for one page of a list. A zero Limit means DefaultLimit; limits above MaxLimit are
// lowered to MaxLimit.
type Page struct {
	Limit  int
	Cursor string
}

// List limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Size returns the effective page size.
func (p Page) Size() int {
	switch {
	case p.Limit <= 0:
		return DefaultLimit
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}

// User is a person who logs in to the API and the dashboard.
type User struct {
	Username     string    `json:"username" bson:"username"`
	PasswordHash string    `json:"password_hash" bson:"password_hash"`
	Role         string    `json:"role" bson:"role"`
	Hospitals    []string  `json:"hospitals" bson:"hospitals"`
	CreatedAt    time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt    time.Time `json:"updated_at" bson:"updated_at"`
}

// Device is a provisioned bedside monitor. Its ID is unique across hospitals: it is the MQTT
// client ID and username.
type Device struct {
	ID         string    `json:"id" bson:"id"`
	Hospital   string    `json:"hospital" bson:"hospital"`
	Model      string    `json:"model,omitempty" bson:"model,omitempty"`
	SecretHash []byte    `json:"secret_hash" bson:"secret_hash"`
	Patient    string    `json:"patient,omitempty" bson:"patient,omitempty"` // assigned patient; "" when unassigned
	CreatedAt  time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt  time.Time `json:"updated_at" bson:"updated_at"`
}

// AlarmLimits are a patient's own threshold-alarm limits; nil means the site default.
type AlarmLimits struct {
	SpO2Low      *float64 `json:"spo2_low,omitempty" bson:"spo2_low,omitempty"`
	HRLow        *float64 `json:"hr_low,omitempty" bson:"hr_low,omitempty"`
	HRHigh       *float64 `json:"hr_high,omitempty" bson:"hr_high,omitempty"`
	RRLow        *float64 `json:"rr_low,omitempty" bson:"rr_low,omitempty"`
	RRHigh       *float64 `json:"rr_high,omitempty" bson:"rr_high,omitempty"`
	SBPLow       *float64 `json:"sbp_low,omitempty" bson:"sbp_low,omitempty"`
	SBPHigh      *float64 `json:"sbp_high,omitempty" bson:"sbp_high,omitempty"`
	DelaySeconds *float64 `json:"delay_seconds,omitempty" bson:"delay_seconds,omitempty"` // condition delay
}

// Patient is an admitted patient.
type Patient struct {
	Hospital   string      `json:"hospital" bson:"hospital"`
	ID         string      `json:"id" bson:"id"`
	Name       string      `json:"name" bson:"name"`
	Bed        string      `json:"bed,omitempty" bson:"bed,omitempty"`
	SpO2Scale  int         `json:"spo2_scale" bson:"spo2_scale"`
	Limits     AlarmLimits `json:"limits" bson:"limits"`
	AdmittedAt time.Time   `json:"admitted_at" bson:"admitted_at"`
	UpdatedAt  time.Time   `json:"updated_at" bson:"updated_at"`
	// Version counts the record's changes: 1 at admission (0 in records stored before
	// versions), one more with each update.
	Version int64 `json:"version" bson:"version"`
}

// Fields is the set of measurements a Vitals value holds.
type Fields uint8

// The measurements of a vitals sample.
const (
	FieldHR Fields = 1 << iota
	FieldRR
	FieldSpO2
	FieldSBP
	FieldTemp
	FieldO2
	FieldACVPU
)

// Vitals are the measurements of one sample or observation. Has says which are present.
type Vitals struct {
	Has   Fields
	HR    float64 // beats per minute
	RR    float64 // breaths per minute
	SpO2  float64 // percent
	SBP   float64 // mmHg
	Temp  float64 // degrees Celsius
	O2    bool    // on supplemental oxygen
	ACVPU byte    // 'A', 'C', 'V', 'P' or 'U'
}

// Sample is one timed set of measurements for a patient: from a device, or a manual observation
// (Device empty, Author set).
type Sample struct {
	Hospital string
	Patient  string
	Time     time.Time
	Device   string
	Seq      int64 // the device's sequence number, 0 when it sent none
	Author   string
	Vitals
}

// Cause returns what a store error keeps behind its message (a database driver's error, whose
// text names hosts and collections and so is kept out of messages that reach API clients),
// for the server's own log; nil when there is none.
func Cause(err error) error {
	var c interface{ Cause() error }
	if errors.As(err, &c) {
		return c.Cause()
	}
	return nil
}

// Digest identifies the sample's content (its measurements and author). Stores key samples by
// time, device, sequence number and digest: a redelivered sample is stored once, while two
// different samples that share the rest (manual observations charted for the same instant,
// a device that sends no seq, several devices behind one external broker) are both kept.
func (s *Sample) Digest() uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037) // FNV-1a
	mix := func(v uint64) {
		for range 8 {
			h = (h ^ v&0xff) * prime
			v >>= 8
		}
	}
	var o2, acvpu uint64
	if s.Has&FieldO2 != 0 && s.O2 {
		o2 = 1
	}
	if s.Has&FieldACVPU != 0 {
		acvpu = uint64(s.ACVPU)
	}
	mix(uint64(s.Has) | acvpu<<8 | o2<<16)
	for i, f := range [...]float64{s.HR, s.RR, s.SpO2, s.SBP, s.Temp} {
		if s.Has&(FieldHR<<i) != 0 { // only what is present counts
			mix(math.Float64bits(f))
		}
	}
	for i := 0; i < len(s.Author); i++ {
		h = (h ^ uint64(s.Author[i])) * prime
	}
	return h
}

// SampleQuery selects a patient's samples with From <= Time < To (zero To: no upper bound),
// oldest first.
type SampleQuery struct {
	Hospital, Patient string
	From, To          time.Time
}

// Alert states, priorities and categories (IEC 60601-1-8 priorities).
const (
	StateActive       = "active"
	StateAcknowledged = "acknowledged"
	StateResolved     = "resolved"
)

// Alert is one alarm condition of a patient and its lifecycle. History is its audit trail: every
// change, with who and when, oldest first.
type Alert struct {
	ID              string          `json:"id" bson:"id"`
	Hospital        string          `json:"hospital" bson:"hospital"`
	Patient         string          `json:"patient" bson:"patient"`
	Kind            string          `json:"kind" bson:"kind"`
	Category        string          `json:"category" bson:"category"`
	Priority        string          `json:"priority" bson:"priority"`
	State           string          `json:"state" bson:"state"`
	EscalationLevel int             `json:"escalation_level" bson:"escalation_level"`
	Message         string          `json:"message" bson:"message"`
	RaisedAt        time.Time       `json:"raised_at" bson:"raised_at"`
	UpdatedAt       time.Time       `json:"updated_at" bson:"updated_at"`
	AckedBy         string          `json:"acked_by,omitempty" bson:"acked_by,omitempty"`
	AckedAt         *time.Time      `json:"acked_at,omitempty" bson:"acked_at,omitempty"`
	ResolvedBy      string          `json:"resolved_by,omitempty" bson:"resolved_by,omitempty"`
	ResolvedAt      *time.Time      `json:"resolved_at,omitempty" bson:"resolved_at,omitempty"`
	Risk            json.RawMessage `json:"risk,omitempty" bson:"risk,omitempty"`
	Latched         bool            `json:"latched,omitempty" bson:"latched,omitempty"`
	EscalateAt      *time.Time      `json:"escalate_at,omitempty" bson:"escalate_at,omitempty"` // next escalation, nil when none is due
	Version         int64           `json:"version" bson:"version"`
	History         []AlertEvent    `json:"history" bson:"history"`
}

// Open reports whether the alert is not resolved.
func (a *Alert) Open() bool { return a.State != StateResolved }

// AlertEvent is one change of an alert.
type AlertEvent struct {
	Version         int64     `json:"version" bson:"version"`
	Action          string    `json:"action" bson:"action"`
	Actor           string    `json:"actor" bson:"actor"`
	At              time.Time `json:"at" bson:"at"`
	Note            string    `json:"note,omitempty" bson:"note,omitempty"`
	Priority        string    `json:"priority" bson:"priority"`
	State           string    `json:"state" bson:"state"`
	EscalationLevel int       `json:"escalation_level" bson:"escalation_level"`
	Message         string    `json:"message" bson:"message"`
}

// AlertQuery filters the alerts of one hospital; zero fields do not filter.
type AlertQuery struct {
	Hospital   string
	States     []string
	Priorities []string
	Patient    string
	Kind       string
	Since      time.Time // raised at or after
}

// PatientState is the processing state of one patient, opaque to the store. Version is the
// optimistic-concurrency counter.
type PatientState struct {
	Hospital  string    `json:"hospital" bson:"hospital"`
	Patient   string    `json:"patient" bson:"patient"`
	Version   int64     `json:"version" bson:"version"`
	Data      []byte    `json:"data" bson:"data"`
	UpdatedAt time.Time `json:"updated_at" bson:"updated_at"`
}

// TriageCase is one patient waiting in the emergency department queue.
type TriageCase struct {
	Hospital  string    `json:"hospital" bson:"hospital"`
	ID        string    `json:"id" bson:"id"`
	Level     int       `json:"level" bson:"level"` // Emergency Severity Index 1 (most urgent) to 5
	Complaint string    `json:"complaint" bson:"complaint"`
	Patient   string    `json:"patient,omitempty" bson:"patient,omitempty"`
	Status    string    `json:"status" bson:"status"`
	Assignee  string    `json:"assignee,omitempty" bson:"assignee,omitempty"`
	CreatedAt time.Time `json:"created_at" bson:"created_at"`
	UpdatedAt time.Time `json:"updated_at" bson:"updated_at"`
	Version   int64     `json:"version" bson:"version"`
}

// Bed is one bed of a hospital.
type Bed struct {
	Hospital  string    `json:"hospital" bson:"hospital"`
	ID        string    `json:"id" bson:"id"`
	Status    string    `json:"status" bson:"status"`
	Patient   string    `json:"patient,omitempty" bson:"patient,omitempty"`
	UpdatedAt time.Time `json:"updated_at" bson:"updated_at"`
}

// Broadcast is a hospital-wide alert a clinician sent (hospital_alert).
type Broadcast struct {
	Hospital string    `json:"hospital" bson:"hospital"`
	ID       string    `json:"id" bson:"id"` // sorts by time
	Priority string    `json:"priority" bson:"priority"`
	Message  string    `json:"message" bson:"message"`
	By       string    `json:"by" bson:"by"`
	At       time.Time `json:"at" bson:"at"`
}

// StaffMember is a clinician's availability.
type StaffMember struct {
	Hospital  string    `json:"hospital" bson:"hospital"`
	ID        string    `json:"id" bson:"id"`
	Name      string    `json:"name,omitempty" bson:"name,omitempty"`
	Role      string    `json:"role" bson:"role"`
	Available bool      `json:"available" bson:"available"`
	OnShift   bool      `json:"on_shift" bson:"on_shift"`
	UpdatedAt time.Time `json:"updated_at" bson:"updated_at"`
}

// Users keeps user accounts.
type Users interface {
	CreateUser(ctx context.Context, u User) error // ErrConflict when the username is taken
	GetUser(ctx context.Context, username string) (User, error)
	UpdateUser(ctx context.Context, u User) error
	DeleteUser(ctx context.Context, username string) error
	ListUsers(ctx context.Context, pg Page) ([]User, string, error) // by username
}

// Devices keeps provisioned devices.
type Devices interface {
	CreateDevice(ctx context.Context, d Device) error // ErrConflict when the ID is taken
	GetDevice(ctx context.Context, id string) (Device, error)
	UpdateDevice(ctx context.Context, d Device) error
	DeleteDevice(ctx context.Context, id string) error
	ListDevices(ctx context.Context, hospital string, pg Page) ([]Device, string, error) // by ID; hospital "" lists all
}

// Patients keeps admitted patients.
type Patients interface {
	CreatePatient(ctx context.Context, p Patient) error // ErrConflict when admitted already
	GetPatient(ctx context.Context, hospital, id string) (Patient, error)
	// UpdatePatient stores p if the stored version is p.Version-1 (ErrConflict otherwise:
	// another change came first; ErrNotFound when the patient is gone).
	UpdatePatient(ctx context.Context, p Patient) error
	DeletePatient(ctx context.Context, hospital, id string) error
	ListPatients(ctx context.Context, hospital string, pg Page) ([]Patient, string, error) // by ID; hospital "" lists all
}

// SampleWriter appends vitals samples.
type SampleWriter interface {
	// AppendSamples stores samples durably before it returns. Appending a sample again (same
	// patient, time, device and sequence number, as after a QoS 1 redelivery) stores it once.
	AppendSamples(ctx context.Context, samples []Sample) error
}

// Samples keeps the time series of samples per patient.
type Samples interface {
	SampleWriter
	ListSamples(ctx context.Context, q SampleQuery, pg Page) ([]Sample, string, error)
	// DeleteSamplesBefore removes samples older than t (retention).
	DeleteSamplesBefore(ctx context.Context, t time.Time) error
}

// Alerts keeps alerts and their history.
type Alerts interface {
	// CreateAlert stores a new alert whose History holds its first event; Version must be 1.
	CreateAlert(ctx context.Context, a Alert) error
	// UpdateAlert replaces the alert's fields and appends ev to its history, provided the
	// stored version is a.Version-1 (ErrConflict otherwise). a.History is ignored.
	UpdateAlert(ctx context.Context, a Alert, ev AlertEvent) error
	GetAlert(ctx context.Context, hospital, id string) (Alert, error)
	// ListAlerts returns matching alerts, newest ID first (IDs sort by time).
	ListAlerts(ctx context.Context, q AlertQuery, pg Page) ([]Alert, string, error)
	// OpenAlerts returns the alerts not resolved; hospital "" means all, patient "" the whole hospital.
	OpenAlerts(ctx context.Context, hospital, patient string) ([]Alert, error)
}

// PatientStates keeps per-patient processing state.
type PatientStates interface {
	GetPatientState(ctx context.Context, hospital, patient string) (PatientState, error)
	// PutPatientState stores st if the stored version is st.Version-1 (absent counts as 0).
	PutPatientState(ctx context.Context, st PatientState) error
	// SavePatientStates stores snapshots unconditionally (last write wins).
	SavePatientStates(ctx context.Context, sts []PatientState) error
	DeletePatientState(ctx context.Context, hospital, patient string) error
}

// Triage keeps triage cases.
type Triage interface {
	CreateTriageCase(ctx context.Context, c TriageCase) error
	// UpdateTriageCase stores c if the stored version is c.Version-1.
	UpdateTriageCase(ctx context.Context, c TriageCase) error
	GetTriageCase(ctx context.Context, hospital, id string) (TriageCase, error)
	ListTriageCases(ctx context.Context, hospital string, pg Page) ([]TriageCase, string, error)
}

// Beds keeps beds.
type Beds interface {
	PutBed(ctx context.Context, b Bed) error // create or replace
	GetBed(ctx context.Context, hospital, id string) (Bed, error)
	ListBeds(ctx context.Context, hospital string, pg Page) ([]Bed, string, error)
}

// Staff keeps staff availability.
type Staff interface {
	PutStaff(ctx context.Context, s StaffMember) error // create or replace
	GetStaff(ctx context.Context, hospital, id string) (StaffMember, error)
	ListStaff(ctx context.Context, hospital string, pg Page) ([]StaffMember, string, error)
}

// Broadcasts keeps hospital-wide alerts.
type Broadcasts interface {
	CreateBroadcast(ctx context.Context, b Broadcast) error // ErrConflict when the ID is taken
	// ListBroadcasts returns a hospital's broadcasts, newest ID first.
	ListBroadcasts(ctx context.Context, hospital string, pg Page) ([]Broadcast, string, error)
}

// Store is everything a backend implements.
type Store interface {
	Users
	Devices
	Patients
	Samples
	Alerts
	PatientStates
	Triage
	Beds
	Staff
	Broadcasts
	// Ping reports whether the backend answers.
	Ping(ctx context.Context) error
	// Close flushes and releases the backend.
	Close() error
}

// Millis truncates t to the store's precision, in UTC.
func Millis(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }
