package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Problem is an RFC 9457 problem detail, the body of every error answer.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []FieldIssue `json:"errors,omitempty"`
}

// FieldIssue names a request field at fault and why.
type FieldIssue struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Error codes, the convention shared with the domain packages: their errors carry a Code()
// method (found with errors.As), invalid ones a Field() too, rate-limited ones a RetryAfter().
// This table is the one place where codes become HTTP statuses.
var statuses = map[string]int{
	"invalid":      http.StatusBadRequest,
	"unauthorized": http.StatusUnauthorized,
	"forbidden":    http.StatusForbidden,
	"not_found":    http.StatusNotFound,
	"conflict":     http.StatusConflict,
	"too_large":    http.StatusRequestEntityTooLarge,
	"unsupported":  http.StatusUnsupportedMediaType,
	"timeout":      http.StatusRequestTimeout,
	"rate_limited": http.StatusTooManyRequests,
	"unavailable":  http.StatusServiceUnavailable,
}

const problemBase = "https://vigil.dev/problems/"

// codedError is an error of this package with a code and optional field issues.
type codedError struct {
	code   string
	detail string
	issues []FieldIssue
}

func (e *codedError) Error() string { return e.detail }
func (e *codedError) Code() string  { return e.code }

// errInvalid refuses a field of the request; the empty field is the body as a whole.
func errInvalid(field, reason string) error {
	detail := reason
	if field != "" {
		detail = field + ": " + reason
	}
	return &codedError{code: "invalid", detail: detail, issues: []FieldIssue{{field, reason}}}
}

func errCode(code, format string, args ...any) error {
	return &codedError{code: code, detail: fmt.Sprintf(format, args...)}
}

// fail answers an error as problem JSON. Errors without a code are internal: logged in full,
// answered without detail.
func fail(c *gin.Context, err error) {
	var coded interface{ Code() string }
	code := "internal"
	if errors.As(err, &coded) {
		code = coded.Code()
	}
	status, ok := statuses[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	p := Problem{Type: problemBase + code, Title: http.StatusText(status), Status: status, Instance: c.Request.URL.Path, RequestID: requestID(c)}
	switch {
	case status == http.StatusInternalServerError:
		logger(c).Error("request failed", "err", err)
		p.Type = problemBase + "internal"
		p.Detail = "internal error; the request ID is in the server log"
	default:
		p.Detail = err.Error()
	}
	var ce *codedError
	if errors.As(err, &ce) {
		p.Errors = ce.issues
	} else {
		var fe interface{ Field() string }
		if code == "invalid" && errors.As(err, &fe) {
			reason := err.Error()
			if r, ok := err.(interface{ Reason() string }); ok {
				reason = r.Reason()
			}
			p.Errors = []FieldIssue{{Field: fe.Field(), Reason: reason}}
		}
	}
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		c.Header("Retry-After", strconv.Itoa(int(ra.RetryAfter().Round(time.Second)/time.Second)+1))
	}
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="vigil"`)
	}
	writeProblem(c, p)
}

func writeProblem(c *gin.Context, p Problem) {
	b, _ := json.Marshal(p)
	c.Set(ctxProblem, strings.TrimPrefix(p.Type, problemBase))
	c.Abort()
	c.Data(p.Status, "application/problem+json", b)
}

// decode reads a JSON request body strictly into v: unknown fields, wrong types, trailing data
// and oversize bodies are refused with the field named.
func decode(c *gin.Context, v any) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	// Anything but white space after the value, a stray } or ] included (which dec.More does
	// not report), is refused.
	switch _, err := dec.Token(); {
	case errors.Is(err, io.EOF):
		return nil
	case errors.Is(err, errBodyTimeout), errors.As(err, new(*http.MaxBytesError)):
		return bodyError(err)
	}
	return errInvalid("", "data after the JSON object")
}

// requireJSON refuses a request body that is not declared JSON (415).
func requireJSON(c *gin.Context) error {
	if c.ContentType() != "application/json" {
		return &codedError{code: "unsupported", detail: "Content-Type must be application/json", issues: []FieldIssue{{"", "Content-Type must be application/json"}}}
	}
	return nil
}

func bodyError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, errBodyTimeout):
		return err
	case errors.As(err, &tooBig):
		return &codedError{code: "too_large", detail: fmt.Sprintf("request body larger than %d bytes", tooBig.Limit)}
	case errors.As(err, &syn):
		return errInvalid("", fmt.Sprintf("malformed JSON at byte %d", syn.Offset))
	case errors.As(err, &typ):
		// An empty field is the body as a whole, as in every other problem about the body.
		return errInvalid(typ.Field, "must be "+jsonType(typ.Type.String()))
	case errors.Is(err, errEOF):
		return errInvalid("", "empty body; a JSON object is required")
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return errInvalid(strings.Trim(f, `"`), "unknown field")
	}
	if strings.Contains(err.Error(), "unexpected EOF") {
		return errInvalid("", "truncated JSON")
	}
	return errInvalid("", err.Error())
}

func jsonType(goType string) string {
	switch {
	case strings.Contains(goType, "int"), strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "true or false"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return "an object"
}
