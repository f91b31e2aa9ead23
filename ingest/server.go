package ingest

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/metrics"
	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// MaxBodyBytes bounds a request body; a response of 40 questions is far less.
const MaxBodyBytes = 16 << 10

// Server is the ingest HTTP service.
type Server struct {
	app     *fiber.App
	js      jetstream.JetStream
	ledger  *Ledger
	catalog *Catalog
	log     *slog.Logger
	now     func() time.Time
	// threshold is the reporting threshold the survey page promises.
	threshold int
	// live gathers the participation shown while a wave is open.
	live *liveCounter
	// Sealer, when set, encrypts the responses held while their wave is
	// open; serve always sets it (--seal-key-file).
	Sealer *Sealer
	// inflight bounds the submissions being recorded at once: beyond it a
	// submission is refused at once (503, nothing recorded) rather than
	// queued without bound (SetMaxInFlight).
	inflight chan struct{}
	// Limiter, when set, limits each client's failed link lookups (forged
	// or mistyped links, 404) on the survey endpoints. Set it before serving.
	Limiter *httpproblem.Limiter
	// Metrics, when set, counts requests and submissions. Set it before
	// serving.
	Metrics *metrics.Metrics
	// ReplyBase is the public base URL of the query process (serve's
	// --dashboard-url), which serves the private reply links shown after a
	// submission with comments. Set it before serving.
	ReplyBase string

	// stopSweep ends the sweep of the ledger's link cache (sweepLinks).
	stopSweep, sweepDone chan struct{}
}

// linkSweepEvery is how often the link cache drops the links of waves that
// closed and the links that expired.
var linkSweepEvery = 10 * time.Second

// DefaultMaxInFlight is how many submissions one ingest process records at
// once unless configured.
const DefaultMaxInFlight = 256

// DefaultMaxConnections is how many connections one ingest process holds
// open at once unless configured. Each costs the process its buffers and
// a goroutine (tens of kilobytes), so under an open-loop overload from
// slow clients the connections, not the submissions in flight, are what
// fills its memory: 20,000 of them took it to 700 MB in make bench. A
// connection beyond the bound is answered 503 at once and closed, by
// fasthttp, in plain text.
const DefaultMaxConnections = 2048

// SetMaxConnections bounds the connections held open at once. Call it
// before serving.
func (s *Server) SetMaxConnections(n int) { s.app.Server().Concurrency = max(1, n) }

// SetMaxInFlight bounds the submissions recorded at once. Call it before
// serving.
func (s *Server) SetMaxInFlight(n int) { s.inflight = make(chan struct{}, max(1, n)) }

// NewServer builds the ingest service. threshold is the reporting threshold
// the survey page tells employees about; now is the clock (time.Now in
// production).
func NewServer(js jetstream.JetStream, ledger *Ledger, catalog *Catalog, threshold int, log *slog.Logger, now func() time.Time) *Server {
	s := &Server{js: js, ledger: ledger, catalog: catalog, threshold: threshold, log: log.With("component", "ingest"), now: now,
		inflight: make(chan struct{}, DefaultMaxInFlight)}
	s.live = newLiveCounter(js, catalog, s.log)
	s.stopSweep, s.sweepDone = make(chan struct{}), make(chan struct{})
	if ledger != nil {
		go s.sweepLinks()
	} else {
		close(s.sweepDone)
	}
	s.app = fiber.New(fiber.Config{
		AppName:               "trustpulse-ingest",
		BodyLimit:             MaxBodyBytes,
		ErrorHandler:          httpproblem.ErrorHandler(log),
		DisableStartupMessage: true,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          15 * time.Second,
		IdleTimeout:           60 * time.Second,
		Concurrency:           DefaultMaxConnections,
	})
	s.app.Use(func(c *fiber.Ctx) error { return s.Metrics.ObserveHTTP(c, "ingest") },
		httpproblem.Recover(s.log), httpproblem.SecurityHeaders)
	s.routes()
	return s
}

// Close writes the live participation counts gathered so far. Call it
// after the HTTP server has stopped.
func (s *Server) Close() {
	close(s.stopSweep)
	<-s.sweepDone
	s.live.close()
}

// sweepLinks drops, every linkSweepEvery until Close, the kept links of
// waves the catalog no longer has open, so that the process forgets a
// closed wave's links soon after its close, as its ledger does at the seal.
func (s *Server) sweepLinks() {
	defer close(s.sweepDone)
	t := time.NewTicker(linkSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			now := s.now()
			s.ledger.SweepLinks(now, func(org, wave string) bool {
				w, ok := s.catalog.Wave(org, wave)
				return ok && !w.Closed && now.Before(w.ClosesAt)
			})
		case <-s.stopSweep:
			return
		}
	}
}

// routes is the ingest API, in one table.
func (s *Server) routes() {
	live := func(c *fiber.Ctx) error { return c.SendString("ok") }
	s.app.Get("/livez", live)
	s.app.Get("/healthz", live) // the old name of /livez
	s.app.Get("/readyz", func(c *fiber.Ctx) error {
		// Ready when NATS, where every submission is held, answers.
		if !s.js.Conn().IsConnected() {
			return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "NATS does not answer")
		}
		return c.SendString("ready")
	})
	v1 := s.app.Group("/v1")
	v1.Post("/responses", s.limitLinks, s.submitResponseHandler)

	s.app.Get("/static/survey.css", surveyCSSHandler)
	page := s.app.Group("/s", s.limitLinks, pageHeaders)
	page.Get("/thanks", s.thanksHandler)
	page.Get("/:token", s.surveyFormHandler)
	page.Post("/:token", s.submitSurveyFormHandler)
	s.app.Use(func(c *fiber.Ctx) error {
		return schemas.Errorf(http.StatusNotFound, "not_found", "no such endpoint")
	})
}

// limitLinks limits each client's lookups of links that do not exist.
func (s *Server) limitLinks(c *fiber.Ctx) error {
	return s.Limiter.Failures(c, httpproblem.NotFound)
}

// App is the Fiber app, for tests (app.Test) and for Listen.
func (s *Server) App() *fiber.App { return s.app }
