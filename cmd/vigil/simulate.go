package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vigilhq/vigil/devices"
	"github.com/vigilhq/vigil/topics"
)

// cmdSimulate runs simulated bedside monitors against a running Vigil: it provisions the
// patients and devices through the REST API, then publishes vitals over MQTT.
func cmdSimulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := newSettings("vigil simulate")
	s.fs.SetOutput(stderr)
	var api, url, user, pass, hospital, scenario, logLevel, caFile string
	var beds int
	var rate, scale float64
	var qos int
	var duration time.Duration
	s.String(&api, "api", "VIGIL_SIM_API", "http://127.0.0.1:8080", "Vigil's HTTP address (REST API)")
	s.String(&url, "url", "VIGIL_SIM_URL", "tcp://127.0.0.1:1883", "MQTT address: tcp://, ssl://, ws://host/mqtt or wss://")
	s.String(&user, "user", "VIGIL_SIM_USER", "admin", "user provisioning the ward (admin)")
	s.String(&pass, "password", "VIGIL_SIM_PASSWORD", "", "their password")
	s.String(&hospital, "hospital", "VIGIL_SIM_HOSPITAL", "sim", "hospital ID")
	s.String(&scenario, "scenario", "VIGIL_SIM_SCENARIO", "mixed", "mixed, or one of: "+scenarioNames())
	s.Int(&beds, "beds", "VIGIL_SIM_BEDS", 12, "simulated monitors")
	s.Float(&rate, "rate", "VIGIL_SIM_RATE", 1, "samples per second per monitor")
	s.Float(&scale, "time-scale", "VIGIL_SIM_TIME_SCALE", 1, "how much faster than real time the scenarios unfold")
	s.Int(&qos, "qos", "VIGIL_SIM_QOS", 1, "QoS of the samples: 0 or 1")
	s.Duration(&duration, "duration", "VIGIL_SIM_DURATION", 0, "stop after this long (0: until Ctrl-C)")
	s.String(&logLevel, "log-level", "VIGIL_LOG_LEVEL", "warn", "log level")
	s.String(&caFile, "ca", "VIGIL_SIM_CA", "", "CA certificate (PEM) to verify ssl:// and wss:// servers (default: the system's)")
	if err := s.Parse(args, getenv); err != nil {
		return err
	}
	switch {
	case pass == "":
		return errors.New("--password: required ($VIGIL_SIM_PASSWORD)")
	case beds < 1 || beds > 100_000:
		return errors.New("--beds: 1 to 100000")
	case rate <= 0 || rate > 100:
		return errors.New("--rate: more than 0, at most 100")
	case qos != 0 && qos != 1:
		return errors.New("--qos: 0 or 1")
	case scale <= 0:
		return errors.New("--time-scale: more than 0")
	}
	var tc *tls.Config
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--ca %s: no PEM certificate", caFile)
		}
		tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if err := topics.ValidID("hospital", hospital); err != nil {
		return fmt.Errorf("--hospital: %v", err)
	}
	ward := devices.DemoWard(hospital, beds)
	if scenario != "mixed" {
		sc, err := devices.ParseScenario(scenario)
		if err != nil {
			return fmt.Errorf("--scenario %q: want mixed or one of %s", scenario, scenarioNames())
		}
		for i := range ward {
			ward[i].Scenario = sc
		}
	}
	log, err := newLogger(stderr, "text", logLevel)
	if err != nil {
		return err
	}
	cl := devices.NewClient(strings.TrimSuffix(api, "/"))
	sess, err := cl.Login(ctx, user, pass)
	if err != nil {
		return fmt.Errorf("logging in to %s: %w", api, err)
	}
	fmt.Fprintf(stderr, "provisioning %d monitors in hospital %s...\n", beds, hospital)
	monitors, err := cl.ProvisionWard(ctx, ward, "Vigil simulated monitor")
	if err != nil {
		return err
	}
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	progress := func(p devices.Progress) {
		fmt.Fprintf(stderr, "\r%6s  connected %d/%d  sent %d  acked %d  refused %d  rejected %d  alerts %d  errors %d ",
			p.Elapsed.Truncate(time.Second), p.Connected, beds, p.Sent, p.Acked, p.Refused, p.Rejected, p.AlertsSeen, p.Errors)
	}
	sum, err := devices.Simulate(ctx, devices.SimOptions{
		URL: url, TLS: tc, Monitors: monitors, Rate: rate, AtMostOnce: qos == 0, TimeScale: scale,
		Seed: uint64(time.Now().UnixNano()), Watch: &devices.WatchOptions{Token: sess.Token}, Progress: progress,
		Logger: log.With("component", "simulate"),
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "summary: %d samples sent, %d acknowledged, %d refused (PUBACK), %d sample_rejected, %d alerts seen, %d errors, %d connections, %s\n",
		sum.Sent, sum.Acked, sum.Refused, sum.Rejected, sum.AlertsSeen, sum.Errors, sum.Connects, sum.Elapsed.Truncate(time.Millisecond))
	for _, sc := range devices.Scenarios() {
		if c, ok := sum.Scenarios[sc]; ok {
			fmt.Fprintf(stdout, "  %-14s %+v\n", sc, c)
		}
	}
	return nil
}

func scenarioNames() string {
	var names []string
	for _, s := range devices.Scenarios() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}
