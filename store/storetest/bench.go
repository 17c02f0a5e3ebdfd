package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/store"
)

// Bench runs the store benchmarks: vitals writes (batched, and through the group commit with
// many concurrent writers), a time-range query, synced alert writes and an alert list.
// open returns a fresh, empty store.
func Bench(b *testing.B, open func(b *testing.B) store.Store) {
	b.Run("AppendSamples/batch=1000", func(b *testing.B) {
		s := open(b)
		batch := make([]store.Sample, 1000)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			for j := range batch {
				batch[j] = sample("h1", fmt.Sprintf("p%03d", j%500), base.Add(time.Duration(i*1000+j)*time.Millisecond), int64(j), 70)
			}
			if err := s.AppendSamples(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "samples/s")
	})

	b.Run("Batcher/parallel", func(b *testing.B) {
		s := open(b)
		bt := store.NewBatcher(s, store.BatcherOptions{})
		defer bt.Close(ctx)
		var n atomic.Int64
		b.SetParallelism(64) // many devices waiting for their PUBACK at once
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			p := fmt.Sprintf("p%d", n.Add(1))
			i := 0
			for pb.Next() {
				i++
				if err := bt.Append(ctx, sample("h1", p, base.Add(time.Duration(i)*time.Millisecond), int64(i), 70)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "durable-samples/s")
	})

	b.Run("ListSamples/1000", func(b *testing.B) {
		s := open(b)
		batch := make([]store.Sample, 10_000)
		for j := range batch {
			batch[j] = sample("h1", "p1", base.Add(time.Duration(j)*time.Second), int64(j), 70)
		}
		if err := s.AppendSamples(ctx, batch); err != nil {
			b.Fatal(err)
		}
		q := store.SampleQuery{Hospital: "h1", Patient: "p1", From: base.Add(time.Hour), To: base.Add(time.Hour + 1000*time.Second)}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			got, _, err := s.ListSamples(ctx, q, store.Page{Limit: 1000})
			if err != nil || len(got) != 1000 {
				b.Fatalf("ListSamples = %d, %v", len(got), err)
			}
		}
	})

	b.Run("CreateAlert", func(b *testing.B) {
		s := open(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := s.CreateAlert(ctx, newAlert(fmt.Sprintf("A%09d", i), "h1", "p1", "news2", "high", base)); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("UpdateAlert", func(b *testing.B) {
		s := open(b)
		a := newAlert("A1", "h1", "p1", "news2", "high", base)
		if err := s.CreateAlert(ctx, a); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			a.Version++
			if err := s.UpdateAlert(ctx, a, store.AlertEvent{Version: a.Version, Action: "updated", At: base}); err != nil {
				b.Fatal(err)
			}
			if i%64 == 63 { // keep the history at a realistic length
				b.StopTimer()
				a = newAlert(fmt.Sprintf("A%d", i), "h1", "p1", "news2", "high", base)
				if err := s.CreateAlert(ctx, a); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		}
	})

	b.Run("ListAlerts/open/100of2000", func(b *testing.B) {
		s := open(b)
		for i := range 2000 {
			a := newAlert(fmt.Sprintf("A%05d", i), "h1", fmt.Sprintf("p%d", i%50), "news2", "high", base.Add(time.Duration(i)*time.Second))
			if err := s.CreateAlert(context.Background(), a); err != nil {
				b.Fatal(err)
			}
			if i%20 != 0 {
				a.State, a.Version = store.StateResolved, 2
				if err := s.UpdateAlert(ctx, a, store.AlertEvent{Version: 2, Action: "resolved", At: base}); err != nil {
					b.Fatal(err)
				}
			}
		}
		q := store.AlertQuery{Hospital: "h1", States: []string{store.StateActive, store.StateAcknowledged}}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			got, _, err := s.ListAlerts(ctx, q, store.Page{Limit: 100})
			if err != nil || len(got) != 100 {
				b.Fatalf("ListAlerts = %d, %v", len(got), err)
			}
		}
	})
}
