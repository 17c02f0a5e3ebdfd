package broker

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/vigilhq/vigil/auth"
	"github.com/vigilhq/vigil/devices"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/embedded"
)

// deviceStore gives the registry the embedded store (the same adapter cmd/vigil wires).
type deviceStore struct{ st store.Store }

func (d deviceStore) CreateDevice(ctx context.Context, r devices.Record) error {
	return d.st.CreateDevice(ctx, store.Device(r))
}
func (d deviceStore) GetDevice(ctx context.Context, id string) (devices.Record, error) {
	r, err := d.st.GetDevice(ctx, id)
	return devices.Record(r), err
}
func (d deviceStore) UpdateDevice(ctx context.Context, r devices.Record) error {
	return d.st.UpdateDevice(ctx, store.Device(r))
}
func (d deviceStore) DeleteDevice(ctx context.Context, id string) error {
	return d.st.DeleteDevice(ctx, id)
}
func (d deviceStore) ListDevices(ctx context.Context, h string, limit int, cursor string) ([]devices.Record, string, error) {
	rs, next, err := d.st.ListDevices(ctx, h, store.Page{Limit: limit, Cursor: cursor})
	out := make([]devices.Record, len(rs))
	for i, r := range rs {
		out[i] = devices.Record(r)
	}
	return out, next, err
}
func (d deviceStore) PatientExists(ctx context.Context, h, p string) error {
	_, err := d.st.GetPatient(ctx, h, p)
	return err
}

type tokens struct{ t *auth.Tokens }

func (v tokens) VerifyToken(token string) (Principal, error) {
	c, err := v.t.Verify(token)
	if err != nil {
		return Principal{}, err
	}
	return Principal{Subject: c.Subject, Admin: c.Role == auth.RoleAdmin, Hospitals: c.Hospitals, Expires: c.ExpiresAt.Time}, nil
}

// benchBroker starts a real broker with the real device registry on the embedded store, with
// one device assigned to a patient; it returns the broker, the device's secret and a nurse JWT.
func benchBroker(b *testing.B) (*Broker, string, string) {
	b.Helper()
	ctx := context.Background()
	st, err := embedded.Open(b.TempDir(), embedded.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.CreatePatient(ctx, store.Patient{Hospital: "h1", ID: "p1", SpO2Scale: 1}); err != nil {
		b.Fatal(err)
	}
	reg, err := devices.Open(ctx, deviceStore{st}, devices.Options{})
	if err != nil {
		b.Fatal(err)
	}
	_, secret, err := reg.Provision(ctx, "h1", "mon-1", "")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := reg.Assign(ctx, "h1", "mon-1", "p1"); err != nil {
		b.Fatal(err)
	}
	tk, err := auth.NewTokens([]byte("benchmark-secret-benchmark-secret-0123"), auth.TokenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	jwt, _, err := tk.Issue("nurse", auth.RoleNurse, []string{"h1"})
	if err != nil {
		b.Fatal(err)
	}
	br, err := New(Options{MQTTAddr: "127.0.0.1:0", Devices: reg, Tokens: tokens{tk}, DeviceRate: 1e9})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br, secret, jwt
}

// BenchmarkACL is the access check mochi makes on every publish, subscription and delivery.
func BenchmarkACL(b *testing.B) {
	br, _, _ := benchBroker(b)
	dev := &mqtt.Client{ID: "mon-1"}
	web := &mqtt.Client{ID: "web-1"}
	br.access.sessions.Store(dev, &session{client: dev, kind: kindDevice, hospital: "h1", device: "mon-1"})
	br.access.sessions.Store(web, &session{client: web, kind: kindBrowser, principal: Principal{Subject: "nurse", Hospitals: []string{"h1"}, Expires: time.Now().Add(time.Hour)}})
	cases := []struct {
		name  string
		cl    *mqtt.Client
		topic string
		write bool
	}{
		{"device-publish-vitals", dev, "hospital/h1/patient/p1/vitals", true},
		{"browser-delivery", web, "hospital/h1/patient/p1/risk", false},
		{"browser-subscribe-filter", web, "hospital/h1/patient/+/risk", false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if !br.access.OnACLCheck(c.cl, c.topic, c.write) {
				b.Fatalf("OnACLCheck(%s, %s) = false; want true", c.cl.ID, c.topic)
			}
			b.ReportAllocs()
			for b.Loop() {
				br.access.OnACLCheck(c.cl, c.topic, c.write)
			}
		})
	}
}

// BenchmarkConnect is a whole connection as the broker sees it: TCP connect, CONNECT with the
// credentials (a device secret checked against the registry, or a JWT verified), CONNACK,
// DISCONNECT. The client side is raw packets, so the figure is the broker's cost.
func BenchmarkConnect(b *testing.B) {
	br, secret, jwt := benchBroker(b)
	addr := br.Addr("tcp")
	for _, c := range []struct{ name, id, pass string }{{"device", "mon-1", secret}, {"browser-jwt", "web-1", jwt}} {
		b.Run(c.name, func(b *testing.B) {
			var connect bytes.Buffer
			cp := packets.NewControlPacket(packets.CONNECT).Content.(*packets.Connect)
			cp.ProtocolName, cp.ProtocolVersion, cp.KeepAlive, cp.CleanStart = "MQTT", 5, 30, true
			cp.ClientID, cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = c.id, c.id, true, []byte(c.pass), true
			if _, err := cp.WriteTo(&connect); err != nil {
				b.Fatal(err)
			}
			disconnect := []byte{0xe0, 0x00}
			ack := make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := conn.Write(connect.Bytes()); err != nil {
					b.Fatal(err)
				}
				n, err := conn.Read(ack)
				if err != nil || n < 4 || ack[0] != 0x20 || ack[3] != 0 {
					b.Fatalf("CONNACK = % x, %v; want success", ack[:n], err)
				}
				conn.Write(disconnect)
				conn.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "connects/s")
		})
	}
}
