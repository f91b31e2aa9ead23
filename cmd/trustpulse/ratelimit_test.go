package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestRateLimits: forged survey links and wrong tokens are limited per
// client (issue 12, item 6: 2,000 forged links at ~940/s all got 404). Past
// its burst of failures a client gets 429 problem+json with Retry-After on
// every request; successful requests spend nothing; behind a trusted proxy
// each client address has its own budget.
func TestRateLimits(t *testing.T) {
	cfg := testConfig(t)
	cfg.FailureRate, cfg.FailureBurst, cfg.TrustedProxyHeader = 0.01, 5, "X-Forwarded-For"
	cfg.AdminToken = strings.Repeat("a", 40)
	m, err := Open(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Admin.KeepCohortsForTest(true) // one invitation is all this needs
	m.Start()
	t.Cleanup(func() { _ = m.Close() })
	analyst := authorize(t, m, schemas.RoleAnalyst)
	forged := ingest.NewToken()
	openWave(t, m)
	links, err := m.Admin.IssueInvitations(context.Background(), "acme", "w1", []schemas.Cohort{{Department: "Sales", Team: "s", Location: "Berlin", TenureBand: "1-2y"}})
	if err != nil {
		t.Fatal(err)
	}

	do := func(method, url, client, token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("X-Forwarded-For", client)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, tc := range []struct {
		name     string
		fail, ok func(client string) *http.Response
		failWant int
	}{
		{"survey links", func(cl string) *http.Response { return do(http.MethodGet, m.IngestURL+"/s/"+forged, cl, "") },
			func(cl string) *http.Response { return do(http.MethodGet, m.IngestURL+"/s/"+links[0], cl, "") }, http.StatusNotFound},
		{"query API", func(cl string) *http.Response {
			return do(http.MethodGet, m.QueryURL+"/v1/orgs/acme/waves", cl, "tp_wrong")
		},
			func(cl string) *http.Response {
				return do(http.MethodGet, m.QueryURL+"/v1/orgs/acme/waves", cl, analyst)
			}, http.StatusUnauthorized},
		{"admin API", func(cl string) *http.Response {
			return do(http.MethodGet, m.AdminURL+"/v1/orgs/acme/mail-failures", cl, "wrong")
		}, nil, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Successes spend nothing.
			if tc.ok != nil {
				for range 20 {
					if resp := tc.ok("10.0.0.1"); resp.StatusCode != http.StatusOK {
						t.Fatalf("a good request: %d", resp.StatusCode)
					}
				}
			}
			for i := range cfg.FailureBurst {
				if resp := tc.fail("10.0.0.1"); resp.StatusCode != tc.failWant {
					t.Fatalf("failure %d within the burst: %d, want %d", i+1, resp.StatusCode, tc.failWant)
				}
			}
			resp := tc.fail("10.0.0.1")
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
				!strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
				t.Fatalf("past the burst: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
			}
			if tc.ok != nil {
				if resp := tc.ok("10.0.0.1"); resp.StatusCode != http.StatusTooManyRequests {
					t.Fatalf("a good request from the limited client: %d, want 429", resp.StatusCode)
				}
			}
			// Another client has its own budget.
			if resp := tc.fail("10.0.0.2"); resp.StatusCode != tc.failWant {
				t.Fatalf("another client: %d, want %d", resp.StatusCode, tc.failWant)
			}
		})
	}
}
