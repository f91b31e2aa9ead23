package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/deploy/mailsink"
	"github.com/trustpulse/trustpulse/deploy/metrics"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/query/dashboard"
	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// Main is the running program: the stack and the parts its target selects.
// Open builds it; Run serves until its context ends; Close shuts it down in
// order. Tests run it on port 0 exactly as the binary does.
type Main struct {
	Config Config
	Stack  *deploy.Stack
	Log    *slog.Logger

	Catalog *ingest.Catalog
	Admin   *ingest.Admin
	Mixer   *ingest.Mixer
	Postman *ingest.Postman
	// MailSink is the development mail server, when no relay is configured.
	MailSink  *mailsink.Sink
	Projector *projector.Projector
	// Notifier emails managers their sign-in links when a wave's results
	// are released; it runs with the query service.
	Notifier *query.Notifier
	// ingest is the ingest HTTP service, closed after its server stops.
	ingest *ingest.Server
	// sealReads is the mixer's connection for reading held responses.
	sealReads *nats.Conn
	// Query is the query service, when the target runs it.
	Query *query.Server
	// Metrics are the process's Prometheus metrics, served at MetricsURL;
	// nil with --metrics-addr off.
	Metrics *metrics.Metrics
	// MetricsURL is where /metrics answers, or empty.
	MetricsURL string
	// metricsLn and metricsSrv serve Metrics from Start on.
	metricsLn  net.Listener
	metricsSrv *http.Server

	// RestartWait is the pause before a stopped projector restarts.
	RestartWait time.Duration

	// IngestURL, QueryURL and AdminURL are where the HTTP services listen
	// (AdminURL is empty when the admin API is off); HealthURL is where the
	// projector target answers /livez and /readyz.
	IngestURL, QueryURL, AdminURL, HealthURL string

	// ingestLn, queryLn, adminLn and healthLn are bound before anything
	// starts, so that a busy port fails at once; listen hands each to its
	// app.
	ingestLn, queryLn, adminLn, healthLn net.Listener
	apps                                 []*fiber.App
	listeners                            []net.Listener
	started                              bool
	cancel                               context.CancelFunc
	wg                                   sync.WaitGroup
}

// smtpConfig is the postman's view of the config.
func (c *Config) smtpConfig() ingest.SMTPConfig {
	return ingest.SMTPConfig{Host: c.SMTPHost, Port: c.SMTPPort, TLS: c.SMTPTLS, Username: c.SMTPUsername,
		Password: c.SMTPPassword, From: c.MailFrom, FromName: c.MailFromName, Rate: c.MailRate}
}

// stackConfig turns the config into what deploy.Open needs for the target.
func (c *Config) stackConfig(own bool) deploy.StackConfig {
	return deploy.StackConfig{
		DataDir:        c.DataDir,
		NATSURL:        c.NATSURL,
		NATSListen:     c.NATSListen,
		Replicas:       c.NATSReplicas,
		Partitions:     c.ProjectorPartitions,
		NATSSyncAlways: c.NATSSync == "always",
		ClickHouse: deploy.ClickHouseConfig{
			Addr: c.ClickHouseAddr, Database: c.ClickHouseDatabase, User: c.ClickHouseUser, Password: c.ClickHousePassword,
			Cluster: c.ClickHouseCluster,
		},
		NeedNATS:       true, // the query service keeps the guard's record there
		NeedClickHouse: c.runs("projector") || c.runs("query"),
		Own:            own,
		Name:           "trustpulse " + c.Target,
	}
}

// Open starts the stack and builds every part of the target. Listeners are
// opened here, so the URLs are known before Run.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Main, error) {
	m := &Main{Config: cfg, Log: log, RestartWait: 2 * time.Second}
	if err := m.open(ctx); err != nil {
		_ = m.Close()
		return nil, err
	}
	return m, nil
}

// open builds what Open promises; on error m holds what was opened so far,
// for Close.
func (m *Main) open(ctx context.Context) (err error) {
	cfg, log := m.Config, m.Log
	if err := checkDataDir(cfg.DataDir); err != nil {
		return err
	}
	if cfg.metricsOn() {
		m.Metrics = metrics.New(buildVersion())
	}
	if err := m.bind(); err != nil {
		return err
	}
	sc := cfg.stackConfig(true)
	sc.NATSOptions, sc.ClickHouseRestarted = m.Metrics.NATSOptions(log), m.Metrics.ClickHouseRestarted
	if m.Stack, err = deploy.Open(ctx, sc, log); err != nil {
		return err
	}
	if m.Stack.CH != nil {
		// Every part's ClickHouse calls go through here and are counted.
		m.Stack.CH = m.Metrics.ClickHouse(m.Stack.CH)
	}
	if cfg.runs("ingest") {
		ledger, err := ingest.OpenLedger(ctx, m.Stack.JS)
		if err != nil {
			return err
		}
		ledger.Replicas = cfg.NATSReplicas
		sealer, err := ingest.LoadSealKey(cfg.SealKeyFile, true)
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if m.Catalog, err = ingest.StartCatalog(cctx, m.Stack.JS, log); err != nil {
			return err
		}
		m.Catalog.DefaultThreshold = cfg.Threshold
		m.Admin = ingest.NewAdmin(m.Stack.JS, ledger, m.Catalog, time.Now)
		m.Admin.PublicURL = cfg.publicURL()
		smtpCfg := cfg.smtpConfig()
		if cfg.SMTPHost == "" {
			dir := filepath.Join(cfg.DataDir, "mail")
			if m.MailSink, err = mailsink.Start(dir, "127.0.0.1:0", log); err != nil {
				return err
			}
			smtpCfg.Host, smtpCfg.Port, smtpCfg.TLS = m.MailSink.Host, m.MailSink.Port, "none"
			log.Info("development mail sink: emails are stored, not sent", "dir", dir, "smtp", m.MailSink.Addr())
		}
		m.Postman = ingest.NewPostman(m.Stack.JS, smtpCfg, log)
		m.Postman.Metrics = m.Metrics
		m.Metrics.WatchOutbox(m.Postman.Depth)
		m.Mixer = ingest.NewMixer(m.Stack.JS, m.Catalog, log, time.Now)
		m.Mixer.Grace, m.Mixer.Ledger, m.Mixer.Sealer = cfg.SealGrace, ledger, sealer
		m.Mixer.Remind, m.Mixer.Invite = m.Admin.Remind, m.Admin.InviteRoster
		if m.sealReads, err = deploy.ConnectNATS(m.Stack.NATSURL, "trustpulse "+cfg.Target+" seal reads", m.Metrics.NATSOptions(log)...); err != nil {
			return err
		}
		if m.Mixer.Reader, err = jetstream.New(m.sealReads); err != nil {
			return err
		}
		srv := ingest.NewServer(m.Stack.JS, ledger, m.Catalog, cfg.Threshold, log, time.Now)
		srv.Sealer = sealer
		srv.ReplyBase = cfg.dashboardURL()
		srv.SetMaxInFlight(cfg.MaxInFlight)
		srv.SetMaxConnections(cfg.MaxConnections)
		srv.Limiter = cfg.limiter()
		srv.Metrics = m.Metrics
		m.ingest = srv
		m.IngestURL = m.listen(srv.App(), &m.ingestLn)
		if cfg.PublicURL == "" {
			m.Admin.PublicURL = m.IngestURL // the port actually bound, also for :0
		}
		if cfg.AdminToken != "" {
			admin := ingest.NewAdminServer(m.Admin, cfg.AdminToken, log)
			admin.Limiter = cfg.limiter()
			admin.Metrics = m.Metrics
			m.AdminURL = m.listen(admin.App(), &m.adminLn)
		}
	}
	if cfg.runs("query") {
		srv := query.NewServer(query.NewStore(m.Stack.CH), cfg.Threshold, schemas.ProjectorConsumer, log)
		srv.Limiter = cfg.limiter()
		srv.Metrics = m.Metrics
		m.Query = srv
		srv.SetPartitions(cfg.ProjectorPartitions)
		srv.SetLive(query.NewLiveCounts(m.Stack.JS))
		srv.SetDirectory(query.NewDirectory(m.Stack.JS))
		srv.SetRecordStore(query.NewRecordStore(m.Stack.JS))
		srv.SetPublisher(query.NewPublisher(m.Stack.JS))
		srv.SetSignIns(query.NewSignIns(m.Stack.JS, time.Now))
		srv.SetPlans(query.NewPlanStore(m.Stack.JS))
		key, _ := hex.DecodeString(cfg.SessionKey) // checked by Validate
		if len(key) == 0 {
			key = make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return err
			}
		}
		dash, err := dashboard.New(srv, key, log)
		if err != nil {
			return err
		}
		srv.Handle(dash.Routes)
		m.QueryURL = m.listen(srv.App(), &m.queryLn)
		if cfg.DashboardURL == "" && m.ingest != nil {
			m.ingest.ReplyBase = m.QueryURL // the port actually bound, also for :0
		}
		linkBase := cfg.dashboardURL()
		if cfg.DashboardURL == "" {
			linkBase = m.QueryURL
		}
		m.Notifier = query.NewNotifier(srv, m.Stack.JS, linkBase, log)
	}
	if cfg.runs("projector") {
		pcfg := cfg.projectorConfig()
		if m.Metrics != nil {
			pcfg.Metrics = m.Metrics.Projector()
		}
		m.Projector = projector.New(m.Stack.JS, m.Stack.CH, pcfg, log)
		m.Metrics.WatchLag(m.Projector.Lags)
		if m.Query != nil {
			m.Query.SetReadiness(m.projectorReady)
		}
		if cfg.Target == "projector" {
			m.HealthURL = m.listen(m.healthApp(m.projectorReady), &m.healthLn)
		}
	}
	if m.metricsLn != nil {
		m.MetricsURL, m.metricsSrv = "http://"+m.metricsLn.Addr().String(), metricsServer(m.Metrics, cfg.Pprof)
	}
	return nil
}

// bind opens the listeners of the target's HTTP services.
func (m *Main) bind() error {
	cfg := m.Config
	for _, l := range []struct {
		on         bool
		flag, addr string
		ln         *net.Listener
	}{
		{cfg.runs("ingest"), "--ingest-addr", cfg.IngestAddr, &m.ingestLn},
		{cfg.runs("ingest") && cfg.AdminToken != "", "--admin-addr", cfg.AdminAddr, &m.adminLn},
		{cfg.runs("query"), "--query-addr", cfg.QueryAddr, &m.queryLn},
		{cfg.Target == "projector", "--health-addr", cfg.HealthAddr, &m.healthLn},
		{cfg.metricsOn(), "--metrics-addr", cfg.MetricsAddr, &m.metricsLn},
	} {
		if !l.on {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%s %s: address already in use; is another trustpulse serve running?", l.flag, l.addr)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", l.flag, l.addr, err)
		}
		*l.ln = ln
	}
	return nil
}

// listen hands a bound listener to app, to serve from Start on.
func (m *Main) listen(app *fiber.App, ln *net.Listener) string {
	m.apps, m.listeners = append(m.apps, app), append(m.listeners, *ln)
	u := "http://" + (*ln).Addr().String()
	*ln = nil
	return u
}

// checkDataDir makes sure the data directory exists and can be written.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("--data-dir %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-")
	if err != nil {
		return fmt.Errorf("--data-dir %s: not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// Start serves HTTP and runs the projector in the background.
func (m *Main) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.started = cancel, true
	for i, app := range m.apps {
		ln := m.listeners[i]
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := app.Listener(ln); err != nil {
				m.Log.Error("http server stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	if m.metricsSrv != nil {
		ln := m.metricsLn
		m.metricsLn = nil // the server closes it
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := m.metricsSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				m.Log.Error("metrics server stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	if m.Query != nil {
		m.wg.Add(2)
		go func() {
			defer m.wg.Done()
			m.Query.Warm(ctx)
		}()
		go func() {
			defer m.wg.Done()
			if err := m.Notifier.Run(ctx); err != nil {
				m.Log.Error("notifier stopped", "err", err)
			}
		}()
	}
	if m.Mixer != nil {
		m.wg.Add(2)
		go func() {
			defer m.wg.Done()
			_ = m.Mixer.Run(ctx)
		}()
		go func() {
			defer m.wg.Done()
			if err := m.Postman.Run(ctx); err != nil {
				m.Log.Error("postman stopped", "err", err)
			}
		}()
	}
	if m.Projector != nil {
		m.Projector.StandbyWait = m.RestartWait
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			for {
				err := m.Projector.Run(ctx)
				if ctx.Err() != nil {
					return
				}
				// The lease is held elsewhere (another projector or a
				// replay) or was lost: wait and take over when it frees.
				// (With several partitions Run stands by itself and
				// returns only on a fault.)
				m.Log.Warn("projector stopped; restarting", "err", err, "retry_in", m.RestartWait)
				select {
				case <-ctx.Done():
				case <-time.After(m.RestartWait):
				}
			}
		}()
	}
}

// Run starts the parts and blocks until ctx ends.
func (m *Main) Run(ctx context.Context) error {
	m.Start()
	<-ctx.Done()
	return nil
}

// Close shuts down in a fixed order: stop accepting HTTP and finish
// in-flight requests, stop the mixer and the projector (its batch in flight is finished
// or abandoned un-acked), stop following the catalog, then close NATS and
// ClickHouse and stop the local servers.
func (m *Main) Close() error {
	var errs []error
	for _, ln := range []net.Listener{m.ingestLn, m.queryLn, m.adminLn, m.healthLn, m.metricsLn} {
		if ln != nil { // bound, never handed to an app
			ln.Close()
		}
	}
	for i, app := range m.apps {
		if m.started {
			errs = append(errs, app.ShutdownWithTimeout(m.Config.ShutdownTimeout))
		} else {
			m.listeners[i].Close()
		}
	}
	if m.metricsSrv != nil && m.started {
		sctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		errs = append(errs, m.metricsSrv.Shutdown(sctx))
		cancel()
	}
	if m.ingest != nil {
		m.ingest.Close()
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.Catalog != nil {
		m.Catalog.Stop()
	}
	if m.sealReads != nil {
		m.sealReads.Close()
	}
	if m.MailSink != nil {
		errs = append(errs, m.MailSink.Close())
	}
	if m.Stack != nil {
		errs = append(errs, m.Stack.Close())
	}
	return errors.Join(errs...)
}

// limiter is a fresh limiter of failed requests per client.
func (c *Config) limiter() *httpproblem.Limiter {
	return httpproblem.NewLimiter(c.FailureRate, c.FailureBurst, c.TrustedProxyHeader)
}
