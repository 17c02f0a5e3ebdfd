package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/vigilhq/vigil/auth"
	"github.com/vigilhq/vigil/devices"
)

// Demo accounts and ward.
const (
	demoHospital = "demo"
	demoNurse    = "nurse"
	demoPassword = "vigil-demo"
)

// cmdDemo runs Vigil with a simulated ward: hospital "demo", a nurse account, monitors across
// the scenarios so that alerts appear within a minute.
func cmdDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	s := newSettings("vigil demo")
	s.fs.SetOutput(stderr)
	c.flags(s)
	var beds int
	var rate, scale float64
	s.Int(&beds, "beds", "VIGIL_DEMO_BEDS", 12, "simulated beds")
	s.Float(&rate, "rate", "VIGIL_DEMO_RATE", 1, "samples per second per monitor")
	s.Float(&scale, "time-scale", "VIGIL_DEMO_TIME_SCALE", 10, "how much faster than real time the scenarios unfold")
	s.fs.Lookup("data-dir").DefValue = "./vigil-demo-data"
	if err := s.fs.Set("data-dir", "./vigil-demo-data"); err != nil {
		return err
	}
	if err := s.Parse(args, getenv); err != nil {
		return err
	}
	if beds < 1 || beds > 500 {
		return errors.New("--beds: 1 to 500")
	}
	if err := c.check(); err != nil {
		return err
	}
	log, err := newLogger(stderr, c.LogFormat, c.LogLevel)
	if err != nil {
		return err
	}
	v, err := start(ctx, c, log, stderr)
	if err != nil {
		return err
	}
	defer v.stop()

	// An admin token for setting the ward up through the REST API, like any integrator.
	admin, _, err := v.auth.Tokens().Issue(auth.AdminUsername, auth.RoleAdmin, nil)
	if err != nil {
		return err
	}
	if _, err := v.auth.CreateUser(ctx, demoNurse, demoPassword, auth.RoleNurse, []string{demoHospital}); err != nil && codeOf(err) != "conflict" {
		return fmt.Errorf("demo nurse: %w", err)
	}
	base := "http://" + v.httpLn.Addr().String()
	cl := devices.NewClient(base)
	cl.Token = admin
	ward := devices.DemoWard(demoHospital, beds)
	monitors, err := cl.ProvisionWard(ctx, ward, "Vigil demo monitor")
	if err != nil {
		return fmt.Errorf("setting up the demo ward: %w", err)
	}
	if err := demoBoards(ctx, cl, base, admin, ward); err != nil {
		return fmt.Errorf("setting up the demo ward: %w", err)
	}

	dashboard := base + "/"
	if host, port, _ := net.SplitHostPort(v.httpLn.Addr().String()); host == "127.0.0.1" || host == "0.0.0.0" || host == "::" {
		dashboard = "http://localhost:" + port + "/"
	}
	fmt.Fprintf(stdout, "\nVigil demo is running.\n\n  Dashboard:  %s\n  Log in as:  %s / %s   (hospital %q, %d beds)\n  MQTT:       %s\n\nAlerts appear within a minute. Ctrl-C stops.\n\n",
		dashboard, demoNurse, demoPassword, demoHospital, beds, "mqtt://"+v.mqttAddr())

	simLog := slog.New(slog.DiscardHandler)
	if c.LogLevel == "debug" {
		simLog = log
	}
	sum, err := devices.Simulate(ctx, devices.SimOptions{
		URL: "tcp://" + v.mqttAddr(), Monitors: monitors, Rate: rate, TimeScale: scale, Logger: simLog,
		Seed: uint64(time.Now().UnixNano()),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nSimulated %d samples (%d acknowledged, %d refused).\n", sum.Sent, sum.Acked, sum.Refused)
	return nil
}

// demoBoards fills the bed board, staff list and triage queue so every panel has something.
func demoBoards(ctx context.Context, cl *devices.Client, base, token string, ward []devices.Bedside) error {
	put := func(method, path, body string) error {
		req, _ := http.NewRequestWithContext(ctx, method, base+"/api/v1/hospitals/"+demoHospital+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 && resp.StatusCode != http.StatusConflict {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return nil
	}
	for _, b := range ward {
		if err := put("PUT", "/beds/"+b.Bed, `{"status":"occupied","patient":"`+b.Patient+`"}`); err != nil {
			return err
		}
	}
	for _, extra := range []struct{ id, status string }{{"bed-free-1", "free"}, {"bed-clean-1", "cleaning"}} {
		if err := put("PUT", "/beds/"+extra.id, `{"status":"`+extra.status+`"}`); err != nil {
			return err
		}
	}
	staff := []string{
		`"s-ward-nurse","name":"Sam Okafor","role":"nurse","available":true,"on_shift":true`,
		`"s-charge-nurse","name":"Ana Ruiz","role":"charge nurse","available":false,"on_shift":true`,
		`"s-registrar","name":"Dr Lee","role":"registrar","available":true,"on_shift":true`,
		`"s-consultant","name":"Dr Patel","role":"consultant","available":false,"on_shift":false`,
	}
	for _, s := range staff {
		id, rest, _ := strings.Cut(s, ",")
		if err := put("PUT", "/staff/"+strings.Trim(id, `"`), "{"+rest+"}"); err != nil {
			return err
		}
	}
	for _, t := range []string{`{"id":"t-chest","level":2,"complaint":"Chest pain, 20 minutes"}`, `{"id":"t-ankle","level":4,"complaint":"Twisted ankle"}`} {
		if err := put("POST", "/triage", t); err != nil {
			return err
		}
	}
	return nil
}

func codeOf(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return ""
}

// cmdHealthcheck asks a running Vigil's /readyz (for container health checks, where there is
// no curl). Without --url it asks the Vigil of the same environment (its environment
// variables, not its flags): VIGIL_HTTP_ADDR, over HTTPS when VIGIL_TLS_CERT is set (the
// certificate names the public host, not the loopback address asked, so it is not verified
// then: the check does not leave the machine).
func cmdHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := newSettings("vigil healthcheck")
	s.fs.SetOutput(stderr)
	var url string
	s.String(&url, "url", "VIGIL_HEALTHCHECK_URL", "", "readiness URL (default: http(s)://<VIGIL_HTTP_ADDR>/readyz, https when VIGIL_TLS_CERT is set)")
	if err := s.Parse(args, getenv); err != nil {
		return err
	}
	client := http.DefaultClient
	if url == "" {
		addr := getenv("VIGIL_HTTP_ADDR")
		if addr == "" {
			addr = "127.0.0.1:8080"
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("VIGIL_HTTP_ADDR %q: %v", addr, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		scheme := "http"
		if getenv("VIGIL_TLS_CERT") != "" {
			scheme = "https"
			if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
				client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			}
		}
		url = scheme + "://" + net.JoinHostPort(host, port) + "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}
