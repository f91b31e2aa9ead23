package main

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// TestTrends: three waves, trust rising clearly from the first to the
// second; the third has too few respondents and is suppressed, and the trend
// is still served around it.
func TestTrends(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", e2eSurvey); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	trustMeans := map[string]float64{}
	for i, wv := range []struct {
		id    string
		n     int
		trust func(i int) int
	}{
		{"q1", 30, func(i int) int { return 1 + i%3 }}, // 1,2,3: mean 2
		{"q2", 30, func(i int) int { return 3 + i%3 }}, // 3,4,5: mean 4
		{"q3", 3, func(i int) int { return 5 }},
	} {
		if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: wv.id, SurveyID: "pulse",
			OpensAt: now.Add(time.Duration(i-10) * time.Hour), ClosesAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		cohorts := make([]schemas.Cohort, wv.n)
		for j := range cohorts {
			cohorts[j] = schemas.Cohort{Department: "Engineering", Team: "T", Location: "Berlin", TenureBand: "1-2y"}
		}
		tokens, err := m.Admin.IssueInvitations(ctx, "acme", wv.id, cohorts)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0
		for j, tok := range tokens {
			v := wv.trust(j)
			sum += 2 * v
			submit(t, m, tok, map[string]int{"trust-a": v, "trust-b": v, "auto": 3, "moti": 3, "enps": 7})
		}
		trustMeans[wv.id] = float64(sum) / float64(2*wv.n)
		if err := m.Admin.CloseWave(ctx, "acme", wv.id); err != nil {
			t.Fatal(err)
		}
	}
	var out struct {
		Trends []struct {
			Dimension string `json:"dimension"`
			Points    []struct {
				WaveID      string   `json:"wave_id"`
				Suppressed  bool     `json:"suppressed"`
				N           *int     `json:"n"`
				Mean        *float64 `json:"mean"`
				Change      *float64 `json:"change"`
				Significant *bool    `json:"significant"`
			} `json:"points"`
		} `json:"trends"`
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		status, body := get(t, m, "/v1/orgs/acme/trends")
		if status != http.StatusOK {
			t.Fatalf("trends: %d %s", status, body)
		}
		out.Trends = nil // decode afresh: Unmarshal keeps fields the last poll set
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Trends) > 0 && len(out.Trends[0].Points) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trends never covered the three waves: %s", body)
		}
	}
	for _, tr := range out.Trends {
		if tr.Dimension != "trust" {
			continue
		}
		p1, p2, p3 := tr.Points[0], tr.Points[1], tr.Points[2]
		if p1.WaveID != "q1" || p2.WaveID != "q2" || p3.WaveID != "q3" {
			t.Fatalf("points out of order: %+v", tr.Points)
		}
		if p1.Mean == nil || math.Abs(*p1.Mean-trustMeans["q1"]) > 0.005 || p2.Mean == nil || math.Abs(*p2.Mean-trustMeans["q2"]) > 0.005 {
			t.Fatalf("means %v %v, want %.2f %.2f", p1.Mean, p2.Mean, trustMeans["q1"], trustMeans["q2"])
		}
		if p2.Change == nil || math.Abs(*p2.Change-(trustMeans["q2"]-trustMeans["q1"])) > 0.01 || p2.Significant == nil || !*p2.Significant {
			t.Fatalf("q2 change %v significant %v; want +2, significant", p2.Change, p2.Significant)
		}
		if !p3.Suppressed || p3.N != nil || p3.Mean != nil || p3.Change != nil {
			t.Fatalf("q3 of 3 respondents served: %+v", p3)
		}
		return
	}
	t.Fatal("no trust trend")
}
