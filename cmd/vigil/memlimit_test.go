package main

import (
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestContainerMemoryLimit(t *testing.T) {
	cases := []struct {
		name, file, content string
		want                int64
	}{
		{"v2 limit", "memory.max", "2147483648\n", 2 << 30},
		{"v2 no limit", "memory.max", "max\n", 0},
		{"v1 limit", "memory/memory.limit_in_bytes", "1073741824\n", 1 << 30},
		{"v1 no limit", "memory/memory.limit_in_bytes", "9223372036854771712\n", 0},
		{"unreadable number", "memory.max", "lots\n", 0},
		{"no cgroup files", "", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if c.file != "" {
				p := filepath.Join(root, c.file)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := containerMemoryLimit(root); got != c.want {
				t.Errorf("containerMemoryLimit = %d; want %d", got, c.want)
			}
		})
	}
}

// TestApplyMemoryLimit: 90% of the container's limit becomes Go's soft limit, unless GOMEMLIMIT
// is set (the runtime has applied it already).
func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "memory.max"), []byte("1000000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	debug.SetMemoryLimit(math.MaxInt64)
	applyMemoryLimit(root, func(k string) string {
		if k == "GOMEMLIMIT" {
			return "500MiB"
		}
		return ""
	}, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("with GOMEMLIMIT set, the limit became %d; want it untouched", got)
	}

	applyMemoryLimit(root, func(string) string { return "" }, log)
	if got := debug.SetMemoryLimit(-1); got != 900000000 {
		t.Fatalf("soft limit = %d; want 900000000 (90%% of the container's)", got)
	}
}
