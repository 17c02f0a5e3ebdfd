package api

import (
	"context"
	"encoding/json"
	"time"

	"github.com/vigilhq/vigil/news2"
)

// Page asks for one page of a list.
type Page struct {
	Limit  int
	Cursor string
}

// Principal is the authenticated caller, from a verified token.
type Principal struct {
	Subject   string
	Role      string
	Hospitals []string
	Issuer    string
	Audience  []string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Roles.
const (
	RoleAdmin     = "admin"
	RoleClinician = "clinician"
	RoleNurse     = "nurse"
	RoleViewer    = "viewer"
)

// CanAccess reports whether the caller may see hospital h.
func (p *Principal) CanAccess(h string) bool {
	if p.Role == RoleAdmin {
		return true
	}
	for _, x := range p.Hospitals {
		if x == h {
			return true
		}
	}
	return false
}

// Allowed reports whether the caller's role reaches the route's minimum.
func (p *Principal) Allowed(min access) bool {
	switch min {
	case anyone, loggedIn, staff:
		return true
	case nurse:
		return p.Role == RoleNurse || p.Role == RoleClinician || p.Role == RoleAdmin
	case clinician:
		return p.Role == RoleClinician || p.Role == RoleAdmin
	case admin:
		return p.Role == RoleAdmin
	}
	return false
}

// Auth logs users in and manages them.
type Auth interface {
	Login(ctx context.Context, username, password, remoteAddr string) (LoginResult, error)
	Verify(token string) (Principal, error)
	CreateUser(ctx context.Context, u NewUser) (User, error)
	ListUsers(ctx context.Context, pg Page) ([]User, string, error)
	// DeleteUser removes a user; their tokens stop working and their connections close.
	DeleteUser(ctx context.Context, username string) error
}

// User is a user as the API shows it (never the password hash).
type User struct {
	Username  string     `json:"username"`
	Role      string     `json:"role"`
	Hospitals []string   `json:"hospitals"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
}

// NewUser is the body of POST /users.
type NewUser struct {
	Username  string   `json:"username"`
	Password  string   `json:"password"`
	Role      string   `json:"role"`
	Hospitals []string `json:"hospitals"`
}

// LoginResult is the answer of POST /auth/login.
type LoginResult struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      User      `json:"user"`
}

// Devices manages bedside monitors.
type Devices interface {
	Provision(ctx context.Context, h, id, model string) (Device, string, error)
	List(ctx context.Context, h string, pg Page) ([]Device, string, error)
	Assign(ctx context.Context, h, id, patient string) (Device, error)
	Unassign(ctx context.Context, h, id string) (Device, error)
	Rotate(ctx context.Context, h, id string) (Device, string, error)
	Delete(ctx context.Context, h, id string) error
}

// Device is a provisioned monitor. Secret is set only in the answers that create it.
type Device struct {
	ID        string    `json:"id"`
	Hospital  string    `json:"hospital"`
	Model     string    `json:"model,omitempty"`
	Patient   *string   `json:"patient"`
	Online    bool      `json:"online"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Patients manages admitted patients, their observations and history.
type Patients interface {
	Admit(ctx context.Context, h string, in NewPatient, actor string) (Patient, error)
	List(ctx context.Context, h string, pg Page) ([]Patient, string, error)
	Get(ctx context.Context, h, id string) (Patient, error)
	Update(ctx context.Context, h, id string, in PatientPatch, actor string) (Patient, error)
	Discharge(ctx context.Context, h, id, actor string) error
	// Observe records a manual observation (the body is a vitals sample) and returns the new risk.
	Observe(ctx context.Context, h, id, actor string, body []byte) (news2.Risk, error)
	Vitals(ctx context.Context, h, id string, from, to time.Time, pg Page) ([]Sample, string, error)
	Risk(ctx context.Context, h, id string) (*news2.Risk, error)
}

// Limits are a patient's own alarm limits (absent: the site default).
type Limits struct {
	SpO2Low      *float64 `json:"spo2_low,omitempty"`
	HRLow        *float64 `json:"hr_low,omitempty"`
	HRHigh       *float64 `json:"hr_high,omitempty"`
	RRLow        *float64 `json:"rr_low,omitempty"`
	RRHigh       *float64 `json:"rr_high,omitempty"`
	SBPLow       *float64 `json:"sbp_low,omitempty"`
	SBPHigh      *float64 `json:"sbp_high,omitempty"`
	DelaySeconds *float64 `json:"delay_seconds,omitempty"`
}

// Patient is an admitted patient with what Vigil knows of them now.
type Patient struct {
	Hospital   string      `json:"hospital"`
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Bed        string      `json:"bed,omitempty"`
	SpO2Scale  int         `json:"spo2_scale"`
	Limits     Limits      `json:"limits"`
	AdmittedAt time.Time   `json:"admitted_at"`
	UpdatedAt  time.Time   `json:"updated_at"`
	Risk       *news2.Risk `json:"risk"`
	OpenAlerts int         `json:"open_alerts"`
	Devices    []string    `json:"devices"`
	LastVitals *LastVitals `json:"last_vitals"`
}

// LastVitals are a patient's latest values; Times says when each was measured.
type LastVitals struct {
	TS    time.Time            `json:"ts"`
	HR    *float64             `json:"hr,omitempty"`
	RR    *float64             `json:"rr,omitempty"`
	SpO2  *float64             `json:"spo2,omitempty"`
	SBP   *float64             `json:"sbp,omitempty"`
	Temp  *float64             `json:"temp,omitempty"`
	O2    *bool                `json:"o2,omitempty"`
	ACVPU *string              `json:"acvpu,omitempty"`
	Times map[string]time.Time `json:"times"`
}

// NewPatient is the body of an admission.
type NewPatient struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Bed       string  `json:"bed,omitempty"`
	SpO2Scale *int    `json:"spo2_scale,omitempty"`
	Limits    *Limits `json:"limits,omitempty"`
}

// PatientPatch changes a patient; absent fields stay. Limits replaces the whole set.
type PatientPatch struct {
	Name      *string `json:"name,omitempty"`
	Bed       *string `json:"bed,omitempty"`
	SpO2Scale *int    `json:"spo2_scale,omitempty"`
	Limits    *Limits `json:"limits,omitempty"`
}

// Sample is one stored sample or manual observation.
type Sample struct {
	TS     time.Time `json:"ts"`
	Seq    int64     `json:"seq,omitempty"`
	Device string    `json:"device,omitempty"`
	Author string    `json:"author,omitempty"`
	HR     *float64  `json:"hr,omitempty"`
	RR     *float64  `json:"rr,omitempty"`
	SpO2   *float64  `json:"spo2,omitempty"`
	SBP    *float64  `json:"sbp,omitempty"`
	Temp   *float64  `json:"temp,omitempty"`
	O2     *bool     `json:"o2,omitempty"`
	ACVPU  *string   `json:"acvpu,omitempty"`
}

// Alerts lists alerts and runs their lifecycle.
type Alerts interface {
	List(ctx context.Context, h string, q AlertQuery, pg Page) ([]Alert, string, error)
	Get(ctx context.Context, h, id string) (AlertDetail, error)
	Acknowledge(ctx context.Context, h, id, actor, note string) (Alert, error)
	Resolve(ctx context.Context, h, id, actor, note string) (Alert, error)
}

// AlertQuery filters alerts.
type AlertQuery struct {
	States     []string
	Priorities []string
	Patient    string
	Kind       string
	Since      time.Time
}

// Alert is an alert ([DESIGN.md section 5]).
type Alert struct {
	ID              string          `json:"id"`
	Hospital        string          `json:"hospital"`
	Patient         string          `json:"patient"`
	Kind            string          `json:"kind"`
	Category        string          `json:"category"`
	Priority        string          `json:"priority"`
	State           string          `json:"state"`
	EscalationLevel int             `json:"escalation_level"`
	Message         string          `json:"message"`
	RaisedAt        time.Time       `json:"raised_at"`
	UpdatedAt       time.Time       `json:"updated_at"`
	AckedBy         *string         `json:"acked_by"`
	AckedAt         *time.Time      `json:"acked_at"`
	ResolvedBy      *string         `json:"resolved_by"`
	ResolvedAt      *time.Time      `json:"resolved_at"`
	Risk            json.RawMessage `json:"risk"`
}

// AlertDetail is an alert with its history, the audit trail.
type AlertDetail struct {
	Alert
	History []AlertChange `json:"history"`
}

// AlertChange is one entry of an alert's history.
type AlertChange struct {
	Version         int64     `json:"version"`
	Action          string    `json:"action"`
	Actor           string    `json:"actor"`
	At              time.Time `json:"at"`
	Note            string    `json:"note,omitempty"`
	Priority        string    `json:"priority"`
	State           string    `json:"state"`
	EscalationLevel int       `json:"escalation_level"`
	Message         string    `json:"message"`
}

// Ward runs triage, beds, staff and broadcasts. Each change is stored, then published.
type Ward interface {
	Broadcast(ctx context.Context, h string, in NewBroadcast, actor string) (Broadcast, error)
	ListBroadcasts(ctx context.Context, h string, pg Page) ([]Broadcast, string, error)
	CreateTriage(ctx context.Context, h string, in NewTriage, actor string) (TriageCase, error)
	UpdateTriage(ctx context.Context, h, id string, in TriagePatch, actor string) (TriageCase, error)
	GetTriage(ctx context.Context, h, id string) (TriageCase, error)
	ListTriage(ctx context.Context, h string, pg Page) ([]TriageCase, string, error)
	PutBed(ctx context.Context, h, id string, in BedUpdate, actor string) (Bed, error)
	ListBeds(ctx context.Context, h string, pg Page) ([]Bed, string, error)
	PutStaff(ctx context.Context, h, id string, in StaffUpdate, actor string) (StaffMember, error)
	ListStaff(ctx context.Context, h string, pg Page) ([]StaffMember, string, error)
}

// NewBroadcast is the body of POST /broadcasts.
type NewBroadcast struct {
	Priority string `json:"priority"`
	Message  string `json:"message"`
}

// Broadcast is a hospital-wide alert as published.
type Broadcast struct {
	ID       string    `json:"id"`
	Hospital string    `json:"hospital"`
	Priority string    `json:"priority"`
	Message  string    `json:"message"`
	By       string    `json:"by"`
	TS       time.Time `json:"ts"`
}

// TriageCase is a patient in the triage queue.
type TriageCase struct {
	Hospital  string    `json:"hospital"`
	ID        string    `json:"id"`
	Level     int       `json:"level"`
	Complaint string    `json:"complaint"`
	Patient   string    `json:"patient,omitempty"`
	Status    string    `json:"status"`
	Assignee  string    `json:"assignee,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewTriage is the body of POST /triage.
type NewTriage struct {
	ID        string `json:"id,omitempty"`
	Level     int    `json:"level"`
	Complaint string `json:"complaint"`
	Patient   string `json:"patient,omitempty"`
}

// TriagePatch changes a triage case; absent fields stay.
type TriagePatch struct {
	Level     *int    `json:"level,omitempty"`
	Complaint *string `json:"complaint,omitempty"`
	Patient   *string `json:"patient,omitempty"`
	Status    *string `json:"status,omitempty"`
	Assignee  *string `json:"assignee,omitempty"`
}

// Bed is a bed and its status.
type Bed struct {
	Hospital  string    `json:"hospital"`
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	Patient   string    `json:"patient,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// BedUpdate is the body of PUT /beds/{b}.
type BedUpdate struct {
	Status  string `json:"status"`
	Patient string `json:"patient,omitempty"`
}

// StaffMember is a clinician's availability.
type StaffMember struct {
	Hospital  string    `json:"hospital"`
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Role      string    `json:"role"`
	Available bool      `json:"available"`
	OnShift   bool      `json:"on_shift"`
	UpdatedAt time.Time `json:"updated_at"`
}

// StaffUpdate is the body of PUT /staff/{s}.
type StaffUpdate struct {
	Name      string `json:"name,omitempty"`
	Role      string `json:"role"`
	Available *bool  `json:"available"`
	OnShift   *bool  `json:"on_shift"`
}

// Scorer scores a sample without side effects (POST /risk/score).
type Scorer interface {
	Score(body []byte) (news2.Risk, error)
}

// Stats reports connections, subscriptions, traffic and open alerts.
type Stats interface {
	Stats(ctx context.Context) (any, error)
}

// list is the shape of every list answer.
type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}
