package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/store"
)

// BenchmarkPipeline is the whole per-sample path of a running Vigil short of the network:
// decode and validate, group commit to the embedded store (waited for, as a QoS 1 PUBACK is),
// the patient's worker (state, NEWS2, rules), and the risk_updated publish through the embedded
// broker. Many goroutines submit at once, as many devices do. Compare vigil bench, which adds
// the MQTT connections (and shares the machine with its load generator).
func BenchmarkPipeline(b *testing.B) {
	c := testConfig(b)
	c.LogLevel = "error"
	v, err := start(context.Background(), c, slog.New(slog.DiscardHandler), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer v.stop()
	const patients = 1000
	for i := range patients {
		rec := fmt.Sprintf("p%d", i)
		if _, err := v.ward.Admit(context.Background(), store.Patient{Hospital: "h1", ID: rec, Name: rec}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		p := "p" + strconv.Itoa(int(next.Add(1))%patients)
		n := 0
		for pb.Next() {
			n++
			hr := 85 + 10*(n%2) // the score changes with every sample: one risk_updated each
			payload := []byte(`{"seq":` + strconv.Itoa(n) + `,"hr":` + strconv.Itoa(hr) + `,"spo2":97,"rr":16}`)
			if err := v.pipeline.Submit(context.Background(), "h1", p, "", payload, 1, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
