package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/vigilhq/vigil/news2"
	"github.com/vigilhq/vigil/topics"
)

// access is the minimum a caller needs for a route.
type access uint8

const (
	anyone    access = iota // no token
	loggedIn                // any valid token
	staff                   // any role of the route's hospital
	nurse                   // nurse, clinician or admin of the route's hospital
	clinician               // clinician or admin of the route's hospital
	admin                   // admin
)

func (a access) String() string {
	return [...]string{"anyone", "logged in", "staff of the hospital", "nurse, clinician or admin", "clinician or admin", "admin"}[a]
}

// route is one entry of the route table. The table drives both the router and the OpenAPI
// document.
type route struct {
	method, path string // relative to /api/v1, Gin syntax
	access       access
	tag, summary string
	body         any  // request body type (nil: none)
	optional     bool // the body may be left out
	resp         any  // answer type (nil: none)
	status       int  // success status
	query        []param
	handle       gin.HandlerFunc
}

type param struct{ name, desc string }

var pageParams = []param{{"limit", "page size (1 to 1000, default 100)"}, {"cursor", "next_cursor of the previous page"}}

func (s *Server) table() []route {
	return []route{
		{method: "POST", path: "/auth/login", access: anyone, tag: "auth", summary: "Log in: a JWT for the API and for MQTT", body: loginBody{}, resp: LoginResult{}, status: 200, handle: s.login},
		{method: "GET", path: "/auth/me", access: loggedIn, tag: "auth", summary: "The caller and their token's claims", resp: meAnswer{}, status: 200, handle: s.me},
		{method: "POST", path: "/users", access: admin, tag: "users", summary: "Create a user", body: NewUser{}, resp: User{}, status: 201, handle: s.createUser},
		{method: "GET", path: "/users", access: admin, tag: "users", summary: "List users", resp: list[User]{}, status: 200, query: pageParams, handle: s.listUsers},
		{method: "DELETE", path: "/users/:u", access: admin, tag: "users", summary: "Delete a user: their tokens stop working, their MQTT connections close", status: 204, handle: s.deleteUser},

		{method: "POST", path: "/hospitals/:h/devices", access: admin, tag: "devices", summary: "Provision a device (its secret is shown once)", body: newDevice{}, resp: Device{}, status: 201, handle: s.provision},
		{method: "GET", path: "/hospitals/:h/devices", access: staff, tag: "devices", summary: "List devices with assignment and online state", resp: list[Device]{}, status: 200, query: pageParams, handle: s.listDevices},
		{method: "PUT", path: "/hospitals/:h/devices/:d/assignment", access: nurse, tag: "devices", summary: "Assign a device to a patient", body: assignment{}, resp: Device{}, status: 200, handle: s.assign},
		{method: "DELETE", path: "/hospitals/:h/devices/:d/assignment", access: nurse, tag: "devices", summary: "Unassign a device", resp: Device{}, status: 200, handle: s.unassign},
		{method: "POST", path: "/hospitals/:h/devices/:d/secret", access: admin, tag: "devices", summary: "Rotate a device's secret (disconnects it)", resp: Device{}, status: 200, handle: s.rotate},
		{method: "DELETE", path: "/hospitals/:h/devices/:d", access: admin, tag: "devices", summary: "Delete a device (disconnects it)", status: 204, handle: s.deleteDevice},

		{method: "POST", path: "/hospitals/:h/patients", access: nurse, tag: "patients", summary: "Admit a patient", body: NewPatient{}, resp: Patient{}, status: 201, handle: s.admit},
		{method: "GET", path: "/hospitals/:h/patients", access: staff, tag: "patients", summary: "List patients with latest risk, open alerts and last vitals", resp: list[Patient]{}, status: 200, query: pageParams, handle: s.listPatients},
		{method: "GET", path: "/hospitals/:h/patients/:p", access: staff, tag: "patients", summary: "Get a patient", resp: Patient{}, status: 200, handle: s.getPatient},
		{method: "PATCH", path: "/hospitals/:h/patients/:p", access: nurse, tag: "patients", summary: "Update bed, name, SpO2 scale or alarm limits", body: PatientPatch{}, resp: Patient{}, status: 200, handle: s.updatePatient},
		{method: "DELETE", path: "/hospitals/:h/patients/:p", access: nurse, tag: "patients", summary: "Discharge: resolves open alerts, unassigns devices", status: 204, handle: s.discharge},
		{method: "POST", path: "/hospitals/:h/patients/:p/observations", access: nurse, tag: "patients", summary: "Record a manual observation (a vitals sample); rescored at once", body: observation{}, resp: news2.Risk{}, status: 201, handle: s.observe},
		{method: "GET", path: "/hospitals/:h/patients/:p/vitals", access: staff, tag: "patients", summary: "Vitals history, oldest first", resp: list[Sample]{}, status: 200,
			query: append([]param{{"from", "RFC 3339 time, inclusive (default 24 h ago)"}, {"to", "RFC 3339 time, exclusive (default now)"}}, pageParams...), handle: s.vitals},
		{method: "GET", path: "/hospitals/:h/patients/:p/risk", access: staff, tag: "patients", summary: "Latest risk", resp: news2.Risk{}, status: 200, handle: s.risk},

		{method: "GET", path: "/hospitals/:h/alerts", access: staff, tag: "alerts", summary: "List alerts, newest first", resp: list[Alert]{}, status: 200,
			query: append([]param{{"state", "comma-separated: active, acknowledged, resolved"}, {"priority", "comma-separated: high, medium, low"}, {"patient", "patient ID"}, {"kind", "alarm kind"}, {"since", "RFC 3339: raised at or after"}}, pageParams...), handle: s.listAlerts},
		{method: "GET", path: "/hospitals/:h/alerts/:id", access: staff, tag: "alerts", summary: "An alert and its history (audit trail)", resp: AlertDetail{}, status: 200, handle: s.getAlert},
		{method: "POST", path: "/hospitals/:h/alerts/:id/ack", access: nurse, tag: "alerts", summary: "Acknowledge (409 unless active)", body: note{}, optional: true, resp: Alert{}, status: 200, handle: s.ack},
		{method: "POST", path: "/hospitals/:h/alerts/:id/resolve", access: nurse, tag: "alerts", summary: "Resolve (409 once resolved)", body: note{}, optional: true, resp: Alert{}, status: 200, handle: s.resolve},
		{method: "POST", path: "/hospitals/:h/broadcasts", access: clinician, tag: "alerts", summary: "Send a hospital_alert (stored, then published)", body: NewBroadcast{}, resp: Broadcast{}, status: 201, handle: s.broadcast},
		{method: "GET", path: "/hospitals/:h/broadcasts", access: staff, tag: "alerts", summary: "Hospital alerts sent, newest first", resp: list[Broadcast]{}, status: 200, query: pageParams, handle: s.listBroadcasts},

		{method: "POST", path: "/hospitals/:h/triage", access: nurse, tag: "triage", summary: "Open a triage case", body: NewTriage{}, resp: TriageCase{}, status: 201, handle: s.createTriage},
		{method: "GET", path: "/hospitals/:h/triage", access: staff, tag: "triage", summary: "The triage queue", resp: list[TriageCase]{}, status: 200, query: pageParams, handle: s.listTriage},
		{method: "GET", path: "/hospitals/:h/triage/:c", access: staff, tag: "triage", summary: "A triage case", resp: TriageCase{}, status: 200, handle: s.getTriage},
		{method: "PATCH", path: "/hospitals/:h/triage/:c", access: nurse, tag: "triage", summary: "Update a triage case (status, assignee, level)", body: TriagePatch{}, resp: TriageCase{}, status: 200, handle: s.updateTriage},
		{method: "PUT", path: "/hospitals/:h/beds/:b", access: nurse, tag: "beds", summary: "Set a bed's status and patient", body: BedUpdate{}, resp: Bed{}, status: 200, handle: s.putBed},
		{method: "GET", path: "/hospitals/:h/beds", access: staff, tag: "beds", summary: "List beds", resp: list[Bed]{}, status: 200, query: pageParams, handle: s.listBeds},
		{method: "PUT", path: "/hospitals/:h/staff/:s", access: nurse, tag: "staff", summary: "Set a staff member's availability", body: StaffUpdate{}, resp: StaffMember{}, status: 200, handle: s.putStaff},
		{method: "GET", path: "/hospitals/:h/staff", access: staff, tag: "staff", summary: "List staff", resp: list[StaffMember]{}, status: 200, query: pageParams, handle: s.listStaff},

		{method: "POST", path: "/risk/score", access: loggedIn, tag: "risk", summary: "Score a vitals sample (NEWS2); no side effect", body: scoreBody{}, resp: news2.Risk{}, status: 200, handle: s.score},
		{method: "GET", path: "/stats", access: admin, tag: "stats", summary: "Connections, subscribers per filter, traffic, open alerts", resp: map[string]any{}, status: 200, handle: s.stats},
		{method: "GET", path: "/openapi.json", access: anyone, tag: "meta", summary: "This document", status: 200, handle: s.openapi},
	}
}

func (s *Server) routes() {
	v1 := s.engine.Group("/api/v1")
	for _, r := range s.table() {
		var chain []gin.HandlerFunc
		if r.access != anyone {
			chain = append(chain, s.authenticate)
		}
		chain = append(chain, s.authorize(r), r.handle)
		v1.Handle(r.method, r.path, chain...)
	}
}

// authorize checks IDs in the path, the caller's hospital and role. Another hospital's resource
// is not found (404), never forbidden, so its existence does not leak.
func (s *Server) authorize(r route) gin.HandlerFunc {
	return func(c *gin.Context) {
		for _, p := range c.Params {
			if err := topics.ValidID(paramKind(p.Key), p.Value); err != nil {
				fail(c, errInvalid(paramKind(p.Key), err.Error()))
				return
			}
		}
		if r.access == anyone {
			return
		}
		p := principal(c)
		if h := c.Param("h"); h != "" && !p.CanAccess(h) {
			fail(c, errCode("not_found", "hospital %s not found", h))
			return
		}
		if !p.Allowed(r.access) {
			fail(c, errCode("forbidden", "%s %s needs: %s", r.method, r.path, r.access))
			return
		}
	}
}

func paramKind(k string) string {
	switch k {
	case "h":
		return "hospital"
	case "p":
		return "patient"
	case "d":
		return "device"
	case "b":
		return "bed"
	case "s":
		return "staff"
	case "c":
		return "triage case"
	case "id":
		return "alert"
	case "u":
		return "username"
	}
	return k
}

// --- helpers ---

func ok(c *gin.Context, status int, v any) {
	if v == nil {
		c.Status(status)
		return
	}
	c.JSON(status, v)
}

func page(c *gin.Context) (Page, error) {
	var pg Page
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return pg, errInvalid("limit", "must be a whole number from 1 to 1000")
		}
		pg.Limit = n
	}
	pg.Cursor = c.Query("cursor")
	if len(pg.Cursor) > 512 {
		return pg, errInvalid("cursor", "too long")
	}
	return pg, nil
}

// cursorError names the cursor when a list refuses it. Every other input of a list is checked
// before the list is read, so an "invalid" error without a field, for a request with a cursor,
// is the store refusing a cursor that is not one of this list's.
func cursorError(err error, pg Page) error {
	var coded interface{ Code() string }
	var field interface{ Field() string }
	if pg.Cursor != "" && errors.As(err, &coded) && coded.Code() == "invalid" && !errors.As(err, &field) {
		return errInvalid("cursor", "not a cursor of this list: pass next_cursor of the previous page")
	}
	return err
}

func queryTime(c *gin.Context, name string) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errInvalid(name, "must be an RFC 3339 time, e.g. 2026-11-25T10:00:00Z")
	}
	return t, nil
}

func listOf[T any](items []T, next string) list[T] {
	if items == nil {
		items = []T{}
	}
	return list[T]{Items: items, NextCursor: next}
}

func actor(c *gin.Context) string { return principal(c).Subject }

func text(field, v string, min, max int) error {
	n := utf8.RuneCountInString(v)
	switch {
	case !utf8.ValidString(v):
		return errInvalid(field, "must be UTF-8 text")
	case min == 1 && strings.TrimSpace(v) == "": // white space alone is no name, message or complaint
		return errInvalid(field, "required")
	case n < min:
		return errInvalid(field, "at least "+strconv.Itoa(min)+" characters")
	case n > max:
		return errInvalid(field, "at most "+strconv.Itoa(max)+" characters")
	}
	for _, r := range v {
		if r < 0x20 && r != '\t' {
			return errInvalid(field, "control characters are not allowed")
		}
	}
	return nil
}

func id(field, kind, v string) error {
	if err := topics.ValidID(kind, v); err != nil {
		return errInvalid(field, err.Error())
	}
	return nil
}

func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return errInvalid(field, "must be one of "+strings.Join(allowed, ", "))
}

// --- auth and users ---

type loginBody struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (s *Server) login(c *gin.Context) {
	var b loginBody
	if err := decode(c, &b); err != nil {
		fail(c, err)
		return
	}
	if b.Username == "" {
		fail(c, errInvalid("username", "required"))
		return
	}
	if b.Password == "" {
		fail(c, errInvalid("password", "required"))
		return
	}
	res, err := s.opts.Auth.Login(c.Request.Context(), b.Username, b.Password, c.Request.RemoteAddr)
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, res)
}

type meAnswer struct {
	User   User      `json:"user"`
	Claims claimsOut `json:"claims"`
}

type claimsOut struct {
	Sub       string   `json:"sub"`
	Role      string   `json:"role"`
	Hospitals []string `json:"hospitals"`
	Iss       string   `json:"iss"`
	Aud       []string `json:"aud"`
	Iat       int64    `json:"iat"`
	Exp       int64    `json:"exp"`
}

func (s *Server) me(c *gin.Context) {
	p := principal(c)
	hs := p.Hospitals
	if hs == nil {
		hs = []string{}
	}
	ok(c, http.StatusOK, meAnswer{
		User:   User{Username: p.Subject, Role: p.Role, Hospitals: hs},
		Claims: claimsOut{Sub: p.Subject, Role: p.Role, Hospitals: hs, Iss: p.Issuer, Aud: p.Audience, Iat: p.IssuedAt.Unix(), Exp: p.ExpiresAt.Unix()},
	})
}

func (s *Server) createUser(c *gin.Context) {
	var b NewUser
	if err := decode(c, &b); err != nil {
		fail(c, err)
		return
	}
	if err := oneOf("role", b.Role, RoleAdmin, RoleClinician, RoleNurse, RoleViewer); err != nil {
		fail(c, err)
		return
	}
	u, err := s.opts.Auth.CreateUser(c.Request.Context(), b)
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusCreated, u)
}

func (s *Server) listUsers(c *gin.Context) {
	pg, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	us, next, err := s.opts.Auth.ListUsers(c.Request.Context(), pg)
	if err != nil {
		fail(c, cursorError(err, pg))
		return
	}
	ok(c, http.StatusOK, listOf(us, next))
}

func (s *Server) deleteUser(c *gin.Context) {
	if c.Param("u") == principal(c).Subject {
		fail(c, errCode("conflict", "you cannot delete yourself"))
		return
	}
	if err := s.opts.Auth.DeleteUser(c.Request.Context(), c.Param("u")); err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusNoContent, nil)
}

// --- devices ---

type newDevice struct {
	ID    string `json:"id"`
	Model string `json:"model,omitempty"`
}

type assignment struct {
	Patient string `json:"patient"`
}

func (s *Server) provision(c *gin.Context) {
	var b newDevice
	if err := decode(c, &b); err != nil {
		fail(c, err)
		return
	}
	if err := id("id", "device", b.ID); err != nil {
		fail(c, err)
		return
	}
	if err := text("model", b.Model, 0, 200); err != nil {
		fail(c, err)
		return
	}
	d, secret, err := s.opts.Devices.Provision(c.Request.Context(), c.Param("h"), b.ID, b.Model)
	if err != nil {
		fail(c, err)
		return
	}
	d.Secret = secret
	c.Header("Cache-Control", "no-store")
	ok(c, http.StatusCreated, d)
}

func (s *Server) listDevices(c *gin.Context) {
	pg, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	ds, next, err := s.opts.Devices.List(c.Request.Context(), c.Param("h"), pg)
	if err != nil {
		fail(c, cursorError(err, pg))
		return
	}
	ok(c, http.StatusOK, listOf(ds, next))
}

func (s *Server) assign(c *gin.Context) {
	var b assignment
	if err := decode(c, &b); err != nil {
		fail(c, err)
		return
	}
	if err := id("patient", "patient", b.Patient); err != nil {
		fail(c, err)
		return
	}
	d, err := s.opts.Devices.Assign(c.Request.Context(), c.Param("h"), c.Param("d"), b.Patient)
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, d)
}

func (s *Server) unassign(c *gin.Context) {
	d, err := s.opts.Devices.Unassign(c.Request.Context(), c.Param("h"), c.Param("d"))
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, d)
}

func (s *Server) rotate(c *gin.Context) {
	d, secret, err := s.opts.Devices.Rotate(c.Request.Context(), c.Param("h"), c.Param("d"))
	if err != nil {
		fail(c, err)
		return
	}
	d.Secret = secret
	c.Header("Cache-Control", "no-store")
	ok(c, http.StatusOK, d)
}

func (s *Server) deleteDevice(c *gin.Context) {
	if err := s.opts.Devices.Delete(c.Request.Context(), c.Param("h"), c.Param("d")); err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusNoContent, nil)
}

// --- patients ---

func validLimits(l *Limits) error {
	if l == nil {
		return nil
	}
	check := []struct {
		field    string
		v        *float64
		min, max float64
	}{
		{"limits.spo2_low", l.SpO2Low, 50, 100}, {"limits.hr_low", l.HRLow, 20, 200}, {"limits.hr_high", l.HRHigh, 40, 300},
		{"limits.rr_low", l.RRLow, 0, 60}, {"limits.rr_high", l.RRHigh, 5, 100}, {"limits.sbp_low", l.SBPLow, 40, 250},
		{"limits.sbp_high", l.SBPHigh, 60, 300}, {"limits.delay_seconds", l.DelaySeconds, 0, 600},
	}
	for _, x := range check {
		if x.v != nil && (*x.v < x.min || *x.v > x.max) {
			return errInvalid(x.field, "must be from "+strconv.FormatFloat(x.min, 'f', -1, 64)+" to "+strconv.FormatFloat(x.max, 'f', -1, 64))
		}
	}
	if l.HRLow != nil && l.HRHigh != nil && *l.HRLow >= *l.HRHigh {
		return errInvalid("limits.hr_low", "must be below hr_high")
	}
	if l.RRLow != nil && l.RRHigh != nil && *l.RRLow >= *l.RRHigh {
		return errInvalid("limits.rr_low", "must be below rr_high")
	}
	if l.SBPLow != nil && l.SBPHigh != nil && *l.SBPLow >= *l.SBPHigh {
		return errInvalid("limits.sbp_low", "must be below sbp_high")
	}
	return nil
}

func validScale(v *int) error {
	if v != nil && *v != 1 && *v != 2 {
		return errInvalid("spo2_scale", "must be 1 or 2")
	}
	return nil
}

func (s *Server) admit(c *gin.Context) {
	var b NewPatient
	if err := decode(c, &b); err != nil {
		fail(c, err)
		return
	}
	err := errors.Join(id("id", "patient", b.ID), text("name", b.Name, 1, 200), validScale(b.SpO2Scale), validLimits(b.Limits))
	if err == nil && b.Bed != "" {
		err = id("bed", "bed", b.Bed)
	}
	if err != nil {
		fail(c, first(err))
		return
	}
	p, err := s.opts.Patients.Admit(c.Request.Context(), c.Param("h"), b, actor(c))
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusCreated, p)
}

// first returns the first error of a joined error (checks above run in field order).
func first(err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := j.Unwrap(); len(errs) > 0 {
			return errs[0]
		}
	}
	return err
}

func (s *Server) listPatients(c *gin.Context) {
	pg, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	ps, next, err := s.opts.Patients.List(c.Request.Context(), c.Param("h"), pg)
	if err != nil {
		fail(c, cursorError(err, pg))
		return
	}
	ok(c, http.StatusOK, listOf(ps, next))
}

func (s *Server) getPatient(c *gin.Context) {
	p, err := s.opts.Patients.Get(c.Request.Context(), c.Param("h"), c.Param("p"))
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, p)
}

func (s *Server) updatePatient(c *gin.Context) {
	var b PatientPatch
	if err := decode(c, &b); err != nil {
		fail(c, err)
		return
	}
	var errs []error
	if b.Name != nil {
		errs = append(errs, text("name", *b.Name, 1, 200))
	}
	if b.Bed != nil && *b.Bed != "" {
		errs = append(errs, id("bed", "bed", *b.Bed))
	}
	errs = append(errs, validScale(b.SpO2Scale), validLimits(b.Limits))
	if err := errors.Join(errs...); err != nil {
		fail(c, first(err))
		return
	}
	p, err := s.opts.Patients.Update(c.Request.Context(), c.Param("h"), c.Param("p"), b, actor(c))
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, p)
}

func (s *Server) discharge(c *gin.Context) {
	if err := s.opts.Patients.Discharge(c.Request.Context(), c.Param("h"), c.Param("p"), actor(c)); err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusNoContent, nil)
}

// observation documents the body of POST /observations: a vitals sample.
type observation struct {
	TS    string   `json:"ts,omitempty"`
	Seq   *int64   `json:"seq,omitempty"`
	HR    *float64 `json:"hr,omitempty"`
	RR    *float64 `json:"rr,omitempty"`
	SpO2  *float64 `json:"spo2,omitempty"`
	SBP   *float64 `json:"sbp,omitempty"`
	Temp  *float64 `json:"temp,omitempty"`
	O2    *bool    `json:"o2,omitempty"`
	ACVPU string   `json:"acvpu,omitempty"`
}

// scoreBody documents the body of POST /risk/score.
type scoreBody struct {
	observation
	SpO2Scale int `json:"spo2_scale,omitempty"`
}

func rawBody(c *gin.Context) ([]byte, error) {
	if err := requireJSON(c); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return nil, bodyError(err)
	}
	return b, nil
}

func (s *Server) observe(c *gin.Context) {
	body, err := rawBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	r, err := s.opts.Patients.Observe(c.Request.Context(), c.Param("h"), c.Param("p"), actor(c), body)
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusCreated, r)
}

func (s *Server) vitals(c *gin.Context) {
	pg, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	from, err := queryTime(c, "from")
	if err != nil {
		fail(c, err)
		return
	}
	to, err := queryTime(c, "to")
	if err != nil {
		fail(c, err)
		return
	}
	if from.IsZero() {
		from = s.opts.Now().Add(-24 * time.Hour)
	}
	if !to.IsZero() && !to.After(from) {
		fail(c, errInvalid("to", "must be after from"))
		return
	}
	xs, next, err := s.opts.Patients.Vitals(c.Request.Context(), c.Param("h"), c.Param("p"), from, to, pg)
	if err != nil {
		fail(c, cursorError(err, pg))
		return
	}
	ok(c, http.StatusOK, listOf(xs, next))
}

func (s *Server) risk(c *gin.Context) {
	r, err := s.opts.Patients.Risk(c.Request.Context(), c.Param("h"), c.Param("p"))
	if err != nil {
		fail(c, err)
		return
	}
	if r == nil {
		fail(c, errCode("not_found", "no risk yet: no vitals received for patient %s", c.Param("p")))
		return
	}
	ok(c, http.StatusOK, r)
}

func (s *Server) score(c *gin.Context) {
	body, err := rawBody(c)
	if err != nil {
		fail(c, err)
		return
	}
	r, err := s.opts.Scorer.Score(body)
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, r)
}

// --- alerts ---

type note struct {
	Note string `json:"note,omitempty"`
}

func splitList(c *gin.Context, name string, allowed ...string) ([]string, error) {
	v := c.Query(name)
	if v == "" {
		return nil, nil
	}
	var out []string
	for _, x := range strings.Split(v, ",") {
		x = strings.TrimSpace(x)
		if err := oneOf(name, x, allowed...); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

func (s *Server) listAlerts(c *gin.Context) {
	pg, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	var q AlertQuery
	if q.States, err = splitList(c, "state", "active", "acknowledged", "resolved"); err != nil {
		fail(c, err)
		return
	}
	if q.Priorities, err = splitList(c, "priority", "high", "medium", "low"); err != nil {
		fail(c, err)
		return
	}
	if q.Patient = c.Query("patient"); q.Patient != "" {
		if err := id("patient", "patient", q.Patient); err != nil {
			fail(c, err)
			return
		}
	}
	if q.Kind = c.Query("kind"); q.Kind != "" {
		if err := id("kind", "kind", q.Kind); err != nil {
			fail(c, err)
			return
		}
	}
	if q.Since, err = queryTime(c, "since"); err != nil {
		fail(c, err)
		return
	}
	as, next, err := s.opts.Alerts.List(c.Request.Context(), c.Param("h"), q, pg)
	if err != nil {
		fail(c, cursorError(err, pg))
		return
	}
	ok(c, http.StatusOK, listOf(as, next))
}

func (s *Server) getAlert(c *gin.Context) {
	a, err := s.opts.Alerts.Get(c.Request.Context(), c.Param("h"), c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, a)
}

// optionalNote reads {"note": "..."} when a body is sent.
func optionalNote(c *gin.Context) (string, error) {
	if c.Request.ContentLength == 0 {
		return "", nil
	}
	var n note
	if err := decode(c, &n); err != nil {
		return "", err
	}
	return n.Note, text("note", n.Note, 0, 1000)
}

func (s *Server) ack(c *gin.Context) {
	n, err := optionalNote(c)
	if err != nil {
		fail(c, err)
		return
	}
	a, err := s.opts.Alerts.Acknowledge(c.Request.Context(), c.Param("h"), c.Param("id"), actor(c), n)
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, a)
}

func (s *Server) resolve(c *gin.Context) {
	n, err := optionalNote(c)
	if err != nil {
		fail(c, err)
		return
	}
	a, err := s.opts.Alerts.Resolve(c.Request.Context(), c.Param("h"), c.Param("id"), actor(c), n)
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, a)
}

func (s *Server) broadcast(c *gin.Context) {
	var b NewBroadcast
	if err := decode(c, &b); err != nil {
		fail(c, err)
		return
	}
	if err := errors.Join(oneOf("priority", b.Priority, "high", "medium", "low"), text("message", b.Message, 1, 500)); err != nil {
		fail(c, first(err))
		return
	}
	out, err := s.opts.Ward.Broadcast(c.Request.Context(), c.Param("h"), b, actor(c))
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusCreated, out)
}

func (s *Server) listBroadcasts(c *gin.Context) {
	pg, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	xs, next, err := s.opts.Ward.ListBroadcasts(c.Request.Context(), c.Param("h"), pg)
	if err != nil {
		fail(c, cursorError(err, pg))
		return
	}
	ok(c, http.StatusOK, listOf(xs, next))
}

// --- triage, beds, staff ---

var triageStatuses = []string{"waiting", "in_assessment", "assigned", "done"}

func validLevel(v int) error {
	if v < 1 || v > 5 {
		return errInvalid("level", "must be an ESI level from 1 (most urgent) to 5")
	}
	return nil
}

func (s *Server) createTriage(c *gin.Context) {
	var b NewTriage
	if err := decode(c, &b); err != nil {
		fail(c, err)
		return
	}
	errs := []error{validLevel(b.Level), text("complaint", b.Complaint, 1, 500)}
	if b.ID != "" {
		errs = append([]error{id("id", "triage case", b.ID)}, errs...)
	}
	if b.Patient != "" {
		errs = append(errs, id("patient", "patient", b.Patient))
	}
	if err := errors.Join(errs...); err != nil {
		fail(c, first(err))
		return
	}
	tc, err := s.opts.Ward.CreateTriage(c.Request.Context(), c.Param("h"), b, actor(c))
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusCreated, tc)
}

func (s *Server) updateTriage(c *gin.Context) {
	var b TriagePatch
	if err := decode(c, &b); err != nil {
		fail(c, err)
		return
	}
	var errs []error
	if b.Level != nil {
		errs = append(errs, validLevel(*b.Level))
	}
	if b.Complaint != nil {
		errs = append(errs, text("complaint", *b.Complaint, 1, 500))
	}
	if b.Patient != nil && *b.Patient != "" {
		errs = append(errs, id("patient", "patient", *b.Patient))
	}
	if b.Status != nil {
		errs = append(errs, oneOf("status", *b.Status, triageStatuses...))
	}
	if b.Assignee != nil && *b.Assignee != "" {
		errs = append(errs, id("assignee", "staff", *b.Assignee))
	}
	if err := errors.Join(errs...); err != nil {
		fail(c, first(err))
		return
	}
	tc, err := s.opts.Ward.UpdateTriage(c.Request.Context(), c.Param("h"), c.Param("c"), b, actor(c))
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, tc)
}

func (s *Server) getTriage(c *gin.Context) {
	tc, err := s.opts.Ward.GetTriage(c.Request.Context(), c.Param("h"), c.Param("c"))
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, tc)
}

func (s *Server) listTriage(c *gin.Context) {
	pg, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	xs, next, err := s.opts.Ward.ListTriage(c.Request.Context(), c.Param("h"), pg)
	if err != nil {
		fail(c, cursorError(err, pg))
		return
	}
	ok(c, http.StatusOK, listOf(xs, next))
}

func (s *Server) putBed(c *gin.Context) {
	var b BedUpdate
	if err := decode(c, &b); err != nil {
		fail(c, err)
		return
	}
	errs := []error{oneOf("status", b.Status, "free", "occupied", "cleaning", "blocked")}
	if b.Patient != "" {
		errs = append(errs, id("patient", "patient", b.Patient))
	}
	if b.Patient != "" && b.Status != "occupied" && b.Status != "" {
		errs = append(errs, errInvalid("patient", "only an occupied bed has a patient"))
	}
	if err := errors.Join(errs...); err != nil {
		fail(c, first(err))
		return
	}
	bed, err := s.opts.Ward.PutBed(c.Request.Context(), c.Param("h"), c.Param("b"), b, actor(c))
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, bed)
}

func (s *Server) listBeds(c *gin.Context) {
	pg, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	xs, next, err := s.opts.Ward.ListBeds(c.Request.Context(), c.Param("h"), pg)
	if err != nil {
		fail(c, cursorError(err, pg))
		return
	}
	ok(c, http.StatusOK, listOf(xs, next))
}

func (s *Server) putStaff(c *gin.Context) {
	var b StaffUpdate
	if err := decode(c, &b); err != nil {
		fail(c, err)
		return
	}
	errs := []error{text("role", b.Role, 1, 64), text("name", b.Name, 0, 200)}
	if b.Available == nil {
		errs = append(errs, errInvalid("available", "required (true or false)"))
	}
	if b.OnShift == nil {
		errs = append(errs, errInvalid("on_shift", "required (true or false)"))
	}
	if err := errors.Join(errs...); err != nil {
		fail(c, first(err))
		return
	}
	m, err := s.opts.Ward.PutStaff(c.Request.Context(), c.Param("h"), c.Param("s"), b, actor(c))
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, m)
}

func (s *Server) listStaff(c *gin.Context) {
	pg, err := page(c)
	if err != nil {
		fail(c, err)
		return
	}
	xs, next, err := s.opts.Ward.ListStaff(c.Request.Context(), c.Param("h"), pg)
	if err != nil {
		fail(c, cursorError(err, pg))
		return
	}
	ok(c, http.StatusOK, listOf(xs, next))
}

func (s *Server) stats(c *gin.Context) {
	v, err := s.opts.Stats.Stats(c.Request.Context())
	if err != nil {
		fail(c, err)
		return
	}
	ok(c, http.StatusOK, v)
}
