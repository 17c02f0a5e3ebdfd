package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrClosed is returned by a Batcher after Close.
var ErrClosed = &Error{"unavailable", "batcher closed"}

// BatcherOptions tune a Batcher.
type BatcherOptions struct {
	// MaxBatch is the most samples written in one call (default 4096).
	MaxBatch int
	// MaxPending is how many samples may wait for the writer before Add, Append and Enqueue
	// wait (Add and Append until their context ends) (default 64 * MaxBatch): backpressure
	// instead of unbounded memory.
	MaxPending int
	// Writers is how many batches may be written at once (default 1). One writer batches best:
	// while its write syncs, the next batch fills; more writers take smaller batches.
	Writers int
	// Retry is the first wait after a failed write; it doubles up to 5 s (default 50 ms).
	Retry  time.Duration
	Logger *slog.Logger
	// OnWrite, when set, is called after each successful write with the batch size and duration.
	OnWrite func(n int, d time.Duration)
}

// Batcher is the group commit for vitals: concurrent Append calls share one durable write.
// While a write is in flight the next batch fills, so the batch size follows the load with no
// added delay when the load is light. A failed write is retried with backoff until it succeeds
// or the Batcher closes; nothing handed to the Batcher is dropped.
type Batcher struct {
	w    SampleWriter
	opts BatcherOptions
	log  *slog.Logger

	mu      sync.Mutex
	space   chan struct{} // closed (and replaced) when pending drops, or the Batcher closes
	work    *sync.Cond    // signalled when a batch is queued or the Batcher closes
	queue   []*batch      // batches waiting for the writer, oldest first
	pending int
	closed  bool
	done    chan struct{}
	abort   chan struct{} // closed when Close gives up on a failing writer
}

type batch struct {
	samples []Sample
	done    chan struct{}
	err     error
}

// NewBatcher starts a Batcher writing to w. Close it to flush and stop.
func NewBatcher(w SampleWriter, opts BatcherOptions) *Batcher {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 64 * opts.MaxBatch
	}
	if opts.Writers <= 0 {
		opts.Writers = 1
	}
	if opts.Retry <= 0 {
		opts.Retry = 50 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	b := &Batcher{
		w:     w,
		opts:  opts,
		log:   opts.Logger.With("component", "store.batcher"),
		done:  make(chan struct{}),
		abort: make(chan struct{}),
	}
	b.space = make(chan struct{})
	b.work = sync.NewCond(&b.mu)
	var wg sync.WaitGroup
	for range opts.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.run()
		}()
	}
	go func() {
		wg.Wait()
		close(b.done)
	}()
	return b
}

// Append adds s to the next write and waits until it is durable (or ctx ends; the sample is
// then still written, but the caller must not acknowledge it).
func (b *Batcher) Append(ctx context.Context, s Sample) error {
	p, err := b.Add(ctx, s)
	if err != nil {
		return err
	}
	return p.Wait(ctx)
}

// Pending is a sample handed to the Batcher.
type Pending batch

// Add adds s to the next write; Wait on the result tells when it is durable. While the
// Batcher holds MaxPending samples not yet written (the store is slow or down) it waits for
// room, until ctx ends.
func (b *Batcher) Add(ctx context.Context, s Sample) (*Pending, error) {
	bt, err := b.add(ctx, s)
	return (*Pending)(bt), err
}

// Wait waits until the sample is durable, or ctx ends.
func (p *Pending) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Enqueue adds s to the next write without waiting for it (QoS 0 samples).
func (b *Batcher) Enqueue(s Sample) error {
	_, err := b.add(context.Background(), s)
	return err
}

func (b *Batcher) add(ctx context.Context, s Sample) (*batch, error) {
	b.mu.Lock()
	for b.pending >= b.opts.MaxPending && !b.closed {
		room := b.space
		b.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return nil, fmt.Errorf("vitals write queue full (%d samples not yet written): %w", b.opts.MaxPending, ctx.Err())
		}
		b.mu.Lock()
	}
	if b.closed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	n := len(b.queue)
	if n == 0 || len(b.queue[n-1].samples) >= b.opts.MaxBatch {
		b.queue = append(b.queue, &batch{samples: make([]Sample, 0, 64), done: make(chan struct{})})
		n++
	}
	bt := b.queue[n-1]
	bt.samples = append(bt.samples, s)
	b.pending++
	b.mu.Unlock()
	b.work.Signal()
	return bt, nil
}

func (b *Batcher) run() {
	for {
		b.mu.Lock()
		for len(b.queue) == 0 && !b.closed {
			b.work.Wait()
		}
		if len(b.queue) == 0 {
			b.mu.Unlock()
			return // closed and drained
		}
		bt := b.queue[0]
		b.queue = b.queue[1:]
		b.mu.Unlock()

		b.write(bt)

		b.mu.Lock()
		b.pending -= len(bt.samples)
		close(b.space)
		b.space = make(chan struct{})
		b.mu.Unlock()
		close(bt.done)
	}
}

func (b *Batcher) write(bt *batch) {
	wait := b.opts.Retry
	for {
		start := time.Now()
		err := b.w.AppendSamples(context.Background(), bt.samples)
		if err == nil {
			if b.opts.OnWrite != nil {
				b.opts.OnWrite(len(bt.samples), time.Since(start))
			}
			return
		}
		b.log.Warn("vitals write failed; retrying", "samples", len(bt.samples), "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-b.abort:
			bt.err = err
			b.log.Error("vitals write abandoned at close", "samples", len(bt.samples), "err", err)
			return
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// Close writes what is pending, waits for it and stops; Append and Enqueue fail afterwards. If
// the writer is still failing when ctx ends, Close abandons the pending samples (their waiters
// get the error, so nothing unwritten was acknowledged) and says how many.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.space)
		b.space = make(chan struct{})
	}
	b.work.Broadcast()
	b.mu.Unlock()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	lost := b.pending
	b.mu.Unlock()
	close(b.abort)
	<-b.done
	return fmt.Errorf("closing vitals batcher: %d samples not written: %w", lost, ctx.Err())
}
