// Command vigil runs the Vigil alerting backbone: an MQTT broker for bedside monitors, NEWS2
// scoring and alarm rules, the alert lifecycle, a REST API and the clinician dashboard.
//
//	vigil serve      run Vigil
//	vigil demo       run Vigil with a simulated ward
//	vigil simulate   simulated bedside monitors against a running Vigil
//	vigil bench      load and latency report
//	vigil version    print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

const usage = `Vigil: alerting backbone for bedside monitors.

Usage:
  vigil serve [flags]      run Vigil (broker, scoring, alerts, REST API, dashboard)
  vigil demo [flags]       run Vigil with a simulated ward; prints the dashboard URL and a login
  vigil simulate [flags]   simulated bedside monitors against a running Vigil
  vigil bench [flags]      load and latency report: simulated monitors and subscribers through
                           a fresh Vigil (or --target), optionally against plain relays
                           (--against mochi,mosquitto)
  vigil healthcheck        exit 0 when a running Vigil is ready (for container health checks)
  vigil version            print the version

Run "vigil <command> -h" for the flags of a command. Every flag also reads an environment
variable, named in its help line; a flag on the command line wins.
`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = cmdServe(ctx, rest, getenv, stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, rest, getenv, stdout, stderr)
	case "simulate":
		err = cmdSimulate(ctx, rest, getenv, stdout, stderr)
	case "bench":
		err = cmdBench(ctx, rest, getenv, stdout, stderr)
	case "bench-relay": // started by `vigil bench`; not in the usage text
		err = cmdBenchRelay(ctx, rest, getenv, stdout, stderr)
	case "healthcheck":
		err = cmdHealthcheck(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "vigil", versionString())
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "vigil: %v\n", err)
		return 1
	}
}

// errUsage marks an error already reported by the flag package.
var errUsage = errors.New("usage")

// newLogger builds the process logger: text on a terminal, JSON for machines.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "auto", "":
		if isTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want auto, text or json", format)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
