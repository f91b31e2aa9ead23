package ingest_test

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// TestAppsRecoverPanics: a handler that panics (here: built without its
// ledger or admin, a fault the tests inject) answers 500 problem+json
// "internal" with a request id, and the app goes on serving.
func TestAppsRecoverPanics(t *testing.T) {
	e := mustEnv(t)
	log := testenv.Logger(t)
	for name, tc := range map[string]struct {
		app        *fiber.App
		method, to string
		body       string
		after      string // a route that answers afterwards
		afterCode  int    // with this status
	}{
		"Ingest": {ingest.NewServer(e.js, nil, e.cat, 5, log, e.clock.Now).App(), "POST", "/v1/responses",
			string(submitBody(e.invite(t, 1)[0], validAnswers())), "/healthz", 200},
		"Admin": {ingest.NewAdminServer(nil, adminToken, log).App(), "POST", "/v1/orgs/acme/waves/w1/remind", "", "/v1/orgs/acme/nope", 404},
	} {
		t.Run(name, func(t *testing.T) {
			call := func(method, path, body string) (int, []byte, string) {
				req := httptest.NewRequest(method, path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+adminToken)
				resp, err := tc.app.Test(req, 15000)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, b, resp.Header.Get(httpproblem.RequestIDHeader)
			}
			status, body, id := call(tc.method, tc.to, tc.body)
			var p schemas.Problem
			if status != 500 || json.Unmarshal(body, &p) != nil || p.Code != "internal" || id == "" || !strings.Contains(p.Detail, id) {
				t.Fatalf("%d %s (request id %q), want 500 internal naming the request id", status, body, id)
			}
			if status, body, _ := call("GET", tc.after, ""); status != tc.afterCode {
				t.Fatalf("after the panic: GET %s: %d %s, want %d", tc.after, status, body, tc.afterCode)
			}
		})
	}
}
