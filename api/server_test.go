package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// slowLogin is an Auth whose Login outlasts the body timeout, then reports whether its context
// was cancelled meanwhile.
type slowLogin struct {
	Auth
	took time.Duration
}

func (a slowLogin) Login(ctx context.Context, username, password, remoteAddr string) (LoginResult, error) {
	select {
	case <-time.After(a.took):
		return LoginResult{Token: "t"}, nil
	case <-ctx.Done():
		return LoginResult{}, fmt.Errorf("cancelled during the login: %w", ctx.Err())
	}
}

// TestBodyDeadlineLifted: once the body has been read, the body timeout no longer applies: a
// handler working longer than it keeps its request context. (Left in place, the deadline ends
// net/http's background read of the connection, which cancels the request.)
func TestBodyDeadlineLifted(t *testing.T) {
	s := New(Options{Auth: slowLogin{took: 300 * time.Millisecond}, BodyTimeout: 50 * time.Millisecond})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	res, err := http.Post(srv.URL+"/api/v1/auth/login", "application/json", strings.NewReader(`{"username":"a","password":"b"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("a login slower than the body timeout: %d; want 200", res.StatusCode)
	}
}
