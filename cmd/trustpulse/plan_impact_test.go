package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// impactTeam is one team of the plan-impact organisation: its manager's
// person id, its size, and who of it answers in w2.
type impactTeam struct {
	name, manager string
	size, w2      int
}

// The organisation of TestPlanImpact: four teams under one head and six
// people with no manager. Each team's cohort is shared by all of it, so no
// invitation is generalised and every stored cohort is the planted one.
var (
	impactHead  = "5c9a6d2f-3b4e-4f70-8a2b-8d3e4f5a6b00"
	impactTeams = []impactTeam{
		{"A", "5c9a6d2f-3b4e-4f70-8a2b-8d3e4f5a6b01", 6, 6},
		{"B", "5c9a6d2f-3b4e-4f70-8a2b-8d3e4f5a6b02", 5, 5},
		{"C", "5c9a6d2f-3b4e-4f70-8a2b-8d3e4f5a6b03", 6, 6},
		{"D", "5c9a6d2f-3b4e-4f70-8a2b-8d3e4f5a6b04", 5, 3}, // below k = 5 in w2
	}
	impactRest = 6
)

// impactAnswer is the answer of the i-th member of team to question in
// wave (1 or 2): teams A and B gain on trust-a (the driver "manager") and
// A on auto ("autonomy"), D on moti ("meaning"); C stays where it was.
func impactAnswer(team string, i, wave int, question string) int {
	v := 3
	switch {
	case question == "trust-a" && (team == "A" || team == "B"):
		v = 2 + (wave-1)*2 // 2 in w1, 4 in w2
	case question == "auto" && team == "A":
		v = 2 + (wave - 1)
	case question == "moti" && team == "D":
		v = 2 + (wave-1)*2
	}
	if i%2 == 1 { // a spread inside each team
		v = min(5, v+1)
	}
	return v
}

// impactQuestionOf maps the survey's drivers to their one answered
// question (e2eSurvey; "stay" is optional and never answered here).
var impactQuestionOf = map[string]string{"manager": "trust-a", "autonomy": "auto", "meaning": "moti"}

// expectedMean is the mean of a driver over the teams named ("Rest" for
// the people with no manager), in a wave, from the planted answers alone:
// the truth the API must serve.
func expectedMean(driver string, wave int, teams ...string) float64 {
	sum, n := 0, 0
	if slices.Contains(teams, "Rest") {
		sum, n = 5*impactRest, impactRest
	}
	for _, tm := range impactTeams {
		if !slices.Contains(teams, tm.name) {
			continue
		}
		size := tm.size
		if wave == 2 {
			size = tm.w2
		}
		for i := range size {
			sum += impactAnswer(tm.name, i, wave, impactQuestionOf[driver])
			n++
		}
	}
	return math.Round(float64(sum)/float64(n)*100) / 100
}

// openImpactWaves runs w1 and w2 for the organisation above and releases
// both.
func openImpactWaves(t *testing.T, m *Main, analyst string) {
	t.Helper()
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", e2eSurvey); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for w, wave := range []string{"w1", "w2"} {
		if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: wave, SurveyID: "pulse", OpensAt: now.Add(time.Duration(w-3) * time.Minute), ClosesAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		var cohorts []schemas.Cohort
		var answers []map[string]int
		for _, tm := range impactTeams {
			for i := range tm.size {
				cohorts = append(cohorts, schemas.Cohort{Department: "Eng", Team: tm.name, Location: "Berlin", TenureBand: "1-2y"}.WithLine([]string{impactHead, tm.manager}))
				if w == 1 && i >= tm.w2 {
					answers = append(answers, nil) // invited, does not answer
					continue
				}
				a := map[string]int{"enps": 8, "trust-b": 3}
				for _, q := range []string{"trust-a", "auto", "moti"} {
					a[q] = impactAnswer(tm.name, i, w+1, q)
				}
				answers = append(answers, a)
			}
		}
		for range impactRest {
			cohorts = append(cohorts, schemas.Cohort{Department: "Eng", Team: "Rest", Location: "Berlin", TenureBand: "1-2y"})
			answers = append(answers, map[string]int{"trust-a": 5, "trust-b": 5, "auto": 5, "moti": 5, "enps": 10})
		}
		tokens, err := m.Admin.IssueInvitations(ctx, "acme", wave, cohorts)
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range tokens {
			if answers[i] != nil {
				submit(t, m, tok, answers[i])
			}
		}
		if err := m.Admin.CloseWave(ctx, "acme", wave); err != nil {
			t.Fatal(err)
		}
	}
	for _, wave := range []string{"w1", "w2"} {
		waitReleaseOf(t, m, "acme", analyst, wave)
	}
}

type impactCellJSON struct {
	Score      *float64 `json:"score"`
	Reason     string   `json:"reason"`
	Next       *float64 `json:"next"`
	NextReason string   `json:"next_reason"`
	Change     *float64 `json:"change"`
}

type planImpactJSON struct {
	WaveID         string `json:"wave_id"`
	NextWaveID     string `json:"next_wave_id"`
	TeamsWithPlans int    `json:"teams_with_plans"`
	Drivers        []struct {
		Driver      string         `json:"driver"`
		Teams       int            `json:"teams"`
		WithPlan    impactCellJSON `json:"with_plan"`
		WithoutPlan impactCellJSON `json:"without_plan"`
	} `json:"drivers"`
}

// TestPlanImpact: the leadership macro view of action plans. Teams A and B
// plan on "manager" from w1's results, A also on "autonomy", D on
// "meaning"; C has no plan. The API serves each focus driver's mean in w1
// and w2 for the teams that picked it and for the teams without a plan,
// equal to the means of the planted answers; D answers below k in w2, so
// "meaning" in its teams has no w2 score and no change (not enough
// responses), while w1 is served. The overview shows the same, in
// Chromium, axe-clean. A leader is shown no group of fewer than three
// teams; a manager is refused; bad requests are 4xx with a problem body.
func TestPlanImpact(t *testing.T) {
	m := mustMain(t, nil)
	analyst, _ := tokenFor(t, m, "acme", schemas.RoleAnalyst)
	leader, _ := tokenFor(t, m, "acme", schemas.RoleLeader)
	openImpactWaves(t, m, analyst)
	url := m.QueryURL + "/v1/orgs/acme/waves/w1/plan-impact"

	// Before any plan: nothing to compare.
	var empty planImpactJSON
	if status, body := getAs(t, leader, url); status != http.StatusOK || json.Unmarshal([]byte(body), &empty) != nil || len(empty.Drivers) != 0 || empty.TeamsWithPlans != 0 {
		t.Fatalf("before plans: %d %s", status, body)
	}

	plans := m.QueryURL + "/v1/orgs/acme/plans"
	for _, p := range []struct {
		team  int
		focus []string
	}{{0, []string{"manager", "autonomy"}}, {1, []string{"manager"}}, {3, []string{"meaning"}}} {
		if status, body := sendAs(t, http.MethodPost, analyst, plans, planJSON("w1", impactTeams[p.team].manager, p.focus, "Talk it through")); status != http.StatusCreated {
			t.Fatalf("plan for %s: %d %s", impactTeams[p.team].name, status, body)
		}
	}

	var res planImpactJSON
	status, body := getAs(t, analyst, url)
	if status != http.StatusOK || json.Unmarshal([]byte(body), &res) != nil {
		t.Fatalf("plan impact: %d %s", status, body)
	}
	t.Logf("plan impact: %s", body)
	if res.WaveID != "w1" || res.NextWaveID != "w2" || res.TeamsWithPlans != 3 || len(res.Drivers) != 3 {
		t.Fatalf("plan impact: %s", body)
	}
	approx := func(what string, got *float64, want float64) {
		t.Helper()
		if got == nil || math.Abs(*got-want) > 0.005 {
			t.Errorf("%s: got %v, want %.2f (%s)", what, ptrText(got), want, body)
		}
	}
	want := []struct {
		driver     string
		teams      int
		with, rest []string // the teams that picked it, and everyone else
	}{
		{"manager", 2, []string{"A", "B"}, []string{"C", "D", "Rest"}},
		{"autonomy", 1, []string{"A"}, []string{"B", "C", "D", "Rest"}},
		{"meaning", 1, []string{"D"}, []string{"A", "B", "C", "Rest"}},
	}
	for i, w := range want {
		d := res.Drivers[i]
		if d.Driver != w.driver || d.Teams != w.teams {
			t.Fatalf("driver %d: %s with %d teams, want %s with %d (%s)", i, d.Driver, d.Teams, w.driver, w.teams, body)
		}
		approx(w.driver+" with a plan, w1", d.WithPlan.Score, expectedMean(w.driver, 1, w.with...))
		approx(w.driver+" elsewhere, w1", d.WithoutPlan.Score, expectedMean(w.driver, 1, w.rest...))
		if w.driver == "meaning" {
			// D has 3 respondents in w2: not served, and neither is the
			// rest of the organisation, which with the organisation
			// overall would be D.
			if d.WithPlan.Next != nil || d.WithPlan.Change != nil || d.WithPlan.NextReason != "not_enough_responses" ||
				d.WithoutPlan.Next != nil || d.WithoutPlan.Change != nil || d.WithoutPlan.NextReason != "not_enough_responses" {
				t.Errorf("meaning in w2 is served for D's team (3 respondents) or its complement: %+v %+v", d.WithPlan, d.WithoutPlan)
			}
			continue
		}
		approx(w.driver+" with a plan, w2", d.WithPlan.Next, expectedMean(w.driver, 2, w.with...))
		approx(w.driver+" with a plan, change", d.WithPlan.Change, expectedMean(w.driver, 2, w.with...)-expectedMean(w.driver, 1, w.with...))
		approx(w.driver+" elsewhere, w2", d.WithoutPlan.Next, expectedMean(w.driver, 2, w.rest...))
		approx(w.driver+" elsewhere, change", d.WithoutPlan.Change, expectedMean(w.driver, 2, w.rest...)-expectedMean(w.driver, 1, w.rest...))
	}
	// The planted effect is visible: the planned teams' "manager" rose by
	// two points.
	if c := res.Drivers[0].WithPlan.Change; c == nil || *c < 1.5 {
		t.Errorf("manager in the planned teams moved %v, planted +2", ptrText(c))
	}

	// A leader sees no group of fewer than three teams: here, none at all.
	var led planImpactJSON
	if status, body := getAs(t, leader, url); status != http.StatusOK || json.Unmarshal([]byte(body), &led) != nil || len(led.Drivers) != 3 {
		t.Fatalf("plan impact for a leader: %d %s", status, body)
	} else {
		for _, d := range led.Drivers {
			for _, c := range []impactCellJSON{d.WithPlan, d.WithoutPlan} {
				if c.Score != nil || c.Next != nil || c.Reason != "too_few_teams" || c.NextReason != "too_few_teams" {
					t.Errorf("a leader is shown %s's group of fewer than three teams: %s", d.Driver, body)
				}
			}
		}
	}

	// The guard recorded these sets: with A and B (served above as the
	// teams on "manager") and then C, the head's whole subtree in w2 (A, B,
	// C and D) would be D's three respondents, so it is refused. Without
	// the plan impact's sets it would be served: A, B and D together are
	// fourteen.
	if status, body := getAs(t, analyst, m.QueryURL+"/v1/orgs/acme/waves/w2/scores?manager="+impactTeams[2].manager); status != http.StatusOK || !strings.Contains(body, `"respondents":{"n":6}`) {
		t.Fatalf("team C in w2: %d %s", status, body)
	}
	status, body = getAs(t, analyst, m.QueryURL+"/v1/orgs/acme/waves/w2/scores?reports_to="+impactHead)
	var sub struct {
		Respondents struct {
			Suppressed bool `json:"suppressed"`
			N          *int `json:"n"`
		} `json:"respondents"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &sub) != nil || !sub.Respondents.Suppressed || sub.Respondents.N != nil {
		t.Errorf("the head's subtree in w2 after the plan impact: %d %s, want suppressed", status, body)
	}
	if status, body := getAs(t, analyst, m.QueryURL+"/v1/orgs/acme/waves/w1/scores?reports_to="+impactHead); status != http.StatusOK || !strings.Contains(body, `"n":22`) {
		t.Errorf("the head's subtree in w1 (no one to isolate): %d %s", status, body)
	}

	// The same as CSV, a row per driver and group.
	status, body = getAs(t, analyst, url+"?format=csv")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if status != http.StatusOK || err != nil || len(rows) != 7 || rows[1][2] != "manager" || rows[1][3] != "with_plan" {
		t.Fatalf("csv: %d %v %q", status, err, body)
	}

	// No next wave yet for w2's plans; no plans from w2 either.
	if status, body := getAs(t, leader, m.QueryURL+"/v1/orgs/acme/waves/w2/plan-impact"); status != http.StatusOK || !strings.Contains(body, `"drivers":[]`) || strings.Contains(body, "next_wave_id") {
		t.Errorf("w2: %d %s", status, body)
	}

	// Refusals.
	ctx := context.Background()
	if _, err := m.Admin.ImportRoster(ctx, "acme", []ingest.RosterRow{{Line: 2, EmployeeID: "lead-a", Email: "lead-a@acme.example", Name: "lead-a",
		Department: "Eng", Team: "A", Location: "Berlin", StartDate: "2023-03-01"}}, nil); err != nil {
		t.Fatal(err)
	}
	mgr := managerTokenOf(t, m, "lead-a")
	for name, tc := range map[string]struct {
		token, url string
		status     int
	}{
		"manager":      {mgr, url, http.StatusForbidden},
		"no token":     {"", url, http.StatusUnauthorized},
		"bad wave":     {leader, m.QueryURL + "/v1/orgs/acme/waves/W%20x/plan-impact", http.StatusBadRequest},
		"unknown wave": {leader, m.QueryURL + "/v1/orgs/acme/waves/w9/plan-impact", http.StatusNotFound},
		"bad param":    {leader, url + "?department=Eng", http.StatusBadRequest},
	} {
		status, body := getAs(t, tc.token, tc.url)
		if status != tc.status || !strings.Contains(body, `"code"`) {
			t.Errorf("%s: %d %s, want %d with a problem body", name, status, body, tc.status)
		}
	}

	// The overview, in Chromium, shows the same numbers.
	b := browser(t)
	base := m.QueryURL + "/dashboard"
	signIn(t, b, base, analyst)
	waitBody(t, b, base+"/", "did the focus drivers move?")
	text, err := chromedp.Run(b, chromedp.Text(chromedp.CSS("#plan-impact")))
	if err != nil {
		t.Fatal(err)
	}
	mgrRow := fmt.Sprintf("%.2f → %.2f (+%.2f)", expectedMean("manager", 1, "A", "B"), expectedMean("manager", 2, "A", "B"), expectedMean("manager", 2, "A", "B")-expectedMean("manager", 1, "A", "B"))
	for _, w := range []string{"manager", "2 teams", mgrRow, "autonomy", "meaning", "not enough responses"} {
		if !strings.Contains(text, w) {
			t.Errorf("the overview's plan table lacks %q: %s", w, text)
		}
	}
	checkAccessibility(t, b, "overview with plan impact")
}

func ptrText(f *float64) string {
	if f == nil {
		return "null"
	}
	return fmt.Sprintf("%.3f", *f)
}
