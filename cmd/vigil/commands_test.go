package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSimulateCommand: `vigil simulate` provisions a ward through the REST API of a running
// Vigil and drives its monitors over MQTT; the summary counts what happened.
func TestSimulateCommand(t *testing.T) {
	h := newHarness(t)
	var out, errOut bytes.Buffer
	args := []string{"--api", h.base, "--url", "tcp://" + h.mqtt, "--password", adminPassword, "--hospital", "simh",
		"--beds", "3", "--rate", "5", "--time-scale", "60", "--duration", "3s"}
	if err := cmdSimulate(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("vigil simulate: %v\n%s", err, errOut.String())
	}
	m := regexp.MustCompile(`summary: (\d+) samples sent, (\d+) acknowledged`).FindStringSubmatch(out.String())
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Fatalf("summary = %q; want samples sent and acknowledged", out.String())
	}
	var list struct{ Items []struct{ ID string } }
	jsonUnmarshal(h.must(200, "GET", "/api/v1/hospitals/simh/patients", h.admin, nil), &list)
	if len(list.Items) != 3 {
		t.Fatalf("patients admitted by the simulator: %d; want 3", len(list.Items))
	}
}

// TestDemoCommand: `vigil demo` serves, sets up the demo ward and nurse login, and prints them.
func TestDemoCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuf
	var errOut bytes.Buffer
	done := make(chan error, 1)
	args := []string{"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--beds", "4", "--log-level", "error"}
	go func() { done <- cmdDemo(ctx, args, func(string) string { return "" }, &out, &errOut) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Log in as:") {
		select {
		case err := <-done:
			t.Fatalf("vigil demo ended early: %v\n%s", err, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vigil demo printed no login; stdout %q", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out.String(), demoNurse+" / "+demoPassword) || !strings.Contains(out.String(), "Dashboard:") {
		t.Fatalf("vigil demo printed %q; want the dashboard URL and the nurse login", out.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("vigil demo on Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("vigil demo did not stop")
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
