package auth

// SetMaxKeys changes how many keys l tracks, for tests of eviction.
func (l *Limiter) SetMaxKeys(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxKeys = n
}

// Len is how many keys l tracks.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}
