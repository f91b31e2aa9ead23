package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// outputDir is where browser tests leave their screenshots:
// $TRUSTPULSE_TEST_OUTPUT, or test-output/ at the repository root.
func outputDir(t *testing.T, sub string) string {
	t.Helper()
	dir := os.Getenv("TRUSTPULSE_TEST_OUTPUT")
	if dir == "" {
		dir = filepath.Join("..", "..", "test-output")
	}
	dir = filepath.Join(dir, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Debian Chromium for one test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed; `make test` installs Debian's chromium package")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// waitPath waits until the page's location has the given path (a form post
// and its redirect have completed).
func waitPath(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState === "complete" ? location.pathname : ""`))
		if err == nil && got == path {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("page never reached %s (at %q, %v)", path, got, err)
		}
	}
}

func screenshot(t *testing.T, ctx context.Context, dir, name string, width, height int64) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height)); err != nil {
		t.Fatalf("viewport %dx%d: %v", width, height, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSurveyPageInBrowser reads an emailed survey link from the mail sink,
// answers the survey in real headless Chromium with the keyboard alone, takes phone and desktop screenshots, and finds the
// answers in the query API's aggregates once the wave closes.
func TestSurveyPageInBrowser(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	openWave(t, m)
	// Six people get their link by email, through the real SMTP server of
	// the development mail sink.
	var roster strings.Builder
	for i := range 6 {
		fmt.Fprintf(&roster, "e%d,p%d@example.com,Person %d,Engineering,Platform,Berlin,,2022-01-0%d\n", i, i, i, i+1)
	}
	links := inviteByEmail(t, m, roster.String(), 6)
	tokens := make([]string, len(links))
	for i, l := range links {
		if !strings.HasPrefix(l, m.IngestURL+"/s/") {
			t.Fatalf("emailed link %q is not a survey link of %s", l, m.IngestURL)
		}
		tokens[i] = strings.TrimPrefix(l, m.IngestURL+"/s/")
	}
	link := links[0]
	out := outputDir(t, "browser")
	b := browser(t)

	if err := chromedp.Do(b, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("form"))); err != nil {
		t.Fatal(err)
	}
	for _, vp := range []struct {
		name          string
		width, height int64
	}{{"survey-phone.png", 390, 844}, {"survey-desktop.png", 1280, 900}} {
		screenshot(t, b, out, vp.name, vp.width, vp.height)
		// Reflow: nothing may need horizontal scrolling.
		overflow, err := chromedp.Run(b, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if overflow {
			t.Errorf("%s: the page scrolls sideways at %dpx", vp.name, vp.width)
		}
	}

	// Keyboard only: Tab past the anonymity note to each question, Space
	// picks its first option, arrow keys move the choice; Enter on the
	// submit button sends the form.
	browserAnswers := map[string]int{"trust-a": 4, "trust-b": 2, "auto": 5, "moti": 3, "stay": 1, "enps": 10}
	keys := []chromedp.Action[chromedp.Void]{chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("form")), chromedp.KeyEvent(kb.Tab)}
	for _, q := range e2eSurvey.Questions {
		lo, _ := q.Dimension.Range()
		keys = append(keys, chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(" "))
		for range browserAnswers[q.ID] - lo {
			keys = append(keys, chromedp.KeyEvent(kb.ArrowRight))
		}
	}
	if err := chromedp.Do(b, append(keys, chromedp.KeyEvent(kb.Tab))...); err != nil {
		t.Fatal(err)
	}
	focused, err := chromedp.Run(b, chromedp.Evaluate[string](`document.activeElement.tagName + ":" + document.activeElement.type`))
	if err != nil {
		t.Fatal(err)
	}
	if focused != "BUTTON:submit" {
		t.Fatalf("after tabbing through the questions the focus is on %q, not the submit button", focused)
	}
	checked, err := chromedp.Run(b, chromedp.Evaluate[map[string]string](
		`Object.fromEntries([...document.querySelectorAll('input:checked')].map(i => [i.name, i.value]))`))
	if err != nil {
		t.Fatal(err)
	}
	for id, v := range browserAnswers {
		if checked["a."+id] != strconv.Itoa(v) {
			t.Errorf("keyboard answer for %s: %q checked, want %d", id, checked["a."+id], v)
		}
	}
	if err := chromedp.Do(b, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatal(err)
	}
	waitPath(t, b, "/s/thanks")
	title, err := chromedp.Run(b, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(title, "Thank you") {
		t.Fatalf("after submit the page is %q: %s", title, body)
	}
	screenshot(t, b, out, "thanks-phone.png", 390, 844)

	// The link is spent: a second visit says so.
	if err := chromedp.Do(b, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	if body, err = chromedp.Run(b, chromedp.Text(chromedp.CSS("h1"))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "already answered") {
		t.Fatalf("a used link shows %q", body)
	}

	// Five more responses through the API, so the wave reaches the threshold.
	rng := rand.New(rand.NewPCG(3, 4))
	responses := []sent{{dept: "Engineering", answers: browserAnswers}}
	for _, tok := range tokens[1:] {
		a := map[string]int{}
		for _, q := range e2eSurvey.Questions {
			lo, hi := q.Dimension.Range()
			a[q.ID] = lo + rng.IntN(hi-lo+1)
		}
		submit(t, m, tok, a)
		responses = append(responses, sent{dept: "Engineering", answers: a})
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	r := waitScores(t, m, "")
	qs := truthOf(responses, true, func(sent) string { return "" })[""]
	for _, s := range r.Questions {
		checkScore(t, "question "+s.Key, s, qs[s.Key])
	}
	if r.Respondents.N == nil || *r.Respondents.N != len(responses) {
		t.Fatalf("respondents %+v, want %d", r.Respondents, len(responses))
	}
}
