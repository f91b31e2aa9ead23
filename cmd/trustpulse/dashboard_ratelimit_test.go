package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestDashboardSignInRateLimit: failed sign-ins of the dashboards spend
// the client's budget of failures, the same one as the query API's wrong
// tokens (issue 12, item 6). Past it a person gets 429 with Retry-After
// and an HTML page saying when to try again, not JSON, on every dashboard
// request; a good sign-in spends nothing; another client signs in.
func TestDashboardSignInRateLimit(t *testing.T) {
	cfg := testConfig(t)
	cfg.FailureRate, cfg.FailureBurst, cfg.TrustedProxyHeader = 0.01, 5, "X-Forwarded-For"
	m, err := Open(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() { _ = m.Close() })
	token, _ := tokenFor(t, m, "acme", schemas.RoleAnalyst)

	// signIn posts the sign-in form from client with a fresh CSRF token.
	signIn := func(d *dashClient, client, token string) (*http.Response, string) {
		t.Helper()
		resp, page := d.do(http.MethodGet, "/login", nil, map[string]string{"X-Forwarded-For": client})
		if resp.StatusCode != http.StatusOK {
			return resp, page
		}
		return d.do(http.MethodPost, "/login", url.Values{"csrf": {csrfOf(t, page)}, "token": {token}},
			map[string]string{"Sec-Fetch-Site": "same-origin", "X-Forwarded-For": client})
	}
	mustBeLimitedPage := func(resp *http.Response, page, what string) {
		t.Helper()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(page, "Too many attempts") || !strings.Contains(page, "Please wait "+resp.Header.Get("Retry-After")+" seconds") {
			t.Fatalf("%s: %d Retry-After %q %s\n%s", what, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), page)
		}
	}

	d := newDashClient(t, m)
	for range 10 {
		if resp, _ := signIn(d, "10.0.0.1", token); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("a good sign-in: %d, want 303", resp.StatusCode)
		}
	}
	for i := range cfg.FailureBurst {
		if resp, page := signIn(d, "10.0.0.1", "tp_wrong"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "That token is not valid") {
			t.Fatalf("failed sign-in %d within the burst: %d, want 401 and the sign-in page", i+1, resp.StatusCode)
		}
	}
	resp, page := signIn(d, "10.0.0.1", "tp_wrong")
	mustBeLimitedPage(resp, page, "the sign-in page past the burst")
	resp, page = d.do(http.MethodPost, "/login", url.Values{"csrf": {"x"}, "token": {token}},
		map[string]string{"Sec-Fetch-Site": "same-origin", "X-Forwarded-For": "10.0.0.1"})
	mustBeLimitedPage(resp, page, "a sign-in with a good token past the burst")
	// The same budget as the API's.
	if status, body := getAsFrom(t, token, m.QueryURL+"/v1/orgs/acme/waves", "10.0.0.1"); status != http.StatusTooManyRequests || !strings.Contains(body, "rate_limited") {
		t.Fatalf("the API for the client limited by its sign-ins: %d %s, want 429 rate_limited", status, body)
	}
	// A client that spent its budget on the API's wrong tokens is limited
	// at the sign-in too.
	for range cfg.FailureBurst {
		if status, _ := getAsFrom(t, "tp_wrong", m.QueryURL+"/v1/orgs/acme/waves", "10.0.0.3"); status != http.StatusUnauthorized {
			t.Fatalf("a wrong token of the API: %d, want 401", status)
		}
	}
	resp, page = signIn(newDashClient(t, m), "10.0.0.3", token)
	mustBeLimitedPage(resp, page, "the sign-in after the API's failures")

	if resp, _ := signIn(newDashClient(t, m), "10.0.0.2", token); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another client's sign-in: %d, want 303", resp.StatusCode)
	}
}

// getAsFrom is getAs from a client address behind the trusted proxy.
func getAsFrom(t *testing.T, token, url, client string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Forwarded-For", client)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	return resp.StatusCode, b.String()
}
