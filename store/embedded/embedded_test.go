package embedded_test

import (
	"testing"
	"time"

	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/embedded"
	"github.com/vigilhq/vigil/store/storetest"
)

type factory struct{ dirs map[store.Store]string }

func (f *factory) Open(t *testing.T) store.Store {
	dir := t.TempDir()
	return f.open(t, dir)
}

func (f *factory) open(t *testing.T, dir string) store.Store {
	db, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { db.Close() })
	f.dirs[db] = dir
	return db
}

func (f *factory) Reopen(t *testing.T, s store.Store) store.Store {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return f.open(t, f.dirs[s])
}

func TestConformance(t *testing.T) {
	storetest.Run(t, &factory{dirs: map[store.Store]string{}})
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		db, err := embedded.Open(b.TempDir(), embedded.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return db
	})
}

// TestCloseDuringSweep: Close returns while the retention sweeper is running or about to run
// (it used to wait for the sweeper while holding the lock the sweep needed).
func TestCloseDuringSweep(t *testing.T) {
	dir := t.TempDir()
	for i := range 100 {
		db, err := embedded.Open(dir, embedded.Options{Retention: time.Hour, SweepEvery: time.Microsecond})
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		time.Sleep(time.Duration(i%5) * 100 * time.Microsecond)
		done := make(chan error, 1)
		go func() { done <- db.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Close #%d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Close #%d did not return within 10 s while the sweeper ran", i)
		}
	}
}
