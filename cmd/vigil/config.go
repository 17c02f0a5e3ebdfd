package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// settings binds flags to environment variables: a flag given on the command line wins, then
// the variable, then the default. Every setting is documented by its flag's usage line.
type settings struct {
	fs   *flag.FlagSet
	envs map[string]string // flag name -> environment variable
}

func newSettings(name string) *settings {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &settings{fs: fs, envs: map[string]string{}}
}

func (s *settings) env(name, env string) { s.envs[name] = env }

func (s *settings) String(p *string, name, env, def, usage string) {
	s.fs.StringVar(p, name, def, usage+" ($"+env+")")
	s.env(name, env)
}

func (s *settings) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	s.fs.Var(newDurationValue(def, p), name, usage+" ($"+env+")")
	s.env(name, env)
}

func (s *settings) Int(p *int, name, env string, def int, usage string) {
	s.fs.IntVar(p, name, def, usage+" ($"+env+")")
	s.env(name, env)
}

func (s *settings) Float(p *float64, name, env string, def float64, usage string) {
	s.fs.Float64Var(p, name, def, usage+" ($"+env+")")
	s.env(name, env)
}

func (s *settings) Bool(p *bool, name, env string, def bool, usage string) {
	s.fs.BoolVar(p, name, def, usage+" ($"+env+")")
	s.env(name, env)
}

func (s *settings) Var(v flag.Value, name, env, usage string) {
	s.fs.Var(v, name, usage+" ($"+env+")")
	s.env(name, env)
}

// Parse parses args, then fills every flag not on the command line from its variable. It
// returns flag.ErrHelp for -h, errUsage for a command-line error (the flag package has printed
// it with the usage), or the error of a malformed variable, naming it.
func (s *settings) Parse(args []string, getenv func(string) string) error {
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	given := map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	names := make([]string, 0, len(s.envs))
	for name := range s.envs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		env := s.envs[name]
		v, ok := lookup(getenv, env)
		if given[name] || !ok {
			continue
		}
		if err := s.fs.Set(name, v); err != nil {
			return fmt.Errorf("$%s: %w", env, err)
		}
	}
	return nil
}

func lookup(getenv func(string) string, env string) (string, bool) {
	v := getenv(env)
	return v, v != ""
}

// durationValue accepts Go durations plus a day suffix ("30d").
type durationValue struct{ p *time.Duration }

func newDurationValue(def time.Duration, p *time.Duration) *durationValue {
	*p = def
	return &durationValue{p}
}

func (d *durationValue) String() string {
	if d.p == nil {
		return ""
	}
	return formatDuration(*d.p)
}

func (d *durationValue) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d.p = v
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad duration %q: want e.g. 90s, 5m, 12h or 30d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad duration %q: want e.g. 90s, 5m, 12h or 30d", s)
	}
	return v, nil
}

func formatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}

// checkAddr validates a host:port listen address.
func checkAddr(name, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s %q: want host:port, e.g. 127.0.0.1:8080", name, addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("--%s %q: bad port %q", name, addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return fmt.Errorf("--%s %q: bad host %q", name, addr, host)
	}
	return nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// checkDataDir makes sure dir exists and is writable.
func checkDataDir(dir string) error {
	if dir == "" {
		return errors.New("--data-dir: empty")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("--data-dir %q: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("--data-dir %q: not writable: %w", dir, errors.Unwrap(err))
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}

// parseOrigins parses a comma-separated list of origins (scheme://host[:port]).
func parseOrigins(s string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o == "*" {
			return nil, errors.New("--allowed-origins: \"*\" is not allowed; list the dashboard origins")
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("--allowed-origins: bad origin %q: want scheme://host[:port]", o)
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return out, nil
}

// selfOrigins are the origins of the HTTP address itself: what a browser sends when the dashboard
// served by this process opens /mqtt. A wildcard host stands for localhost and 127.0.0.1.
func selfOrigins(httpAddr string, tls bool) []string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return nil
	}
	hosts := []string{host}
	if host == "" || host == "0.0.0.0" || host == "::" || host == "127.0.0.1" || host == "localhost" {
		hosts = []string{"localhost", "127.0.0.1"}
	}
	var out []string
	for _, h := range hosts {
		out = append(out, scheme+"://"+net.JoinHostPort(h, port))
	}
	return out
}

// secretFile returns the contents of a generated secret in the data dir, creating it (mode 0600)
// with gen on first use.
func secretFile(dataDir, name string, gen func() (string, error)) (string, error) {
	path := filepath.Join(dataDir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("%s is empty; delete it to generate a new one", path)
		}
		return v, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	v, err := gen()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(v + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return v, f.Close()
}

// escalation holds the escalation timeouts by priority (--escalate-after high=60s,medium=3m,low=10m).
type escalation struct{ high, medium, low time.Duration }

func defaultEscalation() escalation {
	return escalation{high: time.Minute, medium: 3 * time.Minute, low: 10 * time.Minute}
}

func (e *escalation) String() string {
	if e == nil {
		return ""
	}
	return "high=" + formatDuration(e.high) + ",medium=" + formatDuration(e.medium) + ",low=" + formatDuration(e.low)
}

func (e *escalation) Set(s string) error {
	next := *e
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("%q: want priority=duration, e.g. high=60s", part)
		}
		d, err := parseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q: want a positive duration", part)
		}
		switch k {
		case "high":
			next.high = d
		case "medium":
			next.medium = d
		case "low":
			next.low = d
		default:
			return fmt.Errorf("%q: priority must be high, medium or low", k)
		}
	}
	*e = next
	return nil
}

// uint16Value is a flag.Value for a uint16 setting.
type uint16Value struct{ p *uint16 }

func (v uint16Value) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(int(*v.p))
}

func (v uint16Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return fmt.Errorf("%q: want a whole number from 0 to 65535", s)
	}
	*v.p = uint16(n)
	return nil
}
