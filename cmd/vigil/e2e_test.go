package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// critical is a sample scoring NEWS2 12 (high): RR 26 (3), SpO2 91 (3), SBP 95 (2), HR 130 (2),
// temperature 39.2 (2), alert, on air.
var critical = map[string]any{"hr": 130, "rr": 26, "spo2": 91, "sbp": 95, "temp": 39.2, "acvpu": "A", "o2": false}

// normal scores 0.
var normal = map[string]any{"hr": 72, "rr": 16, "spo2": 98, "sbp": 122, "temp": 36.8, "acvpu": "A", "o2": false}

// TestVitalsToAlerts follows a sample from a device (paho, QoS 1) to a browser (paho, JWT):
// refused samples get sample_rejected, a critical one raises a high NEWS2 alert with the right
// score, acknowledgement and recovery resolve it, and every change is in its history.
func TestVitalsToAlerts(t *testing.T) {
	h := newHarness(t)
	h.admit("h1", "p1")
	secret := h.device("h1", "mon-1", "p1")
	nurse := h.user("nurse.jo", "nurse", "h1")

	browser := h.mustConnect("browser-1", "whoever", []byte(nurse))
	browser.mustSubscribe("hospital/h1/patient/p1/#", "hospital/h1/alerts")
	dev := h.mustConnect("mon-1", "mon-1", []byte(secret))
	dev.mustSubscribe("hospital/h1/device/mon-1/#")

	// A malformed sample is refused with the reason, on the device's errors topic; the pipeline
	// goes on.
	if err := dev.publish("hospital/h1/patient/p1/vitals", `{"hr":"fast"}`, 1); err == nil {
		t.Fatal("publishing a malformed sample succeeded; want a PUBACK with reason 0x99")
	}
	rej := dev.await("sample_rejected", func(e envelope) bool { return e.Type == "sample_rejected" })
	var why struct{ Field, Reason string }
	json.Unmarshal(rej.Data, &why)
	if why.Field != "hr" || why.Reason == "" || rej.topic != "hospital/h1/device/mon-1/errors" {
		t.Fatalf("sample_rejected = %s on %s; want field hr on the device's errors topic", rej.Data, rej.topic)
	}

	if err := dev.publish("hospital/h1/patient/p1/vitals", vitals(critical), 1); err != nil {
		t.Fatalf("publish critical sample: %v", err)
	}
	risk := browser.await("risk_updated with score 12", func(e envelope) bool { return e.Type == "risk_updated" && riskOf(e).Score == 12 })
	if r := riskOf(risk); r.Level != "high" || !r.Complete || r.Contribs["rr"] != 3 || r.Contribs["spo2"] != 3 || r.Contribs["hr"] != 2 || risk.Patient != "p1" || risk.topic != "hospital/h1/patient/p1/risk" {
		t.Fatalf("risk_updated = %+v on %s", r, risk.topic)
	}
	raised := alertOf(browser.await("NEWS2 alert raised", isAlert("news2", "raised")))
	if raised.Alert.Priority != "high" || raised.Alert.State != "active" || raised.Alert.Message != "NEWS2 12 (high)" || raised.Alert.Category != "physiological" {
		t.Fatalf("raised alert = %+v", raised.Alert)
	}
	id := raised.Alert.ID

	// The sample acknowledged with QoS 1 is stored.
	var hist struct {
		Items []struct {
			HR  *float64
			Seq int64
		}
	}
	json.Unmarshal(h.must(200, "GET", "/api/v1/hospitals/h1/patients/p1/vitals", nurse, nil), &hist)
	if len(hist.Items) != 1 || hist.Items[0].HR == nil || *hist.Items[0].HR != 130 {
		t.Fatalf("vitals history = %+v; want the one accepted sample", hist.Items)
	}

	// Acknowledge over REST; twice is a conflict and publishes nothing.
	h.must(200, "POST", "/api/v1/hospitals/h1/alerts/"+id+"/ack", nurse, map[string]string{"note": "on my way"})
	acked := alertOf(browser.await("alert acknowledged", isAlert("news2", "acknowledged")))
	if acked.Alert.AckedBy == nil || *acked.Alert.AckedBy != "nurse.jo" || acked.Alert.State != "acknowledged" {
		t.Fatalf("acknowledged alert = %+v", acked.Alert)
	}
	status, body := h.do("POST", "/api/v1/hospitals/h1/alerts/"+id+"/ack", nurse, nil)
	if status != http.StatusConflict || !json.Valid(body) {
		t.Fatalf("second ack = %d %s; want 409 problem", status, body)
	}
	if !browser.quiet(300*time.Millisecond, isAlert("news2", "acknowledged")) {
		t.Fatal("a refused acknowledgement published an event")
	}

	// Recovery: the condition clears, the latched alert (acknowledged) resolves by itself.
	if err := dev.publish("hospital/h1/patient/p1/vitals", vitals(normal), 1); err != nil {
		t.Fatalf("publish normal sample: %v", err)
	}
	browser.await("risk back to 0", func(e envelope) bool { return e.Type == "risk_updated" && riskOf(e).Score == 0 })
	resolved := alertOf(browser.await("alert resolved", isAlert("news2", "resolved")))
	if resolved.Alert.State != "resolved" {
		t.Fatalf("resolved alert = %+v", resolved.Alert)
	}

	// The audit trail.
	var detail struct {
		State   string
		History []struct{ Action, Actor, Note string }
	}
	json.Unmarshal(h.must(200, "GET", "/api/v1/hospitals/h1/alerts/"+id, nurse, nil), &detail)
	want := []string{"raised", "acknowledged", "resolved"}
	if detail.State != "resolved" || len(detail.History) != len(want) {
		t.Fatalf("alert history = %+v; want %v", detail.History, want)
	}
	for i, w := range want {
		if detail.History[i].Action != w {
			t.Fatalf("history[%d] = %+v; want %s", i, detail.History[i], w)
		}
	}
	if detail.History[1].Actor != "nurse.jo" || detail.History[1].Note != "on my way" || detail.History[2].Actor != "vigil" {
		t.Fatalf("history actors = %+v", detail.History)
	}
}
