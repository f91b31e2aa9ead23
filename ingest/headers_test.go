package ingest_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
)

// TestSecurityHeaders: every JSON answer of the ingest and admin APIs,
// results and errors alike, carries nosniff, no-referrer and no-store; the
// survey pages keep their own policy and the stylesheet stays cacheable.
func TestSecurityHeaders(t *testing.T) {
	e := mustEnv(t)
	tok := e.invite(t, 1)[0]
	admin := ingest.NewAdminServer(e.admin, adminToken, testenv.Logger(t))
	type call struct {
		method, path, auth string
		body               []byte
		status             int
		cacheControl       string
	}
	check := func(t *testing.T, c call, resp *http.Response) {
		t.Helper()
		h := resp.Header
		if resp.StatusCode != c.status || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != c.cacheControl {
			t.Errorf("%s %s: %d %v; want %d, nosniff, no-referrer, Cache-Control %q", c.method, c.path, resp.StatusCode, h, c.status, c.cacheControl)
		}
	}
	t.Run("Ingest", func(t *testing.T) {
		for _, c := range []call{
			{"POST", "/v1/responses", "", submitBody(tok, validAnswers()), 202, "no-store"},
			{"POST", "/v1/responses", "", submitBody(tok, validAnswers()), 409, "no-store"},
			{"POST", "/v1/responses", "", []byte(`{`), 400, "no-store"},
			{"GET", "/healthz", "", nil, 200, "no-store"},
			{"GET", "/v1/nowhere", "", nil, 404, "no-store"},
			{"GET", "/s/" + ingest.NewToken(), "", nil, 404, "no-store"},
			{"GET", "/static/survey.css", "", nil, 200, "public, max-age=3600"},
		} {
			req, _ := http.NewRequest(c.method, e.url+c.path, bytes.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			check(t, c, resp)
			if strings.HasPrefix(c.path, "/s/") && resp.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("the survey page lost its Content-Security-Policy")
			}
		}
	})
	t.Run("Admin", func(t *testing.T) {
		for _, c := range []call{
			{"GET", "/v1/orgs/acme/mail-failures", adminToken, nil, 200, "no-store"},
			{"GET", "/v1/orgs/acme/mail-failures", "", nil, 401, "no-store"},
			{"POST", "/v1/orgs/acme/roster", adminToken, []byte("x"), 415, "no-store"},
			{"GET", "/v1/nowhere", adminToken, nil, 404, "no-store"},
		} {
			req := httptest.NewRequest(c.method, c.path, bytes.NewReader(c.body))
			if c.auth != "" {
				req.Header.Set("Authorization", "Bearer "+c.auth)
			}
			resp, err := admin.App().Test(req, 15000)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			check(t, c, resp)
		}
	})
}
