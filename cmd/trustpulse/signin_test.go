package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/mailsink"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// signInRoster has two managers: alice leads six engineers, enough for
// her team's result to be served; bob leads three salespeople, too few.
// The five small cohorts (alice, bob, bob's three) share the fully
// generalised cohort, so alice's engineers keep their line.
func signInRoster() string {
	var b strings.Builder
	add := func(id, dept, team, manager string) {
		fmt.Fprintf(&b, "%s,%s@acme.example,%s,%s,%s,Berlin,%s,2023-03-01\n", id, id, id, dept, team, manager)
	}
	add("alice", "Eng", "eng-a", "")
	add("bob", "Sales", "sales-b", "")
	for i := 1; i <= 6; i++ {
		add(fmt.Sprintf("a-%d", i), "Eng", "eng-a", "alice")
	}
	for i := 1; i <= 3; i++ {
		add(fmt.Sprintf("b-%d", i), "Sales", "sales-b", "bob")
	}
	return b.String()
}

const signInPeople = 11

// sealSignInWave invites the roster, everyone answers, and the wave is
// closed (the mixer seals it).
func sealSignInWave(t *testing.T, m *Main) {
	t.Helper()
	openWave(t, m)
	links := inviteByEmail(t, m, signInRoster(), signInPeople)
	for _, link := range links {
		submit(t, m, link[strings.LastIndex(link, "/")+1:], map[string]int{"trust-a": 4, "trust-b": 3, "auto": 2, "moti": 4, "enps": 7})
	}
	if err := m.Admin.CloseWave(context.Background(), "acme", "w1"); err != nil {
		t.Fatal(err)
	}
}

// resultsEmails waits until the notifier has acked every WaveSealed and
// the outbox is empty (every queued email sent), then returns the
// "results are ready" emails in the sink: recipient → sign-in links.
func resultsEmails(t *testing.T, m *Main) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		done, err := notifierDone(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		depth, err := m.Postman.Depth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if done && depth == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the notifier never finished (done %v, outbox %d)", done, depth)
		case <-time.After(100 * time.Millisecond):
		}
	}
	out := map[string][]string{}
	for _, ml := range sinkMails(t, m) {
		if ml.subject != "Your team's results are ready" {
			continue
		}
		link := mailsink.SignInLink(ml.raw)
		if link == "" {
			t.Fatalf("a results email without a sign-in link:\n%s", ml.raw)
		}
		out[ml.to] = append(out[ml.to], link)
	}
	return out
}

// notifierDone reports whether the notifier's consumer has been delivered
// the wave's WaveSealed and has acked it.
func notifierDone(ctx context.Context, m *Main) (bool, error) {
	c, err := m.Stack.JS.Consumer(ctx, schemas.EventStream, schemas.NotifierConsumer)
	if err != nil {
		return false, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return false, err
	}
	return info.Delivered.Consumer > 0 && info.NumPending == 0 && info.NumAckPending == 0, nil
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func fetch(t *testing.T, url string, cookies ...*http.Cookie) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// linkBrowser is one browser (or mail scanner) following a sign-in link:
// its own cookies, no redirects followed.
type linkBrowser struct {
	t      *testing.T
	client *http.Client
	csrf   string
}

func newLinkBrowser(t *testing.T) *linkBrowser {
	jar, _ := cookiejar.New(nil)
	return &linkBrowser{t: t, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// open GETs the link, as opening it from the email (or a scanner) does,
// and keeps the form's CSRF token of a page that has one.
func (b *linkBrowser) open(link string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.client.Get(link)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := planCSRF.FindStringSubmatch(string(body)); m != nil {
		b.csrf = m[1]
	}
	return resp, string(body)
}

// press posts the page's form to the link with the given request headers
// (the browser's Sec-Fetch-Site, Origin).
func (b *linkBrowser) press(link string, headers map[string]string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, link, strings.NewReader(url.Values{"csrf": {b.csrf}}.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// sameSite are the headers of a form posted from the link's own page.
var sameSite = map[string]string{"Sec-Fetch-Site": "same-origin"}

// sessionCookie is the dashboard session a response set, or nil.
func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "tp_session" && c.Value != "" {
			return c
		}
	}
	return nil
}

// signInWithLink opens the link and presses its button, as a manager does,
// and returns the session it set; it fails the test unless that signs in.
func signInWithLink(t *testing.T, link string) *http.Cookie {
	t.Helper()
	b := newLinkBrowser(t)
	if resp, page := b.open(link); resp.StatusCode != http.StatusOK {
		t.Fatalf("open %s: %d %s", link, resp.StatusCode, page)
	}
	resp, page := b.press(link, sameSite)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/team" {
		t.Fatalf("press Sign in: %d to %q, want 303 to /dashboard/team: %s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	session := sessionCookie(resp)
	if session == nil {
		t.Fatal("signing in set no session cookie")
	}
	return session
}

// TestSignInLink: a sealed wave emails exactly the manager whose team's
// result is served (alice) and not the one whose team is below the
// threshold (bob). Opening her link uses nothing, however often (a mail
// scanner's GETs); a POST from another site or not from the link's page
// is refused and uses nothing either; the page's button signs her in
// once, as a manager, and the link is 410 after, for a GET and a POST; an
// unknown or malformed link is 404.
func TestSignInLink(t *testing.T) {
	m := mustMain(t, nil)
	sealSignInWave(t, m)
	emails := resultsEmails(t, m)
	if len(emails) != 1 || len(emails["alice@acme.example"]) != 1 {
		t.Fatalf("results emails %v, want exactly one, to alice", emails)
	}
	link := emails["alice@acme.example"][0]
	if !strings.HasPrefix(link, m.QueryURL+"/dashboard/signin/") {
		t.Fatalf("link %s, want one under %s/dashboard/signin/", link, m.QueryURL)
	}

	// A mail scanner fetches the link twice before alice opens it.
	scanner := newLinkBrowser(t)
	for i := range 2 {
		resp, page := scanner.open(link)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "<h1>Sign in to your team's results</h1>") || !strings.Contains(page, `<form method="post"`) {
			t.Fatalf("scanner's GET %d: %d %s", i+1, resp.StatusCode, page)
		}
		if sessionCookie(resp) != nil {
			t.Fatalf("scanner's GET %d set a session", i+1)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("the page's CSP %q", csp)
		}
		if rp := resp.Header.Get("Referrer-Policy"); rp != "same-origin" {
			t.Errorf("the page's Referrer-Policy %q, want same-origin (the address goes to no other site)", rp)
		}
	}

	// Posts that must not sign in, and must not use the link: from another
	// site (Sec-Fetch-Site, or only an Origin in older browsers), and one
	// not made from the link's page (no form token, no cookie).
	alice := newLinkBrowser(t)
	if resp, _ := alice.open(link); resp.StatusCode != http.StatusOK {
		t.Fatalf("alice opens the link: %d", resp.StatusCode)
	}
	refused := []struct {
		name    string
		b       *linkBrowser
		headers map[string]string
	}{
		{"cross-site", alice, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
		{"same-site other origin", alice, map[string]string{"Sec-Fetch-Site": "same-site"}},
		{"other origin", alice, map[string]string{"Origin": "https://evil.example"}},
		{"not from the page", newLinkBrowser(t), sameSite},
	}
	for _, r := range refused {
		resp, page := r.b.press(link, r.headers)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "your link was not used") || sessionCookie(resp) != nil {
			t.Errorf("%s POST: %d (session %v), want 403 and no session: %s", r.name, resp.StatusCode, sessionCookie(resp), page)
		}
	}
	if resp, _ := scanner.open(link); resp.StatusCode != http.StatusOK {
		t.Fatalf("the link after the refused posts: %d, want 200 (unused)", resp.StatusCode)
	}

	// Alice presses the button: signed in, once.
	resp, page := alice.press(link, sameSite)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard/team" {
		t.Fatalf("alice presses Sign in: %d to %q, want 303 to /dashboard/team: %s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	session := sessionCookie(resp)
	if session == nil {
		t.Fatal("signing in set no session cookie")
	}
	// The session is a signed-in one: the dashboard does not send it to
	// the sign-in page, as it does without it.
	if r := fetch(t, m.QueryURL+"/dashboard/"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("without a session: %d, want 303 to the sign-in", r.StatusCode)
	}
	if r := fetch(t, m.QueryURL+"/dashboard/team", session); r.StatusCode != http.StatusOK {
		t.Fatalf("the team page with the link's session: %d (to %s), want 200", r.StatusCode, r.Header.Get("Location"))
	}

	// The scanner's page, from before the use, posts in vain; the link is
	// 410 to a GET too.
	if resp, page := scanner.press(link, sameSite); resp.StatusCode != http.StatusGone || sessionCookie(resp) != nil || !strings.Contains(page, "used already") {
		t.Fatalf("a second POST: %d, want 410: %s", resp.StatusCode, page)
	}
	if resp, page := newLinkBrowser(t).open(link); resp.StatusCode != http.StatusGone || !strings.Contains(page, "used already") {
		t.Fatalf("a GET after use: %d, want 410: %s", resp.StatusCode, page)
	}

	unknown := m.QueryURL + "/dashboard/signin/" + strings.Repeat("A", 43)
	for _, u := range []string{unknown, m.QueryURL + "/dashboard/signin/short", m.QueryURL + "/dashboard/signin/" + strings.Repeat("%21", 43)} {
		if r := fetch(t, u); r.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", u, r.StatusCode)
		}
	}
	// A well-made post to an unknown link: 404 as well.
	if resp, _ := scanner.press(unknown, sameSite); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST %s: %d, want 404", unknown, resp.StatusCode)
	}
}

// TestSignInNotifierCrash kills the notifier after alice's email is in the
// outbox and before the marker and the ack, and runs a new one: the
// WaveSealed is delivered again and the email is queued again under the
// same message id, so alice still gets one email, whose link works.
func TestSignInNotifierCrash(t *testing.T) {
	m := mustMain(t, nil)
	var once sync.Once
	killed := make(chan struct{})
	m.Notifier.SetHook(func(org, wave, person string, step query.NotifyStep) error {
		if step != query.NotifyQueued {
			return nil
		}
		var kill bool
		once.Do(func() { kill = true; close(killed) })
		if kill {
			return errors.New("killed after the outbox publish")
		}
		return nil
	})
	sealSignInWave(t, m)
	select {
	case <-killed:
	case <-time.After(2 * time.Minute):
		t.Fatal("the notifier never queued an email")
	}

	// The restarted notifier, as a new process would run it.
	restarted := query.NewNotifier(m.Query, m.Stack.JS, m.QueryURL, testenv.Logger(t))
	restarted.AckWait = time.Second
	var mu sync.Mutex
	var steps []query.NotifyStep
	restarted.SetHook(func(org, wave, person string, step query.NotifyStep) error {
		mu.Lock()
		defer mu.Unlock()
		steps = append(steps, step)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = restarted.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	emails := resultsEmails(t, m)
	mu.Lock()
	redone := strings.Join(func() []string {
		var s []string
		for _, st := range steps {
			s = append(s, string(st))
		}
		return s
	}(), ",")
	mu.Unlock()
	if redone != "minted,queued,marked" {
		t.Fatalf("the restarted notifier did %q, want alice's email queued again", redone)
	}
	if len(emails) != 1 || len(emails["alice@acme.example"]) != 1 {
		t.Fatalf("results emails %v after a crash and restart, want exactly one, to alice", emails)
	}
	signInWithLink(t, emails["alice@acme.example"][0])
}

// TestSignInGuardSuppressed: a subtree of at least k respondents that the
// guard suppresses gets no email. The head's subtree (a lead, another
// direct report and the lead's five engineers) is served first, as the
// larger; the lead's five would then leave the head's other two as the
// difference, so the guard refuses it, and the lead is not emailed though
// five answered below them. Cohorts are planted with their lines.
func TestSignInGuardSuppressed(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	openWave(t, m)
	var b strings.Builder
	add := func(id, dept, manager string) {
		fmt.Fprintf(&b, "%s,%s@acme.example,%s,%s,%s-team,Berlin,%s,2023-03-01\n", id, id, id, dept, dept, manager)
	}
	add("hd", "Eng", "")
	add("ld", "Eng", "hd")
	add("xx", "Eng", "hd")
	for i := 1; i <= 5; i++ {
		add(fmt.Sprintf("eng-%d", i), "Eng", "ld")
		add(fmt.Sprintf("ops-%d", i), "Ops", "")
	}
	rows, err := ingest.ParseRoster(strings.NewReader(strings.Join(ingest.RosterColumns, ",")+"\n"+b.String()), time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Admin.ImportRoster(ctx, "acme", rows, nil); err != nil {
		t.Fatal(err)
	}
	person := personIDs(t, m)
	hd, ld := person["hd"], person["ld"]
	var cohorts []schemas.Cohort
	plant := func(n int, dept string, line ...string) {
		for range n {
			c := schemas.Cohort{Department: dept, Team: dept + "-team", Location: "Berlin", TenureBand: "1-2y", Managers: line}
			if len(line) > 0 {
				c.Manager = line[len(line)-1]
			}
			cohorts = append(cohorts, c)
		}
	}
	plant(1, "Eng")         // hd
	plant(2, "Eng", hd)     // ld, xx
	plant(5, "Eng", hd, ld) // the engineers
	plant(5, "Ops")
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", cohorts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		submit(t, m, tok, map[string]int{"trust-a": 4, "trust-b": 3, "auto": 2, "moti": 4, "enps": 7})
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	emails := resultsEmails(t, m)
	if len(emails) != 1 || len(emails["hd@acme.example"]) != 1 {
		t.Fatalf("results emails %v, want exactly one, to the head", emails)
	}
	// The notifier recorded nothing; asked in the same order, the guard
	// decides the same: the head's subtree is served, the lead's (five
	// respondents) is not.
	if r := waitScores(t, m, "?reports_to="+hd); r.Respondents.N == nil || *r.Respondents.N != 7 {
		t.Errorf("the head's subtree: %+v, want 7 served", r.Respondents)
	}
	if r := waitScores(t, m, "?reports_to="+ld); r.Respondents.N != nil {
		t.Errorf("the lead's subtree served (%d) next to the head's: a difference of 2", *r.Respondents.N)
	}
}

// TestSignInLinkRateLimit: links that do not exist spend the client's
// failure budget whether they are opened or posted to; past it, the real
// link is refused to that client for both methods (a 429 page) and is not
// used, so another client still signs in with it.
func TestSignInLinkRateLimit(t *testing.T) {
	cfg := testConfig(t)
	cfg.FailureRate, cfg.FailureBurst, cfg.TrustedProxyHeader = 0.01, 5, "X-Forwarded-For"
	m, err := Open(context.Background(), cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	t.Cleanup(func() { _ = m.Close() })
	token, _, err := query.NewSignIns(m.Stack.JS, time.Now).Mint(context.Background(), "acme", "w1", "7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01")
	if err != nil {
		t.Fatal(err)
	}
	link, unknown := "/signin/"+token, "/signin/"+strings.Repeat("A", 43)
	from := func(client string, extra ...string) map[string]string {
		h := map[string]string{"X-Forwarded-For": client}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = extra[i+1]
		}
		return h
	}
	limited := func(resp *http.Response, page, what string) {
		t.Helper()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(page, "sign-in links that do not exist") || !strings.Contains(page, "Please wait "+resp.Header.Get("Retry-After")+" seconds") || sessionCookie(resp) != nil {
			t.Fatalf("%s: %d Retry-After %q, want the 429 page and no session:\n%s", what, resp.StatusCode, resp.Header.Get("Retry-After"), page)
		}
	}
	// open GETs the real link from a client and returns its form's token.
	open := func(d *dashClient, client string) string {
		t.Helper()
		resp, page := d.do(http.MethodGet, link, nil, from(client))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("open the link from %s: %d %s", client, resp.StatusCode, page)
		}
		return csrfOf(t, page)
	}

	// Opened unknown links spend the budget.
	d1 := newDashClient(t, m)
	csrf := open(d1, "10.0.0.1")
	for i := range 5 {
		if resp, _ := d1.do(http.MethodGet, unknown, nil, from("10.0.0.1")); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("unknown link %d: %d, want 404", i+1, resp.StatusCode)
		}
	}
	resp, page := d1.do(http.MethodGet, unknown, nil, from("10.0.0.1"))
	limited(resp, page, "an unknown link past the budget")
	resp, page = d1.do(http.MethodGet, link, nil, from("10.0.0.1"))
	limited(resp, page, "the real link opened past the budget")
	resp, page = d1.do(http.MethodPost, link, url.Values{"csrf": {csrf}}, from("10.0.0.1", "Sec-Fetch-Site", "same-origin"))
	limited(resp, page, "the real link posted past the budget")

	// Posted unknown links spend it too.
	d2 := newDashClient(t, m)
	csrf = open(d2, "10.0.0.2")
	for i := range 5 {
		if resp, _ := d2.do(http.MethodPost, unknown, url.Values{"csrf": {csrf}}, from("10.0.0.2", "Sec-Fetch-Site", "same-origin")); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("posted unknown link %d: %d, want 404", i+1, resp.StatusCode)
		}
	}
	resp, page = d2.do(http.MethodPost, link, url.Values{"csrf": {csrf}}, from("10.0.0.2", "Sec-Fetch-Site", "same-origin"))
	limited(resp, page, "the real link posted after posted unknown links")

	// The link was not used by the refused requests.
	d3 := newDashClient(t, m)
	csrf = open(d3, "10.0.0.3")
	resp, page = d3.do(http.MethodPost, link, url.Values{"csrf": {csrf}}, from("10.0.0.3", "Sec-Fetch-Site", "same-origin"))
	if resp.StatusCode != http.StatusSeeOther || sessionCookie(resp) == nil {
		t.Fatalf("another client signs in with the link: %d %s", resp.StatusCode, page)
	}
}
