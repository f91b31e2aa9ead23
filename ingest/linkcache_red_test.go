// The red team's attacks on the link cache (2026-12-03), kept as regressions.

package ingest_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestLinkCacheRedUsedSlotPage: the invitation's page was opened (kept),
// then the slot records its response through the reminder's link. The
// invitation's page should now say "already answered" (409), as it did
// before the cache and as it does for a link never opened; and the cache
// should no longer keep a link whose slot is used.
func TestLinkCacheRedUsedSlotPage(t *testing.T) {
	e := mustEnv(t)
	first, reminder := e.slotLinks(t)
	e.openPage(t, first)
	if status, body := e.post(t, "application/json", submitBody(reminder, validAnswers())); status != http.StatusAccepted {
		t.Fatalf("reminder: %d %s", status, body)
	}
	t.Logf("links kept after the slot recorded through the reminder: %d", e.ledger.KeptLinksForTest())
	status, _, _ := e.page(t, http.MethodGet, "/s/"+first, nil)
	t.Logf("GET /s/<first> after its slot recorded: %d", status)
	if status != http.StatusConflict {
		t.Errorf("GET of a link whose slot is used: %d, want 409 (already answered)", status)
	}
	if got := e.ledger.KeptLinksForTest(); got != 0 {
		t.Errorf("%d links kept after their slot recorded its response, want 0", got)
	}
}

// TestLinkCacheRedOtherProcess: two ingest processes share the ledger (the
// README's "every ingest process"). The page is served by this one, the
// answers recorded by another (here a second Ledger, as a second process
// holds). This process keeps the used link and shows its survey again.
func TestLinkCacheRedOtherProcess(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	tok := e.invite(t, 1)[0]
	e.openPage(t, tok)
	other, err := ingest.OpenLedger(ctx, e.js)
	if err != nil {
		t.Fatal(err)
	}
	c, err := other.Lookup(ctx, tok, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.MarkUsed(ctx, c); err != nil {
		t.Fatal(err)
	}
	status, _, _ := e.page(t, http.MethodGet, "/s/"+tok, nil)
	t.Logf("GET on this process after the other recorded the link: %d; kept here: %d", status, e.ledger.KeptLinksForTest())
	if status != http.StatusConflict {
		t.Errorf("GET of a used link: %d, want 409", status)
	}
	if got := e.ledger.KeptLinksForTest(); got != 0 {
		t.Errorf("%d links kept after the link recorded its response, want 0", got)
	}
	// The post is still refused: the claim stays single-use.
	if status, body := e.post(t, "application/json", submitBody(tok, validAnswers())); status != http.StatusConflict {
		t.Fatalf("post: %d %s, want 409", status, body)
	}
}

// TestLinkCacheRedGarbageFlood: well-formed unknown tokens are not kept.
func TestLinkCacheRedGarbageFlood(t *testing.T) {
	e := mustEnv(t)
	for range 300 {
		if status, _, _ := e.page(t, http.MethodGet, "/s/"+ingest.NewToken(), nil); status != http.StatusNotFound {
			t.Fatalf("GET unknown: %d", status)
		}
	}
	if got := e.ledger.KeptLinksForTest(); got != 0 {
		t.Fatalf("%d unknown links kept", got)
	}
}

// TestLinkCacheRedRacePageDuringPost: page GETs racing the post of the same
// link; after the link recorded, is anything still kept?
func TestLinkCacheRedRacePageDuringPost(t *testing.T) {
	e := mustEnv(t)
	toks := e.invite(t, 40)
	leaks := 0
	for _, tok := range toks {
		before := e.ledger.KeptLinksForTest()
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 6 {
			wg.Add(1)
			go func() { defer wg.Done(); <-start; e.page(t, http.MethodGet, "/s/"+tok, nil) }()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			e.post(t, "application/json", submitBody(tok, validAnswers()))
		}()
		close(start)
		wg.Wait()
		if e.ledger.KeptLinksForTest() > before {
			leaks++
			status, _, _ := e.page(t, http.MethodGet, "/s/"+tok, nil)
			t.Logf("used link still kept; its page now answers %d", status)
		}
	}
	t.Logf("links kept after use: %d of %d", leaks, len(toks))
	if got := len(e.responses(t)); got != len(toks) {
		t.Fatalf("%d responses, want %d", got, len(toks))
	}
	if leaks > 0 {
		t.Errorf("%d used links still kept", leaks)
	}
}

// TestLinkCacheRedDoubleClickForm: the form posted twice at once (a double
// click), links never opened before. One records each; is the used link
// still kept afterwards?
func TestLinkCacheRedDoubleClickForm(t *testing.T) {
	e := mustEnv(t)
	toks := e.invite(t, 30)
	leaks, statuses := 0, map[int]int{}
	var mu sync.Mutex
	for _, tok := range toks {
		before := e.ledger.KeptLinksForTest()
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s, _, _ := e.page(t, http.MethodPost, "/s/"+tok, validForm())
				mu.Lock()
				statuses[s]++
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		if e.ledger.KeptLinksForTest() > before {
			leaks++
		}
	}
	t.Logf("statuses %v; used links still kept: %d of %d", statuses, leaks, len(toks))
	if got := len(e.responses(t)); got != len(toks) {
		t.Fatalf("%d responses, want %d", got, len(toks))
	}
	if leaks > 0 {
		t.Errorf("%d used links still kept after a double click", leaks)
	}
}

func waitKept(t *testing.T, e *env, want int, what string) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); e.ledger.KeptLinksForTest() != want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("%s: %d links kept, want %d", what, e.ledger.KeptLinksForTest(), want)
			return
		}
	}
}

// TestLinkCacheRedTimeLimits: the docs' "at most 30 minutes", "never past
// the link's expiry" and a wave closed by its clock (no WaveClosed event).
func TestLinkCacheRedTimeLimits(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	tok := e.invite(t, 1)[0]
	e.openPage(t, tok)
	waitKept(t, e, 1, "after the page")
	e.clock.Set(e.opened.Add(29 * time.Minute))
	time.Sleep(200 * time.Millisecond)
	waitKept(t, e, 1, "29 min after the page")
	e.clock.Set(e.opened.Add(31 * time.Minute))
	waitKept(t, e, 0, "31 min after the page")

	// A link expiring in 5 minutes.
	e.clock.Set(e.opened)
	short, _, err := e.ledger.Issue(ctx, schemas.Invitation{Org: "acme", WaveID: "w1", Cohort: testCohort, ExpiresAt: e.opened.Add(5 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	e.openPage(t, short)
	waitKept(t, e, 1, "after the short link's page")
	e.clock.Set(e.opened.Add(6 * time.Minute))
	waitKept(t, e, 0, "past the short link's expiry")

	// The wave's ClosesAt passes with no close event.
	e.clock.Set(e.opened)
	tok2 := e.invite(t, 1)[0]
	e.openPage(t, tok2)
	waitKept(t, e, 1, "after page 2")
	e.clock.Set(e.opened.Add(24*time.Hour + time.Second))
	waitKept(t, e, 0, "past the wave's ClosesAt")
}

// TestLinkCacheRedTwoLinksAtOnce: both links of one slot opened (kept),
// then ten posts of each at once: one response in all.
func TestLinkCacheRedTwoLinksAtOnce(t *testing.T) {
	e := mustEnv(t)
	for round := range 5 {
		first, reminder := e.slotLinks(t)
		for _, tok := range []string{first, reminder} {
			e.page(t, http.MethodGet, "/s/"+tok, nil)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		count := map[int]int{}
		start := make(chan struct{})
		for i := range 20 {
			tok := first
			if i%2 == 1 {
				tok = reminder
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s, _ := e.post(t, "application/json", submitBody(tok, validAnswers()))
				mu.Lock()
				count[s]++
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		t.Logf("round %d: %v at %s", round, count, time.Now().Format("15:04:05.000"))
		if count[http.StatusAccepted] != 1 {
			t.Fatalf("round %d: statuses %v, want one 202", round, count)
		}
	}
	if got := len(e.responses(t)); got != 5 {
		t.Fatalf("%d responses, want 5", got)
	}
}
