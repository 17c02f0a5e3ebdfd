package auth

import (
	"crypto/rand"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// Password policy, in bytes. bcrypt reads at most 72 bytes, so a longer password would be
// silently cut: refuse it instead.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// BcryptCost is the bcrypt work factor of new hashes. Tests may lower it to bcrypt.MinCost.
var BcryptCost = bcrypt.DefaultCost

// checkPasswordPolicy returns a *FieldError for the field "password" when pw breaks the policy.
func checkPasswordPolicy(pw string) error {
	switch {
	case len(pw) < MinPasswordLen:
		return invalid("password", fmt.Sprintf("must be at least %d bytes", MinPasswordLen), nil)
	case len(pw) > MaxPasswordLen:
		return invalid("password", fmt.Sprintf("must be at most %d bytes", MaxPasswordLen), nil)
	}
	return nil
}

// HashPassword returns the bcrypt hash of pw, or a *FieldError for the field "password" when pw
// is shorter than MinPasswordLen or longer than MaxPasswordLen bytes.
func HashPassword(pw string) (string, error) {
	if err := checkPasswordPolicy(pw); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), BcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w: %w", ErrUnavailable, err)
	}
	return string(h), nil
}

// CheckPassword reports whether pw matches the bcrypt hash. A password longer than
// MaxPasswordLen never matches (bcrypt would compare only its first 72 bytes).
func CheckPassword(hash, pw string) bool {
	if len(pw) > MaxPasswordLen {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// passwordAlphabet is the 62 ASCII letters and digits.
const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomPassword returns n characters drawn uniformly from passwordAlphabet (about 5.95 bits
// each: 24 characters carry 142 bits).
func randomPassword(n int) (string, error) {
	const limit = 256 - 256%len(passwordAlphabet) // reject bytes >= limit to stay uniform
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("random password: %w: %w", ErrUnavailable, err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, passwordAlphabet[int(b)%len(passwordAlphabet)])
			}
		}
	}
	return string(out), nil
}
