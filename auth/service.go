package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/topics"
)

// UserStore keeps user accounts. store.Store satisfies it.
type UserStore interface {
	CreateUser(ctx context.Context, u store.User) error // store.ErrConflict when the username is taken
	GetUser(ctx context.Context, username string) (store.User, error)
	UpdateUser(ctx context.Context, u store.User) error
	DeleteUser(ctx context.Context, username string) error
	ListUsers(ctx context.Context, pg store.Page) ([]store.User, string, error)
}

// AdminUsername is the user Bootstrap creates.
const AdminUsername = "admin"

// generatedPasswordLen is the length of the password Bootstrap makes up.
const generatedPasswordLen = 24

// ServiceOptions configure NewService. Zero fields take the defaults.
type ServiceOptions struct {
	Now           func() time.Time // the clock, default time.Now
	Logger        *slog.Logger     // default: discard
	UserFailures  int              // failed logins per username per window, default 5
	AddrFailures  int              // failed logins per remote address per window, default 20
	FailureWindow time.Duration    // default 5 minutes
}

// Service manages users and logs them in. It is safe for concurrent use.
type Service struct {
	users  UserStore
	tokens *Tokens
	now    func() time.Time
	log    *slog.Logger
	byUser *Limiter
	byAddr *Limiter

	// dummyHash is compared against when the username is unknown, so that a login costs one
	// bcrypt comparison whether or not the user exists.
	dummyHash func() (string, error)
}

// NewService returns a Service keeping users in users and issuing tokens with tokens.
func NewService(users UserStore, tokens *Tokens, opts ServiceOptions) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.UserFailures <= 0 {
		opts.UserFailures = 5
	}
	if opts.AddrFailures <= 0 {
		opts.AddrFailures = 20
	}
	if opts.FailureWindow <= 0 {
		opts.FailureWindow = 5 * time.Minute
	}
	return &Service{
		users:  users,
		tokens: tokens,
		now:    opts.Now,
		log:    opts.Logger.With("component", "auth"),
		byUser: NewLimiter(opts.UserFailures, opts.FailureWindow, opts.Now),
		byAddr: NewLimiter(opts.AddrFailures, opts.FailureWindow, opts.Now),
		dummyHash: sync.OnceValues(func() (string, error) {
			pw, err := randomPassword(generatedPasswordLen)
			if err != nil {
				return "", err
			}
			return HashPassword(pw)
		}),
	}
}

// Tokens returns the token issuer and verifier the service logs users in with.
func (s *Service) Tokens() *Tokens { return s.tokens }

// Login checks the rate limits (per username, and per remote address without its port), then
// the password, and returns a token for the user. remoteAddr is "host:port" or a bare host; ""
// skips the address limit. A failure is ErrBadCredentials whether the user
// is unknown or the password wrong; an attempt over a limit is a *RateLimitError. Success resets
// the username's failures. The returned user has no PasswordHash.
func (s *Service) Login(ctx context.Context, username, password, remoteAddr string) (token string, expires time.Time, u store.User, err error) {
	addr := hostOf(remoteAddr)
	// A username that breaks the ID rule cannot exist; it is not worth a key of the limiter.
	userKey := username
	if topics.ValidID("username", username) != nil {
		userKey = ""
	}

	okUser, retryUser, winUser := true, time.Duration(0), time.Time{}
	if userKey != "" {
		okUser, retryUser, winUser = s.byUser.take(userKey)
	}
	okAddr, retryAddr, winAddr := true, time.Duration(0), time.Time{}
	if addr != "" {
		okAddr, retryAddr, winAddr = s.byAddr.take(addr)
	}
	refund := func() {
		if userKey != "" && okUser {
			s.byUser.refund(userKey, winUser)
		}
		if addr != "" && okAddr {
			s.byAddr.refund(addr, winAddr)
		}
	}
	if !okUser || !okAddr {
		refund()
		retry := max(retryUser, retryAddr)
		s.log.InfoContext(ctx, "login rate limited", "username", logName(username), "address", addr,
			"retry_after", retry.Round(time.Second))
		return "", time.Time{}, store.User{}, &RateLimitError{retryAfter: retry}
	}

	var found bool
	if userKey != "" {
		u, err = s.users.GetUser(ctx, username)
		switch {
		case err == nil:
			found = true
		case !errors.Is(err, store.ErrNotFound):
			refund() // the store failed, not the user
			return "", time.Time{}, store.User{}, classify("login", err)
		}
	}
	hash := u.PasswordHash
	if !found {
		if hash, err = s.dummyHash(); err != nil {
			refund()
			return "", time.Time{}, store.User{}, err
		}
	}
	if !CheckPassword(hash, password) || !found {
		// The failure stays counted: take counted it.
		s.log.InfoContext(ctx, "login failed", "username", logName(username), "address", addr)
		return "", time.Time{}, store.User{}, ErrBadCredentials
	}

	role, err := ParseRole(u.Role)
	if err != nil {
		refund()
		s.log.WarnContext(ctx, "login refused: stored user has an unknown role", "username", username, "role", u.Role)
		return "", time.Time{}, store.User{}, ErrBadAccount
	}
	token, expires, err = s.tokens.Issue(u.Username, role, u.Hospitals)
	if err != nil {
		refund()
		return "", time.Time{}, store.User{}, fmt.Errorf("login: %w", err)
	}
	s.byUser.Reset(userKey)
	if addr != "" {
		s.byAddr.refund(addr, winAddr)
	}
	s.log.InfoContext(ctx, "login", "username", username, "address", addr, "role", role)
	return token, expires, public(u), nil
}

// CreateUser validates and stores a new user. Field errors name the JSON field: "username" (the
// ID rule), "password" (8 to 72 bytes), "role", "hospitals[i]" (the ID rule, no duplicates) or
// "hospitals" (a role other than admin needs at least one). A taken username is an error with
// Code "conflict". The returned user has no PasswordHash.
func (s *Service) CreateUser(ctx context.Context, username, password string, role Role, hospitals []string) (store.User, error) {
	if err := topics.ValidID("username", username); err != nil {
		return store.User{}, invalid("username", reasonOf(err), err)
	}
	if err := checkPasswordPolicy(password); err != nil {
		return store.User{}, err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return store.User{}, err
	}
	if err := checkHospitals(role, hospitals); err != nil {
		return store.User{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return store.User{}, err
	}
	now := store.Millis(s.now())
	u := store.User{
		Username:     username,
		PasswordHash: hash,
		Role:         string(role),
		Hospitals:    append([]string{}, hospitals...),
		CreatedAt:    now,
		UpdatedAt:    now,
	}
	if err := s.users.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.User{}, fmt.Errorf("username %s is taken: %w", quote(username), err)
		}
		return store.User{}, classify("create user", err)
	}
	s.log.InfoContext(ctx, "user created", "username", username, "role", role, "hospitals", u.Hospitals)
	return public(u), nil
}

// checkHospitals validates a user's hospital list.
func checkHospitals(role Role, hospitals []string) error {
	for i, h := range hospitals {
		field := fmt.Sprintf("hospitals[%d]", i)
		if err := topics.ValidID("hospital", h); err != nil {
			return invalid(field, reasonOf(err), err)
		}
		for j := range i {
			if hospitals[j] == h {
				return invalid(field, fmt.Sprintf("duplicate of hospitals[%d]", j), nil)
			}
		}
	}
	if role != RoleAdmin && len(hospitals) == 0 {
		return invalid("hospitals", "role "+string(role)+" needs at least one hospital", nil)
	}
	return nil
}

// ListUsers returns a page of users by username, and the cursor of the next page ("" on the
// last). The users have no PasswordHash.
func (s *Service) ListUsers(ctx context.Context, pg store.Page) ([]store.User, string, error) {
	users, next, err := s.users.ListUsers(ctx, pg)
	if err != nil {
		return nil, "", classify("list users", err)
	}
	for i := range users {
		users[i] = public(users[i])
	}
	return users, next, nil
}

// GetUser returns the user named username, without PasswordHash; an error with Code
// "not_found" when there is none.
func (s *Service) GetUser(ctx context.Context, username string) (store.User, error) {
	if err := topics.ValidID("username", username); err != nil {
		return store.User{}, invalid("username", reasonOf(err), err)
	}
	u, err := s.users.GetUser(ctx, username)
	if err != nil {
		return store.User{}, classify("get user", err)
	}
	return public(u), nil
}

// Authenticate verifies token and checks it against the user it names as things stand now:
// the user must still exist and be the one the token was issued to (a user deleted and
// created again under the same name is another user: tokens issued before the new one was
// created are refused), and the role and hospitals returned are the stored user's, not the
// token's. Refusals wrap ErrInvalidToken.
func (s *Service) Authenticate(ctx context.Context, token string) (*Claims, error) {
	c, err := s.tokens.Verify(token)
	if err != nil {
		return nil, err
	}
	u, err := s.users.GetUser(ctx, c.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &TokenError{reason: "no such user"}
	}
	if err != nil {
		return nil, classify("get user", err)
	}
	// iat has whole seconds: a token from the second the user was created in passes.
	if c.IssuedAt.Time.Before(u.CreatedAt.Truncate(time.Second)) {
		return nil, &TokenError{reason: "issued before the user was created"}
	}
	role, err := ParseRole(u.Role)
	if err != nil {
		return nil, &TokenError{reason: "stored user has an unknown role", cause: err}
	}
	c.Role, c.Hospitals = role, slices.Clone(u.Hospitals)
	return c, nil
}

// DeleteUser removes the user named username; an error with Code "not_found" when there is none.
// Tokens already issued to the user are refused from then on by Authenticate (they still
// verify until they expire).
func (s *Service) DeleteUser(ctx context.Context, username string) error {
	if err := topics.ValidID("username", username); err != nil {
		return invalid("username", reasonOf(err), err)
	}
	if err := s.users.DeleteUser(ctx, username); err != nil {
		return classify("delete user", err)
	}
	s.byUser.Reset(username)
	s.log.InfoContext(ctx, "user deleted", "username", username)
	return nil
}

// Bootstrap creates the user "admin" (role admin) unless a user of that name exists. Its
// password is pw, which must pass the password policy, or, when pw is "", a random
// 24-character one that Bootstrap returns for the caller to show once (it is never logged).
// When admin exists already, Bootstrap returns "" and ignores pw.
func (s *Service) Bootstrap(ctx context.Context, pw string) (generated string, err error) {
	_, err = s.users.GetUser(ctx, AdminUsername)
	switch {
	case err == nil:
		return "", nil
	case !errors.Is(err, store.ErrNotFound):
		return "", classify("bootstrap", err)
	}
	if pw == "" {
		if generated, err = randomPassword(generatedPasswordLen); err != nil {
			return "", err
		}
		pw = generated
	}
	if _, err := s.CreateUser(ctx, AdminUsername, pw, RoleAdmin, nil); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return "", nil // another instance got there first
		}
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	s.log.InfoContext(ctx, "bootstrap: admin user created", "username", AdminUsername, "generated_password", generated != "")
	return generated, nil
}

// public returns u without its password hash.
func public(u store.User) store.User {
	u.PasswordHash = ""
	return u
}

// hostOf returns the host of a "host:port" remote address, or addr itself when it has no port.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// logName cuts an untrusted username to a length fit for a log line.
func logName(s string) string {
	const max = 64 + 16
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
