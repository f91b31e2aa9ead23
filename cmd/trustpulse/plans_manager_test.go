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

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

var planCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestPlansAsManager: a manager signed in through their emailed link finds
// their own team's plan panel at /dashboard/plans, writes the team's plan
// (its events name them by role and person id), and is refused another
// team's panel and another team's plan (403), which publishes nothing.
func TestPlansAsManager(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	analyst, _ := tokenFor(t, m, "acme", schemas.RoleAnalyst)
	openPlanWaves(t, m, analyst)
	link, _, err := query.NewSignIns(m.Stack.JS, time.Now).Mint(ctx, "acme", "w1", planTeam)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, m.QueryURL+path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, page := do(http.MethodGet, "/dashboard/signin/"+link, nil)
	signInForm := planCSRF.FindStringSubmatch(page)
	if status != http.StatusOK || signInForm == nil {
		t.Fatalf("open the link: %d %s", status, page)
	}
	if status, body := do(http.MethodPost, "/dashboard/signin/"+link, url.Values{"csrf": {signInForm[1]}}); status != http.StatusSeeOther {
		t.Fatalf("sign in with the link: %d %s", status, body)
	}
	status, page = do(http.MethodGet, "/dashboard/plans", nil)
	if status != http.StatusOK || !strings.Contains(page, `name="manager" value="`+planTeam+`"`) || !strings.Contains(page, "Focus drivers of wave") {
		t.Fatalf("the manager's own panel: %d %s", status, page)
	}
	csrf := planCSRF.FindStringSubmatch(page)
	if csrf == nil {
		t.Fatal("no form on the panel")
	}
	events := func() uint64 { return streamCount(t, m, schemas.ActionPlannedType) }
	plan := func(manager string) url.Values {
		return url.Values{"csrf": {csrf[1]}, "manager": {manager}, "wave": {"w1"}, "focus": {"manager"}, "commitments": {"Weekly one-to-ones"}}
	}
	if status, body := do(http.MethodGet, "/dashboard/plans?manager="+smallTeam, nil); status != http.StatusForbidden || !strings.Contains(body, "own team") {
		t.Errorf("another team's panel: %d", status)
	}
	if status, body := do(http.MethodPost, "/dashboard/plans", plan(smallTeam)); status != http.StatusForbidden || !strings.Contains(body, "The plan was not saved") {
		t.Errorf("a plan for another team: %d %s", status, body)
	}
	if n := events(); n != 0 {
		t.Fatalf("%d plans published by refused requests", n)
	}
	if status, body := do(http.MethodPost, "/dashboard/plans", plan(planTeam)); status != http.StatusSeeOther {
		t.Fatalf("the team's plan: %d %s", status, body)
	}
	list := listPlans(t, m, analyst, planTeam)
	if len(list) != 1 || list[0].Author.Role != schemas.RoleManager || list[0].Author.PersonID != planTeam {
		t.Fatalf("the manager's plan: %+v", list)
	}
	if n := events(); n != 1 {
		t.Fatalf("%d plans published, want 1", n)
	}
}
