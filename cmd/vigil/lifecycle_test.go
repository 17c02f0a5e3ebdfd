package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestEscalation: an unacknowledged alert escalates on the hospital topic at each timeout, up
// to three levels, and acknowledging stops it.
func TestEscalation(t *testing.T) {
	h := newHarness(t, func(c *config) {
		c.EscalateAfter = escalation{high: 300 * time.Millisecond, medium: time.Hour, low: time.Hour}
	})
	h.admit("h1", "p1")
	secret := h.device("h1", "mon-1", "p1")
	ward := h.mustConnect("ward-screen", "x", []byte(h.admin))
	ward.mustSubscribe("hospital/h1/alerts")
	dev := h.mustConnect("mon-1", "mon-1", []byte(secret))
	if err := dev.publish("hospital/h1/patient/p1/vitals", vitals(critical), 1); err != nil {
		t.Fatal(err)
	}
	for level := 1; level <= 3; level++ {
		e := alertOf(ward.await(fmt.Sprintf("escalation to level %d", level), isAlert("news2", "escalated")))
		if e.Alert.EscalationLevel != level || e.Alert.State != "active" {
			t.Fatalf("escalation %d = %+v", level, e.Alert)
		}
	}
	if !ward.quiet(900*time.Millisecond, isAlert("news2", "escalated")) {
		t.Fatal("escalated beyond the maximum of 3 levels")
	}
}

// TestAcknowledgeStopsEscalation: escalation stops once someone acknowledges.
func TestAcknowledgeStopsEscalation(t *testing.T) {
	h := newHarness(t, func(c *config) {
		c.EscalateAfter = escalation{high: 400 * time.Millisecond, medium: time.Hour, low: time.Hour}
	})
	h.admit("h1", "p1")
	secret := h.device("h1", "mon-1", "p1")
	ward := h.mustConnect("ward-screen", "x", []byte(h.admin))
	ward.mustSubscribe("hospital/h1/#")
	dev := h.mustConnect("mon-1", "mon-1", []byte(secret))
	dev.publish("hospital/h1/patient/p1/vitals", vitals(critical), 1)
	raised := alertOf(ward.await("raised", isAlert("news2", "raised")))
	h.must(200, "POST", "/api/v1/hospitals/h1/alerts/"+raised.Alert.ID+"/ack", h.admin, nil)
	ward.await("acknowledged", isAlert("news2", "acknowledged"))
	if !ward.quiet(time.Second, isAlert("news2", "escalated")) {
		t.Fatal("an acknowledged alert escalated")
	}
}

// TestDeteriorationRaisesPriority: one open alert per patient and kind; a worse reading updates
// it and raises its priority instead of raising another.
func TestDeteriorationRaisesPriority(t *testing.T) {
	h := newHarness(t)
	h.admit("h1", "p1")
	secret := h.device("h1", "mon-1", "p1")
	b := h.mustConnect("b", "x", []byte(h.admin))
	b.mustSubscribe("hospital/h1/patient/p1/alerts")
	dev := h.mustConnect("mon-1", "mon-1", []byte(secret))

	// NEWS2 5 (medium): RR 22 (2), SpO2 95 (1), HR 95 (1), temp 38.5 (1).
	medium := map[string]any{"hr": 95, "rr": 22, "spo2": 95, "sbp": 120, "temp": 38.5, "acvpu": "A", "o2": false}
	dev.publish("hospital/h1/patient/p1/vitals", vitals(medium), 1)
	r := alertOf(b.await("medium NEWS2 alert", isAlert("news2", "raised")))
	if r.Alert.Priority != "medium" {
		t.Fatalf("raised %+v; want medium", r.Alert)
	}
	dev.publish("hospital/h1/patient/p1/vitals", vitals(critical), 1)
	u := alertOf(b.await("update to high", isAlert("news2", "updated")))
	if u.Alert.ID != r.Alert.ID || u.Alert.Priority != "high" {
		t.Fatalf("updated %+v; want alert %s raised to high", u.Alert, r.Alert.ID)
	}
	var list struct {
		Items []struct{ ID, Kind, State string }
	}
	json.Unmarshal(h.must(200, "GET", "/api/v1/hospitals/h1/alerts?state=active,acknowledged&kind=news2", h.admin, nil), &list)
	if len(list.Items) != 1 {
		t.Fatalf("open NEWS2 alerts = %+v; want exactly one", list.Items)
	}
}

// TestThresholdConditionDelay: a threshold alarm waits for its condition delay; a brief dip
// raises nothing.
func TestThresholdConditionDelay(t *testing.T) {
	h := newHarness(t, func(c *config) { c.ConditionDelay = 400 * time.Millisecond })
	h.admit("h1", "p1")
	secret := h.device("h1", "mon-1", "p1")
	b := h.mustConnect("b", "x", []byte(h.admin))
	b.mustSubscribe("hospital/h1/patient/p1/alerts")
	dev := h.mustConnect("mon-1", "mon-1", []byte(secret))
	ok := map[string]any{"spo2": 97}
	low := map[string]any{"spo2": 88}

	dev.publish("hospital/h1/patient/p1/vitals", vitals(low), 1)
	dev.publish("hospital/h1/patient/p1/vitals", vitals(ok), 1)
	if !b.quiet(800*time.Millisecond, isAlert("spo2_low", "raised")) {
		t.Fatal("a dip shorter than the condition delay raised an alarm")
	}
	dev.publish("hospital/h1/patient/p1/vitals", vitals(low), 1)
	a := alertOf(b.await("SpO2 low after the delay", isAlert("spo2_low", "raised")))
	if a.Alert.Priority != "medium" || a.Alert.Message != "SpO2 88 % below limit 90" {
		t.Fatalf("spo2_low alert = %+v", a.Alert)
	}
}

// TestDeviceOffline: a device dropped without DISCONNECT raises a technical alarm at once, and
// device_status goes offline; data coming back resolves it.
func TestDeviceOffline(t *testing.T) {
	h := newHarness(t)
	h.admit("h1", "p1")
	secret := h.device("h1", "mon-1", "p1")
	b := h.mustConnect("b", "x", []byte(h.admin))
	b.mustSubscribe("hospital/h1/#")
	dev := h.mustConnect("mon-1", "mon-1", []byte(secret))
	online := b.await("device online", func(e envelope) bool { return e.Type == "device_status" })
	if string(online.Data) != `{"device":"mon-1","status":"online","patient":"p1"}` || !json.Valid(online.Data) {
		t.Fatalf("device_status = %s", online.Data)
	}
	dev.publish("hospital/h1/patient/p1/vitals", vitals(normal), 1)
	dev.conn.Close() // killed: no DISCONNECT

	off := alertOf(b.await("device_offline raised", isAlert("device_offline", "raised")))
	if off.Alert.Category != "technical" || off.Alert.Priority != "medium" {
		t.Fatalf("device_offline alert = %+v", off.Alert)
	}
	b.await("device offline status", func(e envelope) bool {
		return e.Type == "device_status" && string(e.Data) == `{"device":"mon-1","status":"offline","patient":"p1"}`
	})
	dev = h.mustConnect("mon-1", "mon-1", []byte(secret))
	dev.publish("hospital/h1/patient/p1/vitals", vitals(normal), 1)
	b.await("device_offline resolved", isAlert("device_offline", "resolved"))
}

// TestBadSamplesDoNotStopOthers: a device flooding malformed and implausible samples gets
// sample_rejected and an implausible-values alarm, while another patient's alerts keep flowing.
func TestBadSamplesDoNotStopOthers(t *testing.T) {
	h := newHarness(t)
	h.admit("h1", "p1")
	h.admit("h1", "p2")
	bad := h.device("h1", "mon-bad", "p1")
	good := h.device("h1", "mon-good", "p2")
	b := h.mustConnect("b", "x", []byte(h.admin))
	b.mustSubscribe("hospital/h1/#")
	badDev := h.mustConnect("mon-bad", "mon-bad", []byte(bad))
	goodDev := h.mustConnect("mon-good", "mon-good", []byte(good))

	payloads := []string{`not json`, `{"hr":400}`, `{"spo2":130}`, `{"hr":72,"heart":1}`, `[]`, `{"hr":72,"hr":73}`, `{"temp":50}`, `{}`, `{"acvpu":"X"}`}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, p := range payloads {
			badDev.publish("hospital/h1/patient/p1/vitals", p, 1)
		}
	}()
	goodDev.publish("hospital/h1/patient/p2/vitals", vitals(critical), 1)
	b.await("the good patient's alert", func(e envelope) bool { return isAlert("news2", "raised")(e) && e.Patient == "p2" })
	wg.Wait()
	b.await("implausible-values alarm for p1", func(e envelope) bool { return isAlert("implausible", "raised")(e) && e.Patient == "p1" })

	var list struct {
		Items []struct{ Patient, Kind string }
	}
	json.Unmarshal(h.must(200, "GET", "/api/v1/hospitals/h1/alerts?patient=p1&kind=news2", h.admin, nil), &list)
	if len(list.Items) != 0 {
		t.Fatalf("refused samples raised NEWS2 alerts: %+v", list.Items)
	}
	status, body := h.do("GET", "/metrics", "", nil)
	if status != http.StatusOK || !containsAll(string(body), `vigil_ingest_samples_refused_total{field="hr"}`, `vigil_ingest_samples_refused_total{field="payload"}`) {
		t.Fatalf("metrics do not count refused samples by field:\n%s", grep(string(body), "refused"))
	}
}

// TestBroadcastStoredThenPublished: a broadcast is stored (listed newest first) and published
// as hospital_alert with the same ID.
func TestBroadcastStoredThenPublished(t *testing.T) {
	h := newHarness(t)
	b := h.mustConnect("b", "x", []byte(h.admin))
	b.mustSubscribe("hospital/h1/alerts")
	var first, second struct{ ID, Message, By, Priority string }
	json.Unmarshal(h.must(201, "POST", "/api/v1/hospitals/h1/broadcasts", h.admin, map[string]string{"priority": "high", "message": "Code blue, ward 3"}), &first)
	json.Unmarshal(h.must(201, "POST", "/api/v1/hospitals/h1/broadcasts", h.admin, map[string]string{"priority": "low", "message": "Fire drill at noon"}), &second)
	e := b.await("hospital_alert", func(e envelope) bool { return e.Type == "hospital_alert" && e.ID == first.ID })
	var data struct{ Priority, Message, By string }
	json.Unmarshal(e.Data, &data)
	if data.Message != "Code blue, ward 3" || data.By != "admin" || data.Priority != "high" {
		t.Fatalf("hospital_alert data = %+v", data)
	}
	var list struct {
		Items []struct{ ID, Message string }
	}
	json.Unmarshal(h.must(200, "GET", "/api/v1/hospitals/h1/broadcasts", h.admin, nil), &list)
	if len(list.Items) != 2 || list.Items[0].ID != second.ID || list.Items[1].Message != "Code blue, ward 3" {
		t.Fatalf("GET broadcasts = %+v; want both, newest first", list.Items)
	}
}
