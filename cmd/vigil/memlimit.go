package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupRoot is where Linux mounts the control groups; in a container, the container's own.
const cgroupRoot = "/sys/fs/cgroup"

// containerMemoryLimit returns the memory limit of the control group under root in bytes
// (cgroup v2 memory.max, or v1 memory/memory.limit_in_bytes), or 0 when there is none.
func containerMemoryLimit(root string) int64 {
	for _, f := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 { // v1 says "no limit" with a huge number
			return 0
		}
		return n
	}
	return 0
}

// applyMemoryLimit gives Go's collector a soft memory limit of 90% of the container's, unless
// GOMEMLIMIT sets one: near it the runtime collects harder and returns freed memory to the
// system, instead of the container being killed for memory it was only keeping.
func applyMemoryLimit(root string, getenv func(string) string, log *slog.Logger) {
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := containerMemoryLimit(root)
	if limit == 0 {
		return
	}
	soft := limit - limit/10
	debug.SetMemoryLimit(soft)
	log.Info("memory limit set from the container's", "container_bytes", limit, "go_soft_limit_bytes", soft)
}
