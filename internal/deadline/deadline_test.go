package deadline_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/deadline"
)

func TestSharedDeadline(t *testing.T) {
	const d, slack = time.Hour, 50 * time.Millisecond
	s := deadline.New(d, slack)
	before := time.Now()
	ctx := s.Context()
	after := time.Now()
	dl, ok := ctx.Deadline()
	if !ok {
		t.Fatal("Context() has no deadline")
	}
	if dl.Before(before.Add(d)) || dl.After(after.Add(d+slack)) {
		t.Errorf("deadline %v after the call; want %v to %v", dl.Sub(before), d, d+slack)
	}
	if ctx.Err() != nil {
		t.Errorf("fresh context: Err() = %v; want nil", ctx.Err())
	}

	// Later callers get a later deadline, never an earlier one than d from their call.
	time.Sleep(2 * slack)
	start := time.Now()
	later := s.Context()
	ldl, _ := later.Deadline()
	if ldl.Before(start.Add(d)) {
		t.Errorf("a call %v later got a deadline %v from it; want at least %v", start.Sub(before), ldl.Sub(start), d)
	}
	if later == ctx {
		t.Error("a call past the slice got the old context")
	}
}

func TestSharedWithinSlice(t *testing.T) {
	s := deadline.New(time.Hour, time.Hour) // every call below falls in the first slice
	first := s.Context()
	var wg sync.WaitGroup
	got := make([]context.Context, 8)
	for i := range got {
		wg.Go(func() { got[i] = s.Context() })
	}
	wg.Wait()
	for i, c := range got {
		if c != first {
			t.Errorf("call %d in the same slice got another context", i)
		}
	}
}

func TestSharedExpires(t *testing.T) {
	s := deadline.New(20*time.Millisecond, 10*time.Millisecond)
	ctx := s.Context()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("context not done 10 s after a 30 ms deadline")
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("Err() = %v; want %v", ctx.Err(), context.DeadlineExceeded)
	}
	if next := s.Context(); next.Err() != nil {
		t.Errorf("a context asked for after the last expired: Err() = %v; want nil", next.Err())
	}
}

func BenchmarkShared(b *testing.B) {
	s := deadline.New(10*time.Second, 100*time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		if s.Context().Err() != nil {
			b.Fatal("expired")
		}
	}
}

func BenchmarkWithTimeout(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if ctx.Err() != nil {
			b.Fatal("expired")
		}
		cancel()
	}
}
