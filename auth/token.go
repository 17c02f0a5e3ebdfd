package auth

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vigilhq/vigil/topics"
)

// MinSecretLen is the shortest HS256 signing secret NewTokens accepts, in bytes.
const MinSecretLen = 32

// Leeway is the clock skew Verify tolerates on exp, nbf and iat.
const Leeway = 5 * time.Second

// Claims are what a Vigil token says: who (sub), with which role, for which hospitals, from which
// issuer (iss) to which audience (aud), issued (iat, and nbf = iat) and valid until (exp).
type Claims struct {
	Role      Role     `json:"role"`
	Hospitals []string `json:"hospitals"`
	jwt.RegisteredClaims
}

// CanAccess reports whether the token's user may see hospital: an admin may see every
// hospital, other roles only those listed.
func (c *Claims) CanAccess(hospital string) bool {
	return c.Role == RoleAdmin || slices.Contains(c.Hospitals, hospital)
}

// TokenOptions configure NewTokens.
type TokenOptions struct {
	Issuer   string           // iss, default "vigil"
	Audience string           // aud, default "vigil"
	TTL      time.Duration    // lifetime of a token, default 12h
	Now      func() time.Time // the clock, default time.Now
}

// Tokens issues and verifies HS256 tokens with one secret. It is safe for concurrent use.
type Tokens struct {
	secret []byte
	opts   TokenOptions
	parser *jwt.Parser
}

// NewTokens returns Tokens signing with secret, which must be at least MinSecretLen bytes
// (GenerateSecret makes one). The secret is copied.
func NewTokens(secret []byte, opts TokenOptions) (*Tokens, error) {
	if len(secret) < MinSecretLen {
		return nil, invalid("secret", fmt.Sprintf("must be at least %d bytes, got %d", MinSecretLen, len(secret)), nil)
	}
	if opts.Issuer == "" {
		opts.Issuer = "vigil"
	}
	if opts.Audience == "" {
		opts.Audience = "vigil"
	}
	if opts.TTL <= 0 {
		opts.TTL = 12 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	t := &Tokens{secret: slices.Clone(secret), opts: opts}
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(opts.Issuer),
		jwt.WithAudience(opts.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(opts.Now),
	)
	return t, nil
}

// TTL is the lifetime of the tokens Issue makes.
func (t *Tokens) TTL() time.Duration { return t.opts.TTL }

// Issue signs a token for username with role and hospitals, valid from now for the TTL. expires
// is its exp claim (whole seconds).
func (t *Tokens) Issue(username string, role Role, hospitals []string) (token string, expires time.Time, err error) {
	if err := topics.ValidID("username", username); err != nil {
		return "", time.Time{}, invalid("username", reasonOf(err), err)
	}
	if !role.Valid() {
		_, err := ParseRole(string(role))
		return "", time.Time{}, err
	}
	now := t.opts.Now()
	iat := jwt.NewNumericDate(now)
	exp := jwt.NewNumericDate(now.Add(t.opts.TTL))
	c := &Claims{
		Role:      role,
		Hospitals: append([]string{}, hospitals...), // [] rather than null in JSON
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   username,
			Issuer:    t.opts.Issuer,
			Audience:  jwt.ClaimStrings{t.opts.Audience},
			IssuedAt:  iat,
			NotBefore: iat,
			ExpiresAt: exp,
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w: %w", ErrUnavailable, err)
	}
	return s, exp.Time, nil
}

// Verify checks token and returns its claims. It refuses, with an error wrapping
// ErrInvalidToken that says why: a malformed token; any algorithm but HS256 (alg "none"
// included); a signature by another key; another issuer or audience; a missing exp, iat or sub;
// an expired token, or one not valid yet (beyond Leeway); an unknown role.
func (t *Tokens) Verify(token string) (*Claims, error) {
	c := new(Claims)
	tok, err := t.parser.ParseWithClaims(token, c, t.key)
	if err != nil {
		return nil, &TokenError{reason: refusal(tok, c, err), cause: err}
	}
	switch {
	case c.IssuedAt == nil:
		return nil, &TokenError{reason: "missing iat"}
	case c.Subject == "":
		return nil, &TokenError{reason: "missing sub"}
	case !c.Role.Valid():
		return nil, &TokenError{reason: "unknown role " + quote(string(c.Role))}
	}
	return c, nil
}

// key hands the parser the secret, for HS256 only (the parser's method list checks first; this
// is the second lock on the same door).
func (t *Tokens) key(tok *jwt.Token) (any, error) {
	if tok.Method != jwt.SigningMethodHS256 {
		return nil, errUnexpectedAlg
	}
	return t.secret, nil
}

var errUnexpectedAlg = errors.New("unexpected signing algorithm")

// refusal names, for a person, why the parser refused a token.
func refusal(tok *jwt.Token, c *Claims, err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unexpected algorithm"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok == nil || tok.Method != jwt.SigningMethodHS256 {
			return "unexpected algorithm"
		}
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case c.ExpiresAt == nil:
			return "missing exp"
		case c.Issuer == "":
			return "missing iss"
		case len(c.Audience) == 0:
			return "missing aud"
		}
		return "missing claim"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not yet valid"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	}
	return "malformed"
}

// TokenError is a refusal of Verify. It wraps ErrInvalidToken (Code "unauthorized") and the
// parser's error, if any.
type TokenError struct {
	reason string
	cause  error
}

// Error reads like "invalid token: expired".
func (e *TokenError) Error() string { return "invalid token: " + e.reason }

// Code is always "unauthorized".
func (e *TokenError) Code() string { return CodeUnauthorized }

// Reason says why the token was refused: "expired", "not yet valid", "wrong issuer", "wrong
// audience", "bad signature", "unexpected algorithm", "malformed", "missing exp" (or iat, sub,
// iss, aud), or `unknown role "..."`.
func (e *TokenError) Reason() string { return e.reason }

// Unwrap returns ErrInvalidToken and the parser's error.
func (e *TokenError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalidToken}
	}
	return []error{ErrInvalidToken, e.cause}
}

// GenerateSecret returns 32 random bytes, base64url-encoded without padding (43 characters): a
// signing secret for the data directory's secret file. Use the encoded string's bytes as the
// secret.
func GenerateSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w: %w", ErrUnavailable, err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// reasonOf returns the reason of a *topics.IDError, or its message.
func reasonOf(err error) string {
	if e, ok := errors.AsType[*topics.IDError](err); ok {
		return e.Reason
	}
	return err.Error()
}
