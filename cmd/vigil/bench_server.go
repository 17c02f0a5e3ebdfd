package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// benchServer is the server of one run: a child process of the bench (so that /proc figures
// are the server's alone), or the running Vigil of --target.
type benchServer struct {
	kind     string
	ep       endpoint
	base     string // Vigil: its HTTP base URL
	user     string // Vigil: the admin; relays: any
	password string // Vigil: the admin's password; relays: what every client presents

	pid    int // 0: not a local process: no /proc figures
	cmd    *exec.Cmd
	cancel context.CancelFunc // kills the process group
	exited chan struct{}
	dir    string // temporary, removed by stop
	out    *tailBuffer

	drops     func() (int64, bool) // messages the broker dropped so far
	onStdout  func(line string)    // set before start: reads the child's output lines
	closeOnce sync.Once
	closers   []func()
}

// startServer starts a fresh server of kind for a run of conns connections at rate samples per
// monitor per second.
func (b *bench) startServer(ctx context.Context, kind string, rate float64, conns int) (*benchServer, error) {
	switch kind {
	case kindVigil:
		if b.cfg.Target != "" {
			return b.targetServer(), nil
		}
		return startVigilServer(ctx, b.cfg.exe, rate, conns)
	case kindMochi:
		return startRelayServer(ctx, b.cfg.exe, conns, b.cfg.WS)
	case kindMosquitto:
		return startMosquittoServer(ctx, b.cfg.WS)
	}
	return nil, fmt.Errorf("unknown server %q", kind)
}

// targetServer is the running Vigil of --target.
func (b *bench) targetServer() *benchServer {
	s := &benchServer{kind: kindVigil, base: b.cfg.Target, user: b.cfg.User, password: b.cfg.Password,
		ep: endpoint{mqtt: b.cfg.MQTT}}
	if u := b.cfg.Target; strings.HasPrefix(u, "https://") {
		s.ep.ws = "wss://" + strings.TrimPrefix(u, "https://") + "/mqtt"
	} else {
		s.ep.ws = "ws://" + strings.TrimPrefix(u, "http://") + "/mqtt"
	}
	s.drops = func() (int64, bool) { return vigilDrops(s.base) }
	return s
}

// startVigilServer runs `vigil serve` on embedded defaults with a temporary data directory and
// free loopback ports, and waits until it is ready.
func startVigilServer(ctx context.Context, exe string, rate float64, conns int) (*benchServer, error) {
	dir, err := os.MkdirTemp("", "vigil-bench-*")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &benchServer{kind: kindVigil, dir: dir, user: "admin", password: randomToken(24),
		base: "http://127.0.0.1:" + ports[0],
		ep:   endpoint{mqtt: "127.0.0.1:" + ports[1], ws: "ws://127.0.0.1:" + ports[0] + "/mqtt"}}
	args := []string{"serve",
		"--data-dir", filepath.Join(dir, "data"),
		"--http-addr", "127.0.0.1:" + ports[0],
		"--mqtt-addr", "127.0.0.1:" + ports[1],
		"--log-level", "warn", "--log-format", "json",
		// The monitors' rate must never meet the per-device limit; room for the critical sample.
		"--device-rate", strconv.FormatFloat(max(20, 2*rate+5), 'f', -1, 64),
		"--max-connections", strconv.Itoa(max(50_000, conns+1000)),
	}
	// Embedded defaults: nothing of the caller's VIGIL_* settings reaches the server.
	env := []string{"VIGIL_ADMIN_PASSWORD=" + s.password}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIGIL_") {
			env = append(env, kv)
		}
	}
	if err := s.start(ctx, exe, args, env); err != nil {
		return nil, err
	}
	s.drops = func() (int64, bool) { return vigilDrops(s.base) }
	if err := s.waitReady(ctx, 60*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// startRelayServer runs the bare mochi relay (`vigil bench-relay`).
func startRelayServer(ctx context.Context, exe string, conns int, ws bool) (*benchServer, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &benchServer{kind: kindMochi, user: "bench", password: randomToken(24), ep: endpoint{mqtt: "127.0.0.1:" + ports[0]}}
	args := []string{"bench-relay", "--addr", s.ep.mqtt, "--max-connections", strconv.Itoa(max(50_000, conns+1000))}
	if ws {
		s.ep.ws = "ws://127.0.0.1:" + ports[1] + "/mqtt"
		args = append(args, "--ws-addr", "127.0.0.1:"+ports[1])
	}
	env := append(os.Environ(), benchRelayPasswordEnv+"="+s.password)
	var dropped atomic.Int64
	ready := make(chan struct{})
	s.onStdout = func(line string) {
		switch {
		case strings.HasPrefix(line, "ready"):
			close(ready)
		case strings.HasPrefix(line, "dropped="):
			if n, err := strconv.ParseInt(strings.TrimPrefix(line, "dropped="), 10, 64); err == nil {
				dropped.Store(n)
			}
		}
	}
	if err := s.start(ctx, exe, args, env); err != nil {
		return nil, err
	}
	s.drops = func() (int64, bool) { return dropped.Load(), true }
	if err := s.waitReady(ctx, 20*time.Second, func(ctx context.Context) error {
		select {
		case <-ready:
		default:
			return errors.New("not ready")
		}
		return s.dialable(ctx)
	}); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// startMosquittoServer runs Debian's Mosquitto on free loopback ports with a configuration of
// its own: Nagle off (its delay adds about 20 ms otherwise), queues large enough not to drop,
// no persistence.
func startMosquittoServer(ctx context.Context, ws bool) (*benchServer, error) {
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		return nil, errors.New("--against mosquitto: mosquitto not found in PATH (Debian: apt-get install mosquitto)")
	}
	dir, err := os.MkdirTemp("", "vigil-bench-mosquitto-*")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &benchServer{kind: kindMosquitto, dir: dir, user: "bench", password: "bench", ep: endpoint{mqtt: "127.0.0.1:" + ports[0]}}
	conf := mosquittoConfig(ports[0], ports[1], ws)
	if ws {
		s.ep.ws = "ws://127.0.0.1:" + ports[1] + "/mqtt"
	}
	file := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.start(ctx, bin, []string{"-c", file}, os.Environ()); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, 20*time.Second, s.dialable); err != nil {
		s.stop()
		return nil, err
	}
	// Mosquitto counts its drops in $SYS (every second with sys_interval 1).
	var dropped atomic.Int64
	var seen atomic.Bool
	conn, err := net.DialTimeout("tcp", s.ep.mqtt, benchConnectTimeout)
	if err == nil {
		var c *paho.Client
		c, err = mqttConnect(ctx, conn, connectPacket("bench-sys-"+randomToken(8), "", nil, 0), func(pr paho.PublishReceived) (bool, error) {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(pr.Packet.Payload)), 10, 64); err == nil {
				dropped.Store(n)
				seen.Store(true)
			}
			return true, nil
		}, func(error) {})
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, benchPacketTimeout)
			_, err = c.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "$SYS/broker/publish/messages/dropped", QoS: 0}}})
			cancel()
			s.closers = append(s.closers, func() { _ = c.Disconnect(&paho.Disconnect{}) })
		}
	}
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("mosquitto: watching $SYS: %w", err)
	}
	s.drops = func() (int64, bool) { return dropped.Load(), seen.Load() }
	return s, nil
}

// mosquittoConfig is the configuration of the bench's Mosquitto.
func mosquittoConfig(port, wsPort string, ws bool) string {
	var b strings.Builder
	b.WriteString("# written by vigil bench\n")
	if os.Getuid() == 0 {
		b.WriteString("user root\n") // do not drop to the mosquitto user: it could not read this file
	}
	b.WriteString("persistence false\nlog_dest stderr\nlog_type error\nsys_interval 1\n")
	b.WriteString("max_queued_messages 100000\nmax_inflight_messages 0\nset_tcp_nodelay true\n")
	b.WriteString("listener " + port + " 127.0.0.1\nallow_anonymous true\n")
	if ws {
		b.WriteString("listener " + wsPort + " 127.0.0.1\nprotocol websockets\nallow_anonymous true\n")
	}
	return b.String()
}

// start starts the child process in a process group of its own; stop kills the group.
func (s *benchServer) start(ctx context.Context, bin string, args, env []string) error {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cmd := exec.CommandContext(pctx, bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = childProcAttr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	s.out = &tailBuffer{max: 16 << 10}
	cmd.Stderr = s.out
	var stdout io.ReadCloser
	if s.onStdout != nil {
		var err error
		if stdout, err = cmd.StdoutPipe(); err != nil {
			cancel()
			return err
		}
	} else {
		cmd.Stdout = s.out
	}
	if err := cmd.Start(); err != nil {
		cancel()
		if s.dir != "" {
			os.RemoveAll(s.dir)
		}
		return fmt.Errorf("%s: %w", s.kind, err)
	}
	s.cmd, s.cancel, s.pid, s.exited = cmd, cancel, cmd.Process.Pid, make(chan struct{})
	var lines sync.WaitGroup
	if stdout != nil {
		lines.Go(func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				s.onStdout(sc.Text())
			}
		})
	}
	go func() {
		lines.Wait()
		_ = cmd.Wait()
		close(s.exited)
	}()
	return nil
}

// waitReady polls check until it succeeds, the process exits, or the time is up.
func (s *benchServer) waitReady(ctx context.Context, limit time.Duration, check func(context.Context) error) error {
	deadline := time.Now().Add(limit)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited at start: %s\n%s", s.kind, s.cmd.ProcessState, s.out.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v\n%s", s.kind, limit, err, s.out.String())
		}
	}
}

func (s *benchServer) dialable(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.ep.mqtt)
	if err != nil {
		return err
	}
	return c.Close()
}

// alive reports an error when the process has exited.
func (s *benchServer) alive() error {
	if s.exited == nil {
		return nil
	}
	select {
	case <-s.exited:
		return fmt.Errorf("%s exited: %s\n%s", s.kind, s.cmd.ProcessState, s.out.String())
	default:
		return nil
	}
}

// stop ends the server: SIGTERM to its process group, SIGKILL after 3 s, and removes its
// temporary directory. It is safe to call more than once and on every path.
func (s *benchServer) stop() {
	s.closeOnce.Do(func() {
		for _, c := range s.closers {
			c()
		}
		if s.cmd != nil {
			_ = killGroup(s.pid, syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(3 * time.Second):
			}
			s.cancel() // SIGKILL to the group, if anything is left
			<-s.exited
		}
		if s.dir != "" {
			os.RemoveAll(s.dir)
		}
	})
}

// usage is the server's CPU time so far and its resident memory now; ok is false when there is
// no local process to read.
func (s *benchServer) usage() (cpu time.Duration, rss int64, ok bool) {
	if s.pid == 0 || s.alive() != nil {
		return 0, 0, false
	}
	cpu, err1 := procCPU(s.pid)
	rss, err2 := procRSS(s.pid)
	return cpu, rss, err1 == nil && err2 == nil
}

// vigilDrops sums vigil_mqtt_drops_total from Vigil's /metrics.
func vigilDrops(base string) (int64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	var n int64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "vigil_mqtt_drops_total") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				n += int64(v)
			}
		}
	}
	return n, sc.Err() == nil
}

// freePorts returns n free loopback TCP ports (free when asked: another process could take one
// before the server binds it, which fails its start loudly).
func freePorts(n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		lns = append(lns, l)
		out = append(out, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return out, nil
}

func randomToken(n int) string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// tailBuffer keeps the last max bytes written to it: a child's output, shown when it fails.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
