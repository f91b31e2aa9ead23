package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// Regression tests for the findings of issue 10, each through the public
// API against the real servers. The guard's own tests (query/guard) check
// its rule exhaustively on tiny organisations; these check that every
// endpoint goes through it.

// guardWave opens wave id of the e2e survey with an optional threshold,
// invites cohorts, submits answer(i) for each (nil: no response) and closes
// it; waitWaveReleased waits for it.
func guardWave(t *testing.T, m *Main, id string, opens time.Time, threshold int, cohorts []schemas.Cohort, answer func(i int) map[string]int) {
	t.Helper()
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", e2eSurvey); err != nil {
		t.Fatal(err)
	}
	if threshold > 0 {
		if err := m.Admin.ConfigureOrg(ctx, "acme", schemas.OrgConfigured{Threshold: threshold}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: id, SurveyID: "pulse", OpensAt: opens, ClosesAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", id, cohorts)
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range tokens {
		if a := answer(i); a != nil {
			submit(t, m, tok, a)
		}
	}
	if err := m.Admin.CloseWave(ctx, "acme", id); err != nil {
		t.Fatal(err)
	}
	waitWaveReleased(t, m, id)
}

func waitWaveReleased(t *testing.T, m *Main, id string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if status, _ := get(t, m, "/v1/orgs/acme/waves/"+id+"/participation"); status == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("wave %s never released", id)
		}
	}
}

func cohortsOf(spec ...any) []schemas.Cohort {
	var out []schemas.Cohort
	for i := 0; i < len(spec); i += 2 {
		c := spec[i].(schemas.Cohort)
		for range spec[i+1].(int) {
			out = append(out, c)
		}
	}
	return out
}

func steady(i int) map[string]int {
	return map[string]int{"trust-a": 1 + i%5, "trust-b": 1 + (i/2)%5, "auto": 1 + (i/3)%5, "moti": 2 + i%4, "enps": i % 11}
}

// respondents is a served result's respondent count, or -1 when hidden
// (or refused).
func respondents(t *testing.T, m *Main, token, url string) int {
	t.Helper()
	status, body := getAs(t, token, url)
	if status == http.StatusConflict {
		return -1
	}
	if status != http.StatusOK {
		t.Fatalf("%s: %d %s", url, status, body)
	}
	var r result
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if r.Respondents.N == nil {
		return -1
	}
	return *r.Respondents.N
}

// secondQuery starts another query service over m's ClickHouse and NATS,
// as a second `--target query` process would be, and returns its URL.
func secondQuery(t *testing.T, m *Main) string {
	t.Helper()
	return servedBy(t, m, m.Stack.CH)
}

// Finding 1: D to one replica and D&L (one person fewer) to another at
// the same instant were both served. With the record shared through a
// compare-and-set, at most one is, in every try.
func TestGuardTwoReplicas(t *testing.T) {
	m := mustMain(t, nil)
	berlin := schemas.Cohort{Department: "Sales", Team: "s", Location: "Berlin", TenureBand: "1-2y"}
	lisbon := schemas.Cohort{Department: "Sales", Team: "s", Location: "Lisbon", TenureBand: "1-2y"}
	ops := schemas.Cohort{Department: "Ops", Team: "o", Location: "Berlin", TenureBand: "1-2y"}
	const tries = 6
	for i := range tries {
		guardWave(t, m, fmt.Sprint("w", i), time.Now().Add(-time.Minute), 0, cohortsOf(berlin, 12, lisbon, 1, ops, 30), steady)
	}
	other := secondQuery(t, m)
	analyst := authorize(t, m, schemas.RoleAnalyst)
	both := 0
	for i := range tries {
		w := fmt.Sprint("w", i)
		var wg sync.WaitGroup
		var d, dl int
		wg.Add(2)
		go func() {
			defer wg.Done()
			d = respondents(t, m, analyst, m.QueryURL+"/v1/orgs/acme/waves/"+w+"/scores?department=Sales")
		}()
		go func() {
			defer wg.Done()
			dl = respondents(t, m, analyst, other+"/v1/orgs/acme/waves/"+w+"/scores?department=Sales&location=Berlin")
		}()
		wg.Wait()
		if d >= 0 && dl >= 0 {
			both++
			t.Errorf("%s: Sales (%d) and Sales in Berlin (%d) both served by two replicas", w, d, dl)
		}
		if d < 0 && dl < 0 {
			t.Errorf("%s: neither served; one of them is safe alone", w)
		}
	}
	t.Logf("%d tries, %d served both", tries, both)
}

// Finding 2: a chain D in w1, D&L pooled over (w1,w2) … (w9,w10), D&L in
// w10 — its alternating sum is one person. No bound on the chain.
func TestGuardChainOfPeriods(t *testing.T) {
	m := mustMain(t, nil)
	dl := schemas.Cohort{Department: "Sales", Team: "s", Location: "Berlin", TenureBand: "1-2y"}
	dOnly := schemas.Cohort{Department: "Sales", Team: "s", Location: "Lisbon", TenureBand: "1-2y"}
	ops := schemas.Cohort{Department: "Ops", Team: "o", Location: "Berlin", TenureBand: "1-2y"}
	const n = 10
	start := time.Now().Add(-time.Duration(n) * time.Hour)
	for i := range n {
		guardWave(t, m, fmt.Sprint("w", i), start.Add(time.Duration(i)*time.Hour), 0, cohortsOf(dl, 20, dOnly, 1, ops, 20), steady)
	}
	analyst := authorize(t, m, schemas.RoleAnalyst)
	served := 0
	paths := []string{"/v1/orgs/acme/waves/w0/scores?department=Sales"}
	for i := range n - 1 {
		paths = append(paths, fmt.Sprintf("/v1/orgs/acme/scores?waves=w%d,w%d&department=Sales&location=Berlin", i, i+1))
	}
	paths = append(paths, fmt.Sprintf("/v1/orgs/acme/waves/w%d/scores?department=Sales&location=Berlin", n-1))
	for _, p := range paths {
		if respondents(t, m, analyst, m.QueryURL+p) >= 0 {
			served++
		}
	}
	if served == len(paths) {
		t.Fatalf("every result of the %d-link chain was served: its alternating sum is one person", len(paths))
	}
	t.Logf("%d of %d links served", served, len(paths))
}

// xyzCohorts: X = Sales holds the victim V and A; Y = Berlin holds A and
// B; Z = 2-5y holds B and the colluder C. Every two of X, Y, Z differ by
// at least 20 people, yet X − Y + Z is V and C: the colluder knows his own
// answers, so the victim's follow.
func xyzCohorts() []schemas.Cohort {
	v := schemas.Cohort{Department: "Sales", Team: "s", Location: "Lisbon", TenureBand: "<1y"}
	a := schemas.Cohort{Department: "Sales", Team: "s", Location: "Berlin", TenureBand: "<1y"}
	b := schemas.Cohort{Department: "Ops", Team: "o", Location: "Berlin", TenureBand: "2-5y"}
	c := schemas.Cohort{Department: "Ops", Team: "o", Location: "Lisbon", TenureBand: "2-5y"}
	return cohortsOf(v, 1, a, 20, b, 20, c, 1)
}

var xyzFilters = []string{"department=Sales", "location=Berlin", "tenure_band=2-5y"}

// Finding 3: X − Y + Z over three filtered results.
func TestGuardThreeResults(t *testing.T) {
	m := mustMain(t, nil)
	guardWave(t, m, "w1", time.Now().Add(-time.Minute), 0, xyzCohorts(), steady)
	analysts := []string{authorize(t, m, schemas.RoleAnalyst), authorize(t, m, schemas.RoleAnalyst)}
	served := 0
	for i, f := range xyzFilters {
		if respondents(t, m, analysts[i%2], m.QueryURL+"/v1/orgs/acme/waves/w1/scores?"+f) >= 0 {
			served++
		}
	}
	if served == len(xyzFilters) {
		t.Fatal("X, Y and Z all served: X − Y + Z is the victim and one colluder")
	}
	if served == 0 {
		t.Fatal("none served: X alone is safe")
	}
}

// Finding 4: the same combination over comment lists left exactly the
// victim's comment.
func TestGuardCommentsCombination(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	openCommentWave(t, m)
	tokens, err := m.Admin.IssueInvitations(ctx, "acme", "w1", xyzCohorts())
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range tokens {
		if status, resp := postJSONComment(t, m, tok, steady(i), fmt.Sprintf("comment number %d", i)); status != http.StatusAccepted {
			t.Fatalf("submit: %d %s", status, resp)
		}
	}
	if err := m.Admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	waitWaveReleased(t, m, "w1")
	analysts := []string{authorize(t, m, schemas.RoleAnalyst), authorize(t, m, schemas.RoleAnalyst)}
	served := 0
	for i, f := range xyzFilters {
		status, body := getAs(t, analysts[i%2], m.QueryURL+"/v1/orgs/acme/waves/w1/comments?question=better&"+f)
		if status != http.StatusOK {
			t.Fatalf("comments %s: %d %s", f, status, body)
		}
		if strings.Contains(body, `"comments"`) {
			served++
		}
	}
	if served == len(xyzFilters) {
		t.Fatal("the comments of X, Y and Z all served: X − Y + Z leaves the victim's comment and the colluder's")
	}
	if served == 0 {
		t.Fatal("no comment list served: X alone is safe")
	}
}

// postJSONComment submits answers and a comment through the JSON API.
func postJSONComment(t *testing.T, m *Main, token string, answers map[string]int, comment string) (int, string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"token": token, "answers": answers, "comments": map[string]string{"better": comment}})
	resp, err := http.Post(m.IngestURL+"/v1/responses", "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// Finding 5: a group of 3 hidden in a k=10 wave, pooled with a k=3 wave
// and set against that wave alone, came out.
func TestGuardWaveThresholds(t *testing.T) {
	m := mustMain(t, nil)
	small := schemas.Cohort{Department: "Legal", Team: "l", Location: "Berlin", TenureBand: "1-2y"}
	big := schemas.Cohort{Department: "Sales", Team: "s", Location: "Berlin", TenureBand: "1-2y"}
	guardWave(t, m, "w1", time.Now().Add(-2*time.Hour), 3, cohortsOf(small, 8, big, 30), steady)
	guardWave(t, m, "w2", time.Now().Add(-time.Hour), 10, cohortsOf(small, 3, big, 30), steady)
	analyst := authorize(t, m, schemas.RoleAnalyst)
	if n := respondents(t, m, analyst, m.QueryURL+"/v1/orgs/acme/waves/w1/scores?department=Legal"); n != 8 {
		t.Fatalf("Legal in the k=3 wave: %d, want 8 served", n)
	}
	// 11 respondents, above the pooled cell's k of 10: but minus w1's 8
	// it is w2's 3, under that wave's k of 10.
	if n := respondents(t, m, analyst, m.QueryURL+"/v1/orgs/acme/scores?waves=w1,w2&department=Legal"); n >= 0 {
		t.Fatalf("Legal over w1 and w2 served (%d): minus w1's 8, it is w2's 3 under k=10", n)
	}
	if n := respondents(t, m, analyst, m.QueryURL+"/v1/orgs/acme/waves/w2/scores?department=Legal"); n >= 0 {
		t.Fatalf("Legal in the k=10 wave served: %d", n)
	}
}

// openCommentWave publishes the e2e survey with a comment question,
// "better", and opens w1 of it.
func openCommentWave(t *testing.T, m *Main) {
	t.Helper()
	ctx := context.Background()
	survey := e2eSurvey
	survey.Questions = append(append([]schemas.Question(nil), e2eSurvey.Questions...), schemas.Question{ID: "better", Text: "What would make it better?", Dimension: schemas.Comment, Optional: true})
	if err := m.Admin.PublishSurvey(ctx, "acme", survey); err != nil {
		t.Fatal(err)
	}
	if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: "w1", SurveyID: "pulse", OpensAt: time.Now().Add(-time.Minute), ClosesAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
}
