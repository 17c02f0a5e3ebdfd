package embedded_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkDiskSync measures the disk under the data directory, not Vigil: appending 4 KiB to
// a file and syncing it (fdatasync), as the write-ahead log does for every group commit. Each
// QoS 1 sample is acknowledged only after such a sync, so its latency tail is the floor of
// Vigil's end-to-end tail: sync-p99 and sync-max are reported next to the mean.
func BenchmarkDiskSync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "wal"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		if _, err := f.Write(page); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)*99/100]), "sync-p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "sync-max-ms")
}
