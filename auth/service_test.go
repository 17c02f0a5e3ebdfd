package auth_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/auth"
	"github.com/vigilhq/vigil/internal/testenv"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/embedded"
)

var _ auth.UserStore = (*embedded.DB)(nil)
var _ auth.UserStore = store.Store(nil)

// env is a Service on a real embedded store, a fake clock and a log buffer.
type env struct {
	svc   *auth.Service
	db    *embedded.DB
	clock *clock
	log   *testenv.Buffer
}

func newEnv(t testing.TB, opts auth.ServiceOptions) *env {
	t.Helper()
	db, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatalf("embedded.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{db: db, clock: newClock(), log: new(testenv.Buffer)}
	opts.Now = e.clock.Now
	opts.Logger = slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.svc = auth.NewService(db, newTokens(t, e.clock), opts)
	return e
}

func (e *env) mustCreate(t testing.TB, username, pw string, role auth.Role, hospitals ...string) store.User {
	t.Helper()
	u, err := e.svc.CreateUser(context.Background(), username, pw, role, hospitals)
	if err != nil {
		t.Fatalf("CreateUser(%s): %v", username, err)
	}
	return u
}

const alicePW = "correct horse battery"

func TestLogin(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, auth.ServiceOptions{})
	e.mustCreate(t, "alice", alicePW, auth.RoleNurse, "h1", "h2")

	token, expires, u, err := e.svc.Login(ctx, "alice", alicePW, "10.0.0.1:5555")
	if err != nil {
		t.Fatalf("Login(alice, right password) = %v; want ok", err)
	}
	if want := e.clock.Now().Add(12 * time.Hour); !expires.Equal(want) {
		t.Errorf("Login expires = %v; want %v", expires, want)
	}
	if u.Username != "alice" || u.Role != "nurse" || u.PasswordHash != "" {
		t.Errorf("Login user = %+v; want alice, nurse, no password hash", u)
	}
	claims, err := e.svc.Tokens().Verify(token)
	if err != nil {
		t.Fatalf("Verify(login token) = %v", err)
	}
	if claims.Subject != "alice" || claims.Role != auth.RoleNurse || !claims.CanAccess("h2") || claims.CanAccess("h3") {
		t.Errorf("login token claims = %+v; want alice, nurse, h1 and h2", claims)
	}

	failures := []struct {
		name, username, pw string
	}{
		{"wrong password", "alice", "wrong password"},
		{"unknown user", "mallory", alicePW},
		{"empty password", "alice", ""},
		{"username breaking the ID rule", "a/b", alicePW},
		{"empty username", "", alicePW},
	}
	for _, tt := range failures {
		token, _, u, err := e.svc.Login(ctx, tt.username, tt.pw, "10.0.0.2:1")
		if !errors.Is(err, auth.ErrBadCredentials) || codeOf(err) != auth.CodeUnauthorized {
			t.Errorf("Login(%s) = %v (code %q); want %v", tt.name, err, codeOf(err), auth.ErrBadCredentials)
		}
		// No user enumeration: exactly the same error either way.
		if err != nil && err.Error() != auth.ErrBadCredentials.Error() {
			t.Errorf("Login(%s) = %q; want %q", tt.name, err, auth.ErrBadCredentials)
		}
		if token != "" || u.Username != "" {
			t.Errorf("Login(%s) returned token %q, user %+v with an error", tt.name, token, u)
		}
	}

	logs := e.log.String()
	if !strings.Contains(logs, "login failed") || !strings.Contains(logs, "username=mallory") || !strings.Contains(logs, "address=10.0.0.2") {
		t.Errorf("log lacks the failed login with username and address:\n%s", logs)
	}
	if !strings.Contains(logs, "component=auth") {
		t.Errorf("log lacks component=auth:\n%s", logs)
	}
	for _, secret := range []string{alicePW, "wrong password", token} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a secret %q:\n%s", secret, logs)
		}
	}
}

func TestLoginRateLimit(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"per username, from any address", func(t *testing.T, e *env) {
			for i := range 5 {
				e.clock.Add(10 * time.Second)
				login(t, e, "alice", "wrong password", fmt.Sprintf("10.0.0.%d:1", i), "unauthorized")
			}
			err := login(t, e, "alice", alicePW, "10.0.9.9:1", "rate_limited")
			if got, want := retryAfterOf(err), 5*time.Minute-40*time.Second; got != want {
				t.Errorf("RetryAfter() = %v; want %v", got, want)
			}
			if !errors.Is(err, auth.ErrRateLimited) {
				t.Errorf("Login = %v; want it to wrap ErrRateLimited", err)
			}
			login(t, e, "bob", alicePW, "10.0.9.9:1", "") // other users are not affected
			e.clock.Add(5*time.Minute - 40*time.Second)
			login(t, e, "alice", alicePW, "10.0.9.9:1", "")
		}},
		{"unknown usernames too, so limits reveal nothing", func(t *testing.T, e *env) {
			for range 5 {
				login(t, e, "ghost", "whatever1", "10.0.0.1:1", "unauthorized")
			}
			login(t, e, "ghost", "whatever1", "10.0.0.1:1", "rate_limited")
		}},
		{"per address, port ignored", func(t *testing.T, e *env) {
			for i := range 20 {
				login(t, e, fmt.Sprintf("user%d", i), "whatever1", fmt.Sprintf("192.0.2.7:%d", 1000+i), "unauthorized")
			}
			err := login(t, e, "alice", alicePW, "192.0.2.7:9999", "rate_limited")
			if retryAfterOf(err) <= 0 {
				t.Errorf("RetryAfter() = %v; want > 0", retryAfterOf(err))
			}
			login(t, e, "alice", alicePW, "192.0.2.8:9999", "") // another address
			login(t, e, "alice", alicePW, "[2001:db8::1]:443", "")
		}},
		{"success resets the username", func(t *testing.T, e *env) {
			for range 4 {
				login(t, e, "alice", "wrong password", "10.0.0.1:1", "unauthorized")
			}
			login(t, e, "alice", alicePW, "10.0.0.1:1", "")
			for range 4 {
				login(t, e, "alice", "wrong password", "10.0.0.1:1", "unauthorized")
			}
			login(t, e, "alice", alicePW, "10.0.0.1:1", "")
		}},
		{"successful logins do not count against the address", func(t *testing.T, e *env) {
			for range 30 { // a ward behind one NAT address at shift change
				login(t, e, "alice", alicePW, "10.0.0.1:1", "")
			}
		}},
		{"a store failure is not a failed login", func(t *testing.T, e *env) {
			e.db.Close()
			for range 8 {
				login(t, e, "alice", alicePW, "10.0.0.1:1", "unavailable")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, auth.ServiceOptions{})
			e.mustCreate(t, "alice", alicePW, auth.RoleNurse, "h1")
			e.mustCreate(t, "bob", alicePW, auth.RoleViewer, "h1")
			tt.run(t, e)
			if logs := e.log.String(); strings.Contains(logs, alicePW) {
				t.Errorf("log contains the password:\n%s", logs)
			}
		})
	}
}

// login logs in and checks the error code ("" for success).
func login(t *testing.T, e *env, username, pw, addr, wantCode string) error {
	t.Helper()
	token, _, _, err := e.svc.Login(context.Background(), username, pw, addr)
	if got := codeOf(err); got != wantCode || (err == nil) != (token != "") {
		t.Fatalf("Login(%s, %s) = %q, %v (code %q); want code %q", username, addr, token, err, got, wantCode)
	}
	if err != nil && codeOf(err) == "" {
		t.Fatalf("Login(%s) = %v; the error has no Code", username, err)
	}
	return err
}

// TestLoginParallelGuesses checks that guesses fired at once cannot all pass the check before the
// first failure is counted.
func TestLoginParallelGuesses(t *testing.T) {
	e := newEnv(t, auth.ServiceOptions{UserFailures: 5})
	e.mustCreate(t, "alice", alicePW, auth.RoleNurse, "h1")
	const guesses = 40
	codes := make(chan string, guesses)
	var wg sync.WaitGroup
	for i := range guesses {
		wg.Go(func() {
			_, _, _, err := e.svc.Login(context.Background(), "alice", fmt.Sprintf("guess %d", i), fmt.Sprintf("10.1.%d.1:1", i))
			codes <- codeOf(err)
		})
	}
	wg.Wait()
	close(codes)
	count := map[string]int{}
	for c := range codes {
		count[c]++
	}
	if count["unauthorized"] != 5 || count["rate_limited"] != guesses-5 {
		t.Errorf("%d parallel guesses got %v; want 5 unauthorized, %d rate_limited", guesses, count, guesses-5)
	}
}

func TestCreateUser(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, auth.ServiceOptions{})
	long := strings.Repeat("a", 65)
	tests := []struct {
		name      string
		username  string
		pw        string
		role      auth.Role
		hospitals []string
		field     string // "" for success
	}{
		{"nurse", "nurse1", alicePW, auth.RoleNurse, []string{"h1", "h2"}, ""},
		{"admin without hospitals", "root1", alicePW, auth.RoleAdmin, nil, ""},
		{"viewer with dotted id", "viewer.1", alicePW, auth.RoleViewer, []string{"St-Mary_s.2"}, ""},
		{"empty username", "", alicePW, auth.RoleNurse, []string{"h1"}, "username"},
		{"username with slash", "a/b", alicePW, auth.RoleNurse, []string{"h1"}, "username"},
		{"username with wildcard", "a+", alicePW, auth.RoleNurse, []string{"h1"}, "username"},
		{"username too long", long, alicePW, auth.RoleNurse, []string{"h1"}, "username"},
		{"password too short", "u1", "short", auth.RoleNurse, []string{"h1"}, "password"},
		{"password too long", "u2", strings.Repeat("p", 73), auth.RoleNurse, []string{"h1"}, "password"},
		{"unknown role", "u3", alicePW, auth.Role("root"), []string{"h1"}, "role"},
		{"empty role", "u4", alicePW, auth.Role(""), []string{"h1"}, "role"},
		{"bad hospital", "u5", alicePW, auth.RoleNurse, []string{"h1", "h 2"}, "hospitals[1]"},
		{"empty hospital", "u6", alicePW, auth.RoleNurse, []string{""}, "hospitals[0]"},
		{"duplicate hospital", "u7", alicePW, auth.RoleNurse, []string{"h1", "h2", "h1"}, "hospitals[2]"},
		{"nurse without hospitals", "u8", alicePW, auth.RoleNurse, nil, "hospitals"},
		{"viewer with empty list", "u9", alicePW, auth.RoleViewer, []string{}, "hospitals"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := e.svc.CreateUser(ctx, tt.username, tt.pw, tt.role, tt.hospitals)
			if tt.field != "" {
				if err == nil {
					t.Fatalf("CreateUser(%s) = %+v, nil; want invalid %s", tt.name, u, tt.field)
				}
				if codeOf(err) != auth.CodeInvalid || fieldOf(err) != tt.field || !errors.Is(err, auth.ErrInvalid) {
					t.Errorf("CreateUser(%s) = %v (code %q, field %q); want invalid, field %s", tt.name, err, codeOf(err), fieldOf(err), tt.field)
				}
				if tt.username != "" && len(tt.username) <= 64 && !strings.Contains(tt.username, "/") {
					if _, err := e.db.GetUser(ctx, tt.username); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("after a refused CreateUser(%s), store GetUser = %v; want not found", tt.name, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("CreateUser(%s) = %v; want ok", tt.name, err)
			}
			if u.PasswordHash != "" {
				t.Errorf("CreateUser(%s) returned a password hash", tt.name)
			}
			stored, err := e.db.GetUser(ctx, tt.username)
			if err != nil {
				t.Fatalf("store GetUser(%s) = %v", tt.username, err)
			}
			if !auth.CheckPassword(stored.PasswordHash, tt.pw) || stored.Role != string(tt.role) ||
				len(stored.Hospitals) != len(tt.hospitals) || !stored.CreatedAt.Equal(e.clock.Now()) {
				t.Errorf("stored user = %+v; want role %s, hospitals %v, created %v, a hash of the password", stored, tt.role, tt.hospitals, e.clock.Now())
			}
		})
	}

	_, err := e.svc.CreateUser(ctx, "nurse1", "another password", auth.RoleViewer, []string{"h9"})
	if codeOf(err) != auth.CodeConflict || !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateUser(existing) = %v (code %q); want conflict", err, codeOf(err))
	}
}

func TestUsers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, auth.ServiceOptions{})
	for _, name := range []string{"carol", "alice", "bob"} {
		e.mustCreate(t, name, alicePW, auth.RoleViewer, "h1")
	}

	page, next, err := e.svc.ListUsers(ctx, store.Page{Limit: 2})
	if err != nil || len(page) != 2 || next == "" || page[0].Username != "alice" || page[1].Username != "bob" {
		t.Fatalf("ListUsers(limit 2) = %v, %q, %v; want alice, bob and a cursor", names(page), next, err)
	}
	rest, next, err := e.svc.ListUsers(ctx, store.Page{Limit: 2, Cursor: next})
	if err != nil || len(rest) != 1 || next != "" || rest[0].Username != "carol" {
		t.Fatalf("ListUsers(next page) = %v, %q, %v; want carol and no cursor", names(rest), next, err)
	}
	for _, u := range append(page, rest...) {
		if u.PasswordHash != "" {
			t.Errorf("ListUsers returned %s with a password hash", u.Username)
		}
	}

	u, err := e.svc.GetUser(ctx, "bob")
	if err != nil || u.Username != "bob" || u.PasswordHash != "" {
		t.Errorf("GetUser(bob) = %+v, %v; want bob without hash", u, err)
	}

	errs := []struct {
		name string
		err  error
		code string
	}{
		{"GetUser(unknown)", get(e, "zed"), auth.CodeNotFound},
		{"GetUser(a/b)", get(e, "a/b"), auth.CodeInvalid},
		{"DeleteUser(unknown)", e.svc.DeleteUser(ctx, "zed"), auth.CodeNotFound},
		{"DeleteUser(a#)", e.svc.DeleteUser(ctx, "a#"), auth.CodeInvalid},
		{"DeleteUser(bob)", e.svc.DeleteUser(ctx, "bob"), ""},
		{"GetUser(deleted bob)", get(e, "bob"), auth.CodeNotFound},
		{"DeleteUser(bob again)", e.svc.DeleteUser(ctx, "bob"), auth.CodeNotFound},
	}
	for _, tt := range errs {
		if got := codeOf(tt.err); got != tt.code || (tt.err == nil) != (tt.code == "") {
			t.Errorf("%s = %v (code %q); want code %q", tt.name, tt.err, got, tt.code)
		}
	}

	e.db.Close()
	if _, _, err := e.svc.ListUsers(ctx, store.Page{}); codeOf(err) != auth.CodeUnavailable {
		t.Errorf("ListUsers(closed store) = %v (code %q); want unavailable", err, codeOf(err))
	}
}

func get(e *env, name string) error {
	_, err := e.svc.GetUser(context.Background(), name)
	return err
}

func names(us []store.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.Username
	}
	return out
}

func TestBootstrap(t *testing.T) {
	ctx := context.Background()

	t.Run("generated", func(t *testing.T) {
		e := newEnv(t, auth.ServiceOptions{})
		pw, err := e.svc.Bootstrap(ctx, "")
		if err != nil {
			t.Fatalf("Bootstrap(\"\") = %v", err)
		}
		if len(pw) != 24 || strings.Trim(pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
			t.Errorf("Bootstrap(\"\") = %q; want 24 letters and digits", pw)
		}
		_, _, u, err := e.svc.Login(ctx, "admin", pw, "127.0.0.1:1")
		if err != nil || u.Role != "admin" {
			t.Fatalf("Login(admin, generated) = %+v, %v; want an admin", u, err)
		}
		if strings.Contains(e.log.String(), pw) {
			t.Errorf("log contains the generated password:\n%s", e.log.String())
		}

		// Idempotent: a second start neither changes the password nor prints a new one.
		for _, again := range []string{"", "a new explicit password"} {
			got, err := e.svc.Bootstrap(ctx, again)
			if got != "" || err != nil {
				t.Errorf("Bootstrap(%q) with admin present = %q, %v; want \"\", nil", again, got, err)
			}
		}
		if _, _, _, err := e.svc.Login(ctx, "admin", pw, "127.0.0.1:1"); err != nil {
			t.Errorf("Login(admin, first password) after more Bootstraps = %v; want ok", err)
		}
	})

	t.Run("explicit password", func(t *testing.T) {
		e := newEnv(t, auth.ServiceOptions{})
		const pw = "from VIGIL_ADMIN_PASSWORD"
		if got, err := e.svc.Bootstrap(ctx, pw); got != "" || err != nil {
			t.Fatalf("Bootstrap(explicit) = %q, %v; want \"\", nil", got, err)
		}
		if _, _, _, err := e.svc.Login(ctx, "admin", pw, "127.0.0.1:1"); err != nil {
			t.Errorf("Login(admin, explicit) = %v; want ok", err)
		}
	})

	t.Run("policy failure", func(t *testing.T) {
		e := newEnv(t, auth.ServiceOptions{})
		_, err := e.svc.Bootstrap(ctx, "short")
		if codeOf(err) != auth.CodeInvalid || fieldOf(err) != "password" {
			t.Errorf("Bootstrap(short) = %v (code %q, field %q); want invalid password", err, codeOf(err), fieldOf(err))
		}
		if _, err := e.db.GetUser(ctx, "admin"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after a refused Bootstrap, GetUser(admin) = %v; want not found", err)
		}
	})

	t.Run("store down", func(t *testing.T) {
		e := newEnv(t, auth.ServiceOptions{})
		e.db.Close()
		if _, err := e.svc.Bootstrap(ctx, ""); codeOf(err) != auth.CodeUnavailable {
			t.Errorf("Bootstrap(closed store) = %v (code %q); want unavailable", err, codeOf(err))
		}
	})
}

// TestAuthenticate: a token counts only for the user it was issued to, with that user's
// stored rights now; a user deleted and created again under the same name is another user.
func TestAuthenticate(t *testing.T) {
	e := newEnv(t, auth.ServiceOptions{})
	ctx := context.Background()
	e.mustCreate(t, "alice", alicePW, auth.RoleNurse, "h1")
	e.clock.Add(500 * time.Millisecond) // a token from the second the user was created in
	tok, _, err := e.svc.Tokens().Issue("alice", auth.RoleNurse, []string{"h1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.svc.Authenticate(ctx, tok)
	if err != nil || c.Subject != "alice" || c.Role != auth.RoleNurse || !slices.Equal(c.Hospitals, []string{"h1"}) {
		t.Fatalf("Authenticate = %+v, %v; want alice, nurse of h1", c, err)
	}

	// A token claiming more than the user has gets the user's rights.
	forged, _, err := e.svc.Tokens().Issue("alice", auth.RoleAdmin, []string{"h1", "h2"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := e.svc.Authenticate(ctx, forged); err != nil || c.Role != auth.RoleNurse || !slices.Equal(c.Hospitals, []string{"h1"}) {
		t.Errorf("Authenticate(token claiming admin of h1, h2) = %+v, %v; want the stored nurse of h1", c, err)
	}

	if err := e.svc.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("Authenticate(deleted user's token) = %v; want ErrInvalidToken", err)
	}
	e.clock.Add(time.Second)
	e.mustCreate(t, "alice", alicePW, auth.RoleViewer, "h2")
	if _, err := e.svc.Authenticate(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("Authenticate(token of the name's earlier user) = %v; want ErrInvalidToken", err)
	}
	e.clock.Add(time.Second)
	fresh, _, err := e.svc.Tokens().Issue("alice", auth.RoleViewer, []string{"h2"})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := e.svc.Authenticate(ctx, fresh); err != nil || c.Role != auth.RoleViewer {
		t.Errorf("Authenticate(new user's token) = %+v, %v; want the viewer", c, err)
	}
	if _, err := e.svc.Authenticate(ctx, "not.a.token"); !errors.Is(err, auth.ErrInvalidToken) {
		t.Errorf("Authenticate(garbage) = %v; want ErrInvalidToken", err)
	}
}
