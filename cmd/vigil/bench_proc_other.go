//go:build !linux

package main

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// Outside Linux the servers run in the bench's process group, and there is no /proc: CPU and
// memory figures are n/a.

func childProcAttr() *syscall.SysProcAttr { return nil }

func killGroup(pid int, sig syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if sig == syscall.SIGKILL {
		return p.Kill()
	}
	return p.Signal(sig)
}

var errNoProc = errors.New("no /proc on this system")

func procCPU(pid int) (time.Duration, error) { return 0, errNoProc }
func procRSS(pid int) (int64, error)         { return 0, errNoProc }

func raiseFileLimit(need int) []string { return nil }
