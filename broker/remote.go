package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigilhq/vigil/topics"
)

// UnknownDevice is the device of a sample from the external broker without the MQTT 5 user
// property "device" naming its sender (MQTT 3.1.1 monitors cannot set one).
const UnknownDevice = "external"

// Remote connects Vigil to an external MQTT 5 broker (EMQX, HiveMQ, VerneMQ, Mosquitto) instead
// of the embedded one: it takes vitals from the shared subscription
// $share/vigil-ingest/hospital/+/patient/+/vitals, so several Vigil processes split the stream,
// and publishes Vigil's events. A sample is acknowledged only once it is durable; the session
// outlives the connection, so after a crash the broker redelivers what was not acknowledged
// when the process comes back with the same client ID. Access control for devices and browsers
// is then the external broker's job.
type Remote struct {
	opts RemoteOptions
	log  *slog.Logger
	cm   *autopaho.ConnectionManager
	up   atomic.Bool

	subscribed chan struct{}
	subOnce    sync.Once
	ready      chan struct{} // closed by Subscribe: the handler may take samples
	readyOnce  sync.Once
	want       atomic.Bool
	cancel     context.CancelFunc
}

// RemoteOptions configure Dial.
type RemoteOptions struct {
	URL      string // mqtt://host:port, mqtts://, ws://, wss://
	ClientID string // stable per process: the broker keeps its session across restarts
	Username string
	Password string
	TLS      *tls.Config
	// SessionExpiry is how long the broker keeps the session while Vigil is away (default 1 h).
	SessionExpiry time.Duration
	Handler       VitalsHandler
	Logger        *slog.Logger
}

// Dial starts connecting (and reconnecting, with backoff) to the external broker. It does not
// wait for the connection.
func Dial(ctx context.Context, opts RemoteOptions) (*Remote, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SessionExpiry == 0 {
		opts.SessionExpiry = time.Hour
	}
	if opts.ClientID == "" {
		return nil, errors.New("a client ID is required")
	}
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "tcp":
		u.Scheme = "mqtt"
	case "ssl":
		u.Scheme = "mqtts"
	}
	r := &Remote{opts: opts, log: opts.Logger.With("component", "broker.remote", "url", redact(u)), subscribed: make(chan struct{}), ready: make(chan struct{})}
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        opts.TLS,
		KeepAlive:                     20,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(opts.SessionExpiry / time.Second),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(200*time.Millisecond, 30*time.Second, time.Second, 2),
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               opts.Username,
		ConnectPassword:               []byte(opts.Password),
		OnConnectionUp:                r.connectionUp,
		OnConnectionDown: func() bool {
			r.up.Store(false)
			r.log.Warn("external broker connection lost; reconnecting")
			return true
		},
		OnConnectError: func(err error) { r.log.Warn("external broker connection failed; retrying", "err", err) },
		ClientConfig: paho.ClientConfig{
			ClientID:                   opts.ClientID,
			EnableManualAcknowledgment: true,
			SendAcksInterval:           20 * time.Millisecond,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){r.received},
		},
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		cancel()
		return nil, err
	}
	r.cm, r.cancel = cm, cancel
	return r, nil
}

func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// Subscribe starts taking vitals (on this connection and every reconnection: the handler must be
// ready), and waits until the first subscription is acknowledged or ctx ends.
func (r *Remote) Subscribe(ctx context.Context) error {
	r.readyOnce.Do(func() { close(r.ready) })
	r.want.Store(true)
	if r.up.Load() {
		go r.subscribe()
	}
	select {
	case <-r.subscribed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("subscribing to %s: %w", topics.SharedVitalsFilter, ctx.Err())
	}
}

func (r *Remote) connectionUp(cm *autopaho.ConnectionManager, ack *paho.Connack) {
	r.up.Store(true)
	r.log.Info("connected to the external broker", "session_present", ack.SessionPresent)
	if r.want.Load() {
		go r.subscribe()
	}
}

func (r *Remote) subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := r.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topics.SharedVitalsFilter, QoS: 1}}})
	if err != nil {
		r.log.Error("subscribing to vitals failed", "err", err)
		return
	}
	r.subOnce.Do(func() { close(r.subscribed) })
}

// received runs on paho's receive goroutine, in arrival order: the sample is accepted (decoded,
// queued for storage and processing) here, and acknowledged from another goroutine once durable,
// so the stream is not held up by storage. paho sends acknowledgements in arrival order.
func (r *Remote) received(pr paho.PublishReceived) (bool, error) {
	// A resumed session may deliver before Vigil is ready to take samples: hold them (in order)
	// until Subscribe says it is.
	<-r.ready
	p := pr.Packet
	ack := func() {
		if p.QoS > 0 {
			if err := pr.Client.Ack(p); err != nil {
				r.log.Warn("acknowledging failed", "topic", p.Topic, "err", err)
			}
		}
	}
	t, err := topics.Parse(p.Topic)
	if err != nil || t.Kind != topics.KindVitals {
		r.log.Warn("ignoring a message that is not vitals", "topic", p.Topic)
		ack()
		return true, nil
	}
	device := UnknownDevice
	if p.Properties != nil {
		if d := p.Properties.User.Get("device"); d != "" && topics.ValidID("device", d) == nil {
			device = d
		}
	}
	ctx := context.Background()
	durable, err := r.opts.Handler.HandleVitals(ctx, Vitals{Hospital: t.Hospital, Patient: t.Patient, Device: device, Payload: p.Payload, QoS: p.QoS, Received: time.Now()})
	if err != nil {
		if codeOf(err) == "invalid" {
			ack() // refused for its content: a redelivery would not help
			return true, nil
		}
		// Not taken (store down): leave it unacknowledged; the broker redelivers it when the
		// session resumes.
		r.log.Error("sample not taken; left unacknowledged", "topic", p.Topic, "err", err)
		return true, nil
	}
	if p.QoS == 0 {
		return true, nil
	}
	go func() {
		// The group commit retries a failing store until it succeeds or Vigil stops, so this
		// waits as long as that takes: acknowledgements go out in order, and holding them back
		// is the backpressure that stops the broker sending more while the store is down.
		if err := durable(ctx); err != nil {
			r.log.Error("sample not stored; left unacknowledged", "topic", p.Topic, "err", err)
			return
		}
		ack()
	}()
	return true, nil
}

// Publish sends one of Vigil's events; QoS 1 waits for the broker's acknowledgement.
func (r *Remote) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := r.cm.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos, Retain: retain})
	return err
}

// Connected reports whether the connection is up.
func (r *Remote) Connected() bool { return r.up.Load() }

// Close disconnects cleanly.
func (r *Remote) Close(ctx context.Context) error {
	defer r.cancel()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := r.cm.Disconnect(ctx)
	if errors.Is(err, autopaho.ConnectionDownError) {
		return nil
	}
	return err
}
