package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// response is one response as a scope test sent it: its wave, its cohort
// and its answers.
type response struct {
	wave    string
	cohort  schemas.Cohort
	answers map[string]int
}

// attr reads a cohort attribute by its API name.
func attr(c schemas.Cohort, name string) string {
	switch name {
	case "department":
		return c.Department
	case "team":
		return c.Team
	case "location":
		return c.Location
	case "tenure_band":
		return c.TenureBand
	}
	return ""
}

// truthBy aggregates responses that match keep, per group and per key
// (dimension, question id, or "drv:"+driver).
func truthBy(responses []response, keep func(response) bool, group func(response) string) map[string]map[string]*cellTruth {
	out := map[string]map[string]*cellTruth{}
	for i, r := range responses {
		if !keep(r) {
			continue
		}
		g := group(r)
		if out[g] == nil {
			out[g] = map[string]*cellTruth{}
		}
		for _, q := range e2eSurvey.Questions {
			v, ok := r.answers[q.ID]
			if !ok {
				continue
			}
			for _, key := range []string{string(q.Dimension), q.ID, "drv:" + q.Driver} {
				if out[g][key] == nil {
					out[g][key] = &cellTruth{}
				}
				out[g][key].add(i, v, q.Dimension)
			}
		}
	}
	return out
}

// scopeOrg publishes the survey, opens w1 (a month ago) and w2 (now),
// invites a varied organisation to both, lets everyone answer w1 and about
// four in five w2, closes both and waits for their release.
func scopeOrg(t *testing.T, m *Main, rng *rand.Rand) ([]response, []schemas.Cohort) {
	t.Helper()
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", e2eSurvey); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	opens := map[string]time.Time{"w1": now.AddDate(0, -1, 0), "w2": now.Add(-time.Minute)}
	var cohorts []schemas.Cohort
	add := func(n int, dept, team, loc, tenure string) {
		for range n {
			cohorts = append(cohorts, schemas.Cohort{Department: dept, Team: team, Location: loc, TenureBand: tenure})
		}
	}
	add(18, "Engineering", "eng-1", "Berlin", "1-2y")
	add(7, "Engineering", "eng-1", "Lisbon", "2-5y")
	add(12, "Engineering", "eng-2", "Berlin", "<1y")
	add(3, "Engineering", "eng-2", "Lisbon", "2-5y")
	add(20, "Sales", "sales-1", "Berlin", "1-2y")
	add(6, "Sales", "sales-1", "Lisbon", "<1y")
	add(3, "Legal", "legal", "Berlin", "2-5y")
	var out []response
	for _, w := range []string{"w1", "w2"} {
		if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: w, SurveyID: "pulse", OpensAt: opens[w], ClosesAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		tokens, err := m.Admin.IssueInvitations(ctx, "acme", w, cohorts)
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range tokens {
			if w == "w2" && rng.IntN(5) == 0 {
				continue
			}
			a := map[string]int{}
			for _, q := range e2eSurvey.Questions {
				if q.Optional && rng.IntN(4) == 0 {
					continue
				}
				lo, hi := q.Dimension.Range()
				a[q.ID] = lo + rng.IntN(hi-lo+1)
			}
			submit(t, m, tok, a)
			out = append(out, response{wave: w, cohort: cohorts[i], answers: a})
		}
		if err := m.Admin.CloseWave(ctx, "acme", w); err != nil {
			t.Fatal(err)
		}
	}
	waitScores(t, m, "")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if status, _ := get(t, m, "/v1/orgs/acme/waves/w2/participation"); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("w2 never released")
		}
	}
	return out, cohorts
}

// TestScoresFiltersAndPeriods checks filtered, grouped and pooled results
// against aggregates computed here from the sent responses: every shown
// number equals the truth, shares and distributions included, the
// difference from the organisation overall is the difference of the true
// means, and the CSV carries the same numbers.
func TestScoresFiltersAndPeriods(t *testing.T) {
	month := time.Now().UTC().AddDate(0, -1, 0)
	today := time.Now().UTC()

	cases := []struct {
		path    string
		waves   []string
		filter  map[string]string
		groupBy string
	}{
		{"/v1/orgs/acme/scores?from=" + month.Format(time.DateOnly) + "&to=" + today.Format(time.DateOnly) + "&department=Sales", []string{"w1", "w2"}, map[string]string{"department": "Sales"}, ""},
		{"/v1/orgs/acme/waves/w1/scores?department=Engineering", []string{"w1"}, map[string]string{"department": "Engineering"}, ""},
		{"/v1/orgs/acme/waves/w1/scores?department=Engineering&group_by=team", []string{"w1"}, map[string]string{"department": "Engineering"}, "team"},
		{"/v1/orgs/acme/waves/w2/scores?location=Berlin&group_by=department", []string{"w2"}, map[string]string{"location": "Berlin"}, "department"},
		{"/v1/orgs/acme/scores?waves=w1,w2", []string{"w1", "w2"}, nil, ""},
		{"/v1/orgs/acme/scores?waves=w2,w1&group_by=location", []string{"w1", "w2"}, nil, "location"},
		{"/v1/orgs/acme/scores?from=" + month.AddDate(0, 0, -1).Format(time.DateOnly) + "&to=" + month.AddDate(0, 0, 1).Format(time.DateOnly), []string{"w1"}, nil, ""},
	}
	// Each case on an organisation of its own: the guard keeps the sets it
	// served first, and results set against each other are its tests'
	// business (query/guard, attack tests); this test checks the numbers.
	for _, tc := range cases {
		m := mustMain(t, nil)
		responses, _ := scopeOrg(t, m, rand.New(rand.NewPCG(7, 11)))
		status, body := get(t, m, tc.path)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.path, status, body)
		}
		var r result
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		if strings.Join(r.Waves, ",") != strings.Join(tc.waves, ",") || fmt.Sprint(r.Filter) != fmt.Sprint(tc.filter) {
			t.Errorf("%s: waves %v filter %v, want %v %v", tc.path, r.Waves, r.Filter, tc.waves, tc.filter)
		}
		inWaves := func(x response) bool { return strings.Contains(","+strings.Join(tc.waves, ",")+",", ","+x.wave+",") }
		matches := func(x response) bool {
			for a, v := range tc.filter {
				if attr(x.cohort, a) != v {
					return false
				}
			}
			return inWaves(x)
		}
		scope := truthBy(responses, matches, func(response) string { return "" })[""]
		n := 0
		for _, x := range responses {
			if matches(x) {
				n++
			}
		}
		if r.Respondents.N == nil || *r.Respondents.N != n {
			t.Errorf("%s: respondents %+v, want %d", tc.path, r.Respondents, n)
		}
		shown := 0
		for _, s := range append(append(r.Dimensions, r.Questions...), r.Drivers...) {
			key := s.Key
			if s.Dimension == "" {
				key = "drv:" + s.Key
			}
			checkScore(t, tc.path+" "+key, s, scope[key])
			if !s.Suppressed {
				shown++
			}
		}
		if shown < len(r.Dimensions)+len(r.Questions) {
			t.Errorf("%s: only %d cells shown; the test checks too little", tc.path, shown)
		}
		if len(r.Drivers) != 4 {
			t.Errorf("%s: %d drivers, want 4", tc.path, len(r.Drivers))
		}
		// The organisation overall over the same waves.
		org := truthBy(responses, inWaves, func(response) string { return "" })[""]
		if len(tc.filter) > 0 {
			for _, s := range r.Overall {
				checkScore(t, tc.path+" overall "+s.Key, s, org[s.Key])
			}
			for _, s := range r.Dimensions {
				checkVsOrg(t, tc.path+" "+s.Key, s, scope[s.Key], org[s.Key])
			}
		}
		groups := truthBy(responses, matches, func(x response) string { return attr(x.cohort, tc.groupBy) })
		for _, g := range r.Groups {
			for _, s := range g.Dimensions {
				checkScore(t, tc.path+" "+g.Value+" "+s.Key, s, groups[g.Value][s.Key])
				checkVsOrg(t, tc.path+" "+g.Value+" "+s.Key, s, groups[g.Value][s.Key], org[s.Key])
			}
		}
		if tc.groupBy != "" && len(r.Groups) != len(groups) {
			t.Errorf("%s: %d groups, want %d", tc.path, len(r.Groups), len(groups))
		}
		checkScoresCSV(t, m, tc.path, r)
	}
	m := mustMain(t, nil)
	responses, cohorts := scopeOrg(t, m, rand.New(rand.NewPCG(7, 11)))
	checkParticipation(t, m, responses, cohorts)
}

// checkParticipation compares filtered, grouped participation of w2 with
// the invitations and responses sent, in JSON and CSV.
func checkParticipation(t *testing.T, m *Main, responses []response, cohorts []schemas.Cohort) {
	t.Helper()
	path := "/v1/orgs/acme/waves/w2/participation?location=Berlin&group_by=department"
	status, body := get(t, m, path)
	if status != http.StatusOK {
		t.Fatalf("%s: %d %s", path, status, body)
	}
	var p struct {
		Overall participationRow   `json:"overall"`
		Groups  []participationRow `json:"groups"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	invited, responded := map[string]int{}, map[string]int{}
	for _, c := range cohorts {
		if c.Location == "Berlin" {
			invited[c.Department]++
			invited[""]++
		}
	}
	for _, r := range responses {
		if r.wave == "w2" && r.cohort.Location == "Berlin" {
			responded[r.cohort.Department]++
			responded[""]++
		}
	}
	shown := 0
	for _, g := range append([]participationRow{p.Overall}, p.Groups...) {
		if g.Suppressed {
			if g.Invited != nil || g.Responded != nil || g.Rate != nil {
				t.Errorf("suppressed participation of %q carries numbers", g.Value)
			}
			continue
		}
		shown++
		if *g.Invited != invited[g.Value] || *g.Responded != responded[g.Value] ||
			math.Abs(*g.Rate-float64(responded[g.Value])/float64(invited[g.Value])) > 0.0005 {
			t.Errorf("participation of %q: %d of %d (%v), want %d of %d", g.Value, *g.Responded, *g.Invited, *g.Rate, responded[g.Value], invited[g.Value])
		}
	}
	// Overall and Engineering; Legal (under k) and Sales (its complement:
	// Berlin minus Engineering would be Legal) are hidden.
	if shown < 2 {
		t.Errorf("only %d participation rows shown: %s", shown, body)
	}
	status, body = get(t, m, path+"&format=csv")
	if status != http.StatusOK || !strings.HasPrefix(body, "wave_id,group_by,group,suppressed,invited,responded,rate\n") ||
		!strings.Contains(body, fmt.Sprintf("w2,department,,false,%d,%d,", invited[""], responded[""])) {
		t.Errorf("participation CSV: %d %s", status, body)
	}
}

type participationRow struct {
	Value      string   `json:"value"`
	Suppressed bool     `json:"suppressed"`
	Invited    *int     `json:"invited"`
	Responded  *int     `json:"responded"`
	Rate       *float64 `json:"rate"`
}

// checkVsOrg checks a shown cell's difference from the organisation overall.
func checkVsOrg(t *testing.T, where string, s score, cell, org *cellTruth) {
	t.Helper()
	if s.Suppressed || cell == nil || org == nil {
		return
	}
	if s.VsOrg == nil {
		t.Errorf("%s: no vs_org", where)
		return
	}
	want := float64(cell.sum)/float64(cell.n) - float64(org.sum)/float64(org.n)
	if s.Dimension == string(schemas.ENPS) {
		enps := func(c *cellTruth) float64 { return 100 * float64(c.pro-c.det) / float64(c.n) }
		want = enps(cell) - enps(org)
	}
	if math.Abs(*s.VsOrg-want) > 0.011+math.Abs(want)*1e-9 && !(s.Dimension == string(schemas.ENPS) && math.Abs(*s.VsOrg-want) <= 0.051) {
		t.Errorf("%s: vs_org %v, want %.3f", where, *s.VsOrg, want)
	}
}

// checkScoresCSV fetches the CSV of a scores request and requires the same
// cells and numbers as its JSON.
func checkScoresCSV(t *testing.T, m *Main, path string, r result) {
	t.Helper()
	status, body := get(t, m, path+"&format=csv")
	if status != http.StatusOK {
		t.Fatalf("%s CSV: %d %s", path, status, body)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("%s CSV: %v", path, err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	means := map[string]string{}
	for _, row := range rows[1:] {
		if row[col["kind"]] == "dimension" && row[col["group"]] == "" {
			means[row[col["key"]]] = row[col["mean"]]
		}
	}
	for _, s := range r.Dimensions {
		want := ""
		if s.Mean != nil {
			want = fmt.Sprint(*s.Mean)
		}
		if means[s.Key] != want {
			t.Errorf("%s CSV: %s mean %q, JSON %q", path, s.Key, means[s.Key], want)
		}
	}
	wantRows := 1 + len(r.Dimensions) + len(r.Drivers) + len(r.Questions) + len(r.Overall)
	for _, g := range r.Groups {
		wantRows += 1 + len(g.Dimensions)
	}
	if len(rows)-1 != wantRows {
		t.Errorf("%s CSV: %d rows, want %d", path, len(rows)-1, wantRows)
	}
}

// TestScopeBadInput: malformed filters and periods get a 400 (or 403, 404)
// problem and serve nothing.
func TestScopeBadInput(t *testing.T) {
	m := mustMain(t, nil)
	_, _ = scopeOrg(t, m, rand.New(rand.NewPCG(3, 4)))
	leader := authorize(t, m, schemas.RoleLeader)
	cases := []struct {
		path, code string
		status     int
	}{
		{"/v1/orgs/acme/waves/w1/scores?department=Sales&department=Legal", "invalid_filter", 400},
		{"/v1/orgs/acme/waves/w1/scores?team=eng-1&group_by=team", "invalid_filter", 400},
		{"/v1/orgs/acme/waves/w1/scores?location=" + strings.Repeat("x", 200), "invalid_filter", 400},
		{"/v1/orgs/acme/scores", "invalid_period", 400},
		{"/v1/orgs/acme/scores?waves=w1&from=2026-01-01&to=2026-02-01", "invalid_period", 400},
		{"/v1/orgs/acme/scores?from=2026-02-01&to=2026-01-01", "invalid_period", 400},
		{"/v1/orgs/acme/scores?from=yesterday&to=2026-01-01", "invalid_period", 400},
		{"/v1/orgs/acme/scores?waves=w1,w1", "invalid_period", 400},
		{"/v1/orgs/acme/scores?waves=w1,nope", "wave_not_found", 404},
		{"/v1/orgs/acme/scores?from=2001-01-01&to=2001-12-31", "no_waves", 404},
		{"/v1/orgs/acme/trends?group_by=team", "invalid_parameter", 400},
		{"/v1/orgs/acme/waves/w1/scores?departmnet=Sales", "invalid_parameter", 400},
	}
	for _, tc := range cases {
		status, body := get(t, m, tc.path)
		if status != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) {
			t.Errorf("%s: %d %s, want %d %s", tc.path, status, body, tc.status, tc.code)
		}
	}
	if status, body := getAs(t, leader, m.QueryURL+"/v1/orgs/acme/waves/w1/scores?team=eng-1"); status != http.StatusForbidden {
		t.Errorf("leader filtering by team: %d %s", status, body)
	}
	if status, body := getAs(t, leader, m.QueryURL+"/v1/orgs/acme/waves/w1/scores?department=Sales"); status != http.StatusOK {
		t.Errorf("leader filtering by department: %d %s", status, body)
	}
}

// TestThresholdPerOrganisation: an organisation's threshold is fixed in
// each wave when it opens; changing it later leaves opened waves alone.
func TestThresholdPerOrganisation(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	if err := m.Admin.ConfigureOrg(ctx, "acme", schemas.OrgConfigured{Threshold: 7}); err != nil {
		t.Fatal(err)
	}
	if err := m.Admin.ConfigureOrg(ctx, "acme", schemas.OrgConfigured{Threshold: 11}); err == nil {
		t.Fatal("threshold 11 accepted")
	}
	openWave(t, m)
	// A later change does not touch the open wave.
	if err := m.Admin.ConfigureOrg(ctx, "acme", schemas.OrgConfigured{Threshold: 3}); err != nil {
		t.Fatal(err)
	}
	if got := m.Admin.Org("acme"); got.Threshold != 3 {
		t.Fatalf("org threshold %d, want 3", got.Threshold)
	}
	var cohorts []schemas.Cohort
	for i := range 22 {
		dept := "Sales" // 16 in Sales, 6 in Ops: Ops is shown under k=5, not under k=7
		if i >= 16 {
			dept = "Ops"
		}
		cohorts = append(cohorts, schemas.Cohort{Department: dept, Team: dept, Location: "Berlin", TenureBand: "1-2y"})
	}
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", cohorts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		submit(t, m, tok, map[string]int{"trust-a": 4, "trust-b": 3, "auto": 3, "moti": 3, "enps": 8})
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	r := waitScores(t, m, "?group_by=department")
	if r.Threshold != 7 {
		t.Fatalf("wave threshold %d, want 7 (fixed when it opened)", r.Threshold)
	}
	for _, g := range r.Groups {
		if g.Value == "Ops" && !g.Respondents.Suppressed {
			t.Errorf("Ops (6 respondents) shown under threshold 7: %+v", g.Respondents)
		}
	}
}
