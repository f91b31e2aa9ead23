package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// Attack R6: odd requests to every endpoint and to the dashboard, looking
// for a 5xx or a crash.
func TestRedTeamOddRequests(t *testing.T) {
	m := mustMain(t, nil)
	sb := schemas.Cohort{Department: "Sales", Team: "s", Location: "Berlin", TenureBand: "1-2y"}
	ops := schemas.Cohort{Department: "Ops", Team: "o", Location: "Lisbon", TenureBand: "<1y"}
	cohorts := cohortsOf(sb, 20, ops, 20)
	redWave(t, m, "w1", time.Now().Add(-time.Hour), cohorts, func(i int) *redResponse {
		if i%7 == 0 {
			return &redResponse{answers: map[string]int{"enps": 7}, comment: "few answers"}
		}
		return &redResponse{answers: all(1 + i%5), comment: "c"}
	})
	// An empty wave, released with no response at all.
	redWave(t, m, "w0", time.Now().Add(-2*time.Hour), cohortsOf(sb, 3), func(int) *redResponse { return nil })
	if err := m.Admin.OpenWave(context.Background(), "acme", schemas.WaveOpened{WaveID: "w9", SurveyID: redSurvey.SurveyID, OpensAt: time.Now().Add(-time.Minute), ClosesAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	a := authorize(t, m, schemas.RoleAnalyst)
	leader := authorize(t, m, schemas.RoleLeader)
	o := "/v1/orgs/acme"
	paths := []string{
		o + "/scores?waves=w1,w1", o + "/scores?waves=,", o + "/scores?waves=w1,w0", o + "/scores?waves=w0",
		o + "/scores?from=0001-01-01&to=9999-12-31", o + "/scores?from=2020-02-30&to=2020-03-01",
		o + "/scores?waves=w1&from=2020-01-01&to=2020-01-02", o + "/scores?waves=w9",
		o + "/waves/w1/scores?department=%C3%28", o + "/waves/w1/scores?department=%7F", o + "/waves/w1/scores?department=" + strings.Repeat("%C3%A9", 60),
		o + "/waves/w1/scores?group_by=team&team=s", o + "/waves/w1/scores?group_by=", o + "/waves/w1/scores?department=",
		o + "/waves/w1/scores?format=csv&group_by=location&department=Sales", o + "/waves/w0/scores?group_by=department",
		o + "/waves/w0/participation?group_by=team&format=csv", o + "/waves/w0/drivers", o + "/waves/w0/comments?question=better",
		o + "/waves/w1/drivers?format=csv", o + "/waves/w1/drivers?department=Sales",
		o + "/waves/w1/comments?question=better&department=%00", o + "/waves/w1/comments?question=trust-a", o + "/waves/w1/comments",
		o + "/waves/w1/live", o + "/waves/w9/live", o + "/waves/w9/scores", o + "/waves/nope/live", o + "/waves/W1/scores",
		o + "/trends?format=csv&department=Sales", o + "/trends?group_by=team", o + "/trends?location=Lisbon",
		o + "/retention?from=2030-01-01&to=2020-01-01", o + "/retention?group_by=team&format=csv", o + "/retention?from=x",
		"/v1/orgs/ACME/waves", "/v1/orgs/" + strings.Repeat("a", 70) + "/waves", "/v1/orgs/acme%2F..%2Fx/waves",
	}
	bad := 0
	for _, tok := range []string{a, leader} {
		for _, p := range paths {
			status, body := getAs(t, tok, m.QueryURL+p)
			if status >= 500 && !strings.Contains(body, "results_pending") {
				bad++
				t.Errorf("5xx: %s → %d %s", p, status, body)
			}
		}
	}
	// Concurrency: many refining decisions at once on two replicas.
	other := secondQuery(t, m)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := m.QueryURL
			if i%2 == 1 {
				base = other
			}
			f := []string{"department=Sales", "location=Lisbon", "tenure_band=%3C1y", "team=s", "department=Ops&group_by=location"}[i%5]
			status, _ := getAs(t, a, base+o+"/waves/w1/scores?"+f)
			mu.Lock()
			codes[status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("concurrent decisions: %v", codes)

	// Dashboard.
	d := newDashClient(t, m)
	if resp, _ := d.signIn(a); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	for _, p := range []string{
		"/", "/explore?wave=w1&wave=w1&department=Sales&department=Ops", "/explore?wave=w0&group_by=team",
		"/explore?wave=w9", "/explore?wave=w1&wave=w0&group_by=department", "/explore?department=%C3%28",
		"/export/drivers?wave=w0", "/export/participation?wave=w1&wave=w0", "/export/trends?group_by=team",
		"/export/retention", "/export/scores?wave=w0&group_by=location", "/export/nope",
	} {
		resp, body := d.do(http.MethodGet, p, nil, nil)
		if resp.StatusCode >= 500 {
			bad++
			t.Errorf("dashboard 5xx: %s → %d %s", p, resp.StatusCode, body[:min(300, len(body))])
		}
	}
	t.Logf("%d 5xx responses", bad)
}
