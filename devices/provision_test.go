package devices_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/devices"
)

// fakeAPI implements the few routes of Vigil's REST API the client uses (DESIGN.md section 8).
// It stands in for an HTTP peer; the end-to-end test runs against the real API.
type fakeAPI struct {
	mu       sync.Mutex
	patients map[string]string // id -> bed
	secrets  map[string]string // device -> secret
	assigned map[string]string // device -> patient
	rotated  int
	n        int
}

func newFakeAPI(t *testing.T) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{patients: map[string]string{}, secrets: map[string]string{}, assigned: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/auth/login", f.login)
	mux.HandleFunc("POST /api/v1/hospitals/{h}/patients", f.auth(f.admit))
	mux.HandleFunc("GET /api/v1/hospitals/{h}/patients/{p}", f.auth(f.patient))
	mux.HandleFunc("POST /api/v1/hospitals/{h}/devices", f.auth(f.provision))
	mux.HandleFunc("POST /api/v1/hospitals/{h}/devices/{d}/secret", f.auth(f.rotate))
	mux.HandleFunc("PUT /api/v1/hospitals/{h}/devices/{d}/assignment", f.auth(f.assign))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

type fieldErr struct{ Field, Reason string }

func writeProblem(w http.ResponseWriter, status int, detail string, fields ...fieldErr) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	p := map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail}
	if len(fields) > 0 {
		errs := make([]map[string]string, len(fields))
		for i, f := range fields {
			errs[i] = map[string]string{"field": f.Field, "reason": f.Reason}
		}
		p["errors"] = errs
	}
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if r.Header.Get("Content-Type") != "application/json" || dec.Decode(v) != nil {
		writeProblem(w, http.StatusBadRequest, "malformed body")
		return false
	}
	return true
}

func (f *fakeAPI) login(w http.ResponseWriter, r *http.Request) {
	var in struct{ Username, Password string }
	if !decode(w, r, &in) {
		return
	}
	if in.Username != "admin" || in.Password != "s3cret" {
		writeProblem(w, http.StatusUnauthorized, "wrong username or password")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": "tok-1", "expires_at": "2026-11-25T11:00:00Z",
		"user": map[string]any{"username": "admin", "role": "admin", "hospitals": []string{}, "created_at": "2026-01-01T00:00:00Z"}})
}

func (f *fakeAPI) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-1" {
			writeProblem(w, http.StatusUnauthorized, "no or bad token")
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		next(w, r)
	}
}

func (f *fakeAPI) admit(w http.ResponseWriter, r *http.Request) {
	var in struct{ ID, Name, Bed string }
	if !decode(w, r, &in) {
		return
	}
	if _, ok := f.patients[in.ID]; ok {
		writeProblem(w, http.StatusConflict, fmt.Sprintf("patient %s is admitted", in.ID))
		return
	}
	for p, bed := range f.patients {
		if in.Bed != "" && bed == in.Bed {
			writeProblem(w, http.StatusConflict, fmt.Sprintf("bed %s is occupied by patient %s", bed, p))
			return
		}
	}
	f.patients[in.ID] = in.Bed
	writeJSON(w, http.StatusCreated, map[string]any{"id": in.ID, "name": in.Name, "bed": in.Bed})
}

func (f *fakeAPI) patient(w http.ResponseWriter, r *http.Request) {
	bed, ok := f.patients[r.PathValue("p")]
	if !ok {
		writeProblem(w, http.StatusNotFound, "patient "+r.PathValue("p")+" not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("p"), "bed": bed})
}

func (f *fakeAPI) provision(w http.ResponseWriter, r *http.Request) {
	var in struct{ ID, Model string }
	if !decode(w, r, &in) {
		return
	}
	if _, ok := f.secrets[in.ID]; ok {
		writeProblem(w, http.StatusConflict, fmt.Sprintf("device %s exists", in.ID), fieldErr{"id", "exists"})
		return
	}
	f.n++
	f.secrets[in.ID] = fmt.Sprintf("secret-%d", f.n)
	writeJSON(w, http.StatusCreated, map[string]any{"id": in.ID, "secret": f.secrets[in.ID], "model": in.Model})
}

func (f *fakeAPI) rotate(w http.ResponseWriter, r *http.Request) {
	d := r.PathValue("d")
	if _, ok := f.secrets[d]; !ok {
		writeProblem(w, http.StatusNotFound, "no device "+d)
		return
	}
	f.n++
	f.rotated++
	f.secrets[d] = fmt.Sprintf("secret-%d", f.n)
	writeJSON(w, http.StatusOK, map[string]any{"id": d, "secret": f.secrets[d]})
}

func (f *fakeAPI) assign(w http.ResponseWriter, r *http.Request) {
	var in struct{ Patient string }
	if !decode(w, r, &in) {
		return
	}
	if _, ok := f.patients[in.Patient]; !ok {
		writeProblem(w, http.StatusBadRequest, "invalid request", fieldErr{"patient", "not admitted"})
		return
	}
	f.assigned[r.PathValue("d")] = in.Patient
	writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("d"), "patient": in.Patient})
}

func TestClientLogin(t *testing.T) {
	_, srv := newFakeAPI(t)
	ctx := context.Background()
	c := devices.NewClient(srv.URL + "/")

	_, err := c.Login(ctx, "admin", "wrong")
	var apiErr *devices.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || apiErr.Detail != "wrong username or password" {
		t.Fatalf("Login(admin, wrong) = %v; want an *APIError 401 with the detail", err)
	}
	if want := "POST /api/v1/auth/login: 401 Unauthorized: wrong username or password"; err.Error() != want {
		t.Errorf("error = %q; want %q", err, want)
	}
	if err := c.AdmitPatient(ctx, "h1", "p1", "Ada", ""); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Errorf("AdmitPatient before login = %v; want a 401 *APIError", err)
	}

	s, err := c.Login(ctx, "admin", "s3cret")
	want := time.Date(2026, 11, 25, 11, 0, 0, 0, time.UTC)
	if err != nil || s.Token != "tok-1" || !s.ExpiresAt.Equal(want) || s.User.Username != "admin" || s.User.Role != "admin" {
		t.Fatalf("Login(admin, s3cret) = %+v, %v; want token tok-1, expiry %v, user admin", s, err, want)
	}
	if c.Token != "tok-1" {
		t.Errorf("after Login, Token = %q; want tok-1", c.Token)
	}
}

func TestClientProvisioning(t *testing.T) {
	f, srv := newFakeAPI(t)
	ctx := context.Background()
	c := devices.NewClient(srv.URL)
	if _, err := c.Login(ctx, "admin", "s3cret"); err != nil {
		t.Fatal(err)
	}

	for range 2 { // the second admission answers 409: fine
		if err := c.AdmitPatient(ctx, "h1", "p1", "Ada Okafor", "bed-01"); err != nil {
			t.Fatalf("AdmitPatient(h1, p1) = %v; want nil", err)
		}
	}
	first, err := c.ProvisionDevice(ctx, "h1", "mon-1", "sim")
	if err != nil || first == "" {
		t.Fatalf("ProvisionDevice(h1, mon-1) = %q, %v; want a secret", first, err)
	}
	second, err := c.ProvisionDevice(ctx, "h1", "mon-1", "sim")
	if err != nil || second == "" || second == first || f.rotated != 1 {
		t.Fatalf("ProvisionDevice again = %q, %v (rotations %d); want a new secret by rotation", second, err, f.rotated)
	}
	if err := c.Assign(ctx, "h1", "mon-1", "p1"); err != nil || f.assigned["mon-1"] != "p1" {
		t.Fatalf("Assign(h1, mon-1, p1) = %v (assigned %q); want nil", err, f.assigned["mon-1"])
	}

	err = c.Assign(ctx, "h1", "mon-1", "p404")
	var apiErr *devices.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest ||
		len(apiErr.Errors) != 1 || apiErr.Errors[0] != (devices.FieldProblem{Field: "patient", Reason: "not admitted"}) {
		t.Fatalf("Assign(h1, mon-1, p404) = %#v; want a 400 *APIError naming the patient field", err)
	}
	if want := "PUT /api/v1/hospitals/h1/devices/mon-1/assignment: 400 Bad Request: invalid request; patient: not admitted"; err.Error() != want {
		t.Errorf("error = %q; want %q", err, want)
	}

	if err := c.AdmitPatient(ctx, "h1", "a/b", "X", ""); err == nil {
		t.Error("AdmitPatient(h1, a/b) = nil; want an invalid ID error before any request")
	}
	if _, err := c.ProvisionDevice(ctx, "h+", "mon-2", ""); err == nil {
		t.Error("ProvisionDevice(h+, mon-2) = nil; want an invalid ID error")
	}
}

func TestClientProvisionWard(t *testing.T) {
	f, srv := newFakeAPI(t)
	ctx := context.Background()
	c := devices.NewClient(srv.URL)
	if _, err := c.Login(ctx, "admin", "s3cret"); err != nil {
		t.Fatal(err)
	}
	beds := devices.DemoWard("h1", 4)
	for round := range 2 { // provisioning a ward twice rotates the secrets
		mons, err := c.ProvisionWard(ctx, beds, "vigil-sim")
		if err != nil || len(mons) != len(beds) {
			t.Fatalf("round %d: ProvisionWard = %d monitors, %v; want %d", round, len(mons), err, len(beds))
		}
		for i, m := range mons {
			b := beds[i]
			if m.Device != b.Device || m.Patient != b.Patient || m.Scenario != b.Scenario ||
				m.Secret != f.secrets[m.Device] || f.assigned[m.Device] != m.Patient || f.patients[m.Patient] != b.Bed {
				t.Errorf("round %d: monitor %+v; want %+v with secret %q, assigned and admitted in %s",
					round, m, b.Monitor, f.secrets[m.Device], b.Bed)
			}
		}
	}
	if f.rotated != len(beds) {
		t.Errorf("%d rotations; want %d", f.rotated, len(beds))
	}
}

func TestClientNonProblemError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>bad gateway</html>\n")
	}))
	defer srv.Close()
	err := devices.NewClient(srv.URL).AdmitPatient(context.Background(), "h1", "p1", "Ada", "")
	var apiErr *devices.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadGateway || apiErr.Title != "Bad Gateway" ||
		apiErr.Detail != "<html>bad gateway</html>" {
		t.Fatalf("AdmitPatient against a 502 HTML answer = %#v; want an *APIError 502 Bad Gateway with the body", err)
	}
}

// TestAdmitPatientBedTaken: a 409 for a bed another patient holds is an error (only "admitted
// already" is fine): the patient is not admitted, and assigning a monitor to them would fail.
func TestAdmitPatientBedTaken(t *testing.T) {
	_, srv := newFakeAPI(t)
	c := &devices.Client{BaseURL: srv.URL}
	if _, err := c.Login(context.Background(), "admin", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := c.AdmitPatient(context.Background(), "h1", "p1", "A", "bed-1"); err != nil {
		t.Fatalf("AdmitPatient(p1, bed-1): %v", err)
	}
	if err := c.AdmitPatient(context.Background(), "h1", "p1", "A", "bed-1"); err != nil {
		t.Fatalf("AdmitPatient(p1) again: %v; want nil (admitted already)", err)
	}
	if err := c.AdmitPatient(context.Background(), "h1", "p2", "B", "bed-1"); !isConflict(err) {
		t.Fatalf("AdmitPatient(p2) into p1's bed: %v; want the 409", err)
	}
}

func isConflict(err error) bool {
	var e *devices.APIError
	return errors.As(err, &e) && e.Status == http.StatusConflict
}
