package ingest

import (
	"context"
	"encoding/json"
	"time"

	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/store"
)

// Publisher sends an event to MQTT subscribers: the embedded broker, or an external broker.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
}

// Event types ([DESIGN.md section 5]); the names are those of the earlier Socket.IO design.
const (
	TypeRiskUpdated    = "risk_updated"
	TypePatientAlert   = "patient_alert"
	TypeHospitalAlert  = "hospital_alert"
	TypeTriageUpdated  = "triage_updated"
	TypeStaffChanged   = "staff_availability_changed"
	TypeBedChanged     = "bed_status_changed"
	TypeDeviceStatus   = "device_status"
	TypeSampleRejected = "sample_rejected"
)

// Envelope is the wrapper of everything Vigil publishes.
type Envelope struct {
	Type     string    `json:"type"`
	ID       string    `json:"id"`
	TS       time.Time `json:"ts"`
	Hospital string    `json:"hospital"`
	Patient  string    `json:"patient,omitempty"`
	Data     any       `json:"data"`
}

// appendRiskEvent encodes a risk_updated envelope without reflection (it is published per
// sample). IDs never need JSON escaping (topics.ValidID).
func appendRiskEvent(b []byte, id string, ts time.Time, h, p string, r news2.Risk) []byte {
	b = append(b, `{"type":"risk_updated","id":"`...)
	b = append(b, id...)
	b = append(b, `","ts":"`...)
	b = ts.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","hospital":"`...)
	b = append(b, h...)
	b = append(b, `","patient":"`...)
	b = append(b, p...)
	b = append(b, `","data":`...)
	b = r.AppendJSON(b)
	return append(b, '}')
}

// AlertView is the alert as clients see it ([DESIGN.md section 5]).
type AlertView struct {
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

// View returns what clients see of an alert.
func View(a *store.Alert) AlertView {
	v := AlertView{
		ID: a.ID, Hospital: a.Hospital, Patient: a.Patient, Kind: a.Kind, Category: a.Category,
		Priority: a.Priority, State: a.State, EscalationLevel: a.EscalationLevel, Message: a.Message,
		RaisedAt: a.RaisedAt, UpdatedAt: a.UpdatedAt, AckedAt: a.AckedAt, ResolvedAt: a.ResolvedAt,
		Risk: a.Risk,
	}
	if a.AckedBy != "" {
		v.AckedBy = &a.AckedBy
	}
	if a.ResolvedBy != "" {
		v.ResolvedBy = &a.ResolvedBy
	}
	if len(v.Risk) == 0 {
		v.Risk = json.RawMessage("null")
	}
	return v
}

// AlertEvent is the data of a patient_alert event.
type AlertEvent struct {
	Action string    `json:"action"`
	Alert  AlertView `json:"alert"`
}

// DeviceStatus is the data of a device_status event.
type DeviceStatus struct {
	Device  string `json:"device"`
	Status  string `json:"status"` // "online" or "offline"
	Patient string `json:"patient,omitempty"`
}

// SampleRejected is the data of a sample_rejected event.
type SampleRejected struct {
	Device  string `json:"device"`
	Patient string `json:"patient"`
	Field   string `json:"field,omitempty"`
	Reason  string `json:"reason"`
}

// Broadcast is the data of a hospital_alert event.
type Broadcast struct {
	Priority string `json:"priority"`
	Message  string `json:"message"`
	By       string `json:"by"`
}
