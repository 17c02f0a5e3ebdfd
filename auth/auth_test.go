package auth_test

import (
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vigilhq/vigil/auth"
)

func TestMain(m *testing.M) {
	auth.BcryptCost = bcrypt.MinCost
	os.Exit(m.Run())
}

// clock is a controllable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// codeOf returns the Code of err's chain, or "" when nothing in it has one.
func codeOf(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return ""
}

// fieldOf returns the Field of err's chain, or "".
func fieldOf(err error) string {
	var f interface{ Field() string }
	if errors.As(err, &f) {
		return f.Field()
	}
	return ""
}

// retryAfterOf returns the RetryAfter of err's chain, or 0.
func retryAfterOf(err error) time.Duration {
	var r interface{ RetryAfter() time.Duration }
	if errors.As(err, &r) {
		return r.RetryAfter()
	}
	return 0
}

func TestRoles(t *testing.T) {
	tests := []struct {
		role             auth.Role
		write, broadcast bool
	}{
		{auth.RoleAdmin, true, true},
		{auth.RoleClinician, true, true},
		{auth.RoleNurse, true, false},
		{auth.RoleViewer, false, false},
		{auth.Role("root"), false, false},
		{auth.Role(""), false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			if got := tt.role.CanWrite(); got != tt.write {
				t.Errorf("Role(%q).CanWrite() = %v; want %v", tt.role, got, tt.write)
			}
			if got := tt.role.CanBroadcast(); got != tt.broadcast {
				t.Errorf("Role(%q).CanBroadcast() = %v; want %v", tt.role, got, tt.broadcast)
			}
		})
	}
}

func TestParseRole(t *testing.T) {
	tests := []struct {
		in   string
		want auth.Role
		ok   bool
	}{
		{"admin", auth.RoleAdmin, true},
		{"clinician", auth.RoleClinician, true},
		{"nurse", auth.RoleNurse, true},
		{"viewer", auth.RoleViewer, true},
		{"Admin", "", false},
		{"", "", false},
		{"root", "", false},
		{" nurse", "", false},
	}
	for _, tt := range tests {
		got, err := auth.ParseRole(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseRole(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && (codeOf(err) != auth.CodeInvalid || fieldOf(err) != "role") {
			t.Errorf("ParseRole(%q) error code %q field %q; want invalid, role", tt.in, codeOf(err), fieldOf(err))
		}
	}
}

func TestHashPassword(t *testing.T) {
	tests := []struct {
		name, pw string
		ok       bool
	}{
		{"empty", "", false},
		{"7 bytes", "1234567", false},
		{"8 bytes", "12345678", true},
		{"72 bytes", strings.Repeat("x", 72), true},
		{"73 bytes", strings.Repeat("x", 72) + "y", false},
		{"multibyte counts bytes", "éééé", true}, // 4 characters, 8 bytes
		{"multibyte too short", "ééé", false},    // 6 bytes
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash, err := auth.HashPassword(tt.pw)
			if (err == nil) != tt.ok {
				t.Fatalf("HashPassword(%d bytes) = %v; want ok %v", len(tt.pw), err, tt.ok)
			}
			if err != nil {
				if codeOf(err) != auth.CodeInvalid || fieldOf(err) != "password" || !errors.Is(err, auth.ErrInvalid) {
					t.Errorf("HashPassword(%d bytes) = %v (code %q, field %q); want invalid, password", len(tt.pw), err, codeOf(err), fieldOf(err))
				}
				return
			}
			if !auth.CheckPassword(hash, tt.pw) {
				t.Errorf("CheckPassword(HashPassword(%q), same) = false; want true", tt.pw)
			}
			if auth.CheckPassword(hash, tt.pw+"!") {
				t.Errorf("CheckPassword(HashPassword(%q), other) = true; want false", tt.pw)
			}
		})
	}
}

func TestCheckPassword(t *testing.T) {
	pw := strings.Repeat("p", 72)
	hash, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, hash, pw string
		want           bool
	}{
		{"match", hash, pw, true},
		{"wrong", hash, "not the password", false},
		{"72-byte prefix plus more", hash, pw + "extra", false}, // bcrypt alone would say yes
		{"empty", hash, "", false},
		{"garbage hash", "not-a-hash", pw, false},
		{"empty hash", "", pw, false},
	}
	for _, tt := range tests {
		if got := auth.CheckPassword(tt.hash, tt.pw); got != tt.want {
			t.Errorf("CheckPassword(%s) = %v; want %v", tt.name, got, tt.want)
		}
	}
}
