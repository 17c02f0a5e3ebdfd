package broker

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/vigilhq/vigil/devices"
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

// BenchmarkIdleConnection opens b.N device connections (raw packets: CONNECT, CONNACK, then
// nothing) and reports what each costs the process once they are idle and the garbage is
// collected: goroutines, goroutine stack bytes and live heap bytes. Run it with a fixed count,
// e.g. -bench IdleConnection -benchtime 5000x. The heap figure includes the client end of each
// socket (a few hundred bytes), which lives in the same process.
func BenchmarkIdleConnection(b *testing.B) {
	var reg *devices.Registry
	br, _, _ := testBroker(b, func(o *Options) { reg = o.Devices.(*devices.Registry) })
	ctx := context.Background()
	ids := make([]string, b.N)
	secrets := make([]string, b.N)
	for i := range b.N {
		ids[i] = fmt.Sprintf("idle-%d", i)
		var err error
		if _, secrets[i], err = reg.Provision(ctx, "h1", ids[i], ""); err != nil {
			b.Fatal(err)
		}
	}
	addr := br.Addr("tcp")
	conns := make([]net.Conn, 0, b.N)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	before := idleMemory()
	b.ResetTimer()
	for i := range b.N {
		var connect bytes.Buffer
		cp := packets.NewControlPacket(packets.CONNECT).Content.(*packets.Connect)
		cp.ProtocolName, cp.ProtocolVersion, cp.KeepAlive, cp.CleanStart = "MQTT", 5, 600, true
		cp.ClientID, cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = ids[i], ids[i], true, []byte(secrets[i]), true
		if _, err := cp.WriteTo(&connect); err != nil {
			b.Fatal(err)
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, conn)
		if _, err := conn.Write(connect.Bytes()); err != nil {
			b.Fatal(err)
		}
		ack := make([]byte, 64)
		n, err := conn.Read(ack)
		if err != nil || n < 4 || ack[0] != 0x20 || ack[3] != 0 {
			b.Fatalf("CONNACK = % x, %v; want success", ack[:n], err)
		}
	}
	b.StopTimer()
	// The device_status messages and the connection hooks run after CONNACK: let them finish.
	for deadline := time.Now().Add(10 * time.Second); atomic.LoadInt64(&br.server.Info.ClientsConnected) < int64(b.N) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	after := idleMemory()
	if got := atomic.LoadInt64(&br.server.Info.ClientsConnected); got < int64(b.N) {
		b.Fatalf("%d clients connected; want %d", got, b.N)
	}
	n := float64(b.N)
	b.ReportMetric(float64(after.goroutines-before.goroutines)/n, "goroutines/conn")
	b.ReportMetric(float64(after.stacks-before.stacks)/n, "stack-B/conn")
	b.ReportMetric(float64(after.heap-before.heap)/n, "heap-B/conn")
}

type memFigures struct{ goroutines, stacks, heap uint64 }

// idleMemory collects the garbage (several cycles, so idle goroutine stacks shrink to what they
// use) and reads the runtime's figures.
func idleMemory() memFigures {
	for range 4 {
		runtime.GC()
	}
	s := []metrics.Sample{
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	metrics.Read(s)
	return memFigures{s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()}
}
