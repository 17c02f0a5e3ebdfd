package devices

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vigilhq/vigil/topics"
)

// Client provisions simulated wards through Vigil's REST API ([DESIGN.md section 8]): it logs
// in, admits patients, provisions devices and assigns them. Its methods may be called
// concurrently, but not concurrently with Login.
type Client struct {
	// BaseURL is Vigil's HTTP address, e.g. http://127.0.0.1:8080 (without /api/v1).
	BaseURL string
	// Token is the bearer token sent with every request; Login sets it.
	Token string
	// HTTP is the client requests go through; nil means one with a 30 s timeout.
	HTTP *http.Client
}

// NewClient returns a client of the Vigil at baseURL.
func NewClient(baseURL string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/")}
}

// APIError is an error answer of the REST API, decoded from its RFC 9457 problem JSON.
type APIError struct {
	Method, Path string // the request
	Status       int
	Type         string
	Title        string
	Detail       string
	Errors       []FieldProblem
}

// FieldProblem names a request field and why it was refused.
type FieldProblem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error reads like `POST /api/v1/hospitals/h1/devices: 409 Conflict: device d1 exists`.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d", e.Method, e.Path, e.Status)
	if e.Title != "" {
		b.WriteString(" " + e.Title)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for _, f := range e.Errors {
		fmt.Fprintf(&b, "; %s: %s", f.Field, f.Reason)
	}
	return b.String()
}

// User is the user a login answers with.
type User struct {
	Username  string   `json:"username"`
	Role      string   `json:"role"`
	Hospitals []string `json:"hospitals"`
}

// Session is the answer of POST /auth/login.
type Session struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      User      `json:"user"`
}

// Login logs in and keeps the token for the requests that follow.
func (c *Client) Login(ctx context.Context, username, password string) (Session, error) {
	var l Session
	err := c.do(ctx, http.MethodPost, "/api/v1/auth/login", map[string]string{"username": username, "password": password}, &l)
	if err != nil {
		return Session{}, err
	}
	if l.Token == "" {
		return Session{}, errors.New("login answered without a token")
	}
	c.Token = l.Token
	return l, nil
}

// AdmitPatient admits patient id of hospital h in bed (may be empty). A patient who is already
// admitted (409 Conflict) is fine.
func (c *Client) AdmitPatient(ctx context.Context, h, id, name, bed string) error {
	if err := validIDs("hospital", h, "patient", id); err != nil {
		return err
	}
	if bed != "" {
		if err := topics.ValidID("bed", bed); err != nil {
			return err
		}
	}
	body := map[string]string{"id": id, "name": name}
	if bed != "" {
		body["bed"] = bed
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/hospitals/"+h+"/patients", body, nil)
	if status(err) == http.StatusConflict {
		// Admitted already (a restart), or the bed is another patient's: only the first is fine.
		if c.do(ctx, http.MethodGet, "/api/v1/hospitals/"+h+"/patients/"+id, nil, nil) == nil {
			return nil
		}
	}
	return err
}

// ProvisionDevice provisions device id of hospital h and returns its secret. When the device
// exists (409 Conflict) its secret is rotated instead: the old one stops working.
func (c *Client) ProvisionDevice(ctx context.Context, h, id, model string) (secret string, err error) {
	if err := validIDs("hospital", h, "device", id); err != nil {
		return "", err
	}
	var out struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	body := map[string]string{"id": id}
	if model != "" {
		body["model"] = model
	}
	err = c.do(ctx, http.MethodPost, "/api/v1/hospitals/"+h+"/devices", body, &out)
	if status(err) == http.StatusConflict {
		err = c.do(ctx, http.MethodPost, "/api/v1/hospitals/"+h+"/devices/"+id+"/secret", nil, &out)
	}
	if err != nil {
		return "", err
	}
	if out.Secret == "" {
		return "", fmt.Errorf("device %s: the answer carries no secret", id)
	}
	return out.Secret, nil
}

// Assign points device d of hospital h at patient p.
func (c *Client) Assign(ctx context.Context, h, d, p string) error {
	if err := validIDs("hospital", h, "device", d); err != nil {
		return err
	}
	if err := topics.ValidID("patient", p); err != nil {
		return err
	}
	return c.do(ctx, http.MethodPut, "/api/v1/hospitals/"+h+"/devices/"+d+"/assignment", map[string]string{"patient": p}, nil)
}

// ProvisionWard admits the patient of every bedside, provisions its monitor (rotating the
// secret of one that exists) and assigns it, and returns the monitors with their secrets.
func (c *Client) ProvisionWard(ctx context.Context, beds []Bedside, model string) ([]Monitor, error) {
	out := make([]Monitor, 0, len(beds))
	for _, b := range beds {
		m := b.Monitor
		if err := c.AdmitPatient(ctx, m.Hospital, m.Patient, b.Name, b.Bed); err != nil {
			return nil, fmt.Errorf("admitting %s: %w", m.Patient, err)
		}
		secret, err := c.ProvisionDevice(ctx, m.Hospital, m.Device, model)
		if err != nil {
			return nil, fmt.Errorf("provisioning %s: %w", m.Device, err)
		}
		if err := c.Assign(ctx, m.Hospital, m.Device, m.Patient); err != nil {
			return nil, fmt.Errorf("assigning %s to %s: %w", m.Device, m.Patient, err)
		}
		m.Secret = secret
		out = append(out, m)
	}
	return out, nil
}

func validIDs(kind1, id1, kind2, id2 string) error {
	if err := topics.ValidID(kind1, id1); err != nil {
		return err
	}
	return topics.ValidID(kind2, id2)
}

func status(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// maxAnswer bounds what is read of an answer.
const maxAnswer = 1 << 20

// do sends a JSON request and decodes a 2xx JSON answer into out (when not nil). Any other
// status becomes an *APIError. IDs in path are checked by the callers (topics.ValidID), so
// they need no escaping.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return problem(method, path, resp, raw)
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// problem turns an error answer into an *APIError: from its problem JSON when it has one,
// from the status and the start of the body otherwise (a proxy's HTML page, say).
func problem(method, path string, resp *http.Response, raw []byte) error {
	e := &APIError{Method: method, Path: path, Status: resp.StatusCode}
	var p struct {
		Type   string         `json:"type"`
		Title  string         `json:"title"`
		Status int            `json:"status"`
		Detail string         `json:"detail"`
		Errors []FieldProblem `json:"errors"`
	}
	if json.Unmarshal(raw, &p) == nil {
		e.Type, e.Title, e.Detail, e.Errors = p.Type, p.Title, p.Detail, p.Errors
	} else {
		e.Detail = strings.TrimSpace(string(raw[:min(len(raw), 200)]))
	}
	if e.Title == "" {
		e.Title = http.StatusText(resp.StatusCode)
	}
	return e
}
