package ingest

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/deploy/metrics"
	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// MaxRosterBytes bounds an uploaded roster (about 100,000 employees).
const MaxRosterBytes = 32 << 20

// AdminServer is the admin HTTP API: roster import, reminders, mail
// failures. It listens on its own address, apart from the public survey
// pages, and every request needs the admin token as a bearer token. (Issue
// 4 brings organisation-scoped tokens and roles.)
type AdminServer struct {
	app   *fiber.App
	admin *Admin
	token []byte
	log   *slog.Logger
	// Limiter, when set, limits each client's failed authentications.
	// Set it before serving.
	Limiter *httpproblem.Limiter
	// Metrics, when set, counts requests. Set it before serving.
	Metrics *metrics.Metrics
}

// limitFailures limits each client's failed authentications.
func (s *AdminServer) limitFailures(c *fiber.Ctx) error {
	return s.Limiter.Failures(c, httpproblem.Unauthorized)
}

// NewAdminServer builds the admin API; token must not be empty.
func NewAdminServer(admin *Admin, token string, log *slog.Logger) *AdminServer {
	s := &AdminServer{admin: admin, token: []byte(token), log: log.With("component", "admin-api")}
	s.app = fiber.New(fiber.Config{
		AppName:               "trustpulse-admin",
		BodyLimit:             MaxRosterBytes,
		ErrorHandler:          httpproblem.ErrorHandler(log),
		DisableStartupMessage: true,
		ReadTimeout:           time.Minute,
		WriteTimeout:          5 * time.Minute,
	})
	s.app.Use(func(c *fiber.Ctx) error { return s.Metrics.ObserveHTTP(c, "admin") },
		httpproblem.Recover(s.log), httpproblem.SecurityHeaders, s.limitFailures, s.authenticate)
	v1 := s.app.Group("/v1/orgs/:org")
	v1.Post("/roster", s.importRosterHandler)
	v1.Post("/waves/:wave/remind", s.remindHandler)
	v1.Get("/mail-failures", s.mailFailuresHandler)
	s.app.Use(func(c *fiber.Ctx) error {
		return schemas.Errorf(http.StatusNotFound, "not_found", "no such endpoint")
	})
	return s
}

// App is the Fiber app.
func (s *AdminServer) App() *fiber.App { return s.app }

func (s *AdminServer) authenticate(c *fiber.Ctx) error {
	got, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), s.token) != 1 {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="trustpulse-admin"`)
		return schemas.Errorf(http.StatusUnauthorized, "unauthorized", "a valid admin token is required (Authorization: Bearer ...)")
	}
	return c.Next()
}

func orgParam(c *fiber.Ctx) (string, error) {
	org := c.Params("org")
	if !schemas.ValidID(org) {
		return "", schemas.Errorf(http.StatusBadRequest, "invalid_org", "organisation id is malformed")
	}
	return org, nil
}

// importRosterHandler imports a roster CSV (text/csv). Every bad row is
// listed by line; a file with any bad row imports nothing.
func (s *AdminServer) importRosterHandler(c *fiber.Ctx) error {
	org, err := orgParam(c)
	if err != nil {
		return err
	}
	if mt, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType)); mt != "text/csv" {
		return schemas.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the roster as text/csv")
	}
	rows, err := ParseRoster(bytes.NewReader(c.Body()), s.admin.now().UTC())
	var re *RosterError
	if errors.As(err, &re) {
		appErr := schemas.Errorf(http.StatusUnprocessableEntity, "invalid_roster", "the roster has %d problem(s); nothing was imported", len(re.Problems))
		for _, p := range re.Problems {
			line, detail, _ := strings.Cut(p, ": ")
			appErr.Fields = append(appErr.Fields, schemas.FieldError{Field: line, Detail: detail})
		}
		return appErr
	}
	if err != nil {
		return err
	}
	sum, err := s.admin.ImportRoster(c.UserContext(), org, rows, nil)
	if err != nil {
		s.log.Error("roster import stopped", "org", org, "err", err)
		return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "the import stopped part-way; send the same file again to finish it")
	}
	return c.JSON(fiber.Map{"joined": sum.Joined, "updated": sum.Updated, "left": sum.Left, "unchanged": sum.Unchanged})
}

func (s *AdminServer) remindHandler(c *fiber.Ctx) error {
	org, err := orgParam(c)
	if err != nil {
		return err
	}
	n, err := s.admin.Remind(c.UserContext(), org, c.Params("wave"))
	if err != nil {
		return schemas.Errorf(http.StatusConflict, "cannot_remind", "%s", err.Error())
	}
	return c.JSON(fiber.Map{"reminded": n})
}

func (s *AdminServer) mailFailuresHandler(c *fiber.Ctx) error {
	org, err := orgParam(c)
	if err != nil {
		return err
	}
	failures, err := s.admin.MailFailures(c.UserContext(), org)
	if err != nil {
		return err
	}
	if failures == nil {
		failures = []schemas.MailFailure{}
	}
	return c.JSON(fiber.Map{"org": org, "failures": failures})
}
