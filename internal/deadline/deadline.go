// Package deadline gives per-message work a context with a deadline without a timer of its own.
//
// context.WithTimeout costs a timer, a context and their cancellation: about 0.7 us and 384
// bytes in five allocations, paid twice per sample (the device's durable wait, the patient's
// worker). A Shared hands out one context to everything that starts within the same short
// slice of time, so the deadline each caller gets lies between d and d+slack from its start,
// and a new context is made at most once per slack.
package deadline

import (
	"context"
	"sync/atomic"
	"time"
)

// Shared hands out contexts that expire between d and d+slack after they are asked for. A
// context is shared by every caller of its slice, so a caller never cancels it: it ends at its
// deadline only. The zero value is not usable; use New.
type Shared struct {
	d, slack time.Duration
	cur      atomic.Pointer[slot]
}

type slot struct {
	ctx    context.Context
	cancel context.CancelFunc // kept for vet; the context ends at its deadline anyway
	until  time.Time          // callers from this instant on get a newer context
}

// New returns a Shared whose contexts expire d to d+slack after they are handed out.
func New(d, slack time.Duration) *Shared {
	if slack <= 0 {
		slack = d / 100
	}
	return &Shared{d: d, slack: slack}
}

// Context returns a context whose deadline lies between d and d+slack from now.
func (s *Shared) Context() context.Context {
	now := time.Now()
	cur := s.cur.Load()
	if cur != nil && now.Before(cur.until) {
		return cur.ctx
	}
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(s.d+s.slack))
	next := &slot{ctx: ctx, cancel: cancel, until: now.Add(s.slack)}
	if !s.cur.CompareAndSwap(cur, next) {
		// Another caller made one for this slice at the same instant: its deadline is within
		// slack of ours too.
		cancel()
		return s.cur.Load().ctx
	}
	return ctx
}
