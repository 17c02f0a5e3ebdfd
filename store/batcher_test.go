package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/embedded"
)

// stalledWriter is the embedded store with its sample writes held until released (a store
// that stopped answering).
type stalledWriter struct {
	*embedded.DB
	release chan struct{}
}

func (s stalledWriter) AppendSamples(ctx context.Context, xs []store.Sample) error {
	<-s.release
	return s.DB.AppendSamples(ctx, xs)
}

// TestBatcherFullQueueHonoursContext: with the store not answering and the queue full, Add
// returns when its context ends (a device's per-sample deadline) instead of blocking its
// caller, the device's connection, for as long as the outage lasts; what was queued is still
// written once the store answers.
func TestBatcherFullQueueHonoursContext(t *testing.T) {
	db, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := stalledWriter{DB: db, release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(w.release) }) }
	t.Cleanup(release) // a failure before the release must not leave the writer stuck
	b := store.NewBatcher(w, store.BatcherOptions{MaxBatch: 2, MaxPending: 4})
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	sample := func(i int) store.Sample {
		return store.Sample{Hospital: "h1", Patient: "p1", Time: at.Add(time.Duration(i) * time.Second), Seq: int64(i), Vitals: store.Vitals{Has: store.FieldHR, HR: 70}}
	}
	var queued []*store.Pending
	for i := range 4 {
		p, err := b.Add(context.Background(), sample(i))
		if err != nil {
			t.Fatalf("Add #%d: %v", i, err)
		}
		queued = append(queued, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := b.Add(ctx, sample(4)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Add to a full queue with the store stalled = %v; want the context's deadline", err)
	}
	release()
	for i, p := range queued {
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := p.Wait(wctx); err != nil {
			t.Fatalf("queued sample #%d after the store answered: %v", i, err)
		}
		wcancel()
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if err := b.Close(cctx); err != nil {
		t.Fatal(err)
	}
}
