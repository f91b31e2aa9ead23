package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// dashClient is a browser-like client of the dashboard: a cookie jar, no
// redirects followed.
type dashClient struct {
	t    *testing.T
	base string
	http *http.Client
}

func newDashClient(t *testing.T, m *Main) *dashClient {
	jar, _ := cookiejar.New(nil)
	return &dashClient{t: t, base: m.QueryURL + "/dashboard", http: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (d *dashClient) do(method, path string, form url.Values, header map[string]string) (*http.Response, string) {
	d.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, d.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in the page:\n%s", page)
	}
	return m[1]
}

// signIn posts the sign-in form with a fresh CSRF token.
func (d *dashClient) signIn(token string) (*http.Response, string) {
	d.t.Helper()
	_, page := d.do(http.MethodGet, "/login", nil, nil)
	return d.do(http.MethodPost, "/login", url.Values{"csrf": {csrfOf(d.t, page)}, "token": {token}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
}

// TestDashboardSessions: the sign-in exchanges a valid token for a signed,
// HttpOnly, SameSite session cookie (Secure over HTTPS); forged, foreign,
// stale or cross-site forms do nothing; a revoked token ends the session.
func TestDashboardSessions(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	token, id := tokenFor(t, m, "acme", schemas.RoleAnalyst)

	d := newDashClient(t, m)
	if resp, _ := d.do(http.MethodGet, "", nil, nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/login" {
		t.Fatalf("signed out: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A wrong token: 401, the page says why and does not repeat the token.
	if resp, page := d.signIn("tp_" + strings.Repeat("A", 43)); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "not valid") || strings.Contains(page, strings.Repeat("A", 43)) {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	// A form without its CSRF token, or from another site, does nothing.
	if resp, _ := d.do(http.MethodPost, "/login", url.Values{"token": {token}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in without CSRF token: %d", resp.StatusCode)
	}
	_, page := d.do(http.MethodGet, "/login", nil, nil)
	if resp, _ := d.do(http.MethodPost, "/login", url.Values{"csrf": {csrfOf(t, page)}, "token": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site sign-in: %d", resp.StatusCode)
	}

	resp, _ := d.signIn(token)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard" {
		t.Fatalf("sign-in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "tp_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure || session.Path != "/dashboard" || strings.Contains(session.Value, token) {
		t.Fatalf("session cookie %+v", session)
	}
	resp, page = d.do(http.MethodGet, "", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "acme · analyst") {
		t.Fatalf("overview: %d", resp.StatusCode)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "Cache-Control"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}

	// A tampered cookie is no session.
	forged := newDashClient(t, m)
	u, _ := url.Parse(m.QueryURL + "/dashboard")
	forged.http.Jar.SetCookies(u, []*http.Cookie{{Name: "tp_session", Value: session.Value[:len(session.Value)-2] + "xx", Path: "/dashboard"}})
	if resp, _ := forged.do(http.MethodGet, "", nil, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("forged session: %d", resp.StatusCode)
	}

	// Over HTTPS (behind a proxy) the cookie is Secure.
	https := newDashClient(t, m)
	_, page = https.do(http.MethodGet, "/login", nil, map[string]string{"X-Forwarded-Proto": "https"})
	resp, _ = https.do(http.MethodPost, "/login", url.Values{"csrf": {csrfOf(t, page)}, "token": {token}},
		map[string]string{"X-Forwarded-Proto": "https", "Sec-Fetch-Site": "same-origin"})
	if c := resp.Cookies(); len(c) == 0 || !c[0].Secure {
		t.Fatalf("session cookie over HTTPS: %+v", c)
	}

	// Sign-out needs the session's CSRF token.
	if resp, _ := d.do(http.MethodPost, "/logout", url.Values{"csrf": {"forged"}}, map[string]string{"Sec-Fetch-Site": "same-origin"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out with a forged CSRF token: %d", resp.StatusCode)
	}
	if resp, _ := d.do(http.MethodGet, "", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("a forged sign-out ended the session: %d", resp.StatusCode)
	}

	// Revoking the token ends the session at the next page.
	if err := m.Admin.RevokeToken(ctx, "acme", id); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, _ := d.do(http.MethodGet, "", nil, nil)
		if resp.StatusCode == http.StatusSeeOther && strings.Contains(resp.Header.Get("Location"), "revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session outlived its revoked token")
		}
	}
}
