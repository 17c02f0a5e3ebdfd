package auth

import (
	"sync"
	"time"
)

// DefaultLimiterKeys is how many keys a Limiter tracks at most.
const DefaultLimiterKeys = 10000

// Limiter counts failures per key (a username, an address) in fixed windows: a key's window
// opens at its first failure and lasts window; after maxFailures failures in it, Allow refuses
// the key until the window closes. It keeps at most DefaultLimiterKeys keys: windows that have
// closed are swept, and when the table is still full the key with the fewest failures is
// dropped. It is safe for concurrent use.
type Limiter struct {
	max     int
	window  time.Duration
	now     func() time.Time
	maxKeys int

	mu        sync.Mutex
	keys      map[string]bucket
	lastSweep time.Time
}

// bucket is one key's open window.
type bucket struct {
	start    time.Time
	failures int
}

// NewLimiter returns a Limiter allowing maxFailures (at least 1) failures per key per window
// (default 5 minutes), on the clock now (default time.Now).
func NewLimiter(maxFailures int, window time.Duration, now func() time.Time) *Limiter {
	if maxFailures < 1 {
		maxFailures = 1
	}
	if window <= 0 {
		window = 5 * time.Minute
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		max: maxFailures, window: window, now: now, maxKeys: DefaultLimiterKeys,
		keys: make(map[string]bucket),
	}
}

// Allow reports whether key may make an attempt; when it may not, retryAfter (> 0) is how long
// until its window closes.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok, retryAfter = l.current(key, l.now())
	return ok, retryAfter
}

// Failure counts a failure against key.
func (l *Limiter) Failure(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count(key, l.now())
}

// Reset forgets key's failures.
func (l *Limiter) Reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.keys, key)
}

// take is Allow and Failure in one step: when key may make an attempt, the attempt is counted
// as a failure at once, so that concurrent attempts cannot all pass Allow before the first
// failure is recorded. win identifies the window it was counted in, for refund.
func (l *Limiter) take(key string) (ok bool, retryAfter time.Duration, win time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if _, ok, retryAfter = l.current(key, now); !ok {
		return false, retryAfter, time.Time{}
	}
	return true, 0, l.count(key, now)
}

// refund takes back an attempt counted by take in window win, if that window is still open.
func (l *Limiter) refund(key string, win time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.keys[key]
	if !found || !b.start.Equal(win) {
		return
	}
	if b.failures <= 1 {
		delete(l.keys, key)
		return
	}
	b.failures--
	l.keys[key] = b
}

// current returns key's open window, if any, and whether it admits an attempt. l.mu is held.
func (l *Limiter) current(key string, now time.Time) (b bucket, ok bool, retryAfter time.Duration) {
	b, found := l.keys[key]
	if !found {
		return bucket{}, true, 0
	}
	if l.closed(b, now) {
		delete(l.keys, key)
		return bucket{}, true, 0
	}
	if b.failures < l.max {
		return b, true, 0
	}
	retryAfter = b.start.Add(l.window).Sub(now)
	// Clamp: the clock may have stepped back since the window opened.
	retryAfter = min(max(retryAfter, time.Nanosecond), l.window)
	return b, false, retryAfter
}

// count adds a failure to key's window, opening one if needed, and returns the window's start.
// l.mu is held.
func (l *Limiter) count(key string, now time.Time) time.Time {
	if now.Sub(l.lastSweep) >= l.window {
		l.sweep(now)
	}
	b, found := l.keys[key]
	if !found || l.closed(b, now) {
		if !found && len(l.keys) >= l.maxKeys {
			l.evict(now)
		}
		b = bucket{start: now}
	}
	b.failures++
	l.keys[key] = b
	return b.start
}

func (l *Limiter) closed(b bucket, now time.Time) bool { return now.Sub(b.start) >= l.window }

// sweep drops closed windows. l.mu is held.
func (l *Limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.keys {
		if l.closed(b, now) {
			delete(l.keys, k)
		}
	}
}

// evict makes room for one key: it sweeps, and if the table is still full drops the key with the
// fewest failures, the oldest of them on a tie. Keys near or at their limit are the ones worth
// keeping: spraying new keys must not free a key that is locked out. l.mu is held.
func (l *Limiter) evict(now time.Time) {
	l.sweep(now)
	if len(l.keys) < l.maxKeys {
		return
	}
	var (
		victim string
		vb     bucket
		seen   bool
	)
	for k, b := range l.keys {
		if !seen || b.failures < vb.failures || b.failures == vb.failures && b.start.Before(vb.start) {
			victim, vb, seen = k, b, true
		}
	}
	delete(l.keys, victim)
}
