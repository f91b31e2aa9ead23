package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/trustpulse/trustpulse/schemas"
)

// managerCommentSurvey is e2eSurvey with a comment question.
var managerCommentSurvey = schemas.SurveyPublished{SurveyID: e2eSurvey.SurveyID, Title: e2eSurvey.Title,
	Questions: append(slices.Clone(e2eSurvey.Questions), schemas.Question{ID: "better", Text: "What would make work better?", Dimension: schemas.Comment})}

// managerTokenOf issues a manager's token bound to an employee of the
// roster and waits until the API takes it.
func managerTokenOf(t *testing.T, m *Main, employee string) string {
	t.Helper()
	token, _, who, err := m.Admin.IssueManagerToken(context.Background(), "acme", employee, "manager dashboard test")
	if err != nil {
		t.Fatal(err)
	}
	if who != employee { // managerRoster names people by their id
		t.Fatalf("token issued for %q, want %q", who, employee)
	}
	waitTokenUsable(t, m, "acme", token)
	return token
}

// sessionClient is an HTTP client with the browser's session cookie, to
// read a page's status and to post forms as the page would (same origin).
type sessionClient struct {
	t      *testing.T
	base   string
	cookie *http.Cookie
}

func browserSession(t *testing.T, b context.Context, m *Main) sessionClient {
	t.Helper()
	cookies, err := chromedp.Call(b, network.GetCookies, network.GetCookiesParams{URLs: []string{m.QueryURL + "/dashboard"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cookies.Cookies {
		if c.Name == "tp_session" {
			return sessionClient{t: t, base: m.QueryURL, cookie: &http.Cookie{Name: c.Name, Value: c.Value}}
		}
	}
	t.Fatal("the browser holds no session cookie")
	return sessionClient{}
}

func (s sessionClient) do(method, path string, form url.Values) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		s.t.Fatal(err)
	}
	req.AddCookie(s.cookie)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// follow opens a link of the page by the keyboard: focused, then Enter.
func follow(t *testing.T, b context.Context, sel, path string) {
	t.Helper()
	if err := chromedp.Do(b, chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitPath(t, b, path)
}

// selectOptions is the labels of a select's options, and the selected one.
func selectOptions(t *testing.T, b context.Context, sel string) ([]string, string) {
	t.Helper()
	labels, err := chromedp.Run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll(`+"`"+sel+` option`+"`"+`)].map(o => o.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	chosen, err := chromedp.Run(b, chromedp.Evaluate[string](`(document.querySelector(`+"`"+sel+` option:checked`+"`"+`) || {}).textContent || ""`))
	if err != nil {
		t.Fatal(err)
	}
	return labels, chosen
}

// TestManagerRepliesOnDashboard: in headless Chromium, with the keyboard
// alone, the head of engineering signs in with their manager token, opens
// the comments page from the navigation, finds their team's comments (and
// no other's) with no filter but their own teams to choose, and replies to
// one; the comment's writer reads the reply, from "Manager", on their
// private reply link. Replies the manager may not send are refused with a
// page (another team's list, a comment outside the list, a list too small
// to show, the organisation's) and publish nothing. axe-core runs on the
// comments page and the reply link.
func TestManagerRepliesOnDashboard(t *testing.T) {
	const words = "Planning meetings run long and decide nothing."
	const salesWords = "The sales targets change every month."
	o := newManagerOrgWith(t, managerCommentSurvey, map[string]string{
		"eng-2-3": words, "eng-4-1": "More time for tests, please.", "lead-3": "Hiring is too slow.", "sales-2": salesWords,
	})
	m, id := o.m, o.personOf
	head := managerTokenOf(t, m, "head-eng")
	b := browser(t)
	base := m.QueryURL + "/dashboard"
	signInTo(t, b, base, head, "/dashboard/team")
	follow(t, b, `nav a[href="/dashboard/comments"]`, "/dashboard/comments")

	// The team's list, as the API serves it to the manager.
	var commentID string
	for _, it := range apiComments(t, m, head, "&reports_to="+id["head-eng"]).Items {
		if it.Text == words {
			commentID = it.ID
		}
	}
	if commentID == "" {
		t.Fatal("the comment is not in the team's list")
	}
	if err := chromedp.Do(b, chromedp.WaitVisible(chromedp.CSS("#c-"+commentID))); err != nil {
		t.Fatal(err)
	}
	page, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page, salesWords) || !strings.Contains(page, "Hiring is too slow.") {
		t.Errorf("the manager's comments page shows another team's comment or misses their own: %s", page)
	}
	labels, chosen := selectOptions(t, b, "#f-scope")
	if chosen != "All reports of you (head-eng)" || slices.Contains(labels, "The organisation overall") || len(labels) != 12 {
		t.Errorf("whose comments: %v with %q chosen, want the head's and each lead's teams, the head's whole team chosen", labels, chosen)
	}
	for _, sel := range []string{"#f-department", "#f-team", "#f-location", "#f-tenure_band", "#group_by"} {
		if n, _ := chromedp.Run(b, chromedp.Evaluate[int](`document.querySelectorAll("`+sel+`").length`)); n != 0 {
			t.Errorf("the manager's comments page offers %s", sel)
		}
	}
	checkAccessibility(t, b, "a manager's comments page")

	// The reply, typed and sent with the keyboard.
	const reply = "Thank you: from next week planning is 30 minutes, with a written decision."
	if err := chromedp.Do(b, chromedp.Focus(chromedp.CSS("#r-"+commentID)), chromedp.SendKeys(chromedp.CSS("#r-"+commentID), reply),
		chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	// The form posts to the page it is on: wait for the answer's words, not
	// for the path (which is the same before the post lands).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if text, _ := chromedp.Run(b, chromedp.Text(chromedp.CSS("main"))); strings.Contains(text, "Your reply was sent") {
			break
		}
		if time.Now().After(deadline) {
			checkContains(t, b, "main", "Your reply was sent")
			break
		}
	}
	waitPath(t, b, "/dashboard/comments")
	waitBody(t, b, base+"/comments?wave=w1&question=better", reply)
	replies := func() uint64 { return streamCount(t, m, schemas.CommentRepliedType) }
	if n := replies(); n != 1 {
		t.Fatalf("%d replies on the stream, want 1", n)
	}

	// The writer reads it on their link, from the manager.
	text := waitBody(t, b, o.replyLink["eng-2-3"], reply)
	if !strings.Contains(text, words) || !strings.Contains(text, "Manager · ") {
		t.Errorf("the reply link's page: %s", text)
	}
	checkAccessibility(t, b, "reply link with a manager's reply")
	for _, it := range apiComments(t, m, head, "&reports_to="+id["head-eng"]).Items {
		if it.ID == commentID && (len(it.Thread) != 1 || it.Thread[0].Role != "manager" || it.Thread[0].Text != reply) {
			t.Errorf("the thread %+v, want the manager's reply", it.Thread)
		}
	}

	// Refusals: each a page, none published.
	var salesID string
	analyst, _ := testTokens.Load(m)
	for _, it := range apiComments(t, m, analyst.(string), "").Items {
		if it.Text == salesWords {
			salesID = it.ID
		}
	}
	s := browserSession(t, b, m)
	status, form := s.do(http.MethodGet, "/dashboard/comments?wave=w1&question=better", nil)
	csrf := planCSRF.FindStringSubmatch(form)
	if status != http.StatusOK || csrf == nil {
		t.Fatalf("the comments page: %d", status)
	}
	post := func(scope string) url.Values {
		v := url.Values{"csrf": {csrf[1]}, "wave": {"w1"}, "question": {"better"}, "text": {"hello"}}
		if scope != "" {
			v.Set("scope", scope)
		}
		return v
	}
	for name, tc := range map[string]struct {
		comment, scope string
		status         int
		says           string
	}{
		"ErrOtherTeam":       {salesID, "reports_to:" + id["head-sales"], 403, "not in your team"},
		"ErrOtherTeamsOwn":   {commentID, "manager:" + id["ceo"], 403, "not in your team"},
		"ErrNotInList":       {salesID, "", 404, "no comment with that id"},
		"ErrSuppressedList":  {commentID, "reports_to:" + id["lead-2"], 403, "not shown to you"},
		"ErrBadScope":        {commentID, "nobody", 400, "choose one of the listed teams"},
		"ErrAttributeFilter": {commentID, "", 403, "not results by department"},
	} {
		t.Run(name, func(t *testing.T) {
			f := post(tc.scope)
			if name == "ErrAttributeFilter" {
				f.Set("department", "Eng")
			}
			status, body := s.do(http.MethodPost, "/dashboard/comments/"+tc.comment+"/replies", f)
			if status != tc.status || !strings.Contains(body, "<h1>") || !strings.Contains(body, tc.says) {
				t.Errorf("%d %.300s, want %d with a page saying %q", status, body, tc.status, tc.says)
			}
		})
	}
	if n := replies(); n != 1 {
		t.Fatalf("%d replies on the stream after refused replies, want 1", n)
	}
	for path, want := range map[string]int{
		"/dashboard/comments?wave=w1&question=better&scope=reports_to:" + id["head-sales"]: 403,
		"/dashboard/comments?wave=w1&question=better&department=Eng":                       403,
		"/dashboard/comments?wave=w1&question=better&scope=manager:" + id["lead-3"]:        200,
	} {
		if status, body := s.do(http.MethodGet, path, nil); status != want || !strings.Contains(body, "<h1>") {
			t.Errorf("%s: %d, want %d with a page", path, status, want)
		}
	}
}

// TestManagerExplorer: in headless Chromium, with the keyboard alone, the
// head of engineering opens the explorer from the navigation and finds
// only what they may ask for: the organisation overall and, by name, all
// and direct reports of themself and of each lead below them; no filter by
// attribute, no group-by. Their whole team, chosen with the keyboard,
// shows the API's numbers for reports_to=<them> beside the organisation's.
// Another team, someone above them, or an attribute filter is a 403 page
// that says why, and the CSV download of the team is the API's. axe-core
// runs on the explorer.
func TestManagerExplorer(t *testing.T) {
	o := newManagerOrg(t)
	m, id := o.m, o.personOf
	head := managerTokenOf(t, m, "head-eng")
	b := browser(t)
	base := m.QueryURL + "/dashboard"
	signInTo(t, b, base, head, "/dashboard/team")
	follow(t, b, `nav a[href="/dashboard/explore"]`, "/dashboard/explore")

	labels, chosen := selectOptions(t, b, "#f-scope")
	want := []string{"The organisation overall", "All reports of you (head-eng)", "Direct reports of you (head-eng)"}
	for l := range 5 {
		lead := "lead-" + string(rune('1'+l))
		want = append(want, "All reports of "+lead, "Direct reports of "+lead)
	}
	if !slices.Equal(labels, want) || chosen != "The organisation overall" {
		t.Errorf("the explorer offers %v (%q chosen), want %v", labels, chosen, want)
	}
	for _, sel := range []string{"#f-department", "#f-team", "#f-location", "#f-tenure_band", "#group_by"} {
		if n, _ := chromedp.Run(b, chromedp.Evaluate[int](`document.querySelectorAll("`+sel+`").length`)); n != 0 {
			t.Errorf("the manager's explorer offers %s", sel)
		}
	}
	checkAccessibility(t, b, "a manager's explorer")

	// The whole team: one down from the organisation, then Tab to the
	// button and Enter.
	if err := chromedp.Do(b, chromedp.Focus(chromedp.CSS("#f-scope")), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		q, err := chromedp.Run(b, chromedp.Evaluate[string](`document.readyState === "complete" ? location.search : ""`))
		if err == nil && strings.Contains(q, "scope=reports_to%3A"+id["head-eng"]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the keyboard's choice never asked for the whole team (at %q, %v)", q, err)
		}
	}
	text, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "Wave w1, all reports of you (head-eng)") {
		t.Errorf("the result is not named as the team's: %s", text)
	}
	status, body := getAs(t, head, m.QueryURL+"/v1/orgs/acme/waves/w1/scores?reports_to="+id["head-eng"])
	if status != http.StatusOK {
		t.Fatalf("scores: %d %s", status, body)
	}
	var r result
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if r.Respondents.N == nil || *r.Respondents.N != 30 {
		t.Fatalf("the API's respondents %+v, want 30", r.Respondents)
	}
	checkText(t, b, "#respondents", "30")
	rows, err := chromedp.Run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll(".heatmap tbody tr")].map(r => [...r.children].map(c => (c.querySelector(".value") || c).innerText.trim()))`))
	if err != nil {
		t.Fatal(err)
	}
	header, err := chromedp.Run(b, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".heatmap thead th")].map(c => c.innerText.trim())`))
	if err != nil {
		t.Fatal(err)
	}
	team := findRow(rows, "All reports of you (head-eng)")
	if team == nil || findRow(rows, "Organisation") == nil {
		t.Fatalf("the heatmap's rows %v, want the organisation and the team", rows)
	}
	labelsOf := map[string]string{"trust": "Trust", "empowerment": "Empowerment", "motivation": "Motivation", "enps": "eNPS"}
	compared := 0
	for _, d := range r.Dimensions {
		col := slices.Index(header, labelsOf[d.Dimension])
		if col < 0 {
			continue
		}
		want := pageFixed(*d.Mean, 2)
		if d.Dimension == "enps" {
			want = pageSigned(*d.ENPS, 0)
		}
		if team[col] != want {
			t.Errorf("%s: the explorer shows %q for the team, the API %q", d.Dimension, team[col], want)
		}
		compared++
	}
	if compared < 3 {
		t.Errorf("only %d dimensions compared (header %v, API %+v)", compared, header, r.Dimensions)
	}
	dist, err := chromedp.Run(b, chromedp.Evaluate[[][]string](`[...document.querySelectorAll("#distributions tbody tr")].map(r => [...r.children].map(c => c.innerText.trim()))`))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Dimensions {
		row := findRow(dist, labelsOf[d.Dimension])
		if row == nil || d.Favorable == nil {
			continue
		}
		if row[3] != pagePercent(*d.Favorable) {
			t.Errorf("%s: the explorer shows %q favourable, the API %q", d.Dimension, row[3], pagePercent(*d.Favorable))
		}
	}
	if !strings.Contains(text, "Scores (CSV)") {
		t.Errorf("no downloads on the team's result: %s", text)
	}

	// The team's CSV is the API's; what is not theirs is a 403 page.
	s := browserSession(t, b, m)
	if status, csv := s.do(http.MethodGet, "/dashboard/export/scores?wave=w1&scope=reports_to:"+id["head-eng"], nil); status != http.StatusOK || !strings.Contains(csv, "reports_to="+id["head-eng"]) {
		t.Errorf("the team's CSV: %d %.300s", status, csv)
	}
	for path, says := range map[string]string{
		"/dashboard/explore?scope=reports_to:" + id["head-sales"]:       "not in your team",
		"/dashboard/explore?scope=manager:" + id["ceo"]:                 "not in your team",
		"/dashboard/explore?department=Eng":                             "not results by department",
		"/dashboard/explore?group_by=team":                              "not results by team",
		"/dashboard/export/scores?scope=reports_to:" + id["lead-sales"]: "not in your team",
		"/dashboard/export/retention":                                   "department",
	} {
		if status, body := s.do(http.MethodGet, path, nil); status != http.StatusForbidden || !strings.Contains(body, "<h1>") || !strings.Contains(body, says) {
			t.Errorf("%s: %d %.300s, want a 403 page saying %q", path, status, body, says)
		}
	}
	// And in the browser the refusal reads as such.
	if err := chromedp.Do(b, chromedp.Navigate(base+"/explore?scope=reports_to:"+id["head-sales"])); err != nil {
		t.Fatal(err)
	}
	checkContains(t, b, ".problem", "that person is not in your team")
}
