package main

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

var driverSurvey = schemas.SurveyPublished{SurveyID: "drivers", Title: "Drivers", Questions: []schemas.Question{
	{ID: "ei-pride", Text: "Proud", Dimension: schemas.Engagement, Driver: "pride"},
	{ID: "ei-stay", Text: "Stay", Dimension: schemas.Engagement, Driver: "future-commitment"},
	{ID: "autonomy", Text: "Autonomy", Dimension: schemas.Empowerment, Driver: "autonomy"},
	{ID: "canteen", Text: "Canteen", Dimension: schemas.Motivation, Driver: "canteen"},
	{ID: "enps", Text: "Recommend", Dimension: schemas.ENPS},
}}

// TestDriverImpact: autonomy moves with engagement, the canteen does not;
// the correlations and their intervals say so, and a wave under 30
// respondents shows no driver at all.
func TestDriverImpact(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", driverSurvey); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 2))
	now := time.Now().UTC()
	var xs, ys []float64 // autonomy, engagement index of the big wave
	for _, wv := range []struct {
		id string
		n  int
	}{{"big", 60}, {"small", 20}} {
		if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: wv.id, SurveyID: "drivers", OpensAt: now.Add(-time.Minute), ClosesAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		cohorts := make([]schemas.Cohort, wv.n)
		for i := range cohorts {
			cohorts[i] = schemas.Cohort{Department: "Engineering", Team: "T", Location: "Berlin", TenureBand: "1-2y"}
		}
		tokens, err := m.Admin.IssueInvitations(ctx, "acme", wv.id, cohorts)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range tokens {
			a := 1 + rng.IntN(5)
			pride, stay := min(5, max(1, a+rng.IntN(3)-1)), a
			answers := map[string]int{"ei-pride": pride, "ei-stay": stay, "autonomy": a, "canteen": 1 + rng.IntN(5), "enps": rng.IntN(11)}
			if wv.id == "big" {
				xs, ys = append(xs, float64(a)), append(ys, float64(pride+stay)/2)
			}
			submit(t, m, tok, answers)
		}
		if err := m.Admin.CloseWave(ctx, "acme", wv.id); err != nil {
			t.Fatal(err)
		}
	}
	type impact struct {
		Driver     string   `json:"driver"`
		Suppressed bool     `json:"suppressed"`
		N          *int     `json:"n"`
		R          *float64 `json:"r"`
		Low        *float64 `json:"ci_low"`
		High       *float64 `json:"ci_high"`
	}
	fetch := func(wave string) (string, []impact) {
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			status, body := get(t, m, "/v1/orgs/acme/waves/"+wave+"/drivers")
			if status == http.StatusOK {
				var out struct {
					Outcome string   `json:"outcome"`
					Drivers []impact `json:"drivers"`
				}
				if err := json.Unmarshal([]byte(body), &out); err != nil {
					t.Fatal(err)
				}
				return out.Outcome, out.Drivers
			}
			if time.Now().After(deadline) {
				t.Fatalf("drivers of %s: %d %s", wave, status, body)
			}
		}
	}
	outcome, big := fetch("big")
	if outcome != "engagement" || len(big) != 2 {
		t.Fatalf("outcome %s drivers %+v; want engagement with autonomy and canteen", outcome, big)
	}
	want := pearson(xs, ys)
	for _, d := range big {
		if d.Suppressed || d.N == nil || *d.N != 60 || *d.Low > *d.R || *d.R > *d.High {
			t.Fatalf("driver %+v", d)
		}
		switch d.Driver {
		case "autonomy":
			if math.Abs(*d.R-want) > 0.001 || *d.Low < 0.3 {
				t.Errorf("autonomy r=%v [%v, %v], want %.3f, clearly positive", *d.R, *d.Low, *d.High, want)
			}
		case "canteen":
			if *d.Low > 0 || *d.High < 0 {
				t.Errorf("canteen r=%v [%v, %v]: the interval should include 0", *d.R, *d.Low, *d.High)
			}
		}
	}
	if _, small := fetch("small"); len(small) != 2 || !small[0].Suppressed || small[0].R != nil || !small[1].Suppressed {
		t.Fatalf("drivers of a wave of 20: %+v, want all suppressed", small)
	}
}

func pearson(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy, sxx, syy, sxy float64
	for i := range x {
		sx, sy = sx+x[i], sy+y[i]
		sxx, syy, sxy = sxx+x[i]*x[i], syy+y[i]*y[i], sxy+x[i]*y[i]
	}
	return (n*sxy - sx*sy) / math.Sqrt((n*sxx-sx*sx)*(n*syy-sy*sy))
}
