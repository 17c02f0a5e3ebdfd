// Package auth owns identity: users and roles, password hashing, JWT issue and verification, and
// login rate limiting.
//
// Errors. The HTTP layer cannot import this package, so every error it returns carries its class
// in a method found with errors.As and an interface target, the convention store errors follow:
//
//	Code() string               "invalid", "unauthorized", "forbidden", "conflict", "not_found",
//	                            "rate_limited" or "unavailable"
//	Field() string              on "invalid" errors: the JSON field at fault ("password", "hospitals[1]")
//	RetryAfter() time.Duration  on "rate_limited" errors
//
// Errors of the store pass through wrapped, with their own Code.
//
// Decisions recorded here (DESIGN.md section 7 is silent on them):
//   - Users returned by [Service] never carry PasswordHash, so a handler cannot leak it by
//     serialising the record.
//   - Login counts an attempt against its limits before the password is checked and refunds it
//     on success, so parallel guesses cannot all slip in before the first failure is recorded.
//   - The per-username limit also applies to usernames that do not exist, and unknown users get
//     a bcrypt comparison against a dummy hash: neither the answer, its timing nor the rate
//     limit tells which usernames exist.
//   - Tokens are verified with a 5 s leeway for clock skew; nbf equals iat.
package auth

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Error codes, the classes the HTTP layer maps to statuses.
const (
	CodeInvalid      = "invalid"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeConflict     = "conflict"
	CodeNotFound     = "not_found"
	CodeRateLimited  = "rate_limited"
	CodeUnavailable  = "unavailable"
)

// Error is an error class with a code. The package's sentinels are *Error values; test for them
// with errors.Is.
type Error struct{ code, msg string }

func (e *Error) Error() string { return e.msg }

// Code is the class, one of the Code constants.
func (e *Error) Code() string { return e.code }

// Sentinel errors.
var (
	// ErrBadCredentials is the one answer to a wrong password and to an unknown username alike.
	ErrBadCredentials = &Error{CodeUnauthorized, "invalid username or password"}
	// ErrInvalidToken is wrapped, with the reason, by every refusal of Verify.
	ErrInvalidToken = &Error{CodeUnauthorized, "invalid token"}
	// ErrInvalid is wrapped by every *FieldError.
	ErrInvalid = &Error{CodeInvalid, "invalid input"}
	// ErrRateLimited is wrapped by every *RateLimitError.
	ErrRateLimited = &Error{CodeRateLimited, "too many failed logins"}
	// ErrUnavailable is wrapped by failures of the machinery (random source, a store error
	// without a code).
	ErrUnavailable = &Error{CodeUnavailable, "unavailable"}
	// ErrBadAccount refuses a login to a stored user whose role is not one this version knows.
	ErrBadAccount = &Error{CodeForbidden, "account has an unknown role"}
)

// FieldError says which input field is wrong and why. Its Code is "invalid"; it wraps ErrInvalid
// and the cause, if any (a *topics.IDError for a bad ID).
type FieldError struct {
	field, reason string
	cause         error
}

func invalid(field, reason string, cause error) *FieldError {
	return &FieldError{field: field, reason: reason, cause: cause}
}

// Error reads like `invalid hospitals[1]: contains '/'`.
func (e *FieldError) Error() string { return "invalid " + e.field + ": " + e.reason }

// Code is always "invalid".
func (e *FieldError) Code() string { return CodeInvalid }

// Field is the JSON field at fault, e.g. "password" or "hospitals[1]".
func (e *FieldError) Field() string { return e.field }

// Reason says what is wrong with the field, e.g. "must be at least 8 bytes".
func (e *FieldError) Reason() string { return e.reason }

// Unwrap returns ErrInvalid and the cause.
func (e *FieldError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.cause}
}

// RateLimitError refuses a login attempt over its limit. Its Code is "rate_limited"; it wraps
// ErrRateLimited.
type RateLimitError struct{ retryAfter time.Duration }

func (e *RateLimitError) Error() string {
	return "too many failed logins, retry in " + e.retryAfter.Round(time.Second).String()
}

// Code is always "rate_limited".
func (e *RateLimitError) Code() string { return CodeRateLimited }

// RetryAfter is how long until the next attempt may be made (always > 0).
func (e *RateLimitError) RetryAfter() time.Duration { return e.retryAfter }

// Unwrap returns ErrRateLimited.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// coder is the error-code convention.
type coder interface {
	error
	Code() string
}

// classify makes sure err carries a code: errors that have one (the store's) are wrapped with
// op, others are reported as unavailable.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[coder](err); ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// Role is what a user may do.
type Role string

// The roles, most powerful first.
const (
	RoleAdmin     Role = "admin"
	RoleClinician Role = "clinician"
	RoleNurse     Role = "nurse"
	RoleViewer    Role = "viewer"
)

var roles = []Role{RoleAdmin, RoleClinician, RoleNurse, RoleViewer}

// ParseRole returns the role named s, or a *FieldError for the field "role".
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", invalid("role", "unknown role "+quote(s)+": want admin, clinician, nurse or viewer", nil)
	}
	return r, nil
}

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return slices.Contains(roles, r) }

// CanWrite reports whether r may change clinical records: nurse, clinician or admin ("nurse+").
func (r Role) CanWrite() bool { return r == RoleNurse || r == RoleClinician || r == RoleAdmin }

// CanBroadcast reports whether r may send hospital-wide alerts: clinician or admin ("clinician+").
func (r Role) CanBroadcast() bool { return r == RoleClinician || r == RoleAdmin }

// quote quotes s for a message, cut to a readable length.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}
