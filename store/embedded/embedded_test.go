package embedded_test

import (
	"testing"

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
