// Command ferretdb is a test tool for Vigil's MongoDB store: it runs an
// embedded FerretDB (MongoDB wire protocol over a SQLite backend) so the
// store's tests can run where MongoDB itself is not available.
//
// It lives in its own Go module and is never linked into the vigil binary.
//
// Usage:
//
//	ferretdb -dir DATA_DIR [-listen 127.0.0.1:27018] [-log-level error]
//
// It listens on loopback only. Once it answers a ping on the wire it prints
// exactly one line to stdout:
//
//	ready mongodb://127.0.0.1:PORT/
//
// "-listen 127.0.0.1:0" picks a free port; the ready line tells which.
// SIGINT or SIGTERM shuts it down cleanly (a second signal exits at once).
// Telemetry is off: the embedded library disables it and never starts a
// reporter. Logs go to stderr.
//
// Build with -tags ferretdb_no_postgresql to leave FerretDB's PostgreSQL
// backend out (smaller, faster build; only SQLite is used here).
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", "", "SQLite data directory (required; created if missing)")
	listen := flag.String("listen", "127.0.0.1:27018", "TCP address to listen on; host must be a loopback IP, port 0 picks a free one")
	logLevel := flag.String("log-level", "error", "log level: debug, info, warn or error")
	flag.Parse()

	if flag.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %q", flag.Args())
	}
	if *dir == "" {
		return errors.New("-dir is required")
	}
	if err := checkLoopback(*listen); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	// The SQLite backend wants a "file:" URI naming an existing directory,
	// with a trailing slash.
	sqliteURL := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs) + "/", OmitHost: true}).String()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return err
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// New has already bound the socket, so the URI carries the real port.
	uri := f.MongoDBURI()
	u, err := url.Parse(uri)
	if err != nil {
		return err
	}

	ready := make(chan error, 1)
	go func() { ready <- waitReady(ctx, u.Host, 30*time.Second) }()

	select {
	case err := <-ready:
		if err != nil {
			cancel()
			<-done
			return err
		}
		fmt.Printf("ready %s\n", uri)
	case sig := <-sigs:
		return shutdown(cancel, done, sigs, sig, logger)
	case err := <-done:
		return fmt.Errorf("stopped before ready: %v", err)
	}

	select {
	case sig := <-sigs:
		return shutdown(cancel, done, sigs, sig, logger)
	case err := <-done:
		return fmt.Errorf("stopped unexpectedly: %v", err)
	}
}

// shutdown stops FerretDB and waits for it to close its connections and
// backend. Connected clients get a few seconds to go away; a second signal
// or a 30 s timeout abandons the wait.
func shutdown(cancel context.CancelFunc, done <-chan error, sigs <-chan os.Signal, sig os.Signal, logger *slog.Logger) error {
	logger.Info("shutting down", slog.String("signal", sig.String()))
	cancel()
	select {
	case err := <-done:
		return err
	case sig := <-sigs:
		return fmt.Errorf("second signal (%s): exiting without waiting", sig)
	case <-time.After(30 * time.Second):
		return errors.New("shutdown timed out")
	}
}

// checkLoopback refuses any listen address whose host is not a loopback IP.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen: host must be a loopback IP such as 127.0.0.1, got %q", host)
	}
	return nil
}

// waitReady dials addr until a ping command gets {ok: 1} back.
func waitReady(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ping(addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ping sends {ping: 1, $db: "admin"} as an OP_MSG and checks the reply
// holds ok: 1.0. BSON is written by hand to keep this module free of a
// MongoDB driver.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}

	var doc bytes.Buffer
	doc.Write([]byte{0, 0, 0, 0}) // length, filled in below
	doc.WriteByte(0x10)           // int32
	doc.WriteString("ping\x00")
	doc.Write(binary.LittleEndian.AppendUint32(nil, 1))
	doc.WriteByte(0x02) // string
	doc.WriteString("$db\x00")
	doc.Write(binary.LittleEndian.AppendUint32(nil, uint32(len("admin")+1)))
	doc.WriteString("admin\x00")
	doc.WriteByte(0) // end of document
	body := doc.Bytes()
	binary.LittleEndian.PutUint32(body, uint32(len(body)))

	const opMsg = 2013
	msg := binary.LittleEndian.AppendUint32(nil, uint32(16+4+1+len(body))) // messageLength
	msg = binary.LittleEndian.AppendUint32(msg, 1)                         // requestID
	msg = binary.LittleEndian.AppendUint32(msg, 0)                         // responseTo
	msg = binary.LittleEndian.AppendUint32(msg, opMsg)                     // opCode
	msg = binary.LittleEndian.AppendUint32(msg, 0)                         // flagBits
	msg = append(msg, 0)                                                   // section kind 0: body
	msg = append(msg, body...)
	if _, err := conn.Write(msg); err != nil {
		return err
	}

	var header [16]byte
	if _, err := io.ReadFull(conn, header[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(header[0:4])
	if op := binary.LittleEndian.Uint32(header[12:16]); op != opMsg {
		return fmt.Errorf("ping: unexpected reply opcode %d", op)
	}
	if n < 16+4+1+5 || n > 1<<20 {
		return fmt.Errorf("ping: bad reply length %d", n)
	}
	reply := make([]byte, n-16)
	if _, err := io.ReadFull(conn, reply); err != nil {
		return err
	}
	// reply: flagBits(4), kind(1), document. The ping reply is {ok: 1.0}:
	// look for the double element "ok" and check its value.
	rdoc := reply[5:]
	i := bytes.Index(rdoc, []byte("\x01ok\x00"))
	if i < 0 || i+4+8 > len(rdoc) {
		return fmt.Errorf("ping: no ok field in reply %q", strings.ToValidUTF8(string(rdoc), "?"))
	}
	if v := math.Float64frombits(binary.LittleEndian.Uint64(rdoc[i+4:])); v != 1 {
		return fmt.Errorf("ping: ok is %v", v)
	}
	return nil
}
