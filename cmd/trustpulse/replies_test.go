package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// openReplyWave publishes commentSurvey and opens w1 of acme for sales
// Sales people and then ops Ops people, all in Berlin, returning their
// survey tokens in that order.
func openReplyWave(t *testing.T, m *Main, sales, ops int) []string {
	t.Helper()
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", commentSurvey); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: "w1", SurveyID: "pulse-c", OpensAt: now.Add(-time.Minute), ClosesAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	cohorts := make([]schemas.Cohort, sales+ops)
	for i := range cohorts {
		dept := "Sales"
		if i >= sales {
			dept = "Ops"
		}
		cohorts[i] = schemas.Cohort{Department: dept, Team: dept, Location: "Berlin", TenureBand: "1-2y"}
	}
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", cohorts)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

// submitForLink posts a response with one comment and returns the reply
// link of the 202 body.
func submitForLink(t *testing.T, m *Main, token, comment string) string {
	t.Helper()
	return submitComment(t, m, token, map[string]int{"trust-a": 3}, "better", comment)
}

// submitComment posts a response of answers with words for the comment
// question and returns the reply link of the 202 body.
func submitComment(t *testing.T, m *Main, token string, answers map[string]int, question, words string) string {
	t.Helper()
	status, body := postJSON(t, m.IngestURL+"/v1/responses", map[string]any{"token": token, "answers": answers, "comments": map[string]string{question: words}})
	if status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", status, body)
	}
	var r struct {
		Status    string `json:"status"`
		ReplyLink string `json:"reply_link"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "recorded" || !strings.HasPrefix(r.ReplyLink, m.QueryURL+"/r/") {
		t.Fatalf("202 body %s (%v): want a reply link under %s/r/", body, err, m.QueryURL)
	}
	return r.ReplyLink
}

// apiComments reads the comments of w1's "better" question as token.
func apiComments(t *testing.T, m *Main, token, query string) commentsWithItems {
	t.Helper()
	status, body := getAs(t, token, m.QueryURL+"/v1/orgs/acme/waves/w1/comments?question=better"+query)
	if status != http.StatusOK {
		t.Fatalf("comments: %d %s", status, body)
	}
	if strings.Contains(body, "reply_hash") {
		t.Fatalf("a comment list serves reply hashes: %s", body)
	}
	var r commentsWithItems
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

type commentsWithItems struct {
	Suppressed bool `json:"suppressed"`
	Items      []struct {
		ID     string `json:"id"`
		Text   string `json:"text"`
		Thread []struct {
			Kind, Text, Role string
		} `json:"thread"`
	} `json:"items"`
}

// waitBody reloads the page at url until its main text contains want.
func waitBody(t *testing.T, b context.Context, url, want string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var text string
		err := chromedp.Do(b, chromedp.Navigate(url))
		if err == nil {
			text, err = chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
		}
		if err == nil && strings.Contains(text, want) {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed %q (last: %q, %v)", url, want, text, err)
		}
	}
}

// TestReplyRoundTrip: in headless Chromium, an employee answers the survey
// page with a comment and reads the private reply link off the thanks page;
// before the release the link says replies come after the wave closes;
// after it an analyst replies on the dashboard's comments page, the holder
// opens the link, reads the reply and answers back, and the analyst sees
// the answer under the comment. axe-core runs on the reply link's page.
func TestReplyRoundTrip(t *testing.T) {
	m := mustMain(t, nil)
	analyst, _ := tokenFor(t, m, "acme", schemas.RoleAnalyst)
	tokens := openReplyWave(t, m, 12, 0)
	b := browser(t)
	out := outputDir(t, "replies")

	const words = "The roadmap changes every week and nobody says why."
	if err := chromedp.Do(b,
		chromedp.Navigate(m.IngestURL+"/s/"+tokens[0]),
		chromedp.WaitVisible(chromedp.CSS("form")),
		chromedp.Click(chromedp.CSS(`input[name="a.trust-a"][value="2"]`)),
		chromedp.SendKeys(chromedp.CSS(`textarea[name="c.better"]`), words),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#reply-link")),
	); err != nil {
		t.Fatal(err)
	}
	link, err := chromedp.Run(b, chromedp.Value(chromedp.CSS("#reply-link")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, m.QueryURL+"/r/") {
		t.Fatalf("thanks page shows reply link %q, want one under %s/r/", link, m.QueryURL)
	}
	thanks, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, note := range []string{"never email it", "cannot show it again", "Replies can come only after the survey closes", "Nobody can see whether this link was kept or opened"} {
		if !strings.Contains(thanks, note) {
			t.Errorf("the thanks page does not say %q: %s", note, thanks)
		}
	}
	screenshot(t, b, out, "thanks-with-link.png", 390, 844)
	checkAccessibility(t, b, "thanks page with reply link")

	// Before the release the link finds nothing yet, and says when.
	if text := waitBody(t, b, link, "replies can come only after the wave closes"); !strings.Contains(text, "No replies here yet") {
		t.Errorf("the link before the release shows %q", text)
	}

	// Eleven more, some with comments; the wave closes and is released.
	for i, tok := range tokens[1:] {
		if i%2 == 0 {
			submitForLink(t, m, tok, fmt.Sprintf("another thought %d", i))
		} else {
			submit(t, m, tok, map[string]int{"trust-a": 1 + i%5})
		}
	}
	if err := m.Admin.CloseWave(context.Background(), "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitW1Released(t, m, analyst)

	// The analyst replies on the dashboard, under that comment.
	base := m.QueryURL + "/dashboard"
	signIn(t, b, base, analyst)
	var id string
	for _, it := range apiComments(t, m, analyst, "").Items {
		if it.Text == words {
			id = it.ID
		}
	}
	if id == "" {
		t.Fatal("the comment is not in the served list")
	}
	const reply = "Thank you. From next month the roadmap is reviewed once a quarter, with notes."
	if err := chromedp.Do(b,
		chromedp.Navigate(base+"/comments?wave=w1&question=better"),
		chromedp.WaitVisible(chromedp.CSS("#c-"+id)),
	); err != nil {
		t.Fatal(err)
	}
	checkAccessibility(t, b, "comments page")
	if err := chromedp.Do(b,
		chromedp.SendKeys(chromedp.CSS("#r-"+id), reply),
		chromedp.Click(chromedp.CSS(`#c-`+id+` form.reply button`)),
	); err != nil {
		t.Fatal(err)
	}
	waitPath(t, b, "/dashboard/comments")
	waitBody(t, b, base+"/comments?wave=w1&question=better", reply)

	// The holder opens the link, reads the reply and answers back.
	text := waitBody(t, b, link, reply)
	for _, want := range []string{words, "nothing records that it was opened", "shown under your comment to everyone who can read the comment"} {
		if !strings.Contains(text, want) {
			t.Errorf("the reply link's page does not show %q: %s", want, text)
		}
	}
	checkAccessibility(t, b, "reply link page")
	screenshot(t, b, out, "reply-link-phone.png", 390, 844)
	screenshot(t, b, out, "reply-link-desktop.png", 1280, 900)
	const answer = "That helps, thanks. Could the notes go to the whole team?"
	if err := chromedp.Do(b,
		chromedp.SendKeys(chromedp.CSS("#a-"+id), answer),
		chromedp.Click(chromedp.CSS(`#c-`+id+` form.reply button`)),
	); err != nil {
		t.Fatal(err)
	}
	waitBody(t, b, link, answer)

	// The analyst sees the answer under the comment, after the reply.
	page := waitBody(t, b, base+"/comments?wave=w1&question=better", answer)
	if !strings.Contains(page, "The comment's writer") {
		t.Errorf("the answer is not shown as the comment writer's: %s", page)
	}
	for _, it := range apiComments(t, m, analyst, "").Items {
		if it.ID != id {
			if len(it.Thread) != 0 {
				t.Errorf("comment %q has a thread %v, but no one replied to it", it.Text, it.Thread)
			}
			continue
		}
		if len(it.Thread) != 2 || it.Thread[0].Kind != "reply" || it.Thread[0].Text != reply || it.Thread[0].Role != "analyst" ||
			it.Thread[1].Kind != "answer" || it.Thread[1].Text != answer || it.Thread[1].Role != "" {
			t.Errorf("thread %+v, want the reply then the answer", it.Thread)
		}
	}
}

// waitW1Released waits until acme's w1 serves results.
func waitW1Released(t *testing.T, m *Main, token string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if status, _ := getAs(t, token, m.QueryURL+"/v1/orgs/acme/waves/w1/participation"); status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("w1 never released")
		}
	}
}

// streamCount is the number of messages of one event type on the event
// stream.
func streamCount(t *testing.T, m *Main, typ schemas.EventType) uint64 {
	t.Helper()
	st, err := m.Stack.JS.Stream(context.Background(), schemas.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(schemas.SubjectFilter(typ)))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// postAs sends a request with a bearer token ("" sends none) and a body of
// contentType, and does not follow a redirect.
func postAs(t *testing.T, token, url, contentType, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", contentType)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), resp.Header
}

var answerCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestRepliesBadInput: every refused reply (the API) or answer (the reply
// link's form) is a 4xx with a clear body and publishes nothing: roles that
// do not reply, unknown or malformed comments, comments outside the list
// asked about or of a list the guard does not serve, empty or overlong
// words, bad bodies, forged forms and unknown links. The reply link's pages
// are no-store and no-referrer.
func TestRepliesBadInput(t *testing.T) {
	m := mustMain(t, nil)
	analyst, _ := tokenFor(t, m, "acme", schemas.RoleAnalyst)
	leader, _ := tokenFor(t, m, "acme", schemas.RoleLeader)
	// 12 Sales and 6 Ops: Ops's comment list (6 < 10) is not served.
	tokens := openReplyWave(t, m, 12, 6)
	link := submitForLink(t, m, tokens[0], "first words")
	other := submitForLink(t, m, tokens[1], "second words")
	submitForLink(t, m, tokens[12], "ops words")
	for i, tok := range tokens {
		if i > 1 && i != 12 {
			submit(t, m, tok, map[string]int{"trust-a": 4})
		}
	}
	if err := m.Admin.CloseWave(context.Background(), "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitW1Released(t, m, analyst)
	var id, otherID, opsID string
	for _, it := range apiComments(t, m, analyst, "").Items {
		switch it.Text {
		case "first words":
			id = it.ID
		case "second words":
			otherID = it.ID
		case "ops words":
			opsID = it.ID
		}
	}
	if id == "" || otherID == "" || opsID == "" {
		t.Fatal("the comments are not served")
	}
	replies := func() uint64 { return streamCount(t, m, schemas.CommentRepliedType) }
	answers := func() uint64 { return streamCount(t, m, schemas.CommentAnsweredType) }
	if replies() != 0 || answers() != 0 {
		t.Fatal("replies on the stream before any was sent")
	}
	api := func(id string) string { return m.QueryURL + "/v1/orgs/acme/comments/" + id + "/replies" }
	for name, tc := range map[string]struct {
		token, url, ctype, body string
		status                  int
		code                    string
	}{
		"ErrLeader":         {leader, api(id), "application/json", `{"text":"hi"}`, 403, "forbidden"},
		"ErrNoToken":        {"", api(id), "application/json", `{"text":"hi"}`, 401, "unauthorized"},
		"ErrUnknownComment": {analyst, api("6f1c2b3a-1d2e-4f5a-8b9c-0d1e2f3a4b5c"), "application/json", `{"text":"hi"}`, 404, "comment_not_found"},
		"ErrMalformedID":    {analyst, api("nope"), "application/json", `{"text":"hi"}`, 404, "comment_not_found"},
		// A suppressed list answers 403 whichever comment is named, in it or
		// not: a 404 for the others would tell which comments it holds
		// (TestRedReplyOracleSuppressedList).
		"ErrOtherList":      {analyst, api(id) + "?department=Ops", "application/json", `{"text":"hi"}`, 403, "comments_suppressed"},
		"ErrSuppressedList": {analyst, api(opsID) + "?department=Ops", "application/json", `{"text":"hi"}`, 403, "comments_suppressed"},
		"ErrEmpty":          {analyst, api(id), "application/json", `{"text":"  \u0007 "}`, 422, "invalid_text"},
		"ErrTooLong":        {analyst, api(id), "application/json", `{"text":"` + strings.Repeat("x", schemas.MaxReplyLen+1) + `"}`, 422, "invalid_text"},
		"ErrNotJSON":        {analyst, api(id), "text/plain", `hi`, 415, "unsupported_media_type"},
		"ErrUnknownField":   {analyst, api(id), "application/json", `{"text":"hi","as":"admin"}`, 400, "invalid_body"},
		"ErrUnknownParam":   {analyst, api(id) + "?dept=Sales", "application/json", `{"text":"hi"}`, 400, "invalid"},
	} {
		t.Run(name, func(t *testing.T) {
			status, body, _ := postAs(t, tc.token, tc.url, tc.ctype, tc.body)
			if status != tc.status || !strings.Contains(body, tc.code) || !strings.Contains(body, `"detail"`) {
				t.Errorf("%d %s, want %d %s with a problem body", status, body, tc.status, tc.code)
			}
		})
	}
	if n := replies(); n != 0 {
		t.Fatalf("%d replies published by refused requests", n)
	}

	// The reply link: unknown, malformed, a forged form, another link's
	// comment, empty words.
	page := func(u string) (int, string, http.Header) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	status, body, hdr := page(link)
	if status != http.StatusOK || !strings.Contains(body, "first words") || strings.Contains(body, "second words") {
		t.Fatalf("the link's page: %d, shows its comment only: %v", status, !strings.Contains(body, "second words"))
	}
	if hdr.Get("Cache-Control") != "no-store" || hdr.Get("Referrer-Policy") != "no-referrer" || hdr.Get("Set-Cookie") != "" {
		t.Errorf("the link's page headers: Cache-Control %q, Referrer-Policy %q, Set-Cookie %q", hdr.Get("Cache-Control"), hdr.Get("Referrer-Policy"), hdr.Get("Set-Cookie"))
	}
	csrf := answerCSRF.FindStringSubmatch(body)
	if csrf == nil {
		t.Fatal("the link's page has no answer form")
	}
	forged, err := schemas.NewReplyCapability()
	if err != nil {
		t.Fatal(err)
	}
	if status, body, _ := page(m.QueryURL + "/r/" + forged); status != http.StatusNotFound || !strings.Contains(body, "No replies here yet") {
		t.Errorf("an unknown link: %d", status)
	}
	if status, _, _ := page(m.QueryURL + "/r/not-a-link"); status != http.StatusNotFound {
		t.Errorf("a malformed link: %d", status)
	}
	otherCSRF := answerCSRF.FindStringSubmatch(func() string { _, b, _ := page(other); return b }())
	form := func(csrf, comment, text string) string {
		return url.Values{"csrf": {csrf}, "comment": {comment}, "text": {text}}.Encode()
	}
	for name, tc := range map[string]struct {
		url, body string
		status    int
	}{
		"ErrNoCSRF":         {link, form("", id, "hi"), 403},
		"ErrOtherLinksCSRF": {link, form(otherCSRF[1], id, "hi"), 403},
		"ErrOtherComment":   {link, form(csrf[1], otherID, "hi"), 404},
		"ErrUnknownLink":    {m.QueryURL + "/r/" + forged, form(csrf[1], id, "hi"), 403},
		"ErrEmpty":          {link, form(csrf[1], id, "   "), 422},
		"ErrTooLong":        {link, form(csrf[1], id, strings.Repeat("y", schemas.MaxReplyLen+1)), 422},
	} {
		t.Run(name, func(t *testing.T) {
			status, body, hdr := postAs(t, "", tc.url, "application/x-www-form-urlencoded", tc.body)
			if status != tc.status || hdr.Get("Cache-Control") != "no-store" || !strings.Contains(body, "<h1>") {
				t.Errorf("%d (Cache-Control %q), want %d with a page", status, hdr.Get("Cache-Control"), tc.status)
			}
		})
	}
	if n := answers(); n != 0 {
		t.Fatalf("%d answers published by refused forms", n)
	}

	// What is accepted is published once.
	if status, body, _ := postAs(t, analyst, api(id), "application/json", `{"text":"We hear you."}`); status != http.StatusCreated {
		t.Fatalf("a good reply: %d %s", status, body)
	}
	if status, _, hdr := postAs(t, "", link, "application/x-www-form-urlencoded", form(csrf[1], id, "Thanks.")); status != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), "/r/") {
		t.Fatalf("a good answer: %d %s", status, hdr.Get("Location"))
	}
	if r, a := replies(), answers(); r != 1 || a != 1 {
		t.Fatalf("%d replies and %d answers on the stream, want 1 and 1", r, a)
	}
}
