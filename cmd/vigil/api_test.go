package main

// End-to-end tests of the REST API (DESIGN.md section 8) against a running Vigil: who may call
// each route, what bad input answers, OpenAPI, request IDs and CORS. api_flow_test.go has the
// events, lists, auth, devices and patients.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vigilhq/vigil/api"
	"github.com/vigilhq/vigil/auth"
)

// apiHarness is newHarness with bcrypt at its cheapest: these tests create and log in many
// users, and under -race one bcrypt at the default cost takes most of a second.
func apiHarness(t *testing.T, edit ...func(*config)) *harness {
	t.Helper()
	old := auth.BcryptCost
	auth.BcryptCost = bcrypt.MinCost
	t.Cleanup(func() { auth.BcryptCost = old }) // runs after the harness has stopped
	return newHarness(t, edit...)
}

// apiAnswer is an HTTP answer.
type apiAnswer struct {
	what   string // "METHOD path", for failure messages
	status int
	header http.Header
	body   []byte
}

// api sends a request to /api/v1 + path. body: nil (none), string or []byte (sent as is) or
// a value (sent as JSON); a body goes with Content-Type application/json unless hdr (name, value
// pairs; an empty value removes the header) says otherwise.
func (h *harness) api(t *testing.T, method, path, token string, body any, hdr ...string) apiAnswer {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encoding the body of %s %s: %v", method, path, err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.base+"/api/v1"+path, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return apiAnswer{what: method + " " + path, status: resp.StatusCode, header: resp.Header, body: out}
}

// mustAPI is api that fails the test unless the answer has status want.
func (h *harness) mustAPI(t *testing.T, want int, method, path, token string, body any, hdr ...string) apiAnswer {
	t.Helper()
	a := h.api(t, method, path, token, body, hdr...)
	if a.status != want {
		t.Fatalf("%s = %d %s; want %d", a.what, a.status, a.body, want)
	}
	return a
}

// decodeInto decodes the answer's JSON body into v.
func (a apiAnswer) decodeInto(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("%s: answer %s is not the JSON expected: %v", a.what, a.body, err)
	}
}

// apiProblem is an RFC 9457 problem as Vigil answers it.
type apiProblem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance"`
	RequestID string `json:"request_id"`
	Errors    []struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

// field is the first field the problem names ("" when none).
func (p apiProblem) field() string {
	if len(p.Errors) == 0 {
		return ""
	}
	return p.Errors[0].Field
}

// problem checks that the answer is a problem of status want, well formed (Content-Type, status,
// type, title, a non-empty detail, the request ID of the header and nothing else), and returns it.
func (a apiAnswer) problem(t *testing.T, want int) apiProblem {
	t.Helper()
	if a.status != want {
		t.Fatalf("%s = %d %s; want %d", a.what, a.status, a.body, want)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s = %d with Content-Type %q; want application/problem+json", a.what, a.status, ct)
	}
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields() // a problem carries no data of the resource
	var p apiProblem
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s = %d %s: not a problem: %v", a.what, a.status, a.body, err)
	}
	switch {
	case p.Status != want:
		t.Fatalf("%s = %d with problem status %d", a.what, a.status, p.Status)
	case !strings.HasPrefix(p.Type, "https://vigil.dev/problems/") || len(p.Type) == len("https://vigil.dev/problems/"):
		t.Fatalf("%s = %d with problem type %q", a.what, a.status, p.Type)
	case p.Title != http.StatusText(want):
		t.Fatalf("%s = %d with problem title %q; want %q", a.what, a.status, p.Title, http.StatusText(want))
	case p.Detail == "":
		t.Fatalf("%s = %d %s: problem without detail", a.what, a.status, a.body)
	case p.RequestID == "" || p.RequestID != a.header.Get("X-Request-ID"):
		t.Fatalf("%s = %d: problem request_id %q, header X-Request-ID %q", a.what, a.status, p.RequestID, a.header.Get("X-Request-ID"))
	}
	return p
}

// apiPage is one page of a list answer.
type apiPage struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor *string           `json:"next_cursor"`
}

// apiWorld is a running Vigil with the fixtures of the route tables, in hospital h1: patient pm
// with device mon-m (connected) and an alert raised by a critical sample it sent, a spare
// device, triage case tc-1, bed bed-1, staff member st-1; patient q1 in h2.
type apiWorld struct {
	h     *harness
	alert string // ID of pm's NEWS2 alert
	seq   int
}

func newAPIWorld(t *testing.T) *apiWorld {
	t.Helper()
	h := apiHarness(t)
	w := &apiWorld{h: h}
	h.must(201, "POST", "/api/v1/hospitals/h1/patients", h.admin, map[string]any{"id": "pm", "name": "Ada Okafor"})
	h.admit("h2", "q1")
	secret := h.device("h1", "mon-m", "pm")
	h.device("h1", "mon-spare", "")
	dev := h.mustConnect("mon-m", "mon-m", []byte(secret))
	if err := dev.publish("hospital/h1/patient/pm/vitals", vitals(critical), 1); err != nil {
		t.Fatalf("publish a critical sample: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.alert == "" {
		w.alert = w.openAlert(t, "pm")
		if w.alert == "" {
			if time.Now().After(deadline) {
				t.Fatal("no NEWS2 alert for pm within 10 s of a critical sample")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	h.must(201, "POST", "/api/v1/hospitals/h1/triage", h.admin, map[string]any{"id": "tc-1", "level": 2, "complaint": "short of breath"})
	h.must(200, "PUT", "/api/v1/hospitals/h1/beds/bed-1", h.admin, map[string]any{"status": "occupied", "patient": "pm"})
	h.must(200, "PUT", "/api/v1/hospitals/h1/staff/st-1", h.admin, map[string]any{"name": "Sam Byrne", "role": "nurse", "available": true, "on_shift": true})
	return w
}

// openAlert returns the ID of patient p's open NEWS2 alert, or "".
func (w *apiWorld) openAlert(t *testing.T, p string) string {
	t.Helper()
	var l struct{ Items []struct{ ID string } }
	w.h.mustAPI(t, 200, "GET", "/hospitals/h1/alerts?state=active,acknowledged&kind=news2&patient="+p, w.h.admin, nil).decodeInto(t, &l)
	if len(l.Items) == 0 {
		return ""
	}
	return l.Items[0].ID
}

// alerted admits a new patient, gives them a critical observation and returns the ID of the
// active NEWS2 alert it raises.
func (w *apiWorld) alerted(t *testing.T) string {
	t.Helper()
	w.seq++
	p := fmt.Sprintf("pa-%d", w.seq)
	w.h.mustAPI(t, 201, "POST", "/hospitals/h1/patients", w.h.admin, map[string]any{"id": p, "name": "Patient " + p})
	w.h.mustAPI(t, 201, "POST", "/hospitals/h1/patients/"+p+"/observations", w.h.admin, critical)
	id := w.openAlert(t, p)
	if id == "" {
		t.Fatalf("a critical observation of %s raised no NEWS2 alert", p)
	}
	return id
}

// apiRoute is a route of the route table with a request that succeeds for a caller allowed on it.
type apiRoute struct {
	method, path string // as in the route table, Gin syntax
	access       string // anyone, loggedIn, staff, nurse, clinician, admin (DESIGN.md section 8)
	ok           int    // the success status
	// prep returns the path (under /api/v1, IDs filled in) and a valid body of one request;
	// requests that change something get fresh fixtures on each call.
	prep func(t *testing.T) (string, any)
}

func fixedReq(path string, body any) func(*testing.T) (string, any) {
	return func(*testing.T) (string, any) { return path, body }
}

// routes is every route of the API with a valid request (DESIGN.md section 8 says who may call
// it).
func (w *apiWorld) routes() []apiRoute {
	h := w.h
	fresh := func(prefix string) string { w.seq++; return fmt.Sprintf("%s-%d", prefix, w.seq) }
	return []apiRoute{
		{"POST", "/auth/login", "anyone", 200, fixedReq("/auth/login", map[string]string{"username": "matrix.login", "password": "password-matrix.login"})},
		{"GET", "/auth/me", "loggedIn", 200, fixedReq("/auth/me", nil)},
		{"POST", "/users", "admin", 201, func(*testing.T) (string, any) {
			return "/users", map[string]any{"username": fresh("user"), "password": "long-enough-1", "role": "viewer", "hospitals": []string{"h1"}}
		}},
		{"GET", "/users", "admin", 200, fixedReq("/users", nil)},
		{"DELETE", "/users/:u", "admin", 204, func(t *testing.T) (string, any) {
			u := fresh("gone")
			h.mustAPI(t, 201, "POST", "/users", h.admin, map[string]any{"username": u, "password": "long-enough-1", "role": "viewer", "hospitals": []string{"h1"}})
			return "/users/" + u, nil
		}},

		{"POST", "/hospitals/:h/devices", "admin", 201, func(*testing.T) (string, any) {
			return "/hospitals/h1/devices", map[string]string{"id": fresh("mon-new"), "model": "M-100"}
		}},
		{"GET", "/hospitals/:h/devices", "staff", 200, fixedReq("/hospitals/h1/devices", nil)},
		{"PUT", "/hospitals/:h/devices/:d/assignment", "nurse", 200, fixedReq("/hospitals/h1/devices/mon-m/assignment", map[string]string{"patient": "pm"})},
		{"DELETE", "/hospitals/:h/devices/:d/assignment", "nurse", 200, fixedReq("/hospitals/h1/devices/mon-spare/assignment", nil)},
		{"POST", "/hospitals/:h/devices/:d/secret", "admin", 200, fixedReq("/hospitals/h1/devices/mon-spare/secret", nil)},
		{"DELETE", "/hospitals/:h/devices/:d", "admin", 204, func(t *testing.T) (string, any) {
			d := fresh("mon-del")
			h.mustAPI(t, 201, "POST", "/hospitals/h1/devices", h.admin, map[string]string{"id": d})
			return "/hospitals/h1/devices/" + d, nil
		}},

		{"POST", "/hospitals/:h/patients", "nurse", 201, func(*testing.T) (string, any) {
			return "/hospitals/h1/patients", map[string]any{"id": fresh("pn"), "name": "New Patient", "bed": fresh("bed"), "spo2_scale": 2}
		}},
		{"GET", "/hospitals/:h/patients", "staff", 200, fixedReq("/hospitals/h1/patients", nil)},
		{"GET", "/hospitals/:h/patients/:p", "staff", 200, fixedReq("/hospitals/h1/patients/pm", nil)},
		{"PATCH", "/hospitals/:h/patients/:p", "nurse", 200, fixedReq("/hospitals/h1/patients/pm", map[string]any{"bed": "bed-1"})},
		{"DELETE", "/hospitals/:h/patients/:p", "nurse", 204, func(t *testing.T) (string, any) {
			p := fresh("pd")
			h.mustAPI(t, 201, "POST", "/hospitals/h1/patients", h.admin, map[string]any{"id": p, "name": "Leaving Soon"})
			return "/hospitals/h1/patients/" + p, nil
		}},
		{"POST", "/hospitals/:h/patients/:p/observations", "nurse", 201, fixedReq("/hospitals/h1/patients/pm/observations", map[string]any{"acvpu": "A"})},
		{"GET", "/hospitals/:h/patients/:p/vitals", "staff", 200, fixedReq("/hospitals/h1/patients/pm/vitals", nil)},
		{"GET", "/hospitals/:h/patients/:p/risk", "staff", 200, fixedReq("/hospitals/h1/patients/pm/risk", nil)},

		{"GET", "/hospitals/:h/alerts", "staff", 200, fixedReq("/hospitals/h1/alerts", nil)},
		{"GET", "/hospitals/:h/alerts/:id", "staff", 200, fixedReq("/hospitals/h1/alerts/"+w.alert, nil)},
		{"POST", "/hospitals/:h/alerts/:id/ack", "nurse", 200, func(t *testing.T) (string, any) {
			return "/hospitals/h1/alerts/" + w.alerted(t) + "/ack", map[string]string{"note": "on my way"}
		}},
		{"POST", "/hospitals/:h/alerts/:id/resolve", "nurse", 200, func(t *testing.T) (string, any) {
			return "/hospitals/h1/alerts/" + w.alerted(t) + "/resolve", map[string]string{"note": "treated"}
		}},
		{"POST", "/hospitals/:h/broadcasts", "clinician", 201, fixedReq("/hospitals/h1/broadcasts", map[string]string{"priority": "low", "message": "Fire drill at noon"})},
		{"GET", "/hospitals/:h/broadcasts", "staff", 200, fixedReq("/hospitals/h1/broadcasts", nil)},

		{"POST", "/hospitals/:h/triage", "nurse", 201, fixedReq("/hospitals/h1/triage", map[string]any{"level": 3, "complaint": "sprained ankle"})},
		{"GET", "/hospitals/:h/triage", "staff", 200, fixedReq("/hospitals/h1/triage", nil)},
		{"GET", "/hospitals/:h/triage/:c", "staff", 200, fixedReq("/hospitals/h1/triage/tc-1", nil)},
		{"PATCH", "/hospitals/:h/triage/:c", "nurse", 200, fixedReq("/hospitals/h1/triage/tc-1", map[string]any{"status": "in_assessment", "assignee": "st-1"})},
		{"PUT", "/hospitals/:h/beds/:b", "nurse", 200, fixedReq("/hospitals/h1/beds/bed-2", map[string]string{"status": "cleaning"})},
		{"GET", "/hospitals/:h/beds", "staff", 200, fixedReq("/hospitals/h1/beds", nil)},
		{"PUT", "/hospitals/:h/staff/:s", "nurse", 200, fixedReq("/hospitals/h1/staff/st-1", map[string]any{"role": "nurse", "available": false, "on_shift": true})},
		{"GET", "/hospitals/:h/staff", "staff", 200, fixedReq("/hospitals/h1/staff", nil)},

		{"POST", "/risk/score", "loggedIn", 200, fixedReq("/risk/score", map[string]any{"hr": 80, "spo2": 97, "spo2_scale": 1})},
		{"GET", "/stats", "admin", 200, fixedReq("/stats", nil)},
		{"GET", "/openapi.json", "anyone", 200, fixedReq("/openapi.json", nil)},
	}
}

// apiRouterRoutes is the API's route table as the router has it: "METHOD /path" under /api/v1,
// Gin syntax.
func apiRouterRoutes() []string {
	var out []string
	for _, r := range api.New(api.Options{}).Routes() {
		out = append(out, strings.Replace(r, " /api/v1", " ", 1))
	}
	return out
}

func checkAPIRoutes(t *testing.T, routes []apiRoute) {
	t.Helper()
	var have []string
	for _, r := range routes {
		have = append(have, r.method+" "+r.path)
	}
	slices.Sort(have)
	if want := apiRouterRoutes(); !slices.Equal(have, want) {
		t.Fatalf("the test's routes differ from the router's:\n test:   %v\n router: %v", have, want)
	}
}

// apiCaller is a user of the access matrix.
type apiCaller struct {
	name, token string
	rank        int  // 0 none or invalid token, 1 viewer, 2 nurse, 3 clinician, 4 admin
	inH1        bool // may see hospital h1
}

var apiNeeds = map[string]int{"loggedIn": 1, "staff": 1, "nurse": 2, "clinician": 3, "admin": 4}

// want is the status caller c gets on route r (DESIGN.md sections 7 and 8).
func (r apiRoute) want(c apiCaller) int {
	switch {
	case r.access == "anyone":
		return r.ok
	case c.rank == 0:
		return http.StatusUnauthorized
	case strings.HasPrefix(r.path, "/hospitals/:h") && !c.inH1:
		return http.StatusNotFound // another hospital's: not found, never forbidden
	case c.rank >= apiNeeds[r.access]:
		return r.ok
	}
	return http.StatusForbidden
}

// TestAPIAccessMatrix calls every route as admin, clinician, nurse and viewer of h1, a nurse of
// h2, without a token and with a forged one: each gets its role's answer, and every refusal is
// a well-formed problem without the resource's data.
func TestAPIAccessMatrix(t *testing.T) {
	w := newAPIWorld(t)
	h := w.h
	routes := w.routes()
	checkAPIRoutes(t, routes)
	h.user("matrix.login", "viewer", "h1")
	callers := []apiCaller{
		{"admin", h.admin, 4, true},
		{"clinician of h1", h.user("cli.h1", "clinician", "h1"), 3, true},
		{"nurse of h1", h.user("nurse.h1", "nurse", "h1"), 2, true},
		{"viewer of h1", h.user("viewer.h1", "viewer", "h1"), 1, true},
		{"nurse of h2", h.user("nurse.h2", "nurse", "h2"), 2, false},
		{"no token", "", 0, false},
		{"forged token", algNone("admin"), 0, false},
	}
	for _, r := range routes {
		for _, c := range callers {
			t.Run(r.method+" "+r.path+"/"+c.name, func(t *testing.T) {
				path, body := r.prep(t)
				a := h.api(t, r.method, path, c.token, body)
				want := r.want(c)
				if a.status != want {
					t.Fatalf("%s as %s = %d %s; want %d", a.what, c.name, a.status, a.body, want)
				}
				if want != r.ok {
					a.problem(t, want)
					if bytes.Contains(a.body, []byte("Ada Okafor")) || bytes.Contains(a.body, []byte(`"items"`)) {
						t.Fatalf("%s as %s = %d leaks data: %s", a.what, c.name, a.status, a.body)
					}
					if want == http.StatusUnauthorized && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
						t.Fatalf("%s as %s = 401 with WWW-Authenticate %q; want Bearer", a.what, c.name, a.header.Get("WWW-Authenticate"))
					}
					return
				}
				switch {
				case want == http.StatusNoContent && len(a.body) != 0:
					t.Fatalf("%s as %s = 204 with a body: %s", a.what, c.name, a.body)
				case want != http.StatusNoContent && (!json.Valid(a.body) || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json")):
					t.Fatalf("%s as %s = %d %q %s; want a JSON answer", a.what, c.name, a.status, a.header.Get("Content-Type"), a.body)
				}
			})
		}
	}

	// Refused requests change nothing, and IDs of h1 used under h2's paths are not found there.
	viewer, nurse2 := callers[3].token, callers[4].token
	refused := []struct {
		name, method, path, token string
		body                      any
		want                      int
		after                     string // a GET (as admin) that must still answer 200 or 404 as noted
		afterWant                 int
	}{
		{"viewer admits", "POST", "/hospitals/h1/patients", viewer, map[string]string{"id": "pv", "name": "Not Admitted"}, 403, "/hospitals/h1/patients/pv", 404},
		{"h2 nurse discharges an h1 patient", "DELETE", "/hospitals/h1/patients/pm", nurse2, nil, 404, "/hospitals/h1/patients/pm", 200},
		{"h2 nurse discharges an h1 patient through h2", "DELETE", "/hospitals/h2/patients/pm", nurse2, nil, 404, "/hospitals/h1/patients/pm", 200},
		{"h2 nurse reads an h1 patient through h2", "GET", "/hospitals/h2/patients/pm", nurse2, nil, 404, "", 0},
		{"h2 nurse reads h1 vitals through h2", "GET", "/hospitals/h2/patients/pm/vitals", nurse2, nil, 404, "", 0},
		{"h2 nurse reads h1 risk through h2", "GET", "/hospitals/h2/patients/pm/risk", nurse2, nil, 404, "", 0},
		{"h2 nurse observes an h1 patient through h2", "POST", "/hospitals/h2/patients/pm/observations", nurse2, map[string]any{"hr": 80}, 404, "", 0},
		{"h2 nurse reads an h1 alert through h2", "GET", "/hospitals/h2/alerts/" + w.alert, nurse2, nil, 404, "", 0},
		{"h2 nurse acknowledges an h1 alert through h2", "POST", "/hospitals/h2/alerts/" + w.alert + "/ack", nurse2, nil, 404, "/hospitals/h1/alerts/" + w.alert, 200},
		{"h2 nurse resolves an h1 alert through h2", "POST", "/hospitals/h2/alerts/" + w.alert + "/resolve", nurse2, nil, 404, "", 0},
		{"h2 nurse reads an h1 triage case through h2", "GET", "/hospitals/h2/triage/tc-1", nurse2, nil, 404, "", 0},
		{"h2 nurse updates an h1 triage case through h2", "PATCH", "/hospitals/h2/triage/tc-1", nurse2, map[string]any{"level": 1}, 404, "", 0},
		{"h2 nurse unassigns an h1 device through h2", "DELETE", "/hospitals/h2/devices/mon-m/assignment", nurse2, nil, 404, "", 0},
		{"admin rotates an h1 device through h2", "POST", "/hospitals/h2/devices/mon-m/secret", h.admin, nil, 404, "", 0},
		{"admin deletes an h1 device through h2", "DELETE", "/hospitals/h2/devices/mon-m", h.admin, nil, 404, "", 0},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			h.api(t, tt.method, tt.path, tt.token, tt.body).problem(t, tt.want)
			if tt.after != "" {
				h.mustAPI(t, tt.afterWant, "GET", tt.after, h.admin, nil)
			}
		})
	}
	var d struct {
		Items []struct {
			ID      string
			Patient *string
		}
	}
	h.mustAPI(t, 200, "GET", "/hospitals/h1/devices", h.admin, nil).decodeInto(t, &d)
	for _, x := range d.Items {
		if x.ID == "mon-m" && (x.Patient == nil || *x.Patient != "pm") {
			t.Fatalf("mon-m after refused requests: patient %v; want pm", x.Patient)
		}
	}
	var alert struct{ State string }
	h.mustAPI(t, 200, "GET", "/hospitals/h1/alerts/"+w.alert, h.admin, nil).decodeInto(t, &alert)
	if alert.State != "active" {
		t.Fatalf("alert %s after refused acknowledgements: %s; want active", w.alert, alert.State)
	}
}

// apiBadCase is a request that must be refused.
type apiBadCase struct {
	name   string
	body   any      // string: sent as is
	hdr    []string // header name, value pairs
	status int      // 0: 400
	field  string   // errors[0].field, when the problem must name one
}

// apiBodyRoute is a route that takes a body.
type apiBodyRoute struct {
	method, path string // Gin syntax: filled with the fixtures' IDs
	valid        any    // a valid body
	sample       bool   // the body is a vitals sample (decoded by ingest)
	emptyOK      bool   // the body is optional
	cases        []apiBadCase
}

var (
	idTooLong = strings.Repeat("a", 65)
	idSlash   = "a/b"
	idAccent  = "pati\u00e9nt"
)

// TestAPIBadInput sends bad bodies to every route that takes one, and bad IDs in every path:
// each is refused with a problem naming the field.
func TestAPIBadInput(t *testing.T) {
	w := newAPIWorld(t)
	h := w.h
	alert := w.alerted(t)
	big := `{"message":"` + strings.Repeat("x", 65<<10) + `"}`
	params := map[string]struct{ valid, kind string }{
		"h": {"h1", "hospital"}, "d": {"mon-m", "device"}, "p": {"pm", "patient"}, "id": {alert, "alert"},
		"c": {"tc-1", "triage case"}, "b": {"bed-1", "bed"}, "s": {"st-1", "staff"}, "u": {"nobody", "username"},
	}
	param := regexp.MustCompile(`:[a-z]+`)
	fill := func(tmpl, bad, badID string) string {
		return param.ReplaceAllStringFunc(tmpl, func(n string) string {
			if n == bad {
				return badID
			}
			return params[n[1:]].valid
		})
	}

	routes := []apiBodyRoute{
		{method: "POST", path: "/auth/login", valid: map[string]string{"username": "admin", "password": adminPassword}, cases: []apiBadCase{
			{name: "wrong type", body: `{"username":7,"password":"x"}`, field: "username"},
			{name: "no username", body: `{"password":"secret-secret"}`, field: "username"},
			{name: "no password", body: `{"username":"admin"}`, field: "password"},
		}},
		{method: "POST", path: "/users", valid: map[string]any{"username": "u1", "password": "long-enough-1", "role": "viewer", "hospitals": []string{"h1"}}, cases: []apiBadCase{
			{name: "nothing", body: `{}`, field: "role"},
			{name: "wrong type", body: `{"username":"u2","password":"long-enough-1","role":5,"hospitals":["h1"]}`, field: "role"},
			{name: "hospitals not a list", body: `{"username":"u2","password":"long-enough-1","role":"viewer","hospitals":"h1"}`, field: "hospitals"},
			{name: "bad role", body: `{"username":"u2","password":"long-enough-1","role":"surgeon","hospitals":["h1"]}`, field: "role"},
			{name: "short password", body: `{"username":"u2","password":"short","role":"viewer","hospitals":["h1"]}`, field: "password"},
			{name: "bad username", body: `{"username":"a/b","password":"long-enough-1","role":"viewer","hospitals":["h1"]}`, field: "username"},
			{name: "bad hospital", body: `{"username":"u2","password":"long-enough-1","role":"viewer","hospitals":["h1","a b"]}`, field: "hospitals[1]"},
			{name: "no hospital", body: `{"username":"u2","password":"long-enough-1","role":"nurse","hospitals":[]}`, field: "hospitals"},
		}},
		{method: "POST", path: "/hospitals/:h/devices", valid: map[string]string{"id": "mon-ok"}, cases: []apiBadCase{
			{name: "no id", body: `{"model":"M"}`, field: "id"},
			{name: "wrong type", body: `{"id":5}`, field: "id"},
			{name: "id with a slash", body: map[string]string{"id": idSlash}, field: "id"},
			{name: "id of 65 characters", body: map[string]string{"id": idTooLong}, field: "id"},
			{name: "non-ASCII id", body: map[string]string{"id": idAccent}, field: "id"},
			{name: "id with a wildcard", body: map[string]string{"id": "mon+1"}, field: "id"},
			{name: "model too long", body: map[string]string{"id": "mon-x", "model": strings.Repeat("m", 201)}, field: "model"},
		}},
		{method: "PUT", path: "/hospitals/:h/devices/:d/assignment", valid: map[string]string{"patient": "pm"}, cases: []apiBadCase{
			{name: "no patient", body: `{}`, field: "patient"},
			{name: "wrong type", body: `{"patient":["pm"]}`, field: "patient"},
			{name: "patient with a slash", body: map[string]string{"patient": idSlash}, field: "patient"},
			{name: "patient of 65 characters", body: map[string]string{"patient": idTooLong}, field: "patient"},
			{name: "patient not admitted", body: map[string]string{"patient": "nobody"}, field: "patient"},
		}},
		{method: "POST", path: "/hospitals/:h/patients", valid: map[string]any{"id": "p-ok", "name": "N"}, cases: []apiBadCase{
			{name: "nothing", body: `{}`, field: "id"},
			{name: "no name", body: `{"id":"p-x"}`, field: "name"},
			{name: "id with a slash", body: map[string]any{"id": idSlash, "name": "N"}, field: "id"},
			{name: "non-ASCII id", body: map[string]any{"id": idAccent, "name": "N"}, field: "id"},
			{name: "name too long", body: map[string]any{"id": "p-x", "name": strings.Repeat("n", 201)}, field: "name"},
			{name: "name with a control character", body: map[string]any{"id": "p-x", "name": "a\u0007b"}, field: "name"},
			{name: "bad bed", body: map[string]any{"id": "p-x", "name": "N", "bed": "bed 1"}, field: "bed"},
			{name: "SpO2 scale 3", body: map[string]any{"id": "p-x", "name": "N", "spo2_scale": 3}, field: "spo2_scale"},
			{name: "SpO2 scale 0", body: map[string]any{"id": "p-x", "name": "N", "spo2_scale": 0}, field: "spo2_scale"},
			{name: "SpO2 scale as a string", body: `{"id":"p-x","name":"N","spo2_scale":"2"}`, field: "spo2_scale"},
			{name: "hr_high out of range", body: map[string]any{"id": "p-x", "name": "N", "limits": map[string]any{"hr_high": 400}}, field: "limits.hr_high"},
			{name: "spo2_low out of range", body: map[string]any{"id": "p-x", "name": "N", "limits": map[string]any{"spo2_low": 101}}, field: "limits.spo2_low"},
			{name: "negative delay", body: map[string]any{"id": "p-x", "name": "N", "limits": map[string]any{"delay_seconds": -1}}, field: "limits.delay_seconds"},
			{name: "hr_low above hr_high", body: map[string]any{"id": "p-x", "name": "N", "limits": map[string]any{"hr_low": 100, "hr_high": 90}}, field: "limits.hr_low"},
			{name: "hr_low equal to hr_high", body: map[string]any{"id": "p-x", "name": "N", "limits": map[string]any{"hr_low": 90, "hr_high": 90}}, field: "limits.hr_low"},
			{name: "hr_low above the site's hr_high", body: map[string]any{"id": "p-x", "name": "N", "limits": map[string]any{"hr_low": 150}}, field: "limits.hr_low"},
			{name: "limit of the wrong type", body: `{"id":"p-x","name":"N","limits":{"hr_high":"high"}}`, field: "limits.hr_high"},
		}},
		{method: "PATCH", path: "/hospitals/:h/patients/:p", valid: map[string]any{"name": "Ada Okafor"}, cases: []apiBadCase{
			{name: "empty name", body: map[string]any{"name": ""}, field: "name"},
			{name: "a name of spaces", body: map[string]any{"name": "   "}, field: "name"},
			{name: "bad bed", body: map[string]any{"bed": idSlash}, field: "bed"},
			{name: "SpO2 scale 3", body: map[string]any{"spo2_scale": 3}, field: "spo2_scale"},
			{name: "rr_low above rr_high", body: map[string]any{"limits": map[string]any{"rr_low": 30, "rr_high": 20}}, field: "limits.rr_low"},
			{name: "sbp_low above sbp_high", body: map[string]any{"limits": map[string]any{"sbp_low": 150, "sbp_high": 140}}, field: "limits.sbp_low"},
			{name: "sbp_high out of range", body: map[string]any{"limits": map[string]any{"sbp_high": 301}}, field: "limits.sbp_high"},
			{name: "hr_high below the site's hr_low", body: map[string]any{"limits": map[string]any{"hr_high": 45}}, field: "limits.hr_high"},
			{name: "wrong type", body: `{"name":{"first":"Ada"}}`, field: "name"},
			{name: "a stray brace after the object", body: `{"name":"Ada"}}`},
			{name: "a second object", body: `{"name":"Ada"} {"name":"Bo"}`},
		}},
		{method: "POST", path: "/hospitals/:h/patients/:p/observations", valid: map[string]any{"temp": 37.1}, sample: true, cases: []apiBadCase{
			{name: "no measurement", body: `{}`},
			{name: "wrong type", body: `{"hr":"fast"}`, field: "hr"},
			{name: "implausible hr", body: `{"hr":400}`, field: "hr"},
			{name: "implausible spo2", body: `{"spo2":101}`, field: "spo2"},
			{name: "implausible temp", body: `{"temp":50}`, field: "temp"},
			{name: "negative sbp", body: `{"sbp":-5}`, field: "sbp"},
			{name: "bad ACVPU", body: `{"acvpu":"X"}`, field: "acvpu"},
			{name: "o2 not a boolean", body: `{"o2":"yes"}`, field: "o2"},
			{name: "bad ts", body: `{"hr":80,"ts":"yesterday"}`, field: "ts"},
			{name: "ts in the future", body: map[string]any{"hr": 80, "ts": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, field: "ts"},
			{name: "field twice", body: `{"hr":80,"hr":81}`, field: "hr"},
			{name: "SpO2 scale is not a sample field", body: `{"hr":80,"spo2_scale":2}`, field: "spo2_scale"},
		}},
		{method: "POST", path: "/hospitals/:h/alerts/:id/ack", valid: map[string]string{"note": "seen"}, emptyOK: true, cases: []apiBadCase{
			{name: "wrong type", body: `{"note":5}`, field: "note"},
			{name: "note too long", body: map[string]string{"note": strings.Repeat("n", 1001)}, field: "note"},
		}},
		{method: "POST", path: "/hospitals/:h/alerts/:id/resolve", valid: map[string]string{"note": "fine"}, emptyOK: true, cases: []apiBadCase{
			{name: "wrong type", body: `{"note":true}`, field: "note"},
			{name: "note with a control character", body: map[string]string{"note": "a\u0000b"}, field: "note"},
		}},
		{method: "POST", path: "/hospitals/:h/broadcasts", valid: map[string]string{"priority": "low", "message": "m"}, cases: []apiBadCase{
			{name: "nothing", body: `{}`, field: "priority"},
			{name: "priority urgent", body: map[string]string{"priority": "urgent", "message": "m"}, field: "priority"},
			{name: "priority in capitals", body: map[string]string{"priority": "HIGH", "message": "m"}, field: "priority"},
			{name: "no message", body: map[string]string{"priority": "high"}, field: "message"},
			{name: "message too long", body: map[string]string{"priority": "high", "message": strings.Repeat("m", 501)}, field: "message"},
			{name: "wrong type", body: `{"priority":1,"message":"m"}`, field: "priority"},
		}},
		{method: "POST", path: "/hospitals/:h/triage", valid: map[string]any{"level": 3, "complaint": "c"}, cases: []apiBadCase{
			{name: "nothing", body: `{}`, field: "level"},
			{name: "level 0", body: map[string]any{"level": 0, "complaint": "c"}, field: "level"},
			{name: "level 6", body: map[string]any{"level": 6, "complaint": "c"}, field: "level"},
			{name: "level as a string", body: `{"level":"1","complaint":"c"}`, field: "level"},
			{name: "fractional level", body: `{"level":1.5,"complaint":"c"}`, field: "level"},
			{name: "no complaint", body: map[string]any{"level": 2}, field: "complaint"},
			{name: "bad id", body: map[string]any{"id": idSlash, "level": 2, "complaint": "c"}, field: "id"},
			{name: "bad patient", body: map[string]any{"level": 2, "complaint": "c", "patient": idTooLong}, field: "patient"},
		}},
		{method: "PATCH", path: "/hospitals/:h/triage/:c", valid: map[string]any{"level": 2}, cases: []apiBadCase{
			{name: "level 0", body: map[string]any{"level": 0}, field: "level"},
			{name: "level 6", body: map[string]any{"level": 6}, field: "level"},
			{name: "bad status", body: map[string]any{"status": "closed"}, field: "status"},
			{name: "bad assignee", body: map[string]any{"assignee": "st 1"}, field: "assignee"},
			{name: "empty complaint", body: map[string]any{"complaint": ""}, field: "complaint"},
			{name: "bad patient", body: map[string]any{"patient": idSlash}, field: "patient"},
		}},
		{method: "PUT", path: "/hospitals/:h/beds/:b", valid: map[string]string{"status": "free"}, cases: []apiBadCase{
			{name: "nothing", body: `{}`, field: "status"},
			{name: "status dirty", body: map[string]string{"status": "dirty"}, field: "status"},
			{name: "bad patient", body: map[string]string{"status": "occupied", "patient": idSlash}, field: "patient"},
			{name: "patient in a free bed", body: map[string]string{"status": "free", "patient": "pm"}, field: "patient"},
			{name: "wrong type", body: `{"status":true}`, field: "status"},
		}},
		{method: "PUT", path: "/hospitals/:h/staff/:s", valid: map[string]any{"role": "nurse", "available": true, "on_shift": true}, cases: []apiBadCase{
			{name: "nothing", body: `{}`, field: "role"},
			{name: "no available", body: map[string]any{"role": "nurse", "on_shift": true}, field: "available"},
			{name: "no on_shift", body: map[string]any{"role": "nurse", "available": true}, field: "on_shift"},
			{name: "available not a boolean", body: `{"role":"nurse","available":"yes","on_shift":true}`, field: "available"},
			{name: "role too long", body: map[string]any{"role": strings.Repeat("r", 65), "available": true, "on_shift": true}, field: "role"},
		}},
		{method: "POST", path: "/risk/score", valid: map[string]any{"hr": 80}, sample: true, cases: []apiBadCase{
			{name: "no measurement", body: `{"spo2_scale":2}`},
			{name: "SpO2 scale 3", body: `{"hr":80,"spo2_scale":3}`, field: "spo2_scale"},
			{name: "wrong type", body: `{"rr":[18]}`, field: "rr"},
			{name: "implausible rr", body: `{"rr":101}`, field: "rr"},
			{name: "implausible temp", body: `{"temp":24.9}`, field: "temp"},
			{name: "bad ACVPU", body: `{"acvpu":"a"}`, field: "acvpu"},
			{name: "huge number", body: `{"hr":1e400}`, field: "hr"},
		}},
	}

	// Every route with a body is here: the OpenAPI document lists which take one.
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody any `json:"requestBody"`
		}
	}
	h.mustAPI(t, 200, "GET", "/openapi.json", "", nil).decodeInto(t, &doc)
	var withBody, tested []string
	for p, ops := range doc.Paths {
		for m, op := range ops {
			if op.RequestBody != nil {
				withBody = append(withBody, strings.ToUpper(m)+" "+p)
			}
		}
	}
	for _, r := range routes {
		tested = append(tested, r.method+" /api/v1"+api.OpenAPIPath(r.path))
	}
	slices.Sort(withBody)
	slices.Sort(tested)
	if !slices.Equal(withBody, tested) {
		t.Fatalf("routes with a body:\n OpenAPI: %v\n tested:  %v", withBody, tested)
	}

	for _, r := range routes {
		// Every route: the same generic mistakes.
		valid, _ := json.Marshal(r.valid)
		cases := []apiBadCase{
			{name: "unknown field", body: `{"bogus":1}`, field: "bogus"},
			{name: "malformed JSON", body: `{"a" 1}`},
			{name: "truncated JSON", body: `{"a":`},
			{name: "data after the object", body: string(valid) + ` {}`},
			{name: "not an object", body: `[1,2]`},
			{name: "wrong Content-Type", body: string(valid), hdr: []string{"Content-Type", "text/plain"}, status: http.StatusUnsupportedMediaType},
			{name: "no Content-Type", body: string(valid), hdr: []string{"Content-Type", ""}, status: http.StatusUnsupportedMediaType},
			{name: "form Content-Type", body: "a=b", hdr: []string{"Content-Type", "application/x-www-form-urlencoded"}, status: http.StatusUnsupportedMediaType},
			{name: "over the size limit", body: big, status: http.StatusRequestEntityTooLarge},
			{name: "over the size limit after the object", body: string(valid) + strings.Repeat(" ", 65<<10), status: http.StatusRequestEntityTooLarge},
		}
		if !r.emptyOK {
			cases = append(cases, apiBadCase{name: "empty body", body: ""})
		}
		for _, tt := range append(cases, r.cases...) {
			t.Run(r.method+" "+r.path+"/"+tt.name, func(t *testing.T) {
				want := tt.status
				if want == 0 {
					want = http.StatusBadRequest
				}
				body := tt.body
				if body == "" {
					body = []byte{} // a request with an empty body, not without one
				}
				p := h.api(t, r.method, fill(r.path, "", ""), h.admin, body, tt.hdr...).problem(t, want)
				got := p.field()
				if r.sample {
					// ingest quotes unknown keys ("\"bogus\""): it names fields from untrusted input.
					got = strings.Trim(got, `"`)
				}
				if tt.field != "" && got != tt.field {
					t.Fatalf("%s %s with %s: problem names field %q (%s); want %q", r.method, r.path, tt.name, got, p.Detail, tt.field)
				}
			})
		}
		// The control: the valid body is accepted, so the cases above fail for their mistake only.
		t.Run(r.method+" "+r.path+"/valid body", func(t *testing.T) {
			if a := h.api(t, r.method, fill(r.path, "", ""), h.admin, r.valid); a.status < 200 || a.status > 299 {
				t.Fatalf("%s with a valid body = %d %s; want success", a.what, a.status, a.body)
			}
		})
	}

	// Bad IDs in the path, for every route with a parameter: 400 naming the parameter, before
	// anything else is looked at.
	badIDs := []struct{ name, escaped, reason string }{
		{"slash", url.PathEscape(idSlash), "'/'"},
		{"hash", url.PathEscape("a#b"), "'#'"},
		{"plus", "a+b", "'+'"},
		{"encoded plus", "a%2Bb", "'+'"},
		{"65 characters", idTooLong, "longer than 64"},
		{"non-ASCII", url.PathEscape(idAccent), "non-ASCII"},
		{"leading dot", ".hidden", "must start with a letter or digit"},
		{"space", url.PathEscape("a b"), "' '"},
	}
	for _, r := range w.routes() {
		names := param.FindAllString(r.path, -1)
		for _, bad := range names {
			for _, id := range badIDs {
				t.Run("path/"+r.method+" "+r.path+"/"+bad+" "+id.name, func(t *testing.T) {
					path := fill(r.path, bad, id.escaped)
					p := h.api(t, r.method, path, h.admin, nil).problem(t, http.StatusBadRequest)
					if want := params[bad[1:]].kind; p.field() != want || !strings.Contains(p.Detail, id.reason) {
						t.Fatalf("%s %s: problem names field %q (%s); want %q, saying %s", r.method, path, p.field(), p.Detail, want, id.reason)
					}
				})
			}
		}
	}
}

// TestAPIProtocol checks what every answer shares: the OpenAPI document matches the router,
// request IDs, CORS, unknown routes and methods.
func TestAPIProtocol(t *testing.T) {
	h := apiHarness(t)

	t.Run("openapi", func(t *testing.T) {
		a := h.mustAPI(t, 200, "GET", "/openapi.json", "", nil)
		if !json.Valid(a.body) || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET /openapi.json: %q, not JSON", a.header.Get("Content-Type"))
		}
		var doc struct {
			OpenAPI string `json:"openapi"`
			Info    struct{ Title, Version string }
			Paths   map[string]map[string]struct {
				OperationID string           `json:"operationId"`
				Responses   map[string]any   `json:"responses"`
				Security    []map[string]any `json:"security"`
				Parameters  []struct {
					Name, In string
					Required bool
				} `json:"parameters"`
			}
			Components struct {
				Schemas         map[string]any `json:"schemas"`
				SecuritySchemes map[string]struct {
					Type, Scheme string
				} `json:"securitySchemes"`
			}
		}
		a.decodeInto(t, &doc)
		if doc.OpenAPI != "3.1.0" || doc.Info.Title == "" || doc.Info.Version == "" {
			t.Fatalf("openapi %q, info %+v; want 3.1.0 with a title and version", doc.OpenAPI, doc.Info)
		}
		if s := doc.Components.SecuritySchemes["bearer"]; s.Type != "http" || s.Scheme != "bearer" {
			t.Fatalf("securitySchemes.bearer = %+v; want http bearer", s)
		}
		var want, got, public []string
		for _, r := range apiRouterRoutes() {
			m, p, _ := strings.Cut(r, " ")
			want = append(want, m+" /api/v1"+api.OpenAPIPath(p))
		}
		ids := map[string]bool{}
		pathParam := regexp.MustCompile(`\{([a-z]+)\}`)
		for p, ops := range doc.Paths {
			for m, op := range ops {
				what := strings.ToUpper(m) + " " + p
				got = append(got, what)
				if len(op.Responses) == 0 || op.Responses["default"] == nil {
					t.Errorf("%s: responses %v; want a success and a default (problem) response", what, op.Responses)
				}
				if op.OperationID == "" || ids[op.OperationID] {
					t.Errorf("%s: operationId %q missing or not unique", what, op.OperationID)
				}
				ids[op.OperationID] = true
				if len(op.Security) == 0 {
					public = append(public, what)
				} else if _, ok := op.Security[0]["bearer"]; !ok {
					t.Errorf("%s: security %v; want bearer", what, op.Security)
				}
				var in []string
				for _, prm := range op.Parameters {
					if prm.In == "path" {
						if !prm.Required {
							t.Errorf("%s: path parameter %s not required", what, prm.Name)
						}
						in = append(in, prm.Name)
					}
				}
				var inPath []string
				for _, m := range pathParam.FindAllStringSubmatch(p, -1) {
					inPath = append(inPath, m[1])
				}
				if !slices.Equal(in, inPath) {
					t.Errorf("%s: path parameters %v; want %v", what, in, inPath)
				}
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Fatalf("OpenAPI operations differ from the router's routes:\n openapi: %v\n router:  %v", got, want)
		}
		slices.Sort(public)
		if wantPublic := []string{"GET /api/v1/openapi.json", "POST /api/v1/auth/login"}; !slices.Equal(public, wantPublic) {
			t.Fatalf("operations without bearer security: %v; want %v", public, wantPublic)
		}
		refs := regexp.MustCompile(`"\$ref":\s*"#/components/schemas/([^"]+)"`).FindAllSubmatch(a.body, -1)
		if len(refs) == 0 {
			t.Fatal("the document references no schema")
		}
		for _, m := range refs {
			if doc.Components.Schemas[string(m[1])] == nil {
				t.Errorf("$ref to a missing schema %s", m[1])
			}
		}
	})

	t.Run("request IDs", func(t *testing.T) {
		valid := regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
		requests := []struct {
			name, method, path, token string
			body                      any
			status                    int
		}{
			{"ok", "GET", "/auth/me", h.admin, nil, 200},
			{"public", "GET", "/openapi.json", "", nil, 200},
			{"unauthorized", "GET", "/auth/me", "", nil, 401},
			{"bad request", "POST", "/hospitals/h1/broadcasts", h.admin, map[string]string{"priority": "urgent", "message": "m"}, 400},
			{"not found", "GET", "/hospitals/h1/patients/nobody", h.admin, nil, 404},
			{"no route", "GET", "/no/such/route", h.admin, nil, 404},
			{"method not allowed", "PATCH", "/auth/login", "", nil, 405},
		}
		incoming := []struct {
			name, id string
			echoed   bool
		}{
			{"none", "", false},
			{"well formed", "req-01.ABC_x", true},
			{"64 characters", strings.Repeat("r", 64), true},
			{"65 characters", strings.Repeat("r", 65), false},
			{"with a space", "req 1", false},
			{"with markup", "<script>", false},
			{"with a slash", "a/b", false},
		}
		for _, rq := range requests {
			for _, in := range incoming {
				t.Run(rq.name+"/"+in.name, func(t *testing.T) {
					var hdr []string
					if in.id != "" {
						hdr = []string{"X-Request-ID", in.id}
					}
					a := h.api(t, rq.method, rq.path, rq.token, rq.body, hdr...)
					if a.status != rq.status {
						t.Fatalf("%s = %d %s; want %d", a.what, a.status, a.body, rq.status)
					}
					got := a.header.Get("X-Request-ID")
					switch {
					case in.echoed && got != in.id:
						t.Fatalf("%s with X-Request-ID %q answered X-Request-ID %q; want it echoed", a.what, in.id, got)
					case !in.echoed && (got == in.id || !valid.MatchString(got)):
						t.Fatalf("%s with X-Request-ID %q answered X-Request-ID %q; want a new, well-formed one", a.what, in.id, got)
					}
					if rq.status >= 400 {
						a.problem(t, rq.status) // its request_id is the header's
					}
				})
			}
		}
		a := h.api(t, "GET", "/auth/me", h.admin, nil)
		b := h.api(t, "GET", "/auth/me", h.admin, nil)
		if a.header.Get("X-Request-ID") == b.header.Get("X-Request-ID") {
			t.Fatalf("two requests got the same request ID %q", a.header.Get("X-Request-ID"))
		}
	})

	t.Run("CORS", func(t *testing.T) {
		const allowed, other = "http://dashboard.test", "http://evil.test"
		for _, tt := range []struct {
			name, method, path, token, origin string
			status                            int
		}{
			{"allowed origin, answer", "GET", "/auth/me", h.admin, allowed, 200},
			{"allowed origin, error", "GET", "/auth/me", "", allowed, 401},
			{"allowed origin, public", "GET", "/openapi.json", "", allowed, 200},
			{"other origin, answer", "GET", "/auth/me", h.admin, other, 200},
			{"other origin, error", "GET", "/auth/me", "", other, 401},
			{"no origin", "GET", "/auth/me", h.admin, "", 200},
		} {
			t.Run(tt.name, func(t *testing.T) {
				var hdr []string
				if tt.origin != "" {
					hdr = []string{"Origin", tt.origin}
				}
				a := h.api(t, tt.method, tt.path, tt.token, nil, hdr...)
				if a.status != tt.status {
					t.Fatalf("%s from %q = %d; want %d", a.what, tt.origin, a.status, tt.status)
				}
				acao := a.header.Get("Access-Control-Allow-Origin")
				if tt.origin == allowed {
					if acao != allowed || !slices.Contains(a.header.Values("Vary"), "Origin") || !strings.Contains(a.header.Get("Access-Control-Expose-Headers"), "X-Request-ID") {
						t.Fatalf("%s from %s: Access-Control-Allow-Origin %q, Vary %v, Expose %q; want the origin, Vary Origin, X-Request-ID exposed",
							a.what, tt.origin, acao, a.header.Values("Vary"), a.header.Get("Access-Control-Expose-Headers"))
					}
					return
				}
				for k := range a.header {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Fatalf("%s from %q: CORS header %s: %q; want none", a.what, tt.origin, k, a.header.Get(k))
					}
				}
			})
		}
		for _, tt := range []struct {
			name, path, method string
		}{
			{"POST with a body", "/hospitals/h1/patients", "POST"},
			{"PATCH", "/hospitals/h1/patients/p1", "PATCH"},
			{"DELETE", "/hospitals/h1/devices/d1", "DELETE"},
		} {
			t.Run("preflight/"+tt.name, func(t *testing.T) {
				pre := []string{"Access-Control-Request-Method", tt.method, "Access-Control-Request-Headers", "authorization, content-type"}
				a := h.api(t, "OPTIONS", tt.path, "", nil, append([]string{"Origin", allowed}, pre...)...)
				if a.status != http.StatusNoContent || a.header.Get("Access-Control-Allow-Origin") != allowed {
					t.Fatalf("preflight OPTIONS %s from %s = %d, Allow-Origin %q; want 204 with the origin", tt.path, allowed, a.status, a.header.Get("Access-Control-Allow-Origin"))
				}
				methods, headers := a.header.Get("Access-Control-Allow-Methods"), strings.ToLower(a.header.Get("Access-Control-Allow-Headers"))
				if !strings.Contains(methods, tt.method) || !containsAll(headers, "authorization", "content-type", "x-request-id") {
					t.Fatalf("preflight OPTIONS %s: Allow-Methods %q, Allow-Headers %q; want %s, Authorization, Content-Type, X-Request-ID", tt.path, methods, headers, tt.method)
				}
				a = h.api(t, "OPTIONS", tt.path, "", nil, append([]string{"Origin", other}, pre...)...)
				a.problem(t, http.StatusForbidden)
				for k := range a.header {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Fatalf("preflight OPTIONS %s from %s: CORS header %s; want none", tt.path, other, k)
					}
				}
			})
		}
	})

	t.Run("unknown routes and methods", func(t *testing.T) {
		for _, tt := range []struct {
			method, path string
			status       int
		}{
			{"GET", "/nothing/here", 404},
			{"GET", "/hospitals/h1/patients/", 404},
			{"DELETE", "/auth/me", 405},
			{"PUT", "/hospitals/h1/patients", 405},
		} {
			t.Run(tt.method+" "+tt.path, func(t *testing.T) {
				h.api(t, tt.method, tt.path, h.admin, nil).problem(t, tt.status)
			})
		}
	})
}

// TestAssignDischargeRace: assigning a device while its patient is discharged ends with the
// device assigned only if the patient is still admitted (it used to stay assigned to a
// patient who was gone, and would have fed whoever was admitted under that ID next).
func TestAssignDischargeRace(t *testing.T) {
	h := newHarness(t)
	h.device("h1", "mon-r", "")
	for i := range 60 {
		p := fmt.Sprintf("race-%d", i)
		h.admit("h1", p)
		done := make(chan int)
		go func() {
			status, _ := h.do("PUT", "/api/v1/hospitals/h1/devices/mon-r/assignment", h.admin, map[string]string{"patient": p})
			done <- status
		}()
		h.do("DELETE", "/api/v1/hospitals/h1/patients/"+p, h.admin, nil)
		<-done
		var l struct {
			Items []struct{ ID, Patient string }
		}
		json.Unmarshal(h.must(200, "GET", "/api/v1/hospitals/h1/devices", h.admin, nil), &l)
		for _, d := range l.Items {
			if d.ID == "mon-r" && d.Patient == p {
				t.Fatalf("round %d: mon-r assigned to %s, discharged", i, p)
			}
		}
	}
}

// TestAPIBodyTimeout: a client that trickles its request body is answered 408 once the body
// timeout passes, counted, and its connection closed. (That a handler may work past the
// timeout once it has read its body is api's TestBodyDeadlineLifted.)
func TestAPIBodyTimeout(t *testing.T) {
	h := apiHarness(t, func(c *config) { c.bodyTimeout = 50 * time.Millisecond })
	before := h.metricSum(t, "vigil_api_problems_total")
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	body := `{"username":"admin","password":"` + adminPassword + `"}`
	req := "POST /api/v1/auth/login HTTP/1.1\r\nHost: vigil.test\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body[:len(body)-5] // all but the body's end
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	res, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	var p api.Problem
	if res.StatusCode != http.StatusRequestTimeout || json.Unmarshal(b, &p) != nil || !strings.HasSuffix(p.Type, "/timeout") {
		t.Fatalf("trickled body: %d %s; want 408 and a timeout problem", res.StatusCode, b)
	}
	if _, err := rd.ReadByte(); err != io.EOF {
		t.Fatalf("connection after the 408: %v; want it closed", err)
	}
	if n := h.metricSum(t, "vigil_api_problems_total"); n != before+1 {
		t.Fatalf("vigil_api_problems_total went from %v to %v; want one more", before, n)
	}
}
