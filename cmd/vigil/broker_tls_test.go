package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/vigilhq/vigil/internal/testenv"
)

// testCA is a certificate authority made up for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue signs a leaf certificate: a server certificate for 127.0.0.1, or a client certificate
// with the given CN.
func (ca *testCA) issue(t *testing.T, cn string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// writePEM writes a certificate and its key as PEM files and returns their paths.
func writePEM(t *testing.T, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// startTLSHarness starts Vigil with its certificate: MQTT over TLS on a free port, HTTPS for the
// API. The harness helpers send their requests with http.DefaultClient, which trusts the test
// CA for the length of the test.
func startTLSHarness(t *testing.T, c config, ca *testCA) *harness {
	t.Helper()
	cheapPasswords(t)
	old := http.DefaultClient
	http.DefaultClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}}
	t.Cleanup(func() { http.DefaultClient = old })
	if err := c.check(); err != nil {
		t.Fatalf("config: %v", err)
	}
	v, err := start(context.Background(), c, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), io.Discard)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	h := &harness{t: t, v: v, cfg: c, base: "https://" + v.httpLn.Addr().String(), mqtt: v.mqttAddr()}
	t.Cleanup(func() { h.stop() })
	h.admin = h.login("admin", adminPassword)
	return h
}

// TestBrokerTLS: on the TLS listener a device authenticates with a client certificate whose CN
// is its ID (no password), or with its secret; certificates of unknown devices or from another
// CA are refused. The API is served over HTTPS with the same certificate.
func TestBrokerTLS(t *testing.T) {
	ca := newTestCA(t, "Vigil test CA")
	rogue := newTestCA(t, "Rogue CA")
	dir := t.TempDir()
	certFile, keyFile := writePEM(t, dir, "server", ca.issue(t, "vigil", true))
	caFile := filepath.Join(dir, "devices-ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	c := testConfig(t)
	c.MQTTSAddr, c.TLSCert, c.TLSKey, c.ClientCA = "127.0.0.1:0", certFile, keyFile, caFile
	h := startTLSHarness(t, c, ca)
	mqtts := h.v.broker.Addr("tls")

	h.admit("h1", "p1")
	h.admit("h1", "p2")
	h.device("h1", "mon-cert", "p1")
	secret := h.device("h1", "mon-secret", "p2")
	browser := h.mustConnect("web-1", "x", []byte(h.admin)) // plain TCP still serves browsers and devices
	browser.mustSubscribe("hospital/h1/patient/+/risk")

	// dial opens a TLS connection to the MQTT listener, with a client certificate or none. The
	// certificate is sent whatever CAs the server names as acceptable (Go's client would keep
	// one from another CA to itself).
	dial := func(t *testing.T, cert *tls.Certificate, maxVersion uint16) (*tls.Conn, error) {
		t.Helper()
		tc := &tls.Config{RootCAs: ca.pool(), MaxVersion: maxVersion}
		if cert != nil {
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: tc}
		conn, err := d.DialContext(context.Background(), "tcp", mqtts)
		if err != nil {
			return nil, err
		}
		return conn.(*tls.Conn), nil
	}
	connect := func(t *testing.T, cert *tls.Certificate, id, user, pass string) (*client, error) {
		t.Helper()
		conn, err := dial(t, cert, 0)
		if err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		cl, _, err := dialSession(t, conn, &paho.Connect{ClientID: id, KeepAlive: 30, CleanStart: true,
			Username: user, UsernameFlag: user != "", Password: []byte(pass), PasswordFlag: pass != ""})
		return cl, err
	}

	devCert := ca.issue(t, "mon-cert", false)
	ghostCert := ca.issue(t, "mon-ghost", false)
	connects := []struct {
		name       string
		cert       *tls.Certificate
		id, user   string
		pass       string
		ok         bool
		patient    string // where an admitted connection publishes
		wantReason string // refusals: the CONNACK error names it
	}{
		{name: "certificate of a provisioned device, no password", cert: &devCert, id: "mon-cert", ok: true, patient: "p1"},
		{name: "certificate of an unknown device", cert: &ghostCert, id: "mon-ghost", wantReason: "bad username or password"},
		{name: "certificate whose CN is not the client ID", cert: &devCert, id: "mon-secret", wantReason: "bad username or password"},
		{name: "no certificate, the device secret", id: "mon-secret", user: "mon-secret", pass: secret, ok: true, patient: "p2"},
		{name: "no certificate, no password", id: "mon-cert", user: "mon-cert", wantReason: "bad username or password"},
	}
	for _, tt := range connects {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := connect(t, tt.cert, tt.id, tt.user, tt.pass)
			if !tt.ok {
				if err == nil {
					t.Fatalf("connect %s over TLS succeeded; want it refused", tt.id)
				}
				if !strings.Contains(strings.ToLower(err.Error()), tt.wantReason) {
					t.Fatalf("connect %s over TLS: %v; want a CONNACK refusing it (%s)", tt.id, err, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("connect %s over TLS: %v", tt.id, err)
			}
			cl.mustPublish("hospital/h1/patient/"+tt.patient+"/vitals", vitals(critical))
			risk := browser.await("risk of "+tt.patient, func(e envelope) bool { return e.Type == "risk_updated" && e.Patient == tt.patient })
			if r := riskOf(risk); r.Score != 12 {
				t.Fatalf("risk of %s after a sample over TLS = %+v; want 12", tt.patient, r)
			}
		})
	}

	t.Run("mosquitto_pub with the device certificate", func(t *testing.T) {
		pub := testenv.LookPath(t, "mosquitto_pub", mosquittoHint)
		devCertFile, devKeyFile := writePEM(t, dir, "mon-cert", devCert)
		host, port, _ := net.SplitHostPort(mqtts)
		sample := jsonString(vitals(map[string]any{"hr": 72, "rr": 16, "spo2": 98, "sbp": 122, "temp": 36.8, "acvpu": "A", "o2": false}))
		p := startProc(t, nil, pub, "-h", host, "-p", port, "-V", "mqttv311", "-q", "1", "-i", "mon-cert",
			"--cafile", caFile, "--cert", devCertFile, "--key", devKeyFile, "-t", "hospital/h1/patient/p1/vitals", "-m", sample)
		if code, out, stderr := p.finish(); code != 0 {
			t.Fatalf("mosquitto_pub over TLS with the device certificate: exit %d: %s%s", code, out, stderr)
		}
		browser.await("p1's risk back to 0", func(e envelope) bool { return e.Patient == "p1" && isRisk(0)(e) })
	})

	// A certificate from another CA fails the handshake: with TLS 1.2 at once, with TLS 1.3 (the
	// client's part of the handshake is done before the server checks its certificate) on the
	// first read, as the server's alert.
	rogueCert := rogue.issue(t, "mon-cert", false)
	for _, tt := range []struct {
		name    string
		version uint16
	}{{"TLS 1.2", tls.VersionTLS12}, {"TLS 1.3", tls.VersionTLS13}} {
		t.Run("certificate from another CA/"+tt.name, func(t *testing.T) {
			conn, err := dial(t, &rogueCert, tt.version)
			if err == nil {
				defer conn.Close()
				conn.SetReadDeadline(time.Now().Add(awaitTimeout))
				_, err = conn.Read(make([]byte, 1))
			}
			if err == nil || !strings.Contains(err.Error(), "remote error: tls:") {
				t.Fatalf("TLS with a certificate from another CA: %v; want the server's TLS alert", err)
			}
		})
	}
}

// TestHealthcheck: `vigil healthcheck` finds the Vigil of its environment (VIGIL_HTTP_ADDR,
// 0.0.0.0 meaning this machine) over HTTP, and over HTTPS when VIGIL_TLS_CERT is set (as in a
// container serving HTTPS); it fails when nothing answers there.
func TestHealthcheck(t *testing.T) {
	check := func(env map[string]string) error {
		var out, errs bytes.Buffer
		return cmdHealthcheck(context.Background(), nil, func(k string) string { return env[k] }, &out, &errs)
	}
	plain := newHarness(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(plain.base, "http://"))
	if err := check(map[string]string{"VIGIL_HTTP_ADDR": "0.0.0.0:" + port}); err != nil {
		t.Fatalf("healthcheck of a ready Vigil over HTTP: %v", err)
	}
	plain.stop()
	if err := check(map[string]string{"VIGIL_HTTP_ADDR": "0.0.0.0:" + port}); err == nil {
		t.Fatal("healthcheck of a stopped Vigil succeeded; want an error")
	}

	ca := newTestCA(t, "Vigil test CA")
	certFile, keyFile := writePEM(t, t.TempDir(), "server", ca.issue(t, "vigil.example", true))
	c := testConfig(t)
	c.TLSCert, c.TLSKey = certFile, keyFile
	h := startTLSHarness(t, c, ca)
	_, port, _ = net.SplitHostPort(strings.TrimPrefix(h.base, "https://"))
	// The harness's client trusts the test CA; the healthcheck of a container does not (its
	// certificate is for the public name), so check with a client that trusts the system's
	// roots alone.
	trusting := http.DefaultClient
	http.DefaultClient = &http.Client{}
	defer func() { http.DefaultClient = trusting }()
	if err := check(map[string]string{"VIGIL_HTTP_ADDR": "0.0.0.0:" + port, "VIGIL_TLS_CERT": certFile}); err != nil {
		t.Fatalf("healthcheck of a ready Vigil over HTTPS: %v", err)
	}
	if err := check(map[string]string{"VIGIL_HTTP_ADDR": "0.0.0.0:" + port}); err == nil {
		t.Fatal("healthcheck over HTTP of a Vigil serving HTTPS succeeded; want an error")
	}
}
