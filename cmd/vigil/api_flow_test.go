package main

// End-to-end tests of the REST API's behaviour: the events each change publishes, lists and
// their filters, logins and users, devices and patients.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiWatcher is an MQTT subscriber of these tests. It keeps what it receives as it came off the
// wire (retain flag, empty payloads) until a test takes it.
type apiWatcher struct {
	name    string
	c       *client
	backlog []message
	marks   int
}

// apiWatch connects a browser with the admin's token and subscribes it to filters.
func (h *harness) apiWatch(t *testing.T, name string, filters ...string) *apiWatcher {
	t.Helper()
	c := h.mustConnect(name, "x", []byte(h.admin))
	for _, f := range filters {
		if code := c.subscribeCode(f); code >= 0x80 {
			t.Fatalf("%s: subscribe %s: reason 0x%02x", name, f, code)
		}
	}
	return &apiWatcher{name: name, c: c}
}

func (w *apiWatcher) take(pred func(message) bool) (message, bool) {
	for i, m := range w.backlog {
		if pred(m) {
			w.backlog = append(w.backlog[:i], w.backlog[i+1:]...)
			return m, true
		}
	}
	return message{}, false
}

// next returns the first message, received or to come within 10 s, that matches pred.
func (w *apiWatcher) next(t *testing.T, what string, pred func(message) bool) message {
	t.Helper()
	if m, ok := w.take(pred); ok {
		return m
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-w.c.msgs:
			if pred(m) {
				return m
			}
			w.backlog = append(w.backlog, m)
		case <-deadline:
			t.Fatalf("%s: no %s within 10 s", w.name, what)
		}
	}
}

// none fails the test when a message matching pred has come or comes within d.
func (w *apiWatcher) none(t *testing.T, d time.Duration, what string, pred func(message) bool) {
	t.Helper()
	if m, ok := w.take(pred); ok {
		t.Fatalf("%s: got %s on %s: %s; want none", w.name, what, m.Topic, m.Payload)
	}
	deadline := time.After(d)
	for {
		select {
		case m := <-w.c.msgs:
			if pred(m) {
				t.Fatalf("%s: got %s on %s: %s; want none", w.name, what, m.Topic, m.Payload)
			}
			w.backlog = append(w.backlog, m)
		case <-deadline:
			return
		}
	}
}

// settle returns once everything published before it has reached the watcher, which must be
// subscribed to hospital/h1/alerts: a broadcast marks the point. It returns (and forgets) what
// came before the mark and was not taken yet.
func (w *apiWatcher) settle(t *testing.T, h *harness) []message {
	t.Helper()
	w.marks++
	mark := fmt.Sprintf("mark %s %d", w.name, w.marks)
	h.mustAPI(t, 201, "POST", "/hospitals/h1/broadcasts", h.admin, map[string]string{"priority": "low", "message": mark})
	w.next(t, mark, onTopicWith("hospital/h1/alerts", "hospital_alert", func(d struct{ Message string }) bool { return d.Message == mark }))
	got := w.backlog
	w.backlog = nil
	return got
}

// nothing fails the test when a message matching pred has come since the last settle.
func (w *apiWatcher) nothing(t *testing.T, h *harness, what string, pred func(message) bool) {
	t.Helper()
	for _, m := range w.settle(t, h) {
		if pred(m) {
			t.Fatalf("%s: got %s on %s: %s; want none", w.name, what, m.Topic, m.Payload)
		}
	}
}

// envOf decodes an event envelope.
func envOf(t *testing.T, m message) envelope {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(m.Payload, &e); err != nil {
		t.Fatalf("message on %s is not an event: %s", m.Topic, m.Payload)
	}
	e.topic = m.Topic
	return e
}

// onTopic matches events of type typ on topic.
func onTopic(topic, typ string) func(message) bool {
	return func(m message) bool {
		var e struct{ Type string }
		return m.Topic == topic && json.Unmarshal(m.Payload, &e) == nil && e.Type == typ
	}
}

// onTopicWith matches events of type typ on topic whose data satisfies pred.
func onTopicWith[T any](topic, typ string, pred func(T) bool) func(message) bool {
	return func(m message) bool {
		var e struct {
			Type string
			Data T
		}
		return m.Topic == topic && json.Unmarshal(m.Payload, &e) == nil && e.Type == typ && pred(e.Data)
	}
}

func anyMsg(message) bool { return true }

func dataAs[T any](t *testing.T, e envelope) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(e.Data, &v); err != nil {
		t.Fatalf("%s data on %s: %s: %v", e.Type, e.topic, e.Data, err)
	}
	return v
}

type triageEvent struct {
	ID, Status, Complaint string
	Level                 int
	CreatedAt             time.Time `json:"created_at"`
}

func triageIDs(q []triageEvent) []string {
	var ids []string
	for _, c := range q {
		ids = append(ids, c.ID)
	}
	return ids
}

type apiAlertEvent struct {
	Action string
	Alert  struct {
		ID, Patient, Kind, Priority, State string
		AckedBy                            *string `json:"acked_by"`
		ResolvedBy                         *string `json:"resolved_by"`
	}
}

const apiQuiet = 250 * time.Millisecond

// TestAPIEvents checks that each change made through the API publishes its event on its topic,
// retained where DESIGN.md section 4 says so, and that refused requests publish nothing.
func TestAPIEvents(t *testing.T) {
	h := apiHarness(t)
	nurse := h.user("nurse.ev", "nurse", "h1")
	clin := h.user("cli.ev", "clinician", "h1")
	ward := h.apiWatch(t, "ward", "hospital/h1/#")
	riskPE1 := "hospital/h1/patient/pe1/risk"
	alertsPE1 := "hospital/h1/patient/pe1/alerts"

	t.Run("admission publishes no risk", func(t *testing.T) {
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients", nurse, map[string]any{"id": "pe1", "name": "Eve One"})
		// README: a patient never measured has no risk (null), not a reassuring 0.
		ward.nothing(t, h, "risk_updated for a patient never measured", onTopic(riskPE1, "risk_updated"))
	})

	t.Run("observation publishes retained risk", func(t *testing.T) {
		var r riskData
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/pe1/observations", nurse, normal).decodeInto(t, &r)
		e := envOf(t, ward.next(t, "risk_updated of pe1", onTopic(riskPE1, "risk_updated")))
		got := riskOf(e)
		if e.Hospital != "h1" || e.Patient != "pe1" || e.ID == "" || time.Since(e.TS) > time.Minute || got.Score != r.Score || got.Level != r.Level || !got.Complete || got.Score != 0 {
			t.Fatalf("risk_updated = %+v %+v; want h1/pe1 with the observation's risk %+v", e, got, r)
		}
		late := h.apiWatch(t, "late-risk", riskPE1)
		m := late.next(t, "retained risk of pe1", anyMsg)
		if !m.Retain || envOf(t, m).ID != e.ID {
			t.Fatalf("a new subscriber to %s got %s (retain %v); want the retained event %s", riskPE1, m.Payload, m.Retain, e.ID)
		}
	})

	var alertID string
	t.Run("acknowledge and resolve publish patient_alert", func(t *testing.T) {
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/pe1/observations", nurse, critical)
		raised := dataAs[apiAlertEvent](t, envOf(t, ward.next(t, "NEWS2 alert raised", onTopicWith(alertsPE1, "patient_alert", func(a apiAlertEvent) bool {
			return a.Action == "raised" && a.Alert.Kind == "news2"
		}))))
		alertID = raised.Alert.ID
		isAction := func(action string) func(message) bool {
			return onTopicWith(alertsPE1, "patient_alert", func(a apiAlertEvent) bool { return a.Action == action && a.Alert.ID == alertID })
		}

		h.mustAPI(t, 200, "POST", "/hospitals/h1/alerts/"+alertID+"/ack", nurse, map[string]string{"note": "on my way"})
		e := envOf(t, ward.next(t, "patient_alert acknowledged", isAction("acknowledged")))
		if a := dataAs[apiAlertEvent](t, e); a.Alert.State != "acknowledged" || a.Alert.AckedBy == nil || *a.Alert.AckedBy != "nurse.ev" || e.Patient != "pe1" {
			t.Fatalf("acknowledged event = %+v", a)
		}
		ward.settle(t, h)
		h.api(t, "POST", "/hospitals/h1/alerts/"+alertID+"/ack", nurse, nil).problem(t, http.StatusConflict)
		ward.nothing(t, h, "an event for a refused acknowledgement", isAction("acknowledged"))

		h.mustAPI(t, 200, "POST", "/hospitals/h1/alerts/"+alertID+"/resolve", nurse, map[string]string{"note": "treated"})
		e = envOf(t, ward.next(t, "patient_alert resolved", isAction("resolved")))
		if a := dataAs[apiAlertEvent](t, e); a.Alert.State != "resolved" || a.Alert.ResolvedBy == nil || *a.Alert.ResolvedBy != "nurse.ev" {
			t.Fatalf("resolved event = %+v", a)
		}
		ward.settle(t, h)
		h.api(t, "POST", "/hospitals/h1/alerts/"+alertID+"/resolve", nurse, nil).problem(t, http.StatusConflict)
		h.api(t, "POST", "/hospitals/h1/alerts/"+alertID+"/ack", nurse, nil).problem(t, http.StatusConflict)
		ward.nothing(t, h, "an event for a refused resolution", func(m message) bool { return isAction("resolved")(m) || isAction("acknowledged")(m) })
	})

	t.Run("broadcast publishes hospital_alert", func(t *testing.T) {
		var b struct{ ID, Hospital, Priority, Message, By string }
		h.mustAPI(t, 201, "POST", "/hospitals/h1/broadcasts", clin, map[string]string{"priority": "high", "message": "Code blue, ward 3"}).decodeInto(t, &b)
		e := envOf(t, ward.next(t, "hospital_alert", onTopicWith("hospital/h1/alerts", "hospital_alert", func(d struct{ Message string }) bool {
			return d.Message == "Code blue, ward 3"
		})))
		d := dataAs[struct{ Priority, Message, By string }](t, e)
		if e.ID != b.ID || e.Hospital != "h1" || d.Priority != "high" || d.Message != "Code blue, ward 3" || d.By != "cli.ev" || b.By != "cli.ev" || b.Hospital != "h1" {
			t.Fatalf("hospital_alert = %+v %+v; answer %+v", e, d, b)
		}
		ward.settle(t, h)
		h.api(t, "POST", "/hospitals/h1/broadcasts", clin, map[string]string{"priority": "urgent", "message": "x"}).problem(t, http.StatusBadRequest)
		ward.nothing(t, h, "a hospital_alert for a refused broadcast", onTopic("hospital/h1/alerts", "hospital_alert"))
		// Alerts are events, not state: nothing is retained for later subscribers.
		late := h.apiWatch(t, "late-alerts", "hospital/h1/alerts", alertsPE1)
		late.none(t, apiQuiet, "a retained alert", anyMsg)
	})

	t.Run("triage publishes the case and the queue, retained", func(t *testing.T) {
		caseTopic := func(id string) string { return "hospital/h1/triage/case/" + id }
		const queue = "hospital/h1/triage/queue"
		queueIs := func(ids ...string) func(message) bool {
			return onTopicWith(queue, "triage_updated", func(q struct{ Queue []triageEvent }) bool { return slices.Equal(triageIDs(q.Queue), ids) })
		}
		for _, c := range []struct {
			id    string
			level int
		}{{"tA", 3}, {"tB", 1}, {"tC", 3}, {"tD", 2}} {
			h.mustAPI(t, 201, "POST", "/hospitals/h1/triage", nurse, map[string]any{"id": c.id, "level": c.level, "complaint": "complaint " + c.id, "patient": "pe1"})
			e := envOf(t, ward.next(t, "triage_updated of "+c.id, onTopic(caseTopic(c.id), "triage_updated")))
			if d := dataAs[triageEvent](t, e); d.ID != c.id || d.Level != c.level || d.Status != "waiting" || e.Patient != "pe1" {
				t.Fatalf("triage_updated on %s = %+v", e.topic, d)
			}
		}
		// Most urgent level first, then oldest.
		ward.next(t, "queue tB tD tA tC", queueIs("tB", "tD", "tA", "tC"))

		h.mustAPI(t, 200, "PATCH", "/hospitals/h1/triage/tB", nurse, map[string]string{"status": "done"})
		if d := dataAs[triageEvent](t, envOf(t, ward.next(t, "tB done", onTopic(caseTopic("tB"), "triage_updated")))); d.Status != "done" {
			t.Fatalf("tB after PATCH status done: %+v", d)
		}
		ward.next(t, "queue without the done case", queueIs("tD", "tA", "tC"))
		h.mustAPI(t, 200, "PATCH", "/hospitals/h1/triage/tC", nurse, map[string]int{"level": 1})
		ward.next(t, "tC moved up", onTopic(caseTopic("tC"), "triage_updated"))
		ward.next(t, "queue tC tD tA", queueIs("tC", "tD", "tA"))

		ward.settle(t, h)
		h.api(t, "PATCH", "/hospitals/h1/triage/tA", nurse, map[string]int{"level": 9}).problem(t, http.StatusBadRequest)
		h.api(t, "PATCH", "/hospitals/h1/triage/nope", nurse, map[string]int{"level": 2}).problem(t, http.StatusNotFound)
		h.api(t, "POST", "/hospitals/h1/triage", nurse, map[string]any{"id": "tA", "level": 2, "complaint": "again"}).problem(t, http.StatusConflict)
		ward.nothing(t, h, "triage_updated for a refused change", func(m message) bool { return strings.HasPrefix(m.Topic, "hospital/h1/triage/") })

		late := h.apiWatch(t, "late-triage", "hospital/h1/triage/#")
		m := late.next(t, "retained queue", queueIs("tC", "tD", "tA"))
		if !m.Retain {
			t.Fatalf("queue snapshot for a new subscriber not retained: %s", m.Payload)
		}
		for _, id := range []string{"tA", "tB", "tC", "tD"} {
			if m := late.next(t, "retained case "+id, onTopic(caseTopic(id), "triage_updated")); !m.Retain {
				t.Fatalf("case %s for a new subscriber not retained", id)
			}
		}
	})

	t.Run("bed publishes bed_status_changed, retained", func(t *testing.T) {
		const topic = "hospital/h1/bed/bed-7"
		h.mustAPI(t, 200, "PUT", "/hospitals/h1/beds/bed-7", nurse, map[string]string{"status": "occupied", "patient": "pe1"})
		e := envOf(t, ward.next(t, "bed_status_changed", onTopic(topic, "bed_status_changed")))
		if d := dataAs[struct{ ID, Status, Patient string }](t, e); d.ID != "bed-7" || d.Status != "occupied" || d.Patient != "pe1" {
			t.Fatalf("bed_status_changed = %+v", d)
		}
		h.mustAPI(t, 200, "PUT", "/hospitals/h1/beds/bed-7", nurse, map[string]string{"status": "cleaning"})
		ward.next(t, "bed cleaning", onTopic(topic, "bed_status_changed"))
		ward.settle(t, h)
		h.api(t, "PUT", "/hospitals/h1/beds/bed-7", nurse, map[string]string{"status": "dirty"}).problem(t, http.StatusBadRequest)
		ward.nothing(t, h, "bed_status_changed for a refused change", onTopic(topic, "bed_status_changed"))
		m := h.apiWatch(t, "late-bed", topic).next(t, "retained bed", anyMsg)
		if d := dataAs[struct{ Status, Patient string }](t, envOf(t, m)); !m.Retain || d.Status != "cleaning" || d.Patient != "" {
			t.Fatalf("a new subscriber got %s (retain %v); want the latest status, cleaning, retained", m.Payload, m.Retain)
		}
	})

	t.Run("staff publishes staff_availability_changed, retained", func(t *testing.T) {
		const topic = "hospital/h1/staff/st-7"
		h.mustAPI(t, 200, "PUT", "/hospitals/h1/staff/st-7", nurse, map[string]any{"name": "Grace Rossi", "role": "doctor", "available": false, "on_shift": true})
		e := envOf(t, ward.next(t, "staff_availability_changed", onTopic(topic, "staff_availability_changed")))
		d := dataAs[struct {
			ID, Name, Role string
			Available      bool
			OnShift        bool `json:"on_shift"`
		}](t, e)
		if d.ID != "st-7" || d.Name != "Grace Rossi" || d.Role != "doctor" || d.Available || !d.OnShift {
			t.Fatalf("staff_availability_changed = %s; want st-7, Grace Rossi, doctor, not available, on shift", e.Data)
		}
		ward.settle(t, h)
		h.api(t, "PUT", "/hospitals/h1/staff/st-7", nurse, map[string]any{"role": "doctor", "available": true}).problem(t, http.StatusBadRequest)
		ward.nothing(t, h, "staff_availability_changed for a refused change", onTopic(topic, "staff_availability_changed"))
		if m := h.apiWatch(t, "late-staff", topic).next(t, "retained staff", anyMsg); !m.Retain || envOf(t, m).ID != e.ID {
			t.Fatalf("a new subscriber got %s (retain %v); want event %s retained", m.Payload, m.Retain, e.ID)
		}
	})

	t.Run("discharge resolves alerts, unassigns devices, clears the risk", func(t *testing.T) {
		const riskPD, alertsPD = "hospital/h1/patient/pd/risk", "hospital/h1/patient/pd/alerts"
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients", nurse, map[string]any{"id": "pd", "name": "Dee Parting", "limits": map[string]int{"delay_seconds": 0}})
		h.mustAPI(t, 201, "POST", "/hospitals/h1/devices", h.admin, map[string]string{"id": "mon-d"})
		h.mustAPI(t, 200, "PUT", "/hospitals/h1/devices/mon-d/assignment", nurse, map[string]string{"patient": "pd"})
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/pd/observations", nurse, critical)
		var open struct{ Items []struct{ ID, Kind string } }
		h.mustAPI(t, 200, "GET", "/hospitals/h1/alerts?patient=pd&state=active", nurse, nil).decodeInto(t, &open)
		if len(open.Items) < 2 {
			t.Fatalf("open alerts of pd = %+v; want several (NEWS2 and threshold alarms)", open.Items)
		}
		risk := h.apiWatch(t, "risk-pd", riskPD)
		if m := risk.next(t, "retained risk of pd", anyMsg); len(m.Payload) == 0 {
			t.Fatal("pd has no retained risk before discharge")
		}

		h.mustAPI(t, 204, "DELETE", "/hospitals/h1/patients/pd", nurse, nil)
		for _, a := range open.Items {
			ward.next(t, "resolved "+a.Kind, onTopicWith(alertsPD, "patient_alert", func(d apiAlertEvent) bool {
				return d.Action == "resolved" && d.Alert.ID == a.ID && d.Alert.ResolvedBy != nil && *d.Alert.ResolvedBy == "nurse.ev"
			}))
			var detail struct {
				State   string
				History []struct{ Action, Actor, Note string }
			}
			h.mustAPI(t, 200, "GET", "/hospitals/h1/alerts/"+a.ID, nurse, nil).decodeInto(t, &detail)
			last := detail.History[len(detail.History)-1]
			if detail.State != "resolved" || last.Action != "resolved" || last.Note != "patient discharged" || last.Actor != "nurse.ev" {
				t.Fatalf("alert %s (%s) after discharge: %s, last change %+v; want resolved by nurse.ev, note \"patient discharged\"", a.ID, a.Kind, detail.State, last)
			}
		}
		if m := risk.next(t, "the risk cleared", func(m message) bool { return len(m.Payload) == 0 }); m.Topic != riskPD {
			t.Fatalf("empty message on %s", m.Topic)
		}
		var devs struct {
			Items []struct {
				ID      string
				Patient *string
			}
		}
		h.mustAPI(t, 200, "GET", "/hospitals/h1/devices", nurse, nil).decodeInto(t, &devs)
		for _, d := range devs.Items {
			if d.ID == "mon-d" && d.Patient != nil {
				t.Fatalf("mon-d after discharge assigned to %s; want unassigned", *d.Patient)
			}
		}
		h.api(t, "GET", "/hospitals/h1/patients/pd", nurse, nil).problem(t, http.StatusNotFound)
		h.apiWatch(t, "late-pd", riskPD).none(t, apiQuiet, "a retained risk of a discharged patient", anyMsg)
		if m := h.apiWatch(t, "late-pe1", riskPE1).next(t, "retained risk of pe1", anyMsg); !m.Retain || len(m.Payload) == 0 {
			t.Fatalf("pe1 lost its retained risk: %q", m.Payload)
		}
		ward.settle(t, h)
		h.api(t, "DELETE", "/hospitals/h1/patients/pd", nurse, nil).problem(t, http.StatusNotFound)
		ward.nothing(t, h, "an event for a refused discharge", func(m message) bool { return strings.HasPrefix(m.Topic, "hospital/h1/patient/pd/") })
	})
}

// walkPages pages through a list with ?limit=n (query: more parameters) and returns the pages.
func (h *harness) walkPages(t *testing.T, path, token string, limit int) []apiPage {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var pages []apiPage
	cursor := ""
	for {
		q := sep + "limit=" + strconv.Itoa(limit)
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var p apiPage
		h.mustAPI(t, 200, "GET", path+q, token, nil).decodeInto(t, &p)
		if p.Items == nil || p.NextCursor == nil {
			t.Fatalf("GET %s%s: items or next_cursor missing", path, q)
		}
		pages = append(pages, p)
		if *p.NextCursor == "" {
			return pages
		}
		if len(p.Items) != limit {
			t.Fatalf("GET %s%s: a page of %d items with a next cursor; want %d", path, q, len(p.Items), limit)
		}
		if len(pages) > 100 {
			t.Fatalf("GET %s: more than 100 pages", path)
		}
		cursor = *p.NextCursor
	}
}

func itemKey(t *testing.T, item json.RawMessage, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(item, &m); err != nil {
		t.Fatalf("list item %s: %v", item, err)
	}
	return fmt.Sprint(m[key])
}

// TestAPIPagination pages through every list: no duplicates, no gaps, the documented order,
// and bad limits and cursors refused naming the parameter.
func TestAPIPagination(t *testing.T) {
	h := apiHarness(t)
	for _, u := range []string{"u5", "u1", "u3", "u2", "u4"} {
		h.mustAPI(t, 201, "POST", "/users", h.admin, map[string]any{"username": u, "password": "long-enough-1", "role": "viewer", "hospitals": []string{"h1"}})
	}
	for _, p := range []string{"p07", "p03", "p01", "p05", "p02", "p06", "p04"} {
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients", h.admin, map[string]any{"id": p, "name": "Patient " + p, "limits": map[string]int{"delay_seconds": 0}})
	}
	h.admit("h2", "p01")
	// 12 alerts of three kinds: a critical observation raises news2, hr_high and rr_high.
	for _, p := range []string{"p01", "p02", "p03", "p04"} {
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/"+p+"/observations", h.admin, critical)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 5 {
		ts := now.Add(time.Duration(i-5) * time.Minute).Format(time.RFC3339Nano)
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/p05/observations", h.admin, map[string]any{"ts": ts, "hr": 70 + i})
		h.mustAPI(t, 201, "POST", "/hospitals/h1/triage", h.admin, map[string]any{"id": fmt.Sprintf("t%d", 5-i), "level": 1 + i, "complaint": "c"})
		h.mustAPI(t, 200, "PUT", fmt.Sprintf("/hospitals/h1/beds/b%d", 5-i), h.admin, map[string]string{"status": "free"})
		h.mustAPI(t, 200, "PUT", fmt.Sprintf("/hospitals/h1/staff/s%d", 5-i), h.admin, map[string]any{"role": "nurse", "available": true, "on_shift": true})
		h.mustAPI(t, 201, "POST", "/hospitals/h1/devices", h.admin, map[string]string{"id": fmt.Sprintf("mon-%d", 5-i)})
	}

	lists := []struct {
		name, path, key string
		n               int
		limits          []int
		order           func(prev, next string) bool // the documented order of consecutive keys
	}{
		{"users by name", "/users", "username", 6, []int{2, 4}, func(a, b string) bool { return a < b }},
		{"devices", "/hospitals/h1/devices", "id", 5, []int{2}, func(a, b string) bool { return a < b }},
		{"patients by id", "/hospitals/h1/patients", "id", 7, []int{3, 1, 7}, func(a, b string) bool { return a < b }},
		{"alerts newest first", "/hospitals/h1/alerts", "id", 12, []int{3, 5, 12}, func(a, b string) bool { return a > b }},
		{"filtered alerts", "/hospitals/h1/alerts?kind=news2", "id", 4, []int{3}, func(a, b string) bool { return a > b }},
		{"vitals oldest first", "/hospitals/h1/patients/p05/vitals", "ts", 5, []int{2}, func(a, b string) bool { return a < b }},
		{"triage", "/hospitals/h1/triage", "id", 5, []int{2}, nil},
		{"beds", "/hospitals/h1/beds", "id", 5, []int{2}, nil},
		{"staff", "/hospitals/h1/staff", "id", 5, []int{2}, nil},
	}
	for _, l := range lists {
		var all apiPage
		h.mustAPI(t, 200, "GET", l.path, h.admin, nil).decodeInto(t, &all)
		var want []string
		for _, it := range all.Items {
			want = append(want, itemKey(t, it, l.key))
		}
		if len(want) != l.n || all.NextCursor == nil || *all.NextCursor != "" {
			t.Fatalf("GET %s = %d items %v, next_cursor %v; want %d on one page", l.path, len(want), want, all.NextCursor, l.n)
		}
		for i := 1; l.order != nil && i < len(want); i++ {
			if !l.order(want[i-1], want[i]) {
				t.Fatalf("GET %s: %v not in the documented order", l.path, want)
			}
		}
		for _, limit := range l.limits {
			t.Run(l.name+"/limit "+strconv.Itoa(limit), func(t *testing.T) {
				pages := h.walkPages(t, l.path, h.admin, limit)
				if wantPages := (l.n + limit - 1) / limit; len(pages) != wantPages {
					t.Fatalf("GET %s?limit=%d: %d pages; want %d", l.path, limit, len(pages), wantPages)
				}
				var got []string
				for _, p := range pages {
					for _, it := range p.Items {
						got = append(got, itemKey(t, it, l.key))
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("GET %s?limit=%d pages: %v; want %v (no duplicates, no gaps, same order)", l.path, limit, got, want)
				}
			})
		}
	}

	t.Run("alerts carry their time order", func(t *testing.T) {
		var all struct {
			Items []struct {
				ID       string
				Kind     string
				RaisedAt time.Time `json:"raised_at"`
			}
		}
		h.mustAPI(t, 200, "GET", "/hospitals/h1/alerts", h.admin, nil).decodeInto(t, &all)
		kinds := map[string]int{}
		for i, a := range all.Items {
			kinds[a.Kind]++
			if i > 0 && a.RaisedAt.After(all.Items[i-1].RaisedAt) {
				t.Fatalf("alert %s raised at %v listed after %s raised at %v; want newest first", a.ID, a.RaisedAt, all.Items[i-1].ID, all.Items[i-1].RaisedAt)
			}
		}
		if kinds["news2"] != 4 || kinds["hr_high"] != 4 || kinds["rr_high"] != 4 {
			t.Fatalf("alert kinds %v; want 4 each of news2, hr_high, rr_high", kinds)
		}
	})

	var patientsCursor string
	{
		var p apiPage
		h.mustAPI(t, 200, "GET", "/hospitals/h1/patients?limit=2", h.admin, nil).decodeInto(t, &p)
		patientsCursor = *p.NextCursor
	}
	bad := []struct {
		name, query, field string
	}{
		{"limit 0", "limit=0", "limit"},
		{"limit 1001", "limit=1001", "limit"},
		{"limit -1", "limit=-1", "limit"},
		{"limit x", "limit=x", "limit"},
		{"limit 2.5", "limit=2.5", "limit"},
		{"garbage cursor", "cursor=" + url.QueryEscape("!!not a cursor!!"), "cursor"},
		{"base64 cursor of nothing", "cursor=Zm9vYmFy", "cursor"},
		{"cursor too long", "cursor=" + strings.Repeat("A", 513), "cursor"},
		{"another list's cursor", "cursor=" + url.QueryEscape(patientsCursor), "cursor"},
	}
	for _, l := range lists {
		for _, b := range bad {
			if b.name == "another list's cursor" && l.path == "/hospitals/h1/patients" {
				continue
			}
			t.Run(l.name+"/"+b.name, func(t *testing.T) {
				sep := "?"
				if strings.Contains(l.path, "?") {
					sep = "&"
				}
				p := h.api(t, "GET", l.path+sep+b.query, h.admin, nil).problem(t, http.StatusBadRequest)
				if p.field() != b.field {
					t.Fatalf("GET %s%s%s: problem names %q (%s); want %q", l.path, sep, b.query, p.field(), p.Detail, b.field)
				}
			})
		}
	}
	t.Run("another hospital's cursor", func(t *testing.T) {
		p := h.api(t, "GET", "/hospitals/h2/patients?cursor="+url.QueryEscape(patientsCursor), h.admin, nil).problem(t, http.StatusBadRequest)
		if p.field() != "cursor" {
			t.Fatalf("h1's cursor on h2's patients: problem names %q; want cursor", p.field())
		}
	})
}

// TestAPIAlertFilters combines the filters of GET /alerts: each answer is exactly the alerts
// of the hospital that match, newest first.
func TestAPIAlertFilters(t *testing.T) {
	h := apiHarness(t)
	admit := func(h1 string, p string) {
		h.mustAPI(t, 201, "POST", "/hospitals/"+h1+"/patients", h.admin, map[string]any{"id": p, "name": p, "limits": map[string]int{"delay_seconds": 0}})
	}
	observe := func(hosp, p string, v map[string]any) {
		h.mustAPI(t, 201, "POST", "/hospitals/"+hosp+"/patients/"+p+"/observations", h.admin, v)
	}
	alertOfKind := func(p, kind string) string {
		var l struct{ Items []struct{ ID string } }
		h.mustAPI(t, 200, "GET", "/hospitals/h1/alerts?patient="+p+"&kind="+kind, h.admin, nil).decodeInto(t, &l)
		if len(l.Items) != 1 {
			t.Fatalf("alerts of %s of kind %s: %+v; want one", p, kind, l.Items)
		}
		return l.Items[0].ID
	}
	for _, p := range []string{"f1", "f2", "f3", "f4"} {
		admit("h1", p)
	}
	admit("h2", "f1")
	observe("h2", "f1", critical)                   // another hospital's alerts never show
	observe("h1", "f1", critical)                   // news2 high, hr_high medium, rr_high medium
	observe("h1", "f2", map[string]any{"rr": 8})    // NEWS2 3 from one parameter: low-medium, low priority
	observe("h1", "f3", map[string]any{"spo2": 84}) // news2 low, spo2_low high (84 < 90 - 5)
	time.Sleep(5 * time.Millisecond)
	since := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	observe("h1", "f4", map[string]any{"hr": 95, "rr": 22, "spo2": 95, "sbp": 120, "temp": 38.5, "acvpu": "A", "o2": false}) // NEWS2 5: medium
	h.mustAPI(t, 200, "POST", "/hospitals/h1/alerts/"+alertOfKind("f1", "news2")+"/ack", h.admin, nil)
	h.mustAPI(t, 200, "POST", "/hospitals/h1/alerts/"+alertOfKind("f1", "rr_high")+"/resolve", h.admin, nil)
	h.mustAPI(t, 200, "POST", "/hospitals/h1/alerts/"+alertOfKind("f3", "spo2_low")+"/ack", h.admin, nil)

	type alert struct {
		ID, Hospital, Patient, Kind, Priority, State string
		RaisedAt                                     time.Time `json:"raised_at"`
	}
	var all struct{ Items []alert }
	h.mustAPI(t, 200, "GET", "/hospitals/h1/alerts", h.admin, nil).decodeInto(t, &all)
	if len(all.Items) != 7 {
		t.Fatalf("alerts of h1: %+v; want 7", all.Items)
	}
	is := func(vals ...string) func(string) bool { return func(v string) bool { return slices.Contains(vals, v) } }
	anything := func(string) bool { return true }
	sinceQ := url.QueryEscape(since.Format(time.RFC3339Nano))
	future := time.Now().Add(time.Hour).UTC()
	cases := []struct {
		name, query                    string
		state, priority, patient, kind func(string) bool
		since                          time.Time // raised at or after (zero: any time)
		n                              int
	}{
		{"state active", "state=active", is("active"), anything, anything, anything, time.Time{}, 4},
		{"state acknowledged", "state=acknowledged", is("acknowledged"), anything, anything, anything, time.Time{}, 2},
		{"state resolved", "state=resolved", is("resolved"), anything, anything, anything, time.Time{}, 1},
		{"open", "state=active,acknowledged", is("active", "acknowledged"), anything, anything, anything, time.Time{}, 6},
		{"open, spaced", "state=active,%20acknowledged", is("active", "acknowledged"), anything, anything, anything, time.Time{}, 6},
		{"priority high", "priority=high", anything, is("high"), anything, anything, time.Time{}, 2},
		{"priority medium or low", "priority=medium,low", anything, is("medium", "low"), anything, anything, time.Time{}, 5},
		{"patient", "patient=f1", anything, anything, is("f1"), anything, time.Time{}, 3},
		{"kind", "kind=news2", anything, anything, anything, is("news2"), time.Time{}, 4},
		{"since", "since=" + sinceQ, anything, anything, anything, anything, since, 1},
		{"active high", "state=active&priority=high", is("active"), is("high"), anything, anything, time.Time{}, 0},
		{"acknowledged high", "state=acknowledged&priority=high", is("acknowledged"), is("high"), anything, anything, time.Time{}, 2},
		{"patient, state and kind", "patient=f1&state=resolved&kind=rr_high", is("resolved"), anything, is("f1"), is("rr_high"), time.Time{}, 1},
		{"kind and since", "kind=news2&since=" + sinceQ, anything, anything, anything, is("news2"), since, 1},
		{"patient and priority", "patient=f3&priority=high", anything, is("high"), is("f3"), anything, time.Time{}, 1},
		{"everything", "state=active&priority=medium&patient=f4&kind=news2&since=" + sinceQ, is("active"), is("medium"), is("f4"), is("news2"), since, 1},
		{"unknown kind", "kind=nothing_like_it", anything, anything, anything, is("nothing_like_it"), time.Time{}, 0},
		{"patient of another hospital only", "patient=nobody", anything, anything, is("nobody"), anything, time.Time{}, 0},
		{"since in the future", "since=" + url.QueryEscape(future.Format(time.RFC3339Nano)), anything, anything, anything, anything, future, 0},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, a := range all.Items {
				if tt.state(a.State) && tt.priority(a.Priority) && tt.patient(a.Patient) && tt.kind(a.Kind) && !a.RaisedAt.Before(tt.since) {
					want = append(want, a.ID)
				}
			}
			var got struct{ Items []alert }
			h.mustAPI(t, 200, "GET", "/hospitals/h1/alerts?"+tt.query, h.admin, nil).decodeInto(t, &got)
			var ids []string
			for _, a := range got.Items {
				ids = append(ids, a.ID)
				if a.Hospital != "h1" {
					t.Fatalf("GET /alerts?%s lists alert %s of hospital %s", tt.query, a.ID, a.Hospital)
				}
			}
			if len(ids) != tt.n || !slices.Equal(ids, want) {
				t.Fatalf("GET /hospitals/h1/alerts?%s = %v; want %v (%d)", tt.query, ids, want, tt.n)
			}
		})
	}
	for _, tt := range []struct{ name, query, field string }{
		{"unknown state", "state=open", "state"},
		{"one unknown state of two", "state=active,closed", "state"},
		{"unknown priority", "priority=urgent", "priority"},
		{"bad patient", "patient=" + url.QueryEscape("a/b"), "patient"},
		{"patient of 65 characters", "patient=" + strings.Repeat("p", 65), "patient"},
		{"bad kind", "kind=" + url.QueryEscape("news2/x"), "kind"},
		{"since not a time", "since=yesterday", "since"},
		{"since without a zone", "since=2026-11-25T10:00:00", "since"},
	} {
		t.Run("bad/"+tt.name, func(t *testing.T) {
			p := h.api(t, "GET", "/hospitals/h1/alerts?"+tt.query, h.admin, nil).problem(t, http.StatusBadRequest)
			if p.field() != tt.field {
				t.Fatalf("GET /hospitals/h1/alerts?%s: problem names %q; want %q", tt.query, p.field(), tt.field)
			}
		})
	}
}

// TestAPIAuth covers logins, the login rate limit, the caller's claims and user management.
func TestAPIAuth(t *testing.T) {
	h := apiHarness(t)
	h.mustAPI(t, 201, "POST", "/users", h.admin, map[string]any{"username": "ann", "password": "ann-password", "role": "clinician", "hospitals": []string{"h1", "h2"}})
	h.mustAPI(t, 201, "POST", "/users", h.admin, map[string]any{"username": "rl.user", "password": "rl-password", "role": "viewer", "hospitals": []string{"h1"}})

	t.Run("login", func(t *testing.T) {
		var res struct {
			Token     string
			ExpiresAt time.Time `json:"expires_at"`
			User      struct {
				Username  string
				Role      string
				Hospitals []string
			}
		}
		a := h.mustAPI(t, 200, "POST", "/auth/login", "", map[string]string{"username": "ann", "password": "ann-password"})
		a.decodeInto(t, &res)
		if res.Token == "" || res.User.Username != "ann" || res.User.Role != "clinician" || !slices.Equal(res.User.Hospitals, []string{"h1", "h2"}) ||
			res.ExpiresAt.Sub(time.Now()) < 59*time.Minute || res.ExpiresAt.Sub(time.Now()) > 61*time.Minute {
			t.Fatalf("login answer = %s; want a token for ann, clinician of h1 and h2, expiring in 1 h", a.body)
		}
		if bytes.Contains(bytes.ToLower(a.body), []byte("password")) || bytes.Contains(a.body, []byte("$2")) {
			t.Fatalf("login answer carries a password or hash: %s", a.body)
		}

		var me struct {
			User struct {
				Username  string
				Role      string
				Hospitals []string
			}
			Claims struct {
				Sub, Role, Iss string
				Hospitals      []string
				Aud            []string
				Iat, Exp       int64
			}
		}
		h.mustAPI(t, 200, "GET", "/auth/me", res.Token, nil).decodeInto(t, &me)
		c := me.Claims
		now := time.Now().Unix()
		if c.Sub != "ann" || c.Role != "clinician" || !slices.Equal(c.Hospitals, []string{"h1", "h2"}) || c.Iss != "vigil" || !slices.Equal(c.Aud, []string{"vigil"}) ||
			c.Iat > now || c.Iat < now-60 || c.Exp != c.Iat+3600 || c.Exp != res.ExpiresAt.Unix() || me.User.Username != "ann" || me.User.Role != "clinician" {
			t.Fatalf("GET /auth/me = %+v; want ann's claims (iss and aud vigil, 1 h lifetime)", me)
		}
		var adminMe struct{ Claims struct{ Hospitals []string } }
		h.mustAPI(t, 200, "GET", "/auth/me", h.admin, nil).decodeInto(t, &adminMe)
		if adminMe.Claims.Hospitals == nil || len(adminMe.Claims.Hospitals) != 0 {
			t.Fatalf("admin's hospitals claim = %v; want []", adminMe.Claims.Hospitals)
		}
	})

	t.Run("refused logins", func(t *testing.T) {
		for _, tt := range []struct {
			name, user, pass string
		}{
			{"wrong password", "ann", "not-her-password"},
			{"unknown user", "nobody", "whatever-pass"},
			{"username breaking the ID rule", "a/b", "whatever-pass"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				a := h.api(t, "POST", "/auth/login", "", map[string]string{"username": tt.user, "password": tt.pass})
				p := a.problem(t, http.StatusUnauthorized)
				if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") || strings.Contains(p.Detail, tt.pass) {
					t.Fatalf("login %s: WWW-Authenticate %q, detail %q", tt.name, a.header.Get("WWW-Authenticate"), p.Detail)
				}
			})
		}
		for _, tt := range []struct{ name, token string }{
			{"garbage token", "garbage"},
			{"alg none", algNone("admin")},
			{"signed by another key", h.mint(t, []byte("another-secret-another-secret-0123456789"), "admin", "admin", nil, time.Hour, 0)},
			{"expired", h.mint(t, nil, "admin", "admin", nil, time.Minute, -2*time.Hour)},
		} {
			t.Run(tt.name, func(t *testing.T) {
				a := h.api(t, "GET", "/auth/me", tt.token, nil)
				a.problem(t, http.StatusUnauthorized)
				if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("GET /auth/me with a %s: WWW-Authenticate %q", tt.name, a.header.Get("WWW-Authenticate"))
				}
			})
		}
		a := h.api(t, "GET", "/auth/me", "", nil, "Authorization", "Basic YWRtaW46eA==")
		a.problem(t, http.StatusUnauthorized)
	})

	t.Run("rate limit", func(t *testing.T) {
		for i := 1; i <= 5; i++ {
			h.api(t, "POST", "/auth/login", "", map[string]string{"username": "rl.user", "password": fmt.Sprintf("wrong-%d-pass", i)}).problem(t, http.StatusUnauthorized)
		}
		for _, pass := range []string{"wrong-6-pass", "rl-password"} {
			a := h.api(t, "POST", "/auth/login", "", map[string]string{"username": "rl.user", "password": pass})
			a.problem(t, http.StatusTooManyRequests)
			ra, err := strconv.Atoi(a.header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 301 {
				t.Fatalf("login after 5 failures: Retry-After %q; want 1 to 301 seconds", a.header.Get("Retry-After"))
			}
		}
		// The limit is the user's: others still log in.
		h.mustAPI(t, 200, "POST", "/auth/login", "", map[string]string{"username": "ann", "password": "ann-password"})
	})

	t.Run("create users", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			body   map[string]any
			status int
			field  string
		}{
			{"admin without hospitals", map[string]any{"username": "root2", "password": "long-enough-1", "role": "admin", "hospitals": []string{}}, 201, ""},
			{"nurse of two hospitals", map[string]any{"username": "nina", "password": "long-enough-1", "role": "nurse", "hospitals": []string{"h1", "h2"}}, 201, ""},
			{"duplicate username", map[string]any{"username": "ann", "password": "long-enough-1", "role": "viewer", "hospitals": []string{"h1"}}, 409, ""},
			{"password of 7 bytes", map[string]any{"username": "u7", "password": "1234567", "role": "viewer", "hospitals": []string{"h1"}}, 400, "password"},
			{"password of 73 bytes", map[string]any{"username": "u7", "password": strings.Repeat("p", 73), "role": "viewer", "hospitals": []string{"h1"}}, 400, "password"},
			{"bad role", map[string]any{"username": "u7", "password": "long-enough-1", "role": "root", "hospitals": []string{"h1"}}, 400, "role"},
			{"bad hospital ID", map[string]any{"username": "u7", "password": "long-enough-1", "role": "viewer", "hospitals": []string{"h/1"}}, 400, "hospitals[0]"},
			{"duplicate hospital", map[string]any{"username": "u7", "password": "long-enough-1", "role": "viewer", "hospitals": []string{"h1", "h1"}}, 400, "hospitals[1]"},
			{"viewer without hospitals", map[string]any{"username": "u7", "password": "long-enough-1", "role": "viewer"}, 400, "hospitals"},
			{"bad username", map[string]any{"username": "Ann Smith", "password": "long-enough-1", "role": "viewer", "hospitals": []string{"h1"}}, 400, "username"},
			{"empty username", map[string]any{"username": "", "password": "long-enough-1", "role": "viewer", "hospitals": []string{"h1"}}, 400, "username"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				a := h.api(t, "POST", "/users", h.admin, tt.body)
				if tt.status == 201 {
					if a.status != 201 || bytes.Contains(bytes.ToLower(a.body), []byte("password")) {
						t.Fatalf("%s = %d %s; want 201 without the password", a.what, a.status, a.body)
					}
					h.mustAPI(t, 200, "POST", "/auth/login", "", map[string]any{"username": tt.body["username"], "password": tt.body["password"]})
					return
				}
				if p := a.problem(t, tt.status); p.field() != tt.field {
					t.Fatalf("POST /users (%s): problem names %q (%s); want %q", tt.name, p.field(), p.Detail, tt.field)
				}
			})
		}
	})

	t.Run("list users", func(t *testing.T) {
		a := h.mustAPI(t, 200, "GET", "/users", h.admin, nil)
		for _, leak := range []string{"password", "hash", "$2a$", "$2b$"} {
			if bytes.Contains(bytes.ToLower(a.body), []byte(strings.ToLower(leak))) {
				t.Fatalf("GET /users contains %q: %s", leak, a.body)
			}
		}
		var l struct {
			Items []struct {
				Username, Role string
				Hospitals      []string
				CreatedAt      *time.Time `json:"created_at"`
			}
		}
		a.decodeInto(t, &l)
		got := map[string]string{}
		for _, u := range l.Items {
			got[u.Username] = u.Role + " " + strings.Join(u.Hospitals, ",")
			if u.CreatedAt == nil || u.Hospitals == nil {
				t.Fatalf("user %s: %+v; want created_at and a hospitals list", u.Username, u)
			}
		}
		want := map[string]string{"admin": "admin ", "ann": "clinician h1,h2", "rl.user": "viewer h1", "root2": "admin ", "nina": "nurse h1,h2"}
		for name, w := range want {
			if got[name] != w {
				t.Fatalf("GET /users: %s is %q; want %q (all: %v)", name, got[name], w, got)
			}
		}
	})
}

type apiDevice struct {
	ID, Hospital, Model string
	Patient             *string
	Online              bool
	Secret              string
}

// TestAPIDevices covers provisioning, secrets, online state and assignment.
func TestAPIDevices(t *testing.T) {
	h := apiHarness(t)
	h.admit("h1", "pa")
	h.admit("h2", "qa")
	nurse := h.user("nurse.dev", "nurse", "h1")

	list := func(t *testing.T) map[string]apiDevice {
		t.Helper()
		a := h.mustAPI(t, 200, "GET", "/hospitals/h1/devices", nurse, nil)
		if bytes.Contains(a.body, []byte(`"secret"`)) {
			t.Fatalf("GET /hospitals/h1/devices shows secrets: %s", a.body)
		}
		var l struct{ Items []apiDevice }
		a.decodeInto(t, &l)
		out := map[string]apiDevice{}
		for _, d := range l.Items {
			out[d.ID] = d
		}
		return out
	}
	online := func(t *testing.T, id string, want bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for list(t)[id].Online != want {
			if time.Now().After(deadline) {
				t.Fatalf("device %s online = %v after 5 s; want %v", id, !want, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	var secret string
	t.Run("provision", func(t *testing.T) {
		a := h.mustAPI(t, 201, "POST", "/hospitals/h1/devices", h.admin, map[string]string{"id": "mon-a", "model": "Philips MX450"})
		var d apiDevice
		a.decodeInto(t, &d)
		if a.header.Get("Cache-Control") != "no-store" || len(d.Secret) < 40 || d.ID != "mon-a" || d.Hospital != "h1" || d.Model != "Philips MX450" || d.Patient != nil || d.Online {
			t.Fatalf("POST devices = %s, Cache-Control %q; want the new device with its secret, not to be stored", a.body, a.header.Get("Cache-Control"))
		}
		secret = d.Secret
		if got, ok := list(t)["mon-a"]; !ok || got.Online || got.Patient != nil || got.Model != "Philips MX450" {
			t.Fatalf("listed mon-a = %+v", got)
		}
		h.api(t, "POST", "/hospitals/h1/devices", h.admin, map[string]string{"id": "mon-a"}).problem(t, http.StatusConflict)
		h.api(t, "POST", "/hospitals/h2/devices", h.admin, map[string]string{"id": "mon-a"}).problem(t, http.StatusConflict)
		h.mustAPI(t, 201, "POST", "/hospitals/h2/devices", h.admin, map[string]string{"id": "mon-h2"})
	})

	t.Run("online while connected", func(t *testing.T) {
		c := h.mustConnect("mon-a", "mon-a", []byte(secret))
		online(t, "mon-a", true)
		c.close()
		online(t, "mon-a", false)
	})

	t.Run("assignment", func(t *testing.T) {
		for _, tt := range []struct {
			name, patient string
			status        int
		}{
			{"not admitted", "nobody", 400},
			{"patient of another hospital", "qa", 400},
			{"bad patient ID", "p#1", 400},
		} {
			t.Run(tt.name, func(t *testing.T) {
				p := h.api(t, "PUT", "/hospitals/h1/devices/mon-a/assignment", nurse, map[string]string{"patient": tt.patient}).problem(t, tt.status)
				if p.field() != "patient" {
					t.Fatalf("assign mon-a to %s: problem names %q; want patient", tt.patient, p.field())
				}
			})
		}
		var d apiDevice
		h.mustAPI(t, 200, "PUT", "/hospitals/h1/devices/mon-a/assignment", nurse, map[string]string{"patient": "pa"}).decodeInto(t, &d)
		if d.Patient == nil || *d.Patient != "pa" || d.Secret != "" {
			t.Fatalf("assign mon-a to pa = %+v", d)
		}
		var p struct{ Devices []string }
		h.mustAPI(t, 200, "GET", "/hospitals/h1/patients/pa", nurse, nil).decodeInto(t, &p)
		if !slices.Equal(p.Devices, []string{"mon-a"}) {
			t.Fatalf("pa's devices = %v; want [mon-a]", p.Devices)
		}
		h.api(t, "PUT", "/hospitals/h1/devices/mon-h2/assignment", nurse, map[string]string{"patient": "pa"}).problem(t, http.StatusNotFound)
		h.api(t, "PUT", "/hospitals/h1/devices/mon-none/assignment", nurse, map[string]string{"patient": "pa"}).problem(t, http.StatusNotFound)
		h.mustAPI(t, 200, "DELETE", "/hospitals/h1/devices/mon-a/assignment", nurse, nil).decodeInto(t, &d)
		if d.Patient != nil {
			t.Fatalf("unassigned mon-a = %+v", d)
		}
		h.mustAPI(t, 200, "PUT", "/hospitals/h1/devices/mon-a/assignment", nurse, map[string]string{"patient": "pa"})
	})

	t.Run("rotate", func(t *testing.T) {
		c := h.mustConnect("mon-a", "mon-a", []byte(secret))
		online(t, "mon-a", true)
		a := h.mustAPI(t, 200, "POST", "/hospitals/h1/devices/mon-a/secret", h.admin, nil)
		var d apiDevice
		a.decodeInto(t, &d)
		if a.header.Get("Cache-Control") != "no-store" || d.Secret == "" || d.Secret == secret || d.Patient == nil || *d.Patient != "pa" {
			t.Fatalf("rotate = %s, Cache-Control %q; want a new secret, the assignment kept", a.body, a.header.Get("Cache-Control"))
		}
		select {
		case <-c.c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the device stayed connected after its secret was rotated")
		}
		if c2, err := h.connect("mon-a", "mon-a", []byte(secret)); err == nil {
			c2.close()
			t.Fatal("the old secret still connects")
		}
		h.mustConnect("mon-a", "mon-a", []byte(d.Secret)).close()
		if bytes.Contains(h.mustAPI(t, 200, "GET", "/hospitals/h1/devices", h.admin, nil).body, []byte(d.Secret)) {
			t.Fatal("the device list shows the new secret")
		}
		h.api(t, "POST", "/hospitals/h1/devices/mon-h2/secret", h.admin, nil).problem(t, http.StatusNotFound)
	})

	t.Run("delete", func(t *testing.T) {
		h.api(t, "DELETE", "/hospitals/h1/devices/mon-h2", h.admin, nil).problem(t, http.StatusNotFound)
		h.mustAPI(t, 204, "DELETE", "/hospitals/h1/devices/mon-a", h.admin, nil)
		if _, ok := list(t)["mon-a"]; ok {
			t.Fatal("a deleted device is still listed")
		}
		var p struct{ Devices []string }
		h.mustAPI(t, 200, "GET", "/hospitals/h1/patients/pa", nurse, nil).decodeInto(t, &p)
		if len(p.Devices) != 0 {
			t.Fatalf("pa's devices after the device was deleted: %v", p.Devices)
		}
		h.api(t, "DELETE", "/hospitals/h1/devices/mon-a", h.admin, nil).problem(t, http.StatusNotFound)
		h.mustAPI(t, 201, "POST", "/hospitals/h1/devices", h.admin, map[string]string{"id": "mon-a"}) // the ID is free again
	})
}

type apiPatient struct {
	Hospital, ID, Name, Bed string
	SpO2Scale               int `json:"spo2_scale"`
	Limits                  map[string]float64
	Risk                    *riskData
	OpenAlerts              int `json:"open_alerts"`
	Devices                 []string
	LastVitals              *struct {
		HR *float64
	} `json:"last_vitals"`
}

// TestAPIPatients covers admission, SpO2 scale and alarm limits changes, and vitals history.
func TestAPIPatients(t *testing.T) {
	h := apiHarness(t)
	nurse := h.user("nurse.pt", "nurse", "h1")

	t.Run("admit", func(t *testing.T) {
		var p apiPatient
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients", nurse, map[string]any{"id": "pz", "name": "Zofia Novak", "bed": "b-12"}).decodeInto(t, &p)
		if p.Hospital != "h1" || p.ID != "pz" || p.Name != "Zofia Novak" || p.Bed != "b-12" || p.SpO2Scale != 1 || p.Risk != nil || p.OpenAlerts != 0 || p.Devices == nil || p.LastVitals != nil {
			t.Fatalf("admitted = %+v", p)
		}
		h.api(t, "POST", "/hospitals/h1/patients", nurse, map[string]any{"id": "pz", "name": "Someone Else"}).problem(t, http.StatusConflict)
		h.mustAPI(t, 201, "POST", "/hospitals/h2/patients", h.admin, map[string]any{"id": "pz", "name": "Another Hospital's"})
		// Never measured: no risk rather than a reassuring 0.
		h.api(t, "GET", "/hospitals/h1/patients/pz/risk", nurse, nil).problem(t, http.StatusNotFound)
		for _, tt := range []struct{ method, path string }{
			{"GET", "/hospitals/h1/patients/nobody"},
			{"GET", "/hospitals/h1/patients/nobody/risk"},
			{"GET", "/hospitals/h1/patients/nobody/vitals"},
			{"PATCH", "/hospitals/h1/patients/nobody"},
			{"DELETE", "/hospitals/h1/patients/nobody"},
			{"POST", "/hospitals/h1/patients/nobody/observations"},
		} {
			var body any
			if tt.method != "GET" && tt.method != "DELETE" {
				body = map[string]any{"hr": 80}
				if tt.method == "PATCH" {
					body = map[string]any{"name": "X"}
				}
			}
			h.api(t, tt.method, tt.path, nurse, body).problem(t, http.StatusNotFound)
		}
	})

	t.Run("SpO2 scale rescores", func(t *testing.T) {
		var r riskData
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/pz/observations", nurse, map[string]any{"spo2": 94, "o2": false}).decodeInto(t, &r)
		if r.Contribs["spo2"] != 1 {
			t.Fatalf("SpO2 94 on air, scale 1: contributions %v; want spo2 1", r.Contribs)
		}
		for _, tt := range []struct{ scale, want int }{{2, 0}, {1, 1}, {2, 0}} {
			var p apiPatient
			h.mustAPI(t, 200, "PATCH", "/hospitals/h1/patients/pz", nurse, map[string]int{"spo2_scale": tt.scale}).decodeInto(t, &p)
			if p.SpO2Scale != tt.scale || p.Risk == nil || p.Risk.Contribs["spo2"] != tt.want {
				t.Fatalf("PATCH spo2_scale %d = %+v; want the risk rescored, spo2 %d", tt.scale, p, tt.want)
			}
			var got riskData
			h.mustAPI(t, 200, "GET", "/hospitals/h1/patients/pz/risk", nurse, nil).decodeInto(t, &got)
			if got.Contribs["spo2"] != tt.want || got.Score != tt.want {
				t.Fatalf("risk on scale %d = %+v; want spo2 %d", tt.scale, got, tt.want)
			}
		}
		var ps struct{ Items []apiPatient }
		h.mustAPI(t, 200, "GET", "/hospitals/h1/patients", nurse, nil).decodeInto(t, &ps)
		if len(ps.Items) != 1 || ps.Items[0].Risk == nil || ps.Items[0].SpO2Scale != 2 || ps.Items[0].Name != "Zofia Novak" {
			t.Fatalf("patients of h1 = %+v; want pz with its latest risk", ps.Items)
		}
	})

	t.Run("alarm limits", func(t *testing.T) {
		hrHigh := func(p string) []struct{ Priority string } {
			var l struct{ Items []struct{ Priority string } }
			h.mustAPI(t, 200, "GET", "/hospitals/h1/alerts?kind=hr_high&patient="+p, nurse, nil).decodeInto(t, &l)
			return l.Items
		}
		// The site's limits: HR above 120 alarms.
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients", nurse, map[string]any{"id": "pl1", "name": "Default Limits", "limits": map[string]int{"delay_seconds": 0}})
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/pl1/observations", nurse, map[string]int{"hr": 130})
		if got := hrHigh("pl1"); len(got) != 1 || got[0].Priority != "medium" {
			t.Fatalf("HR 130 with the default limit 120: hr_high alerts %+v; want one, medium", got)
		}
		// Raised to 150: HR 130 is fine, 160 alarms.
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients", nurse, map[string]any{"id": "pl2", "name": "Own Limits"})
		var p apiPatient
		h.mustAPI(t, 200, "PATCH", "/hospitals/h1/patients/pl2", nurse, map[string]any{"limits": map[string]int{"hr_high": 150, "delay_seconds": 0}}).decodeInto(t, &p)
		if p.Limits["hr_high"] != 150 || p.Limits["delay_seconds"] != 0 {
			t.Fatalf("PATCH limits = %+v", p.Limits)
		}
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/pl2/observations", nurse, map[string]int{"hr": 130})
		if got := hrHigh("pl2"); len(got) != 0 {
			t.Fatalf("HR 130 with hr_high 150: hr_high alerts %+v; want none", got)
		}
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/pl2/observations", nurse, map[string]int{"hr": 160})
		if got := hrHigh("pl2"); len(got) != 1 || got[0].Priority != "medium" {
			t.Fatalf("HR 160 with hr_high 150: hr_high alerts %+v; want one, medium", got)
		}
	})

	t.Run("update", func(t *testing.T) {
		var p apiPatient
		h.mustAPI(t, 200, "PATCH", "/hospitals/h1/patients/pz", nurse, map[string]any{"name": "Zofia Novak-Rossi", "bed": "b-14"}).decodeInto(t, &p)
		if p.Name != "Zofia Novak-Rossi" || p.Bed != "b-14" || p.SpO2Scale != 2 {
			t.Fatalf("PATCH name and bed = %+v; want the rest kept", p)
		}
		h.mustAPI(t, 200, "GET", "/hospitals/h1/patients/pz", nurse, nil).decodeInto(t, &p)
		if p.Name != "Zofia Novak-Rossi" || p.Bed != "b-14" {
			t.Fatalf("GET after PATCH = %+v", p)
		}
	})

	t.Run("vitals history", func(t *testing.T) {
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients", nurse, map[string]any{"id": "pv", "name": "History"})
		now := time.Now().UTC().Truncate(time.Millisecond)
		at := func(min int) time.Time { return now.Add(time.Duration(min) * time.Minute) }
		q := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339Nano)) }
		for i, m := range []int{-30, -20, -10} {
			h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/pv/observations", nurse, map[string]any{"ts": at(m).Format(time.RFC3339Nano), "hr": 61 + i})
		}
		h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/pv/observations", nurse, map[string]any{"hr": 64}) // now
		for _, tt := range []struct {
			name, query string
			want        []float64
		}{
			{"default: the last 24 h", "", []float64{61, 62, 63, 64}},
			{"from", "?from=" + q(at(-25)), []float64{62, 63, 64}},
			{"from is inclusive", "?from=" + q(at(-20)), []float64{62, 63, 64}},
			{"from and to", "?from=" + q(at(-25)) + "&to=" + q(at(-5)), []float64{62, 63}},
			{"to is exclusive", "?from=" + q(at(-25)) + "&to=" + q(at(-10)), []float64{62}},
			{"to only", "?to=" + q(at(-15)), []float64{61, 62}},
			{"nothing in range", "?from=" + q(at(-60)) + "&to=" + q(at(-40)), nil},
			{"older than the default", "?from=" + q(now.Add(-48*time.Hour)) + "&to=" + q(at(-31)), nil},
		} {
			t.Run(tt.name, func(t *testing.T) {
				var l struct {
					Items []struct {
						TS     time.Time
						HR     *float64
						Author string
					}
				}
				h.mustAPI(t, 200, "GET", "/hospitals/h1/patients/pv/vitals"+tt.query, nurse, nil).decodeInto(t, &l)
				var got []float64
				for _, s := range l.Items {
					if s.HR == nil || s.Author != "nurse.pt" {
						t.Fatalf("sample %+v; want hr and author nurse.pt", s)
					}
					got = append(got, *s.HR)
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("GET vitals%s = %v; want %v", tt.query, got, tt.want)
				}
			})
		}
		for _, tt := range []struct{ name, query, field string }{
			{"from not a time", "?from=yesterday", "from"},
			{"to not a time", "?to=2026-13-45T00:00:00Z", "to"},
			{"to before from", "?from=" + q(at(-10)) + "&to=" + q(at(-20)), "to"},
			{"to equal to from", "?from=" + q(at(-10)) + "&to=" + q(at(-10)), "to"},
			{"bad limit", "?limit=0", "limit"},
		} {
			t.Run("bad/"+tt.name, func(t *testing.T) {
				p := h.api(t, "GET", "/hospitals/h1/patients/pv/vitals"+tt.query, nurse, nil).problem(t, http.StatusBadRequest)
				if p.field() != tt.field {
					t.Fatalf("GET vitals%s: problem names %q; want %q", tt.query, p.field(), tt.field)
				}
			})
		}
		var p apiPatient
		h.mustAPI(t, 200, "GET", "/hospitals/h1/patients/pv", nurse, nil).decodeInto(t, &p)
		if p.LastVitals == nil || p.LastVitals.HR == nil || *p.LastVitals.HR != 64 {
			t.Fatalf("pv's last vitals = %+v; want hr 64, the newest", p.LastVitals)
		}
	})
}
