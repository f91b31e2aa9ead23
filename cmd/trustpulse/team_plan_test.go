package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/mailsink"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestTeamSeesPlan: once a manager's team has an open plan (made from
// w1's results), the next wave's invitation email of each of the
// manager's direct reports includes it, and so do their survey page and
// their thanks page; people of no team, or of another, see none. The team
// is the direct manager of the people bucket: the reports' stored cohorts
// are not consulted.
func TestTeamSeesPlan(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	analyst, _ := tokenFor(t, m, "acme", schemas.RoleAnalyst)

	// w1 is released from planted cohorts: a plan needs a released wave.
	openWave(t, m)
	c := schemas.Cohort{Department: "Eng", Team: "T", Location: "Berlin", TenureBand: "1-2y"}
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", []schemas.Cohort{c, c, c, c, c})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		submit(t, m, tok, map[string]int{"trust-a": 3, "trust-b": 3, "auto": 4, "moti": 4, "enps": 8})
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitW1Released(t, m, analyst)

	// The roster: boss with five reports, and five people of no manager.
	var rows strings.Builder
	add := func(id, manager string) {
		fmt.Fprintf(&rows, "%s,%s@acme.example,%s,Eng,T,Berlin,%s,2023-03-01\n", id, id, id, manager)
	}
	add("boss", "")
	for i := 1; i <= 5; i++ {
		add(fmt.Sprintf("report-%d", i), "boss")
		add(fmt.Sprintf("loner-%d", i), "")
	}
	parsed, err := ingest.ParseRoster(strings.NewReader(strings.Join(ingest.RosterColumns, ",")+"\n"+rows.String()), time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Admin.ImportRoster(ctx, "acme", parsed, nil); err != nil {
		t.Fatal(err)
	}
	boss := personIDs(t, m)["boss"]
	const commitment = "A fortnightly retro where we pick one thing to change"
	if status, body := sendAs(t, http.MethodPost, analyst, m.QueryURL+"/v1/orgs/acme/plans", planJSON("w1", boss, []string{"autonomy"}, commitment)); status != http.StatusCreated {
		t.Fatalf("create the plan: %d %s", status, body)
	}

	// Leadership's macro view: one team (boss's), with a plan for w1 once
	// the roster and the plan are projected.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		share, err := m.Query.PlanShare(ctx, "acme", "w1")
		if err != nil {
			t.Fatal(err)
		}
		if share.Teams > 1 || share.WithPlans > share.Teams {
			t.Fatalf("plan share %+v, want 1 team", share)
		}
		if share.Teams == 1 && share.WithPlans == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plan never counted: %+v", share)
		}
	}
	// For w2 the plan still counts while it is open.
	if share, err := m.Query.PlanShare(ctx, "acme", "w2"); err != nil || share.Teams != 1 || share.WithPlans != 1 {
		t.Fatalf("plan share of w2 %+v %v, want the 1 team with its open plan", share, err)
	}

	// w2 is invited from the roster.
	now := time.Now().UTC()
	if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: "w2", SurveyID: "pulse", OpensAt: now.Add(-time.Minute), ClosesAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	m.Admin.KeepCohortsForTest(false)
	if res, err := m.Admin.InviteRoster(ctx, "acme", "w2", ingest.Audience{}); err != nil || res.Invited != 11 {
		t.Fatalf("invite w2: %+v %v", res, err)
	}
	if _, err := emailedLinks(ctx, m, 11); err != nil {
		t.Fatal(err)
	}
	linkOf := map[string]string{}
	for _, ml := range sinkMails(t, m) {
		raw := ml.raw
		id := strings.TrimSuffix(ml.to, "@acme.example")
		linkOf[id] = mailsink.Link(raw)
		hasPlan := strings.Contains(string(raw), "Your team's action plan") && strings.Contains(string(raw), commitment)
		if want := strings.HasPrefix(id, "report-"); hasPlan != want {
			t.Errorf("%s's invitation: plan shown %v, want %v", id, hasPlan, want)
		}
	}
	if len(linkOf) != 11 {
		t.Fatalf("%d invitation emails, want 11", len(linkOf))
	}

	page := func(link string) string {
		t.Helper()
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", link, resp.StatusCode)
		}
		return string(b)
	}
	answer := func(link string) (int, string) {
		t.Helper()
		form := url.Values{"a.trust-a": {"4"}, "a.trust-b": {"4"}, "a.auto": {"4"}, "a.moti": {"4"}, "a.enps": {"9"}}
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.PostForm(link, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for id, link := range linkOf {
		want := strings.HasPrefix(id, "report-")
		if got := strings.Contains(page(link), commitment); got != want {
			t.Errorf("%s's survey page: plan shown %v, want %v", id, got, want)
		}
		status, body := answer(link)
		switch {
		case want && (status != http.StatusOK || !strings.Contains(body, "Your answers are in") || !strings.Contains(body, commitment) || !strings.Contains(body, "autonomy")):
			t.Errorf("%s's thanks: %d, plan shown %v", id, status, strings.Contains(body, commitment))
		case !want && status != http.StatusSeeOther:
			t.Errorf("%s's thanks: %d, want the usual redirect", id, status)
		}
	}
}
