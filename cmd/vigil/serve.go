package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilhq/vigil/api"
	"github.com/vigilhq/vigil/auth"
	"github.com/vigilhq/vigil/broker"
	"github.com/vigilhq/vigil/devices"
	"github.com/vigilhq/vigil/ingest"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/embedded"
	"github.com/vigilhq/vigil/store/mongostore"
	"github.com/vigilhq/vigil/topics"
	"github.com/vigilhq/vigil/web"
)

// config is everything `vigil serve` reads from flags and the environment.
type config struct {
	DataDir        string
	HTTPAddr       string
	MQTTAddr       string
	MQTTSAddr      string
	TLSCert        string
	TLSKey         string
	ClientCA       string
	MongoURI       string
	BrokerURL      string
	BrokerClientID string
	BrokerUsername string
	BrokerPassword string
	JWTSecret      string
	AdminPassword  string
	AllowedOrigins string
	LogFormat      string
	LogLevel       string

	Retention          time.Duration
	TokenTTL           time.Duration
	EscalateAfter      escalation
	DeviceOfflineAfter time.Duration
	ConditionDelay     time.Duration
	ClearDelay         time.Duration
	MaxPacketSize      int
	MaxConnections     int
	DeviceRate         float64
	Shared             bool
	Tick               time.Duration
	ShutdownTimeout    time.Duration
	PprofAddr          string

	// maxInflight limits the unacknowledged QoS 1 messages per MQTT client (zero: the broker's
	// default).
	maxInflight uint16
	// bodyTimeout limits the time a client may take to send a request body (zero: the API's
	// default).
	bodyTimeout time.Duration
}

func (c *config) flags(s *settings) {
	s.String(&c.DataDir, "data-dir", "VIGIL_DATA_DIR", "./vigil-data", "data directory (embedded store, broker state, generated JWT secret)")
	s.String(&c.HTTPAddr, "http-addr", "VIGIL_HTTP_ADDR", "127.0.0.1:8080", "HTTP address: API, dashboard, /mqtt (MQTT over WebSocket), /metrics")
	s.String(&c.MQTTAddr, "mqtt-addr", "VIGIL_MQTT_ADDR", "127.0.0.1:1883", "MQTT TCP address (empty: none)")
	s.String(&c.MQTTSAddr, "mqtts-addr", "VIGIL_MQTTS_ADDR", "", "MQTT over TLS address (needs --tls-cert and --tls-key)")
	s.String(&c.TLSCert, "tls-cert", "VIGIL_TLS_CERT", "", "TLS certificate (PEM) for MQTTS and HTTPS")
	s.String(&c.TLSKey, "tls-key", "VIGIL_TLS_KEY", "", "TLS private key (PEM)")
	s.String(&c.ClientCA, "client-ca", "VIGIL_CLIENT_CA", "", "CA (PEM) for device client certificates on MQTTS (certificate CN = device ID)")
	s.String(&c.MongoURI, "mongo-uri", "VIGIL_MONGO_URI", "", "MongoDB URI (empty: the embedded store in the data directory)")
	s.String(&c.BrokerURL, "broker-url", "VIGIL_BROKER_URL", "", "external MQTT 5 broker, mqtt://host:port (empty: the embedded broker)")
	s.String(&c.BrokerClientID, "broker-client-id", "VIGIL_BROKER_CLIENT_ID", "vigil-"+hostname(), "client ID at the external broker: stable and unique per Vigil process (its session survives restarts)")
	s.String(&c.BrokerUsername, "broker-username", "VIGIL_BROKER_USERNAME", "", "username at the external broker")
	s.String(&c.BrokerPassword, "broker-password", "VIGIL_BROKER_PASSWORD", "", "password at the external broker")
	s.String(&c.JWTSecret, "jwt-secret", "VIGIL_JWT_SECRET", "", "JWT signing secret, at least 32 bytes (empty: generated once into the data directory)")
	s.String(&c.AdminPassword, "admin-password", "VIGIL_ADMIN_PASSWORD", "", "password of the first admin user (empty: random, printed once)")
	s.String(&c.AllowedOrigins, "allowed-origins", "VIGIL_ALLOWED_ORIGINS", "", "comma-separated browser origins allowed for /mqtt and CORS (empty: the HTTP address's own origin)")
	s.String(&c.LogFormat, "log-format", "VIGIL_LOG_FORMAT", "text", "log format: text or json")
	s.String(&c.LogLevel, "log-level", "VIGIL_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	s.Duration(&c.Retention, "vitals-retention", "VIGIL_VITALS_RETENTION", 30*24*time.Hour, "how long vitals are kept (0: for ever)")
	s.Duration(&c.TokenTTL, "token-ttl", "VIGIL_TOKEN_TTL", 12*time.Hour, "lifetime of login tokens")
	c.EscalateAfter = defaultEscalation()
	s.Var(&c.EscalateAfter, "escalate-after", "VIGIL_ESCALATE_AFTER", "escalation timeouts by priority, e.g. high=60s,medium=3m,low=10m (default high=60s,medium=3m,low=10m)")
	s.Duration(&c.DeviceOfflineAfter, "device-offline-after", "VIGIL_DEVICE_OFFLINE_AFTER", 30*time.Second, "an assigned device silent this long raises a technical alarm")
	s.Duration(&c.ConditionDelay, "condition-delay", "VIGIL_CONDITION_DELAY", 10*time.Second, "how long a threshold condition must hold before it alarms")
	s.Duration(&c.ClearDelay, "clear-delay", "VIGIL_CLEAR_DELAY", 30*time.Second, "how long a condition must stay clear before its alert resolves by itself")
	s.Int(&c.MaxPacketSize, "max-packet-size", "VIGIL_MAX_PACKET_SIZE", 64<<10, "largest MQTT packet accepted, bytes")
	s.Int(&c.MaxConnections, "max-connections", "VIGIL_MAX_CONNECTIONS", 50_000, "most MQTT connections at once")
	s.Var(uint16Value{&c.maxInflight}, "max-inflight", "VIGIL_MAX_INFLIGHT", "most unacknowledged QoS 1 messages per MQTT client; one reaching it is disconnected and catches up (0: 65535). It must exceed the retained messages a dashboard gets on subscribing (a patient's risk and a device's status each), which all go out before its acknowledgements are read")
	s.Float(&c.DeviceRate, "device-rate", "VIGIL_DEVICE_RATE", 20, "most publishes per second per device (excess refused with MQTT 5 reason 0x97)")
	s.Duration(&c.Tick, "tick", "VIGIL_TICK", time.Second, "how often timers (delays, escalations, silence) are checked")
	s.String(&c.PprofAddr, "pprof-addr", "VIGIL_PPROF_ADDR", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060 (empty: off; never expose it)")
	s.Duration(&c.ShutdownTimeout, "shutdown-timeout", "VIGIL_SHUTDOWN_TIMEOUT", 20*time.Second, "how long a graceful shutdown may take")
}

// check validates the settings: the first problem found is reported with its setting's name.
func (c *config) check() error {
	if err := checkAddr("http-addr", c.HTTPAddr); err != nil {
		return err
	}
	if c.MQTTAddr != "" {
		if err := checkAddr("mqtt-addr", c.MQTTAddr); err != nil {
			return err
		}
	}
	if c.MQTTSAddr != "" {
		if err := checkAddr("mqtts-addr", c.MQTTSAddr); err != nil {
			return err
		}
		if c.TLSCert == "" || c.TLSKey == "" {
			return errors.New("--mqtts-addr: needs --tls-cert and --tls-key")
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.ClientCA != "" && c.MQTTSAddr == "" {
		return errors.New("--client-ca: needs --mqtts-addr")
	}
	if c.MongoURI != "" {
		if _, err := mongostore.ParseURI(c.MongoURI); err != nil {
			return fmt.Errorf("--mongo-uri: %v", err)
		}
	}
	if c.PprofAddr != "" {
		if err := checkAddr("pprof-addr", c.PprofAddr); err != nil {
			return err
		}
	}
	if c.BrokerURL != "" {
		if _, err := parseBrokerURL(c.BrokerURL); err != nil {
			return fmt.Errorf("--broker-url: %v", err)
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < auth.MinSecretLen {
		return fmt.Errorf("--jwt-secret: at least %d bytes", auth.MinSecretLen)
	}
	if c.AdminPassword != "" && (len(c.AdminPassword) < auth.MinPasswordLen || len(c.AdminPassword) > auth.MaxPasswordLen) {
		return fmt.Errorf("--admin-password: %d to %d bytes", auth.MinPasswordLen, auth.MaxPasswordLen)
	}
	if _, err := parseOrigins(c.AllowedOrigins); err != nil {
		return err
	}
	if c.TokenTTL < time.Minute {
		return errors.New("--token-ttl: at least 1m")
	}
	if c.MaxPacketSize < 1024 || c.MaxPacketSize > 256<<20 {
		return errors.New("--max-packet-size: 1024 to 268435456")
	}
	if c.MaxConnections < 1 {
		return errors.New("--max-connections: at least 1")
	}
	if c.DeviceRate <= 0 {
		return errors.New("--device-rate: more than 0")
	}
	if c.Tick < 10*time.Millisecond || c.Tick > time.Minute {
		return errors.New("--tick: 10ms to 1m")
	}
	return checkDataDir(c.DataDir)
}

func parseBrokerURL(s string) (string, error) {
	for _, scheme := range []string{"mqtt://", "tcp://", "mqtts://", "ssl://", "ws://", "wss://"} {
		if rest, ok := strings.CutPrefix(s, scheme); ok {
			if rest == "" {
				break
			}
			if strings.HasPrefix(scheme, "mqtt://") || scheme == "tcp://" {
				if _, _, err := net.SplitHostPort(strings.TrimSuffix(rest, "/")); err != nil {
					return "", fmt.Errorf("bad address %q: want mqtt://host:port", rest)
				}
			}
			return s, nil
		}
	}
	return "", fmt.Errorf("%q: want mqtt://host:port", s)
}

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	s := newSettings("vigil serve")
	s.fs.SetOutput(stderr)
	c.flags(s)
	if err := s.Parse(args, getenv); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	log, err := newLogger(stderr, c.LogFormat, c.LogLevel)
	if err != nil {
		return err
	}
	applyMemoryLimit(cgroupRoot, getenv, log)
	v, err := start(ctx, c, log, stderr)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	return v.stop()
}

// vigil is a running Vigil.
type vigil struct {
	cfg      config
	log      *slog.Logger
	st       store.Store
	batcher  *store.Batcher
	registry *devices.Registry
	auth     *auth.Service
	broker   *broker.Broker
	remote   *broker.Remote
	pipeline *ingest.Pipeline
	ward     *ingest.Ward
	http     *http.Server
	httpLn   net.Listener
	metrics  *prometheus.Registry
	app      atomic.Pointer[appHandler] // the full HTTP surface, once started
	// syncStop ends the device registry's sync with the store (external broker mode), a sync
	// under way included; syncDone is closed when it has ended.
	syncStop context.CancelFunc
	syncDone chan struct{}
	pprof    *http.Server
	started  atomic.Bool
}

// start builds and starts everything; stop undoes it in reverse.
func start(ctx context.Context, c config, log *slog.Logger, stderr io.Writer) (*vigil, error) {
	return startOn(ctx, c, log, stderr, nil)
}

// startOn is start that also hands the vigil to serving as soon as its HTTP server (health
// endpoints) is up, before the store-dependent parts (tests watch /readyz meanwhile).
func startOn(ctx context.Context, c config, log *slog.Logger, stderr io.Writer, serving chan<- *vigil) (*vigil, error) {
	v := &vigil{cfg: c, log: log}
	ok := false
	defer func() {
		if !ok {
			v.stop()
		}
	}()

	// HTTP first: /healthz, /readyz and /metrics answer while the rest starts (a MongoDB that is
	// down at start is waited for, and /readyz says so); everything else answers 503 until then.
	v.metrics = prometheus.NewRegistry()
	v.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := v.serveHTTP(); err != nil {
		return nil, err
	}
	if serving != nil {
		serving <- v
	}
	if c.PprofAddr != "" {
		if err := v.servePprof(c.PprofAddr); err != nil {
			return nil, err
		}
	}

	// Store.
	if c.MongoURI == "" {
		db, err := embedded.Open(embedded.Dir(c.DataDir), embedded.Options{Retention: c.Retention, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--data-dir: %w", err)
		}
		v.st = db
	} else {
		ms, err := mongostore.Open(ctx, c.MongoURI, mongostore.Options{Retention: c.Retention, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--mongo-uri: %w", err)
		}
		v.st = ms
	}

	// Identity.
	secret := c.JWTSecret
	if secret == "" {
		var err error
		if secret, err = secretFile(c.DataDir, "jwt-secret", auth.GenerateSecret); err != nil {
			return nil, fmt.Errorf("--jwt-secret: %w", err)
		}
	}
	tokens, err := auth.NewTokens([]byte(secret), auth.TokenOptions{TTL: c.TokenTTL})
	if err != nil {
		return nil, fmt.Errorf("--jwt-secret: %w", err)
	}
	v.auth = auth.NewService(v.st, tokens, auth.ServiceOptions{Logger: log})
	if err := retry(ctx, log, "creating the admin user", func() error {
		pw, err := v.auth.Bootstrap(ctx, c.AdminPassword)
		if err == nil && pw != "" {
			fmt.Fprintf(stderr, "\n  First start: created user \"admin\" with password %s\n  (shown once; set VIGIL_ADMIN_PASSWORD to choose it)\n\n", pw)
		}
		return err
	}); err != nil {
		return nil, err
	}

	// Devices.
	if err := retry(ctx, log, "loading devices", func() error {
		var err error
		v.registry, err = devices.Open(ctx, deviceStore{v.st}, devices.Options{Logger: log, Shared: c.BrokerURL != ""})
		return err
	}); err != nil {
		return nil, err
	}

	// Vitals group commit, the broker and the pipeline.
	v.batcher = store.NewBatcher(v.st, store.BatcherOptions{Logger: log})
	ing := ingest.Options{
		EscalateHigh: c.EscalateAfter.high, EscalateMedium: c.EscalateAfter.medium, EscalateLow: c.EscalateAfter.low,
		DeviceOfflineAfter: c.DeviceOfflineAfter, ConditionDelay: none(c.ConditionDelay), ClearDelay: none(c.ClearDelay),
		Tick: c.Tick, Logger: log, Shared: c.BrokerURL != "",
	}
	origins, _ := parseOrigins(c.AllowedOrigins)
	if len(origins) == 0 {
		origins = selfOrigins(c.HTTPAddr, c.TLSCert != "")
	}
	var pub ingest.Publisher
	vitals := &vitalsHandler{}
	events := &deviceEvents{}
	if c.BrokerURL == "" {
		bo := broker.Options{
			MQTTAddr: c.MQTTAddr, TLSAddr: c.MQTTSAddr, AllowedOrigins: origins,
			Dir: filepath.Join(c.DataDir, "broker"), MaxPacketSize: uint32(c.MaxPacketSize), MaxConnections: int64(c.MaxConnections),
			DeviceRate: c.DeviceRate, MaxInflight: c.maxInflight, Volatile: riskTopic,
			Devices: v.registry, Tokens: tokenVerifier{v.auth}, Vitals: vitals, Events: events, Logger: log,
		}
		if c.MQTTSAddr != "" {
			tc, err := tlsConfig(c)
			if err != nil {
				return nil, err
			}
			bo.TLSConfig = tc
		}
		if v.broker, err = broker.New(bo); err != nil {
			return nil, err
		}
		pub = v.broker
	} else {
		rem, err := broker.Dial(ctx, broker.RemoteOptions{URL: c.BrokerURL, ClientID: c.BrokerClientID, Username: c.BrokerUsername, Password: c.BrokerPassword, Handler: vitals, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--broker-url: %w", err)
		}
		v.remote = rem
		pub = rem
	}
	v.pipeline = ingest.New(v.st, v.batcher, pub, ing)
	vitals.pl, events.pl = v.pipeline, v.pipeline
	v.ward = ingest.NewWard(v.st, v.pipeline, v.registry)
	v.registry.Observe(func(ch devices.Change) {
		switch ch.Kind {
		case devices.Deleted, devices.SecretRotated:
			if v.broker != nil {
				v.broker.DisconnectDevice(ch.Device)
			}
			if ch.Kind == devices.Deleted {
				v.pipeline.DeviceAssigned(context.Background(), ch.Hospital, ch.Device, "")
			}
		case devices.Assigned, devices.Unassigned:
			v.pipeline.DeviceAssigned(context.Background(), ch.Hospital, ch.Device, ch.Patient)
		}
	})
	if err := v.seedAssignments(ctx); err != nil {
		return nil, err
	}
	if err := retry(ctx, log, "starting ingest", func() error { return v.pipeline.Start(ctx) }); err != nil {
		return nil, err
	}
	if c.BrokerURL != "" {
		v.syncDevices(registrySyncEvery)
	}
	if v.broker != nil {
		if err := v.broker.Start(); err != nil {
			return nil, fmt.Errorf("--mqtt-addr: %w", err)
		}
	}
	if v.remote != nil {
		if err := v.remote.Subscribe(ctx); err != nil {
			return nil, fmt.Errorf("--broker-url: %w", err)
		}
	}

	// The full HTTP surface: API, dashboard, /mqtt, metrics.
	v.metrics.MustRegister(v.pipeline.Metrics().Collector())
	if v.broker != nil {
		v.metrics.MustRegister(v.broker.Collector())
	}
	apiSrv := api.New(api.Options{
		Auth: authAPI{v.auth, v}, Devices: devicesAPI{v}, Patients: patientsAPI{v}, Alerts: alertsAPI{v}, Ward: wardAPI{v},
		Scorer: v.pipeline, Stats: statsAPI{v}, AllowedOrigins: origins, Logger: log, BodyTimeout: c.bodyTimeout,
	})
	v.metrics.MustRegister(apiSrv.Collector())
	mux := http.NewServeMux()
	mux.Handle("/api/", apiSrv.Handler())
	if v.broker != nil {
		mux.Handle("/mqtt", v.broker.WebSocket())
	}
	mux.Handle("/", web.Handler())
	v.app.Store(&appHandler{mux})
	v.started.Store(true)
	log.Info("vigil serving", "version", versionString(), "http", v.httpLn.Addr().String(), "mqtt", v.mqttAddr(), "store", v.storeName(), "broker", v.brokerName())
	ok = true
	return v, nil
}

func (v *vigil) mqttAddr() string {
	if v.broker != nil {
		return v.broker.Addr("tcp")
	}
	return ""
}

func (v *vigil) storeName() string {
	if v.cfg.MongoURI != "" {
		return "mongodb"
	}
	return "embedded"
}

func (v *vigil) brokerName() string {
	if v.cfg.BrokerURL != "" {
		return "external"
	}
	return "embedded"
}

// registrySyncEvery is how often, with an external broker, the device registry takes in the
// changes other Vigil processes sharing the store made.
const registrySyncEvery = 5 * time.Second

// syncDevices keeps the device registry in step with the store every interval: with an
// external broker several Vigil processes share the store, and a device assigned through one
// must feed its patient (and leave a discharged one) in all of them.
func (v *vigil) syncDevices(every time.Duration) {
	stopped, stop := context.WithCancel(context.Background())
	v.syncStop, v.syncDone = stop, make(chan struct{})
	go func() {
		defer close(v.syncDone)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stopped.Done():
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(stopped, every)
				if err := v.registry.Sync(ctx); err != nil {
					v.log.Warn("device registry sync failed; retrying", "err", store.Cause(err))
				}
				cancel()
			}
		}
	}()
}

// seedAssignments tells the pipeline which device feeds which patient before it starts.
func (v *vigil) seedAssignments(ctx context.Context) error {
	cursor := ""
	for {
		ds, next, err := v.registry.List(ctx, "", 1000, cursor)
		if err != nil {
			return fmt.Errorf("loading device assignments: %w", err)
		}
		for _, d := range ds {
			if d.Patient != "" {
				v.pipeline.DeviceAssigned(ctx, d.Hospital, d.ID, d.Patient)
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

type appHandler struct{ http.Handler }

// servePprof serves Go's profiler on its own listener, for finding bottlenecks (off unless
// --pprof-addr is set; it must stay on a private address).
func (v *vigil) servePprof(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof-addr: %w", err)
	}
	v.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go v.pprof.Serve(ln)
	v.log.Info("profiler serving", "addr", ln.Addr().String())
	return nil
}

// serveHTTP starts the HTTP server with the health endpoints; the rest follows once started.
func (v *vigil) serveHTTP() error {
	c := v.cfg
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", v.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(v.metrics, promhttp.HandlerOpts{Registry: v.metrics}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if app := v.app.Load(); app != nil {
			app.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", "2")
		http.Error(w, "Vigil is starting", http.StatusServiceUnavailable)
	})
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
	}
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	v.httpLn = ln
	// No ReadTimeout: on HTTP/1.1 its deadline outlives the body and cancels the request's
	// context 30 s after it began, cutting a slow handler (a discharge waiting on the store)
	// off halfway. Idle keep-alive connections close after 2 min.
	v.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(v.log.Handler(), slog.LevelWarn)}
	go func() {
		var err error
		if c.TLSCert != "" {
			err = v.http.ServeTLS(ln, c.TLSCert, c.TLSKey)
		} else {
			err = v.http.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			v.log.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// ready answers 200 once started and while the store (and the external broker) answer, 503
// otherwise.
func (v *vigil) ready(w http.ResponseWriter, r *http.Request) {
	if !v.started.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "starting")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := v.st.Ping(ctx); err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "store unavailable: %v\n", err)
		return
	}
	if v.remote != nil && !v.remote.Connected() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "external broker unavailable")
		return
	}
	w.Write([]byte("ready\n"))
}

// stop shuts down in order: stop taking requests and connections, let the pipeline finish what
// is queued, write the last samples, close the store.
func (v *vigil) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), max(v.cfg.ShutdownTimeout, time.Second))
	defer cancel()
	var errs []error
	if v.pprof != nil {
		v.pprof.Close()
	}
	if v.http != nil {
		errs = append(errs, v.http.Shutdown(ctx))
	} else if v.httpLn != nil {
		v.httpLn.Close()
	}
	if v.broker != nil {
		errs = append(errs, v.broker.Close())
	}
	if v.remote != nil {
		errs = append(errs, v.remote.Close(ctx))
	}
	if v.syncStop != nil {
		v.syncStop()
		<-v.syncDone
	}
	if v.pipeline != nil {
		errs = append(errs, v.pipeline.Close(ctx))
	}
	if v.batcher != nil {
		errs = append(errs, v.batcher.Close(ctx))
	}
	if v.st != nil {
		errs = append(errs, v.st.Close())
	}
	err := errors.Join(errs...)
	if err != nil {
		v.log.Error("shutdown incomplete", "err", err)
	} else {
		v.log.Info("stopped")
	}
	return err
}

// retry runs f until it succeeds, with backoff, while the store comes up (MongoDB down at start
// is not a crash: /readyz says 503 meanwhile).
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	wait := 200 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		var coded interface{ Code() string }
		if !errors.As(err, &coded) || coded.Code() != "unavailable" {
			return fmt.Errorf("%s: %w", what, err)
		}
		log.Warn(what+" failed; retrying", "retry_in", wait, "err", err, "cause", store.Cause(err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func tlsConfig(c config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--client-ca %s: no PEM certificate", c.ClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// riskTopic reports a patient's risk topic: its retained message changes with nearly every
// sample and the pipeline republishes it at start, so the broker need not keep it on disk.
func riskTopic(topic string) bool {
	t, err := topics.Parse(topic)
	return err == nil && t.Kind == topics.KindRisk
}

// none maps a setting of 0 ("no delay") to ingest's negative "none" (its 0 means "default").
func none(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "host"
	}
	return h
}
