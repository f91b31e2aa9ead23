package ingest_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// noRedirect is a client that reports redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (e *env) page(t *testing.T, method, path string, form url.Values) (int, string, http.Header) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func validForm() url.Values {
	f := url.Values{}
	for id, v := range validAnswers() {
		f.Set("a."+id, strconv.Itoa(v))
	}
	return f
}

func TestSurveyPage(t *testing.T) {
	e := mustEnv(t)
	tok := e.invite(t, 1)[0]

	status, html, hdr := e.page(t, http.MethodGet, "/s/"+tok, nil)
	if status != http.StatusOK {
		t.Fatalf("GET survey: %d", status)
	}
	scaled := len(testSurvey.Questions) - 2 // and two comment questions
	if got := strings.Count(html, "<fieldset"); got != scaled {
		t.Errorf("%d fieldsets, want one per scale question (%d)", got, scaled)
	}
	if got := strings.Count(html, "<legend>"); got != scaled {
		t.Errorf("%d legends, want %d", got, scaled)
	}
	if !strings.Contains(html, `<label for="q-better-text">`) || !strings.Contains(html, `<textarea id="q-better-text" name="c.better"`) ||
		!strings.Contains(html, "Comments are shown word for word") || !strings.Contains(html, "groups of at least 10 people") {
		t.Error("comment question not rendered as a labelled text area with its own threshold")
	}
	// 3 agreement items of 5 options and one eNPS item of 11, each a labelled radio.
	if got := len(regexp.MustCompile(`<label class="option"><input type="radio"`).FindAllString(html, -1)); got != 3*5+11 {
		t.Errorf("%d labelled radios, want 26", got)
	}
	if !strings.Contains(html, "among at least 5 people whose answers no one can tell apart") {
		t.Error("page does not explain the reporting threshold")
	}
	if !strings.Contains(html, "everyone in such a group gives the same answer") {
		t.Error("page does not say what exact numbers cannot hide")
	}
	for _, h := range []string{"Cache-Control", "Referrer-Policy", "Content-Security-Policy"} {
		if hdr.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}

	// A form missing a required answer comes back with the error inline and
	// the answers already given still checked; nothing is published.
	partial := validForm()
	partial.Del("a.auto-1")
	status, html, _ = e.page(t, http.MethodPost, "/s/"+tok, partial)
	if status != http.StatusUnprocessableEntity {
		t.Fatalf("partial form: %d", status)
	}
	if !strings.Contains(html, `id="q-auto-1" class="question invalid" aria-invalid="true"`) ||
		!strings.Contains(html, `href="#q-auto-1"`) {
		t.Errorf("missing answer not marked inline and in the summary:\n%s", html)
	}
	if !strings.Contains(html, `name="a.trust-1" value="4" checked`) || !strings.Contains(html, `name="a.enps" value="9" checked`) {
		t.Error("answers already given were not kept")
	}
	if n := len(e.responses(t)); n != 0 {
		t.Fatalf("%d responses published for an invalid form", n)
	}

	bad := validForm()
	bad.Set("a.enps", "eleven")
	if status, _, _ = e.page(t, http.MethodPost, "/s/"+tok, bad); status != http.StatusUnprocessableEntity {
		t.Fatalf("non-numeric answer: %d", status)
	}
	// An over-long comment comes back marked, its words kept.
	long := validForm()
	long.Set("c.better", strings.Repeat("a", 1001))
	status, html, _ = e.page(t, http.MethodPost, "/s/"+tok, long)
	if status != http.StatusUnprocessableEntity || !strings.Contains(html, "at most 1000 characters") || !strings.Contains(html, strings.Repeat("a", 1001)+"</textarea>") {
		t.Fatalf("over-long comment: %d", status)
	}

	withComment := validForm()
	withComment.Set("c.better", "  More quiet\r\nrooms\x07 ")
	// A response with a comment is answered with the thanks page itself,
	// which shows the private reply link once: no redirect, no cookie, not
	// to be cached.
	status, html, hdr = e.page(t, http.MethodPost, "/s/"+tok, withComment)
	if status != http.StatusOK || hdr.Get("Location") != "" || hdr.Get("Set-Cookie") != "" || !strings.Contains(html, "Thank you") {
		t.Fatalf("valid form with a comment: %d to %q (cookie %q)", status, hdr.Get("Location"), hdr.Get("Set-Cookie"))
	}
	if hdr.Get("Cache-Control") != "no-store" || hdr.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("thanks page with a reply link: Cache-Control %q, Referrer-Policy %q", hdr.Get("Cache-Control"), hdr.Get("Referrer-Policy"))
	}
	m := regexp.MustCompile(`id="reply-link" type="text" readonly value="https://results\.acme\.example/r/([A-Za-z0-9_-]+)"`).FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("the thanks page shows no reply link under the dashboard URL:\n%s", html)
	}
	replyCaps, err := schemas.ParseReplyLink(m[1])
	if err != nil || len(replyCaps) != 1 {
		t.Fatalf("reply link %q: %v", m[1], err)
	}
	for _, note := range []string{"We never email it", "cannot show it again", "Replies can come only after the survey closes", "If you answer back, your answer is shown"} {
		if !strings.Contains(html, note) {
			t.Errorf("the thanks page does not say %q", note)
		}
	}
	if status, html, _ = e.page(t, http.MethodGet, "/s/thanks", nil); status != http.StatusOK || !strings.Contains(html, "Thank you") || strings.Contains(html, "reply-link") {
		t.Fatalf("thanks page: %d", status)
	}
	// A retried POST, and a later visit, see "already answered".
	status, html, _ = e.page(t, http.MethodPost, "/s/"+tok, validForm())
	if status != http.StatusConflict || !strings.Contains(html, "already answered") {
		t.Fatalf("second POST: %d", status)
	}
	if status, _, _ = e.page(t, http.MethodGet, "/s/"+tok, nil); status != http.StatusConflict {
		t.Fatalf("GET a used link: %d", status)
	}
	published := e.responses(t)
	if n := len(published); n != 1 {
		t.Fatalf("%d responses published, want 1", n)
	}
	if strings.Contains(string(published[0]), "More quiet") {
		t.Errorf("the response carries its comment: %s", published[0])
	}
	comments := e.stored(t, schemas.CommentSubmittedType)
	if len(comments) != 1 || !strings.Contains(string(comments[0]), `"question_id":"better","text":"More quiet\nrooms"`) {
		t.Errorf("comment not published on its own, trimmed and cleaned: %q", comments)
	}
	// The comment carries the capability's hash, never the capability.
	if len(comments) == 1 && (!strings.Contains(string(comments[0]), `"reply_hash":"`+schemas.ReplyHash(replyCaps[0])+`"`) || strings.Contains(string(comments[0]), replyCaps[0])) {
		t.Errorf("the comment does not carry its reply hash alone: %s", comments[0])
	}
	if strings.Contains(string(published[0]), replyCaps[0]) || strings.Contains(string(published[0]), schemas.ReplyHash(replyCaps[0])) {
		t.Error("the response carries the reply capability or its hash")
	}
}

func TestSurveyPageLinks(t *testing.T) {
	e := mustEnv(t)
	toks := e.invite(t, 1)
	for name, tc := range map[string]struct {
		path   string
		status int
		text   string
	}{
		"ErrUnknown": {"/s/" + strings.Repeat("A", 43), http.StatusNotFound, "not valid"},
		"ErrGarbage": {"/s/%3Cscript%3E", http.StatusNotFound, "not valid"},
	} {
		t.Run(name, func(t *testing.T) {
			status, html, _ := e.page(t, http.MethodGet, tc.path, nil)
			if status != tc.status || !strings.Contains(html, tc.text) || strings.Contains(html, "<script>") {
				t.Fatalf("%d %s", status, html)
			}
		})
	}
	t.Run("ErrExpired", func(t *testing.T) {
		e.clock.Set(e.opened.Add(48 * time.Hour))
		defer e.clock.Set(e.opened)
		status, html, _ := e.page(t, http.MethodGet, "/s/"+toks[0], nil)
		if status != http.StatusGone || !strings.Contains(html, "has closed") {
			t.Fatalf("%d %s", status, html)
		}
		status, _, _ = e.page(t, http.MethodPost, "/s/"+toks[0], validForm())
		if status != http.StatusGone {
			t.Fatalf("POST to an expired link: %d", status)
		}
	})
}

// TestSurveyPageConcurrent posts one link's form from 20 goroutines: one
// response is recorded, every other request sees "already answered".
func TestSurveyPageConcurrent(t *testing.T) {
	e := mustEnv(t)
	tok := e.invite(t, 1)[0]
	statuses := make([]int, 20)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i], _, _ = e.page(t, http.MethodPost, "/s/"+tok, validForm())
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusSeeOther] != 1 || count[http.StatusConflict] != 19 {
		t.Fatalf("statuses %v, want one 303 and 19 409", count)
	}
	if n := len(e.responses(t)); n != 1 {
		t.Fatalf("%d responses, want 1", n)
	}
}
