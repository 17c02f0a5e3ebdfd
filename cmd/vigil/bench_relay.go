package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vigilhq/vigil/broker"
)

// benchRelayPasswordEnv carries the relay's password from the bench (not on the command line,
// where other users of the machine could read it).
const benchRelayPasswordEnv = "VIGIL_BENCH_RELAY_PASSWORD"

// cmdBenchRelay is the hidden `vigil bench-relay`: a bare mochi-mqtt with the capabilities and
// buffer sizes of Vigil's embedded broker (broker.MochiOptions) and none of its hooks, apart
// from one that admits any client presenting the bench's password and lets it do anything. It
// passes vitals straight to subscribers: what Vigil is compared with. It prints "ready", then
// "dropped=N" whenever mochi drops a message for a slow subscriber.
func cmdBenchRelay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	s := newSettings("vigil bench-relay")
	s.fs.SetOutput(stderr)
	var addr, wsAddr string
	var maxConns int
	s.String(&addr, "addr", "VIGIL_BENCH_RELAY_ADDR", "127.0.0.1:0", "MQTT TCP address (loopback)")
	s.String(&wsAddr, "ws-addr", "VIGIL_BENCH_RELAY_WS_ADDR", "", "MQTT over WebSocket address (loopback; empty: none)")
	s.Int(&maxConns, "max-connections", "VIGIL_BENCH_RELAY_MAX_CONNECTIONS", 50_000, "most MQTT connections at once")
	if err := s.Parse(args, getenv); err != nil {
		return err
	}
	password := getenv(benchRelayPasswordEnv)
	if len(password) < 16 {
		return fmt.Errorf("$%s: at least 16 bytes", benchRelayPasswordEnv)
	}
	for _, a := range []struct{ name, v string }{{"addr", addr}, {"ws-addr", wsAddr}} {
		if a.v == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a.v)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("--%s %q: a loopback address (the relay admits anyone with the password)", a.name, a.v)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	server := mqtt.New(broker.MochiOptions(broker.Options{MaxConnections: int64(maxConns), Logger: log}))
	hook := &relayHook{password: []byte(password)}
	if err := server.AddHook(hook, nil); err != nil {
		return err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := server.AddListener(tcp); err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if wsAddr != "" {
		if err := server.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: wsAddr})); err != nil {
			return fmt.Errorf("--ws-addr: %w", err)
		}
	}
	if err := server.Serve(); err != nil {
		return err
	}
	defer server.Close()
	fmt.Fprintf(stdout, "ready tcp=%s ws=%s\n", tcp.Address(), wsAddr)

	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if n := hook.dropped.Load() + atomic.LoadInt64(&server.Info.InflightDropped); n != last {
			last = n
			fmt.Fprintf(stdout, "dropped=%d\n", n)
		}
	}
}

// relayHook admits the bench's clients and counts drops. It never allows a client without the
// password (mochi's AllowHook would).
type relayHook struct {
	mqtt.HookBase
	password []byte
	dropped  atomic.Int64
}

func (h *relayHook) ID() string { return "vigil-bench-relay" }

func (h *relayHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublishDropped, mqtt.OnQosDropped}, []byte{b})
}

func (h *relayHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	return subtle.ConstantTimeCompare(pk.Connect.Password, h.password) == 1
}

// OnACLCheck: an admitted client may publish and subscribe anywhere; the inline client is not
// checked.
func (h *relayHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool { return true }

func (h *relayHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) { h.dropped.Add(1) }

func (h *relayHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) { h.dropped.Add(1) }
