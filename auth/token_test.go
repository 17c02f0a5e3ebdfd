package auth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vigilhq/vigil/auth"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes

func newTokens(t testing.TB, c *clock) *auth.Tokens {
	t.Helper()
	tokens, err := auth.NewTokens(testSecret, auth.TokenOptions{Now: c.Now})
	if err != nil {
		t.Fatalf("NewTokens: %v", err)
	}
	return tokens
}

// goodClaims are the claims of a valid token issued at now, as Issue would make them.
func goodClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"sub":       "alice",
		"role":      "nurse",
		"hospitals": []string{"h1", "h2"},
		"iss":       "vigil",
		"aud":       []string{"vigil"},
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
	}
}

// edit returns goodClaims changed by f.
func edit(now time.Time, f func(jwt.MapClaims)) jwt.MapClaims {
	c := goodClaims(now)
	f(c)
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// handmade builds a token from a raw header, claims and signature, without any library.
func handmade(t testing.TB, header string, c jwt.MapClaims, sig []byte) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString(sig)
}

func TestVerifyRefuses(t *testing.T) {
	c := newClock()
	now := c.Now()
	tokens := newTokens(t, c)
	hs256 := func(claims jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, testSecret, claims) }

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// A valid token with its payload swapped for one that says admin.
	good := hs256(goodClaims(now))
	parts := strings.Split(good, ".")
	adminPayload, _ := json.Marshal(edit(now, func(c jwt.MapClaims) { c["role"] = "admin" }))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(adminPayload) + "." + parts[2]

	tests := []struct {
		name   string
		token  string
		reason string // "" for accepted
	}{
		{"valid", good, ""},
		{"alg none via jwt", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims(now)), "unexpected algorithm"},
		{"alg none by hand", handmade(t, `{"alg":"none","typ":"JWT"}`, goodClaims(now), nil), "unexpected algorithm"},
		{"alg None by hand", handmade(t, `{"alg":"None","typ":"JWT"}`, goodClaims(now), nil), "unexpected algorithm"},
		{"alg missing", handmade(t, `{"typ":"JWT"}`, goodClaims(now), []byte("sig")), "unexpected algorithm"},
		{"HS384 same secret", sign(t, jwt.SigningMethodHS384, testSecret, goodClaims(now)), "unexpected algorithm"},
		{"HS512 same secret", sign(t, jwt.SigningMethodHS512, testSecret, goodClaims(now)), "unexpected algorithm"},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, goodClaims(now)), "unexpected algorithm"},
		{"another key", sign(t, jwt.SigningMethodHS256, []byte("another secret, also 32 bytes ok"), goodClaims(now)), "bad signature"},
		{"tampered payload", tampered, "bad signature"},
		{"HS256 empty signature", handmade(t, `{"alg":"HS256","typ":"JWT"}`, goodClaims(now), nil), "bad signature"},
		{"wrong issuer", hs256(edit(now, func(c jwt.MapClaims) { c["iss"] = "other" })), "wrong issuer"},
		{"missing issuer", hs256(edit(now, func(c jwt.MapClaims) { delete(c, "iss") })), "missing iss"},
		{"wrong audience", hs256(edit(now, func(c jwt.MapClaims) { c["aud"] = []string{"grafana"} })), "wrong audience"},
		{"missing audience", hs256(edit(now, func(c jwt.MapClaims) { delete(c, "aud") })), "missing aud"},
		{"expired", hs256(edit(now, func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() })), "expired"},
		{"expired within leeway", hs256(edit(now, func(c jwt.MapClaims) { c["exp"] = now.Add(-3 * time.Second).Unix() })), ""},
		{"nbf in the future", hs256(edit(now, func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), "not yet valid"},
		{"iat in the future", hs256(edit(now, func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() })), "not yet valid"},
		{"iat and nbf within leeway", hs256(edit(now, func(c jwt.MapClaims) {
			c["iat"], c["nbf"] = now.Add(3*time.Second).Unix(), now.Add(3*time.Second).Unix()
		})), ""},
		{"missing exp", hs256(edit(now, func(c jwt.MapClaims) { delete(c, "exp") })), "missing exp"},
		{"missing iat", hs256(edit(now, func(c jwt.MapClaims) { delete(c, "iat") })), "missing iat"},
		{"missing sub", hs256(edit(now, func(c jwt.MapClaims) { delete(c, "sub") })), "missing sub"},
		{"unknown role", hs256(edit(now, func(c jwt.MapClaims) { c["role"] = "superuser" })), `unknown role "superuser"`},
		{"missing role", hs256(edit(now, func(c jwt.MapClaims) { delete(c, "role") })), `unknown role ""`},
		{"exp not a number", hs256(edit(now, func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), "malformed"},
		{"empty", "", "malformed"},
		{"garbage", "not-a-token", "malformed"},
		{"three dots of garbage", "a.b.c", "malformed"},
		{"bad base64 payload", parts[0] + ".!!!." + parts[2], "malformed"},
		{"four segments", good + ".x", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := tokens.Verify(tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify(%s) = %v; want accepted", tt.name, err)
				}
				if claims.Subject != "alice" || claims.Role != auth.RoleNurse {
					t.Errorf("Verify(%s) claims = %+v; want alice, nurse", tt.name, claims)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify(%s) = %+v, nil; want refusal %q", tt.name, claims, tt.reason)
			}
			if claims != nil {
				t.Errorf("Verify(%s) returned claims %+v with error %v; want nil", tt.name, claims, err)
			}
			if want := "invalid token: " + tt.reason; err.Error() != want {
				t.Errorf("Verify(%s) = %v; want %v", tt.name, err, want)
			}
			if !errors.Is(err, auth.ErrInvalidToken) || codeOf(err) != auth.CodeUnauthorized {
				t.Errorf("Verify(%s) = %v (code %q); want it to wrap ErrInvalidToken, code unauthorized", tt.name, err, codeOf(err))
			}
		})
	}
}

func TestIssueVerify(t *testing.T) {
	c := newClock()
	c.Add(123 * time.Millisecond) // JWT times are whole seconds
	tokens, err := auth.NewTokens(testSecret, auth.TokenOptions{Issuer: "site-a", Audience: "ward-app", TTL: time.Hour, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	issued := c.Now().Truncate(time.Second)
	token, expires, err := tokens.Issue("bob", auth.RoleClinician, []string{"h1", "h2"})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if want := issued.Add(time.Hour); !expires.Equal(want) {
		t.Errorf("Issue expires = %v; want %v", expires, want)
	}

	// A second Tokens with the same secret (a restart, another replica) accepts it.
	again, err := auth.NewTokens(slices.Clone(testSecret), auth.TokenOptions{Issuer: "site-a", Audience: "ward-app", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]*auth.Tokens{"same": tokens, "restarted": again} {
		claims, err := v.Verify(token)
		if err != nil {
			t.Fatalf("Verify(%s) = %v; want accepted", name, err)
		}
		want := &auth.Claims{
			Role:      auth.RoleClinician,
			Hospitals: []string{"h1", "h2"},
			RegisteredClaims: jwt.RegisteredClaims{
				Subject:   "bob",
				Issuer:    "site-a",
				Audience:  jwt.ClaimStrings{"ward-app"},
				IssuedAt:  jwt.NewNumericDate(issued),
				NotBefore: jwt.NewNumericDate(issued),
				ExpiresAt: jwt.NewNumericDate(expires),
			},
		}
		if !sameClaims(claims, want) {
			t.Errorf("Verify(%s) = %+v; want %+v", name, claims, want)
		}
	}

	// The raw payload carries every claim DESIGN.md section 7 lists.
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sub", "role", "hospitals", "iss", "aud", "iat", "exp"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("token payload %s lacks %q", payload, k)
		}
	}

	// Valid until exp plus the leeway, refused after.
	c.Add(time.Hour + 4*time.Second)
	if _, err := tokens.Verify(token); err != nil {
		t.Errorf("Verify(at exp+4s) = %v; want accepted (leeway)", err)
	}
	c.Add(2 * time.Second)
	if _, err := tokens.Verify(token); err == nil || err.Error() != "invalid token: expired" {
		t.Errorf("Verify(at exp+6s) = %v; want invalid token: expired", err)
	}
}

func sameClaims(a, b *auth.Claims) bool {
	return a.Role == b.Role && slices.Equal(a.Hospitals, b.Hospitals) &&
		a.Subject == b.Subject && a.Issuer == b.Issuer && slices.Equal(a.Audience, b.Audience) &&
		a.IssuedAt.Equal(b.IssuedAt.Time) && a.NotBefore.Equal(b.NotBefore.Time) && a.ExpiresAt.Equal(b.ExpiresAt.Time)
}

func TestIssueHospitalsNeverNull(t *testing.T) {
	tokens := newTokens(t, newClock())
	token, _, err := tokens.Issue("admin", auth.RoleAdmin, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if !strings.Contains(string(payload), `"hospitals":[]`) {
		t.Errorf("Issue(admin, nil hospitals) payload = %s; want \"hospitals\":[]", payload)
	}
}

func TestIssueRefuses(t *testing.T) {
	tokens := newTokens(t, newClock())
	tests := []struct {
		name     string
		username string
		role     auth.Role
		field    string
	}{
		{"unknown role", "bob", auth.Role("root"), "role"},
		{"empty username", "", auth.RoleNurse, "username"},
		{"username with slash", "a/b", auth.RoleNurse, "username"},
	}
	for _, tt := range tests {
		token, _, err := tokens.Issue(tt.username, tt.role, []string{"h1"})
		if err == nil || codeOf(err) != auth.CodeInvalid || fieldOf(err) != tt.field {
			t.Errorf("Issue(%s) = %q, %v (code %q, field %q); want invalid %s", tt.name, token, err, codeOf(err), fieldOf(err), tt.field)
		}
	}
}

func TestNewTokensSecret(t *testing.T) {
	for _, n := range []int{0, 16, 31} {
		if _, err := auth.NewTokens(make([]byte, n), auth.TokenOptions{}); err == nil || codeOf(err) != auth.CodeInvalid {
			t.Errorf("NewTokens(%d-byte secret) = %v (code %q); want invalid", n, err, codeOf(err))
		}
	}
	secret, err := auth.GenerateSecret()
	if err != nil {
		t.Fatalf("GenerateSecret: %v", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(raw) != 32 {
		t.Errorf("GenerateSecret() = %q: %d bytes, %v; want 32 base64url bytes", secret, len(raw), err)
	}
	if other, _ := auth.GenerateSecret(); other == secret {
		t.Errorf("GenerateSecret() twice = %q; want different secrets", secret)
	}
	if _, err := auth.NewTokens([]byte(secret), auth.TokenOptions{}); err != nil {
		t.Errorf("NewTokens(GenerateSecret()) = %v; want ok", err)
	}
}

func TestCanAccess(t *testing.T) {
	tests := []struct {
		role      auth.Role
		hospitals []string
		h         string
		want      bool
	}{
		{auth.RoleAdmin, nil, "h1", true},
		{auth.RoleAdmin, []string{"h2"}, "h1", true},
		{auth.RoleClinician, []string{"h1", "h2"}, "h2", true},
		{auth.RoleNurse, []string{"h1"}, "h1", true},
		{auth.RoleNurse, []string{"h1"}, "h2", false},
		{auth.RoleNurse, []string{"h1"}, "H1", false},
		{auth.RoleViewer, nil, "h1", false},
		{auth.RoleViewer, []string{"h1"}, "", false},
	}
	for _, tt := range tests {
		c := &auth.Claims{Role: tt.role, Hospitals: tt.hospitals}
		if got := c.CanAccess(tt.h); got != tt.want {
			t.Errorf("Claims{%s %v}.CanAccess(%q) = %v; want %v", tt.role, tt.hospitals, tt.h, got, tt.want)
		}
	}
}

// BenchmarkVerify measures one token verification: parse, HMAC-SHA256, claims checks.
func BenchmarkVerify(b *testing.B) {
	tokens := newTokens(b, newClock())
	token, _, err := tokens.Issue("alice", auth.RoleNurse, []string{"h1", "h2"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tokens.Verify(token); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVerifyConcurrent shares one Tokens between goroutines; run with -race.
func TestVerifyConcurrent(t *testing.T) {
	tokens := newTokens(t, newClock())
	good, _, err := tokens.Issue("alice", auth.RoleNurse, []string{"h1"})
	if err != nil {
		t.Fatal(err)
	}
	bad := sign(t, jwt.SigningMethodHS256, []byte("another secret, also 32 bytes ok"), goodClaims(newClock().Now()))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if _, err := tokens.Verify(good); err != nil {
					t.Errorf("Verify(good) = %v; want accepted", err)
					return
				}
				if _, err := tokens.Verify(bad); err == nil {
					t.Errorf("Verify(another key) = nil; want refused")
					return
				}
			}
		})
	}
	wg.Wait()
}
