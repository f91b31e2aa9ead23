package metrics_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/trustpulse/trustpulse/deploy/metrics"
	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// app is a Fiber app as trustpulse builds one: ObserveHTTP first, then
// Recover, the routes, and a not-found handler.
func app(m *metrics.Metrics) *fiber.App {
	a := fiber.New(fiber.Config{ErrorHandler: httpproblem.ErrorHandler(quiet()), DisableStartupMessage: true})
	a.Use(func(c *fiber.Ctx) error { return m.ObserveHTTP(c, "ingest") }, httpproblem.Recover(quiet()))
	a.Get("/s/:token", func(c *fiber.Ctx) error {
		if c.Params("token") == "used" {
			return schemas.Errorf(http.StatusConflict, "token_used", "used")
		}
		return c.SendString("form")
	})
	a.Get("/panic", func(c *fiber.Ctx) error { panic("boom") })
	a.Get("/fail", func(c *fiber.Ctx) error { return errors.New("internal detail") })
	g := a.Group("/dashboard", metrics.Label("dashboard"))
	g.Get("/login", func(c *fiber.Ctx) error { return c.SendString("login") })
	a.Use(func(c *fiber.Ctx) error { return schemas.Errorf(http.StatusNotFound, "not_found", "no such endpoint") })
	return a
}

// TestObserveHTTP: each request is counted under its route template and
// the status actually sent (an error handled by the app's error handler, a
// panic recovered), never under its path; a nil Metrics changes nothing.
func TestObserveHTTP(t *testing.T) {
	m := metrics.New("test")
	a := app(m)
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/s/secret-token-abc", 200}, {"/s/used", 409}, {"/panic", 500}, {"/fail", 500},
		{"/dashboard/login", 200}, {"/no/such/secret-path", 404},
	} {
		resp, err := a.Test(httptest.NewRequest(http.MethodGet, tc.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	text := rec.Body.String()
	for _, line := range []string{
		`trustpulse_http_request_duration_seconds_count{app="ingest",method="GET",route="/s/:token",status_class="2xx"} 1`,
		`trustpulse_http_request_duration_seconds_count{app="ingest",method="GET",route="/s/:token",status_class="4xx"} 1`,
		`trustpulse_http_request_duration_seconds_count{app="ingest",method="GET",route="/panic",status_class="5xx"} 1`,
		`trustpulse_http_request_duration_seconds_count{app="ingest",method="GET",route="/fail",status_class="5xx"} 1`,
		`trustpulse_http_request_duration_seconds_count{app="dashboard",method="GET",route="/dashboard/login",status_class="2xx"} 1`,
		`trustpulse_http_request_duration_seconds_count{app="ingest",method="GET",route="/",status_class="4xx"} 1`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("scrape lacks %s", line)
		}
	}
	for _, secret := range []string{"secret-token-abc", "secret-path", "internal detail", "boom"} {
		if strings.Contains(text, secret) {
			t.Errorf("scrape holds %q", secret)
		}
	}
	if n := testutil.CollectAndCount(m.Registry(), "trustpulse_http_request_duration_seconds"); n != 6 {
		t.Errorf("%d series of trustpulse_http_request_duration_seconds, want 6", n)
	}

	t.Run("NilMetrics", func(t *testing.T) {
		resp, err := app(nil).Test(httptest.NewRequest(http.MethodGet, "/s/used", nil))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusConflict {
			t.Errorf("without metrics GET /s/used: %d, want 409", resp.StatusCode)
		}
	})
}

// TestSubmission: submissions count as accepted, or refused by the code of
// their problem (internal for any other error).
func TestSubmission(t *testing.T) {
	m := metrics.New("test")
	m.Submission(nil)
	m.Submission(schemas.Errorf(http.StatusConflict, "token_used", "used"))
	m.Submission(schemas.Errorf(http.StatusConflict, "token_used", "used"))
	m.Submission(errors.New("a detail that must not become a label"))
	var nilMetrics *metrics.Metrics
	nilMetrics.Submission(nil) // records nothing, and does not panic
	want := `
# HELP trustpulse_submissions_refused_total Survey responses refused, nothing recorded, by the problem code answered (token_used, token_unknown, invalid_answers, unavailable...).
# TYPE trustpulse_submissions_refused_total counter
trustpulse_submissions_refused_total{code="internal"} 1
trustpulse_submissions_refused_total{code="token_used"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "trustpulse_submissions_refused_total"); err != nil {
		t.Error(err)
	}
	want = `
# HELP trustpulse_submissions_accepted_total Survey responses accepted (recorded and held until their wave closes), through the API or the survey form.
# TYPE trustpulse_submissions_accepted_total counter
trustpulse_submissions_accepted_total 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "trustpulse_submissions_accepted_total"); err != nil {
		t.Error(err)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
