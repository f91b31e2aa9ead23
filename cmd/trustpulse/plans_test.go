package main

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// Two teams of acme, by their managers' person ids: planTeam has six
// direct reports (served at k = 5), smallTeam two (never served).
const (
	planTeam  = "4b8f5c1e-2a3d-4e6f-9a1b-7c2d3e4f5a01"
	smallTeam = "4b8f5c1e-2a3d-4e6f-9a1b-7c2d3e4f5a02"
	planHead  = "4b8f5c1e-2a3d-4e6f-9a1b-7c2d3e4f5a00"
)

// openPlanWaves publishes e2eSurvey and runs waves w1 and w2 (opening one
// after the other) for the same 14 people: six of planTeam, two of
// smallTeam and six with no manager, their cohorts planted. In w1
// planTeam's trust-a answers are 2, in w2 4; everyone else answers 3.
// Both waves are closed and released when it returns.
func openPlanWaves(t *testing.T, m *Main, analyst string) {
	t.Helper()
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", e2eSurvey); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var cohorts []schemas.Cohort
	for i := range 14 {
		c := schemas.Cohort{Department: "Eng", Team: "Rest", Location: "Berlin", TenureBand: "1-2y"}
		switch {
		case i < 6:
			c.Team, c.Managers, c.Manager = "Big", []string{planHead, planTeam}, planTeam
		case i < 8:
			c.Team, c.Managers, c.Manager = "Small", []string{planHead, smallTeam}, smallTeam
		}
		cohorts = append(cohorts, c)
	}
	for w, wave := range []string{"w1", "w2"} {
		opens := now.Add(time.Duration(w-3) * time.Minute)
		if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: wave, SurveyID: "pulse", OpensAt: opens, ClosesAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		tokens, err := m.Admin.IssueInvitations(ctx, "acme", wave, cohorts)
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range tokens {
			trust := 3
			if i < 6 {
				trust = 2 + 2*w
			}
			submit(t, m, tok, map[string]int{"trust-a": trust, "trust-b": 3, "auto": 4, "moti": 4, "enps": 8})
		}
		if err := m.Admin.CloseWave(ctx, "acme", wave); err != nil {
			t.Fatal(err)
		}
	}
	for _, wave := range []string{"w1", "w2"} {
		waitReleaseOf(t, m, "acme", analyst, wave)
	}
}

// sendAs sends a request of method with a bearer token and a JSON body
// ("" sends none).
func sendAs(t *testing.T, method, token, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type planView struct {
	schemas.Plan
	Drivers []struct {
		Driver     string   `json:"driver"`
		Score      *float64 `json:"score"`
		Reason     string   `json:"reason"`
		NextWaveID string   `json:"next_wave_id"`
		Next       *float64 `json:"next"`
		NextReason string   `json:"next_reason"`
	} `json:"drivers"`
}

func listPlans(t *testing.T, m *Main, token, manager string) []planView {
	t.Helper()
	status, body := getAs(t, token, m.QueryURL+"/v1/orgs/acme/plans?manager="+manager)
	if status != http.StatusOK {
		t.Fatalf("list plans: %d %s", status, body)
	}
	var r struct {
		Plans []planView `json:"plans"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return r.Plans
}

func planJSON(wave, manager string, focus []string, commitments ...string) string {
	b, _ := json.Marshal(map[string]any{"wave_id": wave, "manager": manager, "focus_drivers": focus, "commitments": commitments})
	return string(b)
}

// TestPlans: a team's plan is created, updated and completed through the
// API, its events name the author, the list shows wave after wave how the
// focus drivers moved (w1 to w2), and a team too small for the guard gets
// null scores with the reason. Every refused request is a 4xx with a
// problem body and publishes nothing.
func TestPlans(t *testing.T) {
	m := mustMain(t, nil)
	analyst, analystID := tokenFor(t, m, "acme", schemas.RoleAnalyst)
	leader, _ := tokenFor(t, m, "acme", schemas.RoleLeader)
	openPlanWaves(t, m, analyst)
	plans := m.QueryURL + "/v1/orgs/acme/plans"
	events := func() uint64 {
		return streamCount(t, m, schemas.ActionPlannedType) + streamCount(t, m, schemas.ActionUpdatedType) + streamCount(t, m, schemas.ActionCompletedType)
	}

	status, body := sendAs(t, http.MethodPost, analyst, plans, planJSON("w1", planTeam, []string{"manager", "autonomy"}, "Weekly one-to-ones", "  Say why decisions are made \u0007"))
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	var plan schemas.Plan
	if err := json.Unmarshal([]byte(body), &plan); err != nil {
		t.Fatal(err)
	}
	if plan.Status != schemas.PlanOpen || plan.Author.TokenID != analystID || plan.Author.Name != "dashboard test" || plan.Author.Role != schemas.RoleAnalyst ||
		len(plan.Commitments) != 2 || plan.Commitments[1] != "Say why decisions are made" {
		t.Fatalf("created plan %+v", plan)
	}
	if status, body := sendAs(t, http.MethodPost, analyst, plans, planJSON("w1", smallTeam, []string{"manager"}, "Ask the team")); status != http.StatusCreated {
		t.Fatalf("create for the small team: %d %s", status, body)
	}
	if n := events(); n != 2 {
		t.Fatalf("%d plan events after two creates", n)
	}

	one := plans + "/" + plan.PlanID
	long := strings.Repeat("x", schemas.MaxCommitmentLen+1)
	eleven := make([]string, schemas.MaxCommitments+1)
	for i := range eleven {
		eleven[i] = "do it"
	}
	for name, tc := range map[string]struct {
		method, token, url, body string
		status                   int
		code                     string
	}{
		"ErrLeader":          {"POST", leader, plans, planJSON("w1", planTeam, []string{"manager"}, "x"), 403, "forbidden"},
		"ErrLeaderList":      {"GET", leader, plans + "?manager=" + planTeam, "", 403, "forbidden"},
		"ErrNoToken":         {"POST", "", plans, planJSON("w1", planTeam, []string{"manager"}, "x"), 401, "unauthorized"},
		"ErrExists":          {"POST", analyst, plans, planJSON("w1", planTeam, []string{"manager"}, "x"), 409, "plan_exists"},
		"ErrMalformedMgr":    {"POST", analyst, plans, planJSON("w2", "Big", []string{"manager"}, "x"), 400, "invalid_manager"},
		"ErrUnknownWave":     {"POST", analyst, plans, planJSON("w9", planTeam, []string{"manager"}, "x"), 404, "wave_not_found"},
		"ErrNotADriver":      {"POST", analyst, plans, planJSON("w2", planTeam, []string{"salary"}, "x"), 422, "invalid_plan"},
		"ErrFourDrivers":     {"POST", analyst, plans, planJSON("w2", planTeam, []string{"manager", "autonomy", "meaning", "leadership"}, "x"), 422, "invalid_plan"},
		"ErrTwiceADriver":    {"POST", analyst, plans, planJSON("w2", planTeam, []string{"manager", "manager"}, "x"), 422, "invalid_plan"},
		"ErrNoDrivers":       {"POST", analyst, plans, planJSON("w2", planTeam, nil, "x"), 422, "invalid_plan"},
		"ErrNoCommitments":   {"POST", analyst, plans, planJSON("w2", planTeam, []string{"manager"}, "   "), 422, "invalid_plan"},
		"ErrElevenCommits":   {"POST", analyst, plans, planJSON("w2", planTeam, []string{"manager"}, eleven...), 422, "invalid_plan"},
		"ErrLongCommitment":  {"POST", analyst, plans, planJSON("w2", planTeam, []string{"manager"}, long), 422, "invalid_plan"},
		"ErrUnknownField":    {"POST", analyst, plans, `{"wave_id":"w2","manager":"` + planTeam + `","focus_drivers":["manager"],"commitments":["x"],"status":"completed"}`, 400, "invalid_body"},
		"ErrNotJSON":         {"POST", analyst, plans, "", 415, "unsupported_media_type"},
		"ErrUnknownParam":    {"POST", analyst, plans + "?team=Big", planJSON("w2", planTeam, []string{"manager"}, "x"), 400, "invalid_parameter"},
		"ErrListNoManager":   {"GET", analyst, plans, "", 400, "invalid_manager"},
		"ErrListBadParam":    {"GET", analyst, plans + "?manager=" + planTeam + "&team=Big", "", 400, "invalid_parameter"},
		"ErrUpdateUnknown":   {"PUT", analyst, plans + "/6f1c2b3a-1d2e-4f5a-8b9c-0d1e2f3a4b5c", planJSON("", "", []string{"manager"}, "x"), 404, "plan_not_found"},
		"ErrUpdateMalformed": {"PUT", analyst, plans + "/nope", planJSON("", "", []string{"manager"}, "x"), 404, "plan_not_found"},
		"ErrUpdateMoveWave":  {"PUT", analyst, one, planJSON("w2", "", []string{"manager"}, "x"), 422, "invalid_plan"},
		"ErrUpdateBadDriver": {"PUT", analyst, one, planJSON("", "", []string{"salary"}, "x"), 422, "invalid_plan"},
		"ErrUpdateLeader":    {"PUT", leader, one, planJSON("", "", []string{"manager"}, "x"), 403, "forbidden"},
		"ErrCompleteBody":    {"POST", analyst, one + "/complete", `{"x":1}`, 400, "invalid_body"},
		"ErrCompleteLeader":  {"POST", leader, one + "/complete", "", 403, "forbidden"},
	} {
		t.Run(name, func(t *testing.T) {
			status, body := sendAs(t, tc.method, tc.token, tc.url, tc.body)
			if name == "ErrNotJSON" {
				status, body, _ = postAs(t, tc.token, tc.url, "text/plain", `{"wave_id":"w2"}`)
			}
			if status != tc.status || !strings.Contains(body, tc.code) || !strings.Contains(body, `"detail"`) {
				t.Errorf("%d %s, want %d %s with a problem body", status, body, tc.status, tc.code)
			}
		})
	}
	if n := events(); n != 2 {
		t.Fatalf("%d plan events published after refused requests, want the 2 creates", n)
	}

	// Update, then complete; a completed plan no longer changes.
	status, body = sendAs(t, http.MethodPut, analyst, one, planJSON("", "", []string{"manager", "meaning"}, "Weekly one-to-ones", "A growth talk each"))
	if status != http.StatusOK || !strings.Contains(body, `"meaning"`) {
		t.Fatalf("update: %d %s", status, body)
	}
	if status, body = sendAs(t, http.MethodPost, analyst, one+"/complete", ""); status != http.StatusOK || !strings.Contains(body, `"completed"`) {
		t.Fatalf("complete: %d %s", status, body)
	}
	for _, req := range [][3]string{{"PUT", one, planJSON("", "", []string{"manager"}, "x")}, {"POST", one + "/complete", ""}} {
		if status, body := sendAs(t, req[0], analyst, req[1], req[2]); status != http.StatusConflict || !strings.Contains(body, "plan_completed") {
			t.Errorf("%s %s of a completed plan: %d %s", req[0], req[1], status, body)
		}
	}
	if n := events(); n != 4 {
		t.Fatalf("%d plan events, want 4 (2 created, 1 updated, 1 completed)", n)
	}
	// A plan for the next wave, to list wave after wave.
	if status, body := sendAs(t, http.MethodPost, analyst, plans, planJSON("w2", planTeam, []string{"manager"}, "Keep the one-to-ones")); status != http.StatusCreated {
		t.Fatalf("create for w2: %d %s", status, body)
	}

	// The list: w1's plan, then w2's; the manager driver (trust-a) moved
	// from 2 to 4 between them; w2 has no next wave.
	list := listPlans(t, m, analyst, planTeam)
	if len(list) != 2 || list[0].WaveID != "w1" || list[1].WaveID != "w2" || list[0].Status != schemas.PlanCompleted {
		t.Fatalf("plans of the big team: %+v", list)
	}
	near := func(what string, got *float64, want float64) {
		if got == nil || math.Abs(*got-want) > 0.006 {
			t.Errorf("%s: %v, want %.2f", what, got, want)
		}
	}
	d := list[0].Drivers
	if len(d) != 2 || d[0].Driver != "manager" || d[1].Driver != "meaning" || d[0].NextWaveID != "w2" {
		t.Fatalf("w1 plan's drivers %+v", d)
	}
	near("manager in w1", d[0].Score, 2)
	near("manager in w2", d[0].Next, 4)
	near("meaning in w1", d[1].Score, 4)
	if w2 := list[1].Drivers; len(w2) != 1 || w2[0].Next != nil || w2[0].NextReason != "no_next_wave" {
		t.Errorf("w2 plan's drivers %+v", w2)
	}
	near("manager in w2's plan", list[1].Drivers[0].Score, 4)
	// The small team's scores are not served: null with the reason.
	small := listPlans(t, m, analyst, smallTeam)
	if len(small) != 1 || len(small[0].Drivers) != 1 {
		t.Fatalf("plans of the small team: %+v", small)
	}
	if s := small[0].Drivers[0]; s.Score != nil || s.Reason != "not_enough_responses" || s.Next != nil || s.NextReason != "not_enough_responses" {
		t.Errorf("small team's driver %+v, want null scores, not_enough_responses", s)
	}
	status, body = getAs(t, analyst, plans+"?manager="+smallTeam)
	if !strings.Contains(body, `"score":null`) || strings.Contains(body, `"mean"`) {
		t.Errorf("small team's list %d %s", status, body)
	}
}
