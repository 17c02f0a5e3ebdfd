package auth_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/auth"
)

func TestLimiter(t *testing.T) {
	c := newClock()
	l := auth.NewLimiter(3, time.Minute, c.Now)

	type step struct {
		advance  time.Duration
		do       string // "fail", "reset" or "" (just ask)
		key      string
		wantOK   bool
		wantWait time.Duration
	}
	steps := []step{
		{0, "", "alice", true, 0},
		{0, "fail", "alice", true, 0},                                // 1, window opens at t0
		{10 * time.Second, "fail", "alice", true, 0},                 // 2
		{10 * time.Second, "fail", "alice", false, 40 * time.Second}, // 3: limit reached at t0+20s
		{0, "", "bob", true, 0},                                      // other keys are not affected
		{39 * time.Second, "", "alice", false, time.Second},
		{time.Second, "", "alice", true, 0}, // window closed at t0+60s
		{0, "fail", "alice", true, 0},       // a new window
		{0, "fail", "alice", true, 0},
		{0, "fail", "alice", false, time.Minute},
		{0, "reset", "alice", true, 0},
	}
	for i, s := range steps {
		c.Add(s.advance)
		switch s.do {
		case "fail":
			l.Failure(s.key)
		case "reset":
			l.Reset(s.key)
		}
		ok, wait := l.Allow(s.key)
		if ok != s.wantOK || wait != s.wantWait {
			t.Errorf("step %d (%s %s): Allow(%q) = %v, %v; want %v, %v", i, s.do, s.key, s.key, ok, wait, s.wantOK, s.wantWait)
		}
	}
}

func TestLimiterClockStepsBack(t *testing.T) {
	c := newClock()
	l := auth.NewLimiter(1, time.Minute, c.Now)
	l.Failure("k")
	c.Add(-time.Hour)
	if ok, wait := l.Allow("k"); ok || wait <= 0 || wait > time.Minute {
		t.Errorf("Allow after the clock stepped back = %v, %v; want false, 0 < wait <= 1m", ok, wait)
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	c := newClock()
	l := auth.NewLimiter(5, time.Minute, c.Now)
	l.SetMaxKeys(100)
	for range 5 {
		l.Failure("locked") // at its limit before the spray
	}
	for i := range 1000 {
		c.Add(time.Millisecond)
		l.Failure(fmt.Sprintf("user%d", i))
		if n := l.Len(); n > 100 {
			t.Fatalf("after %d keys Len() = %d; want <= 100", i+2, n)
		}
	}
	if ok, _ := l.Allow("locked"); ok {
		t.Errorf("Allow(locked) after a spray of 1000 keys = true; want false: a locked-out key must survive eviction")
	}
	if ok, _ := l.Allow("user999"); !ok {
		t.Errorf("Allow(user999) = false; want true (one failure)")
	}
	for range 4 {
		l.Failure("user999")
	}
	if ok, _ := l.Allow("user999"); ok {
		t.Errorf("Allow(user999) after 5 failures = true; want false: the newest key must survive eviction")
	}

	// Closed windows are swept once a window has passed.
	c.Add(2 * time.Minute)
	l.Failure("late")
	if n := l.Len(); n != 1 {
		t.Errorf("Len() after a window passed = %d; want 1", n)
	}
}

// TestLimiterConcurrent hammers one Limiter from many goroutines; run with -race.
func TestLimiterConcurrent(t *testing.T) {
	c := newClock()
	l := auth.NewLimiter(1000, time.Minute, c.Now)
	l.SetMaxKeys(50)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				l.Failure("shared")
				key := fmt.Sprintf("w%d-%d", w, i%80)
				l.Allow(key)
				l.Failure(key)
				if i%50 == 0 {
					l.Reset(key)
					c.Add(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if ok, wait := l.Allow("shared"); ok || wait <= 0 {
		t.Errorf("Allow(shared) after %d failures = %v, %v; want false, > 0", workers*each, ok, wait)
	}
	if n := l.Len(); n > 50 {
		t.Errorf("Len() = %d; want <= 50", n)
	}
}
