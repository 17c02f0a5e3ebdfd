package broker

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	mqtt "github.com/mochi-mqtt/server/v2"
)

// BenchmarkACL is the access check mochi makes on every publish, subscription and delivery.
func BenchmarkACL(b *testing.B) {
	br, _, _ := testBroker(b, nil)
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
	br, secret, jwt := testBroker(b, nil)
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
