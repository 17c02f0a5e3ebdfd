package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/vigilhq/vigil/auth"
)

// mint signs a token with the running Vigil's secret (or another), with the given lifetime
// and clock offset.
func (h *harness) mint(t *testing.T, secret []byte, user, role string, hospitals []string, ttl, skew time.Duration) string {
	t.Helper()
	if secret == nil {
		b, err := os.ReadFile(filepath.Join(h.cfg.DataDir, "jwt-secret"))
		if err != nil {
			t.Fatal(err)
		}
		secret = bytes.TrimSpace(b)
	}
	tk, err := auth.NewTokens(secret, auth.TokenOptions{TTL: ttl, Now: func() time.Time { return time.Now().Add(skew) }})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := tk.Issue(user, auth.Role(role), hospitals)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func algNone(user string) string {
	enc := base64.RawURLEncoding.EncodeToString
	head := enc([]byte(`{"alg":"none","typ":"JWT"}`))
	exp := time.Now().Add(time.Hour).Unix()
	body := enc([]byte(`{"sub":"` + user + `","role":"admin","hospitals":[],"iss":"vigil","aud":["vigil"],"iat":` + itoa64(time.Now().Unix()) + `,"exp":` + itoa64(exp) + `}`))
	return head + "." + body + "."
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// publishCode publishes with QoS 1 and returns the PUBACK reason code (0 = success).
func (c *client) publishCode(topic string, payload string) byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pr, err := c.c.Publish(ctx, &paho.Publish{Topic: topic, Payload: []byte(payload), QoS: 1})
	if pr == nil {
		if err == nil {
			return 0
		}
		return 0xff
	}
	return pr.ReasonCode
}

// subscribeCode subscribes and returns the SUBACK reason code. mochi keeps one packet-ID space
// for both directions of a session, so a SUBSCRIBE may collide with a retained message still in
// flight to the client (0x91, packet identifier in use): that is retried.
func (c *client) subscribeCode(filter string) byte {
	c.t.Helper()
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		sa, _ := c.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		cancel()
		if sa == nil || len(sa.Reasons) == 0 {
			return 0xff
		}
		if sa.Reasons[0] != 0x91 {
			return sa.Reasons[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0x91
}

const (
	codeNotAuthorized = 0x87
	codeQuota         = 0x97
	codeBadPayload    = 0x99
)

// TestAccessControl is the table of allowed and refused cases of DESIGN.md section 7, with
// real MQTT clients against the running Vigil.
func TestAccessControl(t *testing.T) {
	h := newHarness(t, func(c *config) { c.DeviceRate = 5 })
	for _, p := range []string{"p1", "p2"} {
		h.admit("h1", p)
	}
	h.admit("h2", "q1")
	s1 := h.device("h1", "mon-1", "p1")
	sIdle := h.device("h1", "mon-idle", "")
	h.device("h2", "mon-h2", "q1")
	nurse := h.user("nurse.h1", "nurse", "h1")
	sample := `{"hr":80}`

	connects := []struct {
		name           string
		id, user, pass string
		ok             bool
	}{
		{"device with its secret", "mon-1", "mon-1", s1, true},
		{"device with a wrong secret", "mon-1", "mon-1", "wrong-secret-wrong-secret-wrong-secret-xxx", false},
		{"unknown device", "mon-ghost", "mon-ghost", s1, false},
		{"device whose username is not its client ID", "mon-1", "mon-idle", s1, false},
		{"device using another device's secret", "mon-idle", "mon-idle", s1, false},
		{"browser with a valid token", "web-1", "anyone", nurse, true},
		{"browser with an expired token", "web-2", "x", h.mint(t, nil, "nurse.h1", "nurse", []string{"h1"}, time.Minute, -2*time.Hour), false},
		{"browser with a token signed by another key", "web-3", "x", h.mint(t, []byte("another-secret-another-secret-0123456789"), "nurse.h1", "nurse", []string{"h1"}, time.Hour, 0), false},
		{"browser with an alg none token", "web-4", "x", algNone("admin"), false},
		{"browser with a token not valid yet", "web-5", "x", h.mint(t, nil, "nurse.h1", "nurse", []string{"h1"}, time.Hour, time.Hour), false},
		{"browser taking a device's client ID", "mon-idle", "x", nurse, false},
		{"no credentials", "anon", "", "", false},
	}
	for _, tt := range connects {
		t.Run("connect/"+tt.name, func(t *testing.T) {
			c, err := h.connect(tt.id, tt.user, []byte(tt.pass))
			if (err == nil) != tt.ok {
				t.Fatalf("connect(%s) error = %v; want ok=%v", tt.id, err, tt.ok)
			}
			if c != nil {
				c.close()
			}
		})
	}

	dev := h.mustConnect("mon-1", "mon-1", []byte(s1))
	idle := h.mustConnect("mon-idle", "mon-idle", []byte(sIdle))
	web := h.mustConnect("web-nurse", "x", []byte(nurse))
	admin := h.mustConnect("web-admin", "x", []byte(h.admin))

	publishes := []struct {
		name  string
		c     *client
		topic string
		want  byte
	}{
		{"device to its patient", dev, "hospital/h1/patient/p1/vitals", 0},
		{"device to another patient", dev, "hospital/h1/patient/p2/vitals", codeNotAuthorized},
		{"device to another hospital", dev, "hospital/h2/patient/q1/vitals", codeNotAuthorized},
		{"device to an alerts topic", dev, "hospital/h1/alerts", codeNotAuthorized},
		{"device to a risk topic", dev, "hospital/h1/patient/p1/risk", codeNotAuthorized},
		{"unassigned device", idle, "hospital/h1/patient/p1/vitals", codeNotAuthorized},
		{"browser publishing", web, "hospital/h1/patient/p1/vitals", codeNotAuthorized},
		{"admin browser publishing", admin, "hospital/h1/alerts", codeNotAuthorized},
	}
	for _, tt := range publishes {
		t.Run("publish/"+tt.name, func(t *testing.T) {
			if got := tt.c.publishCode(tt.topic, sample); got != tt.want {
				t.Fatalf("publish to %s: reason 0x%02x; want 0x%02x", tt.topic, got, tt.want)
			}
		})
	}

	subscribes := []struct {
		name   string
		c      *client
		filter string
		ok     bool
	}{
		{"device to its own topics", dev, "hospital/h1/device/mon-1/#", true},
		{"device to another device's topics", dev, "hospital/h1/device/mon-idle/#", false},
		{"device to its hospital", dev, "hospital/h1/#", false},
		{"h1 nurse to h1", web, "hospital/h1/#", true},
		{"h1 nurse to a patient of h1", web, "hospital/h1/patient/p1/#", true},
		{"h1 nurse to h2", web, "hospital/h2/#", false},
		{"h1 nurse to everything", web, "#", false},
		{"h1 nurse to every hospital's alerts", web, "hospital/+/alerts", false},
		{"h1 nurse to a shared subscription", web, "$share/g/hospital/h1/#", false},
		{"h1 nurse to $SYS", web, "$SYS/#", false},
		{"admin to $SYS", admin, "$SYS/#", true},
		{"admin to any hospital", admin, "hospital/h2/alerts", true},
	}
	for _, tt := range subscribes {
		t.Run("subscribe/"+tt.name, func(t *testing.T) {
			code := tt.c.subscribeCode(tt.filter)
			if (code < 0x80) != tt.ok {
				t.Fatalf("subscribe %s: reason 0x%02x; want ok=%v", tt.filter, code, tt.ok)
			}
		})
	}

	t.Run("reassignment applies without reconnecting", func(t *testing.T) {
		h.must(200, "PUT", "/api/v1/hospitals/h1/devices/mon-1/assignment", h.admin, map[string]string{"patient": "p2"})
		if got := dev.publishCode("hospital/h1/patient/p1/vitals", sample); got != codeNotAuthorized {
			t.Fatalf("publish to the old patient: 0x%02x; want 0x87", got)
		}
		if got := dev.publishCode("hospital/h1/patient/p2/vitals", sample); got != 0 {
			t.Fatalf("publish to the new patient: 0x%02x; want 0", got)
		}
	})

	t.Run("malformed sample", func(t *testing.T) {
		if got := dev.publishCode("hospital/h1/patient/p2/vitals", `{"spo2":101}`); got != codeBadPayload {
			t.Fatalf("implausible sample: 0x%02x; want 0x99", got)
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		refused := 0
		for range 20 {
			if dev.publishCode("hospital/h1/patient/p2/vitals", sample) == codeQuota {
				refused++
			}
		}
		if refused == 0 {
			t.Fatal("20 publishes at once with a limit of 5/s: none refused with 0x97")
		}
		status, body := h.do("GET", "/metrics", "", nil)
		if status != 200 || !strings.Contains(string(body), `vigil_mqtt_refusals_total{reason="rate_limited"}`) {
			t.Fatal("rate-limited publishes are not counted in /metrics")
		}
	})

	t.Run("oversize packet", func(t *testing.T) {
		big := h.mustConnect("mon-idle", "mon-idle", []byte(sIdle))
		err := big.publish("hospital/h1/patient/p1/vitals", strings.Repeat("x", 70<<10), 1)
		if err == nil {
			t.Fatal("a 70 KiB packet was accepted; the limit is 64 KiB")
		}
	})

	t.Run("deleted device is disconnected", func(t *testing.T) {
		h.must(204, "DELETE", "/api/v1/hospitals/h1/devices/mon-1", h.admin, nil)
		select {
		case <-dev.c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a deleted device stayed connected")
		}
		if _, err := h.connect("mon-1", "mon-1", []byte(s1)); err == nil {
			t.Fatal("a deleted device could connect again")
		}
	})

	t.Run("expiring token disconnects", func(t *testing.T) {
		short := h.mint(t, nil, "nurse.h1", "nurse", []string{"h1"}, 1500*time.Millisecond, 0)
		c := h.mustConnect("web-short", "x", []byte(short))
		select {
		case <-c.c.Done():
		case <-time.After(8 * time.Second):
			t.Fatal("a browser whose token expired stayed connected")
		}
	})

	t.Run("websocket origin", func(t *testing.T) {
		url := strings.Replace(h.base, "http", "ws", 1) + "/mqtt"
		for _, tt := range []struct {
			origin string
			ok     bool
		}{{"http://dashboard.test", true}, {"http://evil.test", false}} {
			hdr := http.Header{"Origin": {tt.origin}}
			c, resp, err := (&websocket.Dialer{Subprotocols: []string{"mqtt"}}).Dial(url, hdr)
			if (err == nil) != tt.ok {
				t.Fatalf("websocket from %s: %v; want ok=%v", tt.origin, err, tt.ok)
			}
			if c != nil {
				c.Close()
			}
			if !tt.ok && (resp == nil || resp.StatusCode != http.StatusForbidden) {
				t.Fatalf("websocket from %s answered %v; want 403", tt.origin, resp)
			}
		}
	})
}

// TestDeletedUser: deleting a user closes their MQTT connections at once, and neither their
// tokens nor a new connection work any more (tokens are stateless; the user is checked).
func TestDeletedUser(t *testing.T) {
	h := newHarness(t)
	tok := h.user("leaving", "nurse", "h1")
	c := h.mustConnect("web-leaving", "x", []byte(tok))
	h.must(200, "GET", "/api/v1/auth/me", tok, nil)
	h.must(409, "DELETE", "/api/v1/users/admin", h.admin, nil) // not yourself
	h.must(403, "DELETE", "/api/v1/users/admin", tok, nil)
	h.must(204, "DELETE", "/api/v1/users/leaving", h.admin, nil)
	h.must(404, "DELETE", "/api/v1/users/leaving", h.admin, nil)
	select {
	case <-c.c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a deleted user's MQTT connection stayed open")
	}
	if status, _ := h.do("GET", "/api/v1/auth/me", tok, nil); status != http.StatusUnauthorized {
		t.Fatalf("a deleted user's token: %d; want 401", status)
	}
	if _, err := h.connect("web-leaving-2", "x", []byte(tok)); err == nil {
		t.Fatal("a deleted user's token still connects to MQTT")
	}

	// Someone else gets the name (a viewer of h2): the old nurse-of-h1 token is not theirs.
	// Tokens carry whole seconds: the new user is created in a later second than the token.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	newTok := h.user("leaving", "viewer", "h2")
	if status, _ := h.do("GET", "/api/v1/auth/me", tok, nil); status != http.StatusUnauthorized {
		t.Errorf("a token of the name's earlier user: %d; want 401", status)
	}
	if _, err := h.connect("web-leaving-3", "x", []byte(tok)); err == nil {
		t.Error("a token of the name's earlier user connects to MQTT")
	}
	me := string(h.must(200, "GET", "/api/v1/auth/me", newTok, nil))
	if !strings.Contains(me, `"viewer"`) || !strings.Contains(me, `"h2"`) {
		t.Errorf("the new user's /auth/me = %s; want the viewer of h2", me)
	}
}

// TestWillRefused: mochi publishes (and retains) a will without an access check, so a CONNECT
// with a will is refused whoever sends it: otherwise a nurse of h1, or any device, could write
// a forged alert into h2 by dropping the connection.
func TestWillRefused(t *testing.T) {
	h := newHarness(t)
	h.admit("h1", "p1")
	secret := h.device("h1", "mon-1", "p1")
	nurse := h.user("nurse.h1", "nurse", "h1")
	watcher := h.mustConnect("web-h2", "x", []byte(h.user("nurse.h2", "nurse", "h2")))
	watcher.mustSubscribe("hospital/h2/#")
	forged := []byte(`{"type":"hospital_alert","hospital":"h2"}`)

	for _, tt := range []struct {
		name, id, pass, topic string
	}{
		{"browser, will into another hospital", "web-h1", nurse, "hospital/h2/alerts"},
		{"device, will on its own vitals", "mon-1", secret, "hospital/h1/patient/p1/vitals"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := h.metricSum(t, `vigil_mqtt_refusals_total{reason="will_refused"}`)
			conn, err := net.DialTimeout("tcp", h.mqtt, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_, ca, err := dialSession(t, conn, &paho.Connect{ClientID: tt.id, KeepAlive: 30, CleanStart: true,
				Username: tt.id, UsernameFlag: true, Password: []byte(tt.pass), PasswordFlag: true,
				WillMessage: &paho.WillMessage{Topic: tt.topic, Payload: forged, QoS: 1, Retain: true}})
			if err == nil || ca == nil || ca.ReasonCode != codeNotAuthorized {
				t.Fatalf("CONNECT with a will: CONNACK %+v, %v; want reason 0x87", ca, err)
			}
			if after := h.metricSum(t, `vigil_mqtt_refusals_total{reason="will_refused"}`); after != before+1 {
				t.Errorf("will_refused refusals %v -> %v; want one more", before, after)
			}
		})
	}

	t.Run("MQTT 3.1.1", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", h.mqtt, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// CONNECT, protocol level 4, flags: username, password, will retain, will QoS 1, will.
		str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
		body := append(str("MQTT"), 4, 0x80|0x40|0x20|0x08|0x04|0x02, 0, 30)
		for _, s := range []string{"web-h1-v3", "hospital/h2/alerts", string(forged), "x", nurse} {
			body = append(body, str(s)...)
		}
		var pkt []byte
		pkt = append(pkt, 0x10)
		for n := len(body); ; n >>= 7 {
			if n < 0x80 {
				pkt = append(pkt, byte(n))
				break
			}
			pkt = append(pkt, byte(n&0x7f|0x80))
		}
		if _, err := conn.Write(append(pkt, body...)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		ack := make([]byte, 4)
		if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 || ack[3] != 0x05 {
			t.Fatalf("CONNACK % x, %v; want 20 02 00 05 (not authorized)", ack, err)
		}
		if n, err := conn.Read(make([]byte, 1)); err == nil {
			t.Errorf("connection still open after the refusal (read %d bytes)", n)
		}
	})

	// Nothing reached h2: no will was ever registered, so none was published or retained.
	// (The refusals above are what this relies on; a late subscriber checks the retained side.)
	late := h.mustConnect("web-h2-late", "x", []byte(h.user("nurse.h2b", "nurse", "h2")))
	late.mustSubscribe("hospital/h2/alerts")
	for _, c := range []*client{watcher, late} {
		select {
		case m := <-c.msgs:
			if bytes.Equal(m.Payload, forged) {
				t.Fatalf("the forged will reached %s", m.Topic)
			}
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// TestDeletedUserSessionRevoked: a deleted user's persistent session receives nothing more, and
// a new user of the same name connecting with its client ID starts afresh. (The session used
// to keep queueing the old user's hospital for a day, and the newcomer took it over.)
func TestDeletedUserSessionRevoked(t *testing.T) {
	h := newHarness(t)
	h.admit("h1", "p1")
	secret := h.device("h1", "mon-1", "p1")
	old, _ := h.connectPersistent(t, "web-alice", h.user("alice", "nurse", "h1"), true)
	old.mustSubscribe("hospital/h1/patient/+/risk")
	old.close() // away: the session stays, with its subscription
	h.must(204, "DELETE", "/api/v1/users/alice", h.admin, nil)

	// A risk_updated the old session would have queued; a watcher sees that it went out. It is
	// not even routed to the revoked session (unsubscribed), so no delivery is refused.
	refused := h.metricSum(t, `vigil_mqtt_refusals_total{reason="session_revoked"}`)
	watch := h.mustConnect("web-watch", "x", []byte(h.user("nurse.h1b", "nurse", "h1")))
	watch.mustSubscribe("hospital/h1/patient/+/risk")
	dev := h.mustConnect("mon-1", "mon-1", []byte(secret))
	if code := dev.publishCode("hospital/h1/patient/p1/vitals", `{"hr":130,"rr":26}`); code != 0 {
		t.Fatalf("sample refused: 0x%02x", code)
	}
	watch.await("risk_updated", func(e envelope) bool { return e.Type == "risk_updated" })
	if after := h.metricSum(t, `vigil_mqtt_refusals_total{reason="session_revoked"}`); after != refused {
		t.Errorf("deliveries refused to the revoked session %v -> %v; want none routed to it", refused, after)
	}

	// Tokens carry whole seconds: the new user is created in a later second than the old one.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	c, ca := h.connectPersistent(t, "web-alice", h.user("alice", "viewer", "h2"), false)
	if ca.SessionPresent {
		t.Error("the new alice took over the deleted user's session (session present)")
	}
	select {
	case m := <-c.msgs:
		t.Errorf("the new alice received %s from the deleted user's session", m.Topic)
	case <-time.After(500 * time.Millisecond):
	}
}
