package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// childProcAttr puts a server in a process group of its own (killGroup reaches anything it
// starts) and has the kernel kill it if the bench dies without cleaning up.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func killGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return nil
	}
	return syscall.Kill(-pid, sig)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux port Go runs on.
const clockTicks = 100

// procCPU is the CPU time (user + system) process pid has used: /proc/PID/stat fields 14, 15.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the fields that follow start
	// after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat")
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// procRSS is the resident memory of process pid, bytes (VmRSS of /proc/PID/status).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, errors.New("malformed VmRSS")
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS")
}

// raiseFileLimit raises the open-files limit to its hard limit (servers started later inherit
// it: Mosquitto does not raise its own) and returns a note when need is beyond it.
func raiseFileLimit(need int) []string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return []string{"cannot read the open-files limit: " + err.Error()}
	}
	var notes []string
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			notes = append(notes, "cannot raise the open-files limit: "+err.Error())
		}
	}
	if uint64(need) > lim.Max {
		notes = append(notes, fmt.Sprintf("the connections need about %d open files but the hard limit is %d: connections beyond it will fail (raise it: ulimit -Hn, or LimitNOFILE= for a service)", need, lim.Max))
	}
	return notes
}
