package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/deploy/localch"
	"github.com/trustpulse/trustpulse/deploy/mailsink"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/schemas"
)

// Red-team findings against manager groups and comment replies, kept as
// regressions: each test failed while its finding stood and asserts what
// the promise of docs/anonymity.md (sections 3, 11, 12) requires.

// TestRedReplyOracleSuppressedList: the reply endpoint is a membership
// oracle for lists the guard suppresses. Reply checks that the comment
// matches the asked filter (404 comment_not_found) before it asks the
// guard whether that list is served (403 comments_suppressed), so for a
// list the guard refuses, the status tells whether a comment of the served
// organisation-wide list was written inside that small group. Here Ops
// holds a single respondent (the only one who wrote in Ops): its list is
// suppressed, yet an analyst who probes every comment of the org-wide
// list with ?department=Ops learns which comment is that one respondent's.
// Nothing is published by the probes, so they cost nothing. The promise:
// a refused list's answer may depend on respondent counts, never on which
// comment is asked about.
func TestRedReplyOracleSuppressedList(t *testing.T) {
	m := mustMain(t, nil)
	analyst, _ := tokenFor(t, m, "acme", schemas.RoleAnalyst)
	// 12 Sales and 6 Ops invited; every Sales person answers, two with a
	// comment; one Ops person answers, with a comment; the other five do
	// not respond. Org-wide: 13 respondents (>= 10), the list is served;
	// Ops: 1 respondent, its list is not.
	tokens := openReplyWave(t, m, 12, 6)
	submitForLink(t, m, tokens[0], "sales words one")
	submitForLink(t, m, tokens[1], "sales words two")
	for i := 2; i < 12; i++ {
		submit(t, m, tokens[i], map[string]int{"trust-a": 4})
	}
	submitForLink(t, m, tokens[12], "the only ops words")
	if err := m.Admin.CloseWave(context.Background(), "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitW1Released(t, m, analyst)
	list := apiComments(t, m, analyst, "")
	if list.Suppressed || len(list.Items) != 3 {
		t.Fatalf("the org-wide list: suppressed %v, %d items; want it served with 3", list.Suppressed, len(list.Items))
	}
	if ops := apiComments(t, m, analyst, "&department=Ops"); !ops.Suppressed {
		t.Fatal("the Ops list (one respondent) is served: the guard itself is broken, not the oracle")
	}
	before := streamCount(t, m, schemas.CommentRepliedType)
	answers := map[string]string{} // comment text -> status and code of a probe
	for _, it := range list.Items {
		status, body, _ := postAs(t, analyst, m.QueryURL+"/v1/orgs/acme/comments/"+it.ID+"/replies?department=Ops",
			"application/json", `{"text":"probe"}`)
		code := "?"
		for _, c := range []string{"comment_not_found", "comments_suppressed"} {
			if strings.Contains(body, c) {
				code = c
			}
		}
		answers[it.Text] = http.StatusText(status) + " " + code
	}
	if n := streamCount(t, m, schemas.CommentRepliedType); n != before {
		t.Fatalf("%d replies published by probes of a suppressed list", n-before)
	}
	ops := answers["the only ops words"]
	for text, a := range answers {
		if a != ops {
			t.Errorf("probing the suppressed Ops list: %q answers %s, %q answers %s: the status tells which comment was written by Ops's single respondent",
				"the only ops words", ops, text, a)
		}
	}
}

// defaultsCH starts a ClickHouse server of its own with the settings a
// stock server ships with (clickhouse/clickhouse-server, as
// deploy/compose runs it): every query logged to system.query_log and the
// server's log at trace level. The shared test server turns both off,
// which hides what a deployment stores. It returns the server's address
// and directory, with a migrated database.
func defaultsCH(t *testing.T) (addr, dir, database string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "config.d"), 0o750); err != nil {
		t.Fatal(err)
	}
	const stock = `<?xml version="1.0"?>
<yandex>
    <logger><level>trace</level></logger>
    <query_log><database>system</database><table>query_log</table><flush_interval_milliseconds>500</flush_interval_milliseconds></query_log>
    <profiles><default><log_queries>1</log_queries></default></profiles>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.d", "stock.xml"), []byte(stock), 0o640); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := localch.Start(ctx, dir, localch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	cfg := deploy.ClickHouseConfig{Addr: srv.Addr, Database: "red", User: "default"}
	conn, err := deploy.OpenClickHouse(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var logQueries string
	if err := conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'log_queries'").Scan(&logQueries); err != nil || logQueries != "1" {
		t.Fatalf("the stock settings did not apply: log_queries %q, %v", logQueries, err)
	}
	if err := schemas.Migrate(ctx, conn, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	return srv.Addr, dir, cfg.Database
}

// TestRedReplyOracleReportsTo: the reply oracle of
// TestRedReplyOracleSuppressedList through the reporting tree, with a
// real roster import and invitation (generalisation in play). Of lead-1's
// five engineers only eng-1-1 responds, with a comment; the rest of the
// organisation responds, three of them with comments. The org-wide list
// is served; reports_to=lead-1 (one respondent) is not. Probing each
// comment of the org-wide list with ?reports_to=<lead-1> answers 403 for
// eng-1-1's comment and 404 for the others: lead-1 (or anyone who knows
// who in lead-1's team took part) learns which comment is eng-1-1's.
func TestRedReplyOracleReportsTo(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	analyst, _ := tokenFor(t, m, "acme", schemas.RoleAnalyst)
	if err := m.Admin.PublishSurvey(ctx, "acme", commentSurvey); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: "w1", SurveyID: "pulse-c", OpensAt: now.Add(-time.Minute), ClosesAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	rows, managerOf := managerRoster()
	inviteByEmail(t, m, rows, len(managerOf))
	tokenOf := mailedLinks(t, m)
	if len(tokenOf) != len(managerOf) {
		t.Fatalf("%d links for %d people", len(tokenOf), len(managerOf))
	}
	commenters := map[string]string{"eng-1-1": "words of eng-1-1", "eng-2-1": "words of eng-2-1", "eng-3-1": "words of eng-3-1", "sales-1": "words of sales-1"}
	for id := range managerOf {
		if managerOf[id] == "lead-1" && id != "eng-1-1" {
			continue // lead-1's other engineers do not respond
		}
		answers := map[string]any{"token": tokenOf[id], "answers": map[string]int{"trust-a": 3}}
		if words, ok := commenters[id]; ok {
			answers["comments"] = map[string]string{"better": words}
		}
		if status, body := postJSON(t, m.IngestURL+"/v1/responses", answers); status != http.StatusAccepted {
			t.Fatalf("submit %s: %d %s", id, status, body)
		}
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitW1Released(t, m, analyst)
	lead1 := personIDs(t, m)["lead-1"]
	list := apiComments(t, m, analyst, "")
	if list.Suppressed || len(list.Items) != len(commenters) {
		t.Fatalf("the org-wide list: suppressed %v, %d items; want it served with %d", list.Suppressed, len(list.Items), len(commenters))
	}
	if sub := apiComments(t, m, analyst, "&reports_to="+lead1); !sub.Suppressed {
		t.Fatal("reports_to=lead-1 (one respondent) is served: the guard itself is broken, not the oracle")
	}
	before := streamCount(t, m, schemas.CommentRepliedType)
	got := map[string]int{}
	for _, it := range list.Items {
		status, _, _ := postAs(t, analyst, m.QueryURL+"/v1/orgs/acme/comments/"+it.ID+"/replies?reports_to="+lead1,
			"application/json", `{"text":"probe"}`)
		got[it.Text] = status
	}
	if n := streamCount(t, m, schemas.CommentRepliedType); n != before {
		t.Fatalf("%d replies published by probes of a suppressed list", n-before)
	}
	for text, status := range got {
		if status != got["words of eng-1-1"] {
			t.Errorf("probing the suppressed list reports_to=lead-1: eng-1-1's comment answers %d, %q answers %d: the status tells which comment is eng-1-1's",
				got["words of eng-1-1"], text, status)
		}
	}
}

// TestRedReplyLinkGuessingIsFree: a reply link holds up to
// schemas.MaxReplyCapabilities capabilities, and a look-up spends the
// client's failure budget only when the whole link finds nothing. So a
// holder of one real link appends 19 guessed capabilities to it, gets 200
// every time, and guesses without limit: any hit shows another writer's
// comment and thread on the page, and lets the guesser answer in their
// name. 160 random bits make a hit unlikely, but the budget the doc
// promises ("failed look-ups spend the client's failure budget") is
// bypassed: the client below tries 19 x (burst + 5) unknown capabilities
// and is never limited, while a link of unknown capabilities alone is
// limited after burst attempts.
func TestRedReplyLinkGuessingIsFree(t *testing.T) {
	const burst = 60 // room for the polls of tokenFor and waitW1Released
	m := mustMainWith(t, nil, func(c *Config) { c.FailureRate, c.FailureBurst = 0.001, burst })
	analyst, _ := tokenFor(t, m, "acme", schemas.RoleAnalyst)
	tokens := openReplyWave(t, m, 12, 0)
	link := submitForLink(t, m, tokens[0], "my words")
	for _, tok := range tokens[1:] {
		submit(t, m, tok, map[string]int{"trust-a": 4})
	}
	if err := m.Admin.CloseWave(context.Background(), "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitW1Released(t, m, analyst)
	guessed := 0
	for range burst + 5 {
		u := link
		for range schemas.MaxReplyCapabilities - 1 {
			c, err := schemas.NewReplyCapability()
			if err != nil {
				t.Fatal(err)
			}
			u += "." + c
			guessed++
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			return // the guesses spend the budget: the finding is fixed
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("own link with guesses: %d", resp.StatusCode)
		}
	}
	t.Errorf("%d unknown capabilities looked up alongside one real one, never limited (burst %d)", guessed, burst)
	// The control: links of unknown capabilities alone are limited.
	for i := 0; ; i++ {
		c, err := schemas.NewReplyCapability()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(m.QueryURL + "/r/" + c)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
		if i > burst {
			t.Fatalf("forged links alone are not limited either (%d tried): the limiter is off, the test proves nothing", i)
		}
	}
}

// mailedLinks maps each invitee's employee id (the mail's To, before
// @acme.example) to the survey token of their invitation mail.
func mailedLinks(t *testing.T, m *Main) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ml := range sinkMails(t, m) {
		link := mailsink.Link(ml.raw)
		out[strings.TrimSuffix(ml.to, "@acme.example")] = link[strings.LastIndex(link, "/")+1:]
	}
	return out
}
