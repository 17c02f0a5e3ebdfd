// Package api is Vigil's REST API (Gin): routes, authentication and authorisation, request
// validation and errors. It is the HTTP layer only: every change goes through the small
// interfaces below, implemented by the domain packages and wired in cmd/vigil.
//
// Conventions:
//   - JSON in and out; errors are RFC 9457 application/problem+json with a field list for
//     validation errors; unknown JSON fields are refused; bodies are limited in size.
//   - Lists answer {"items": [...], "next_cursor": "..."} with ?limit= and ?cursor=.
//   - A user sees only their hospitals: another hospital's resources answer 404, never 403,
//     so their existence does not leak. Roles: viewer reads; nurse and clinician also
//     acknowledge, resolve, observe, admit, move beds and triage; clinician and admin broadcast;
//     admin does everything, users and devices included.
//   - Every request carries a request ID (X-Request-ID, kept from the client when well formed)
//     that appears in the logs and in the response header.
package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

var errEOF = io.EOF

// Options configure the API.
type Options struct {
	Auth     Auth
	Devices  Devices
	Patients Patients
	Alerts   Alerts
	Ward     Ward
	Scorer   Scorer
	Stats    Stats

	// AllowedOrigins may call the API from a browser (CORS).
	AllowedOrigins []string
	// MaxBody limits request bodies (default 64 KiB).
	MaxBody int64
	// BodyTimeout limits the time a client may take to send a request body (default 30 s);
	// past it the request is answered 408 and the connection closed.
	BodyTimeout time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

// Server is the REST API.
type Server struct {
	opts     Options
	log      *slog.Logger
	engine   *gin.Engine
	problems *prometheus.CounterVec
}

// New builds the API.
func New(opts Options) *Server {
	if opts.MaxBody <= 0 {
		opts.MaxBody = 64 << 10
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	// Match routes on the raw path when it has escapes of its own, so an ID with an encoded slash
	// (a%2Fb) reaches its route and is refused as an invalid ID (400 naming it) instead of
	// missing every route (404).
	e.UseRawPath = true
	s := &Server{opts: opts, log: opts.Logger.With("component", "api"), engine: e,
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_api_problems_total",
			Help: "API requests answered with a problem, by its type (invalid, unauthorized, not_found, ...)."}, []string{"type"})}
	e.Use(s.requestID, s.recover, s.accessLog, s.cors, s.limitBody)
	e.NoRoute(func(c *gin.Context) {
		fail(c, errCode("not_found", "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		writeProblem(c, Problem{Type: problemBase + "method_not_allowed", Title: "Method Not Allowed", Status: http.StatusMethodNotAllowed,
			Detail: c.Request.Method + " is not allowed on " + c.Request.URL.Path, RequestID: requestID(c)})
	})
	s.routes()
	return s
}

// Collector exports the API's counters to Prometheus.
func (s *Server) Collector() prometheus.Collector { return s.problems }

// Handler serves the API (mount it at /api/).
func (s *Server) Handler() http.Handler { return s.engine }

// Routes lists the registered routes as "METHOD /path" with Gin's :param syntax.
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.engine.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	slices.Sort(out)
	return out
}

const (
	ctxRequestID = "vigil.request_id"
	ctxLogger    = "vigil.logger"
	ctxPrincipal = "vigil.principal"
	ctxProblem   = "vigil.problem" // the type of the problem answered
)

func requestID(c *gin.Context) string { return c.GetString(ctxRequestID) }

func logger(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(ctxLogger); ok {
		return l.(*slog.Logger)
	}
	return slog.New(slog.DiscardHandler)
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if !validRequestID(id) {
		b := make([]byte, 8)
		rand.Read(b)
		id = hex.EncodeToString(b)
	}
	c.Set(ctxRequestID, id)
	c.Set(ctxLogger, s.log.With("request_id", id))
	c.Header("X-Request-ID", id)
	c.Next()
	// Counted here, outside every other middleware, so that problems of theirs (a panic
	// recovered included) count too.
	if t, ok := c.Get(ctxProblem); ok {
		s.problems.WithLabelValues(t.(string)).Inc()
	}
}

func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			logger(c).Error("panic serving request", "panic", r, "stack", string(debug.Stack()))
			fail(c, errors.New("panic"))
		}
	}()
	c.Next()
}

func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	lv := slog.LevelDebug
	if c.Writer.Status() >= 500 {
		lv = slog.LevelWarn
	} else if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodOptions {
		lv = slog.LevelInfo
	}
	// logger(c) names the user once authenticated.
	logger(c).Log(c.Request.Context(), lv, "request", "method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(), "duration", time.Since(start))
}

// cors answers browsers of the allowed origins only.
func (s *Server) cors(c *gin.Context) {
	origin := c.GetHeader("Origin")
	if origin == "" {
		c.Next()
		return
	}
	allowed := slices.Contains(s.opts.AllowedOrigins, origin)
	if allowed {
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "X-Request-ID, Retry-After")
	}
	if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
		if !allowed {
			fail(c, errCode("forbidden", "origin %s is not allowed", origin))
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-ID")
		h.Set("Access-Control-Max-Age", "600")
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	c.Next()
}

// limitBody bounds a request body in size (MaxBody) and in time (BodyTimeout): a client
// trickling its body would otherwise hold a handler for as long as it likes. The time limit is
// a read deadline on the connection; net/http clears it when the body ends (it then starts
// watching the connection for the client going away), so a handler working past it keeps its
// request context (TestBodyDeadlineLifted). A body not read to its end keeps the deadline, so
// net/http's discarding of the rest after the handler is bounded too.
func (s *Server) limitBody(c *gin.Context) {
	if c.Request.Body == nil || c.Request.Body == http.NoBody {
		c.Next()
		return
	}
	_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(s.opts.BodyTimeout))
	c.Request.Body = timedBody{http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBody)}
	c.Next()
}

// timedBody reports a missed body deadline as errBodyTimeout.
type timedBody struct{ io.ReadCloser }

func (b timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = errBodyTimeout
	}
	return n, err
}

var errBodyTimeout = &codedError{code: "timeout", detail: "the request body was not received in time"}

// authenticate requires a valid bearer token.
func (s *Server) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		fail(c, errCode("unauthorized", "a bearer token is required (POST /api/v1/auth/login)"))
		return
	}
	p, err := s.opts.Auth.Verify(token)
	if err != nil {
		fail(c, err)
		return
	}
	c.Set(ctxPrincipal, &p)
	c.Set(ctxLogger, logger(c).With("user", p.Subject))
	c.Next()
}

func principal(c *gin.Context) *Principal {
	if v, ok := c.Get(ctxPrincipal); ok {
		return v.(*Principal)
	}
	return nil
}
