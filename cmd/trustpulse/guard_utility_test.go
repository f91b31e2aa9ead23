package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"testing"

	"github.com/trustpulse/trustpulse/schemas"
)

// TestGuardUtilityOnDemo: a guard that refuses everything is not sound, it
// is useless. On the demo organisation, as seeded by `make demo`, the
// reports people use most are served with numbers wherever a group has at
// least k respondents: the overview, the department heatmap, the teams of
// each department and, on a wave where nothing else was asked, a location
// heatmap. The only group of k or more that may be hidden in a result is
// the one complementary suppression needs (the groups under k together
// hold 1 to k − 1). Respondent counts come from ClickHouse directly, not
// from the guard.
func TestGuardUtilityOnDemo(t *testing.T) {
	m := mustMain(t, nil)
	ctx := context.Background()
	analyst, _ := tokenFor(t, m, demoOrg, schemas.RoleAnalyst)
	if _, err := seedDemo(ctx, m, io.Discard, analyst); err != nil {
		t.Fatal(err)
	}
	latest, first := demoWaves[len(demoWaves)-1].id, demoWaves[0].id
	waitRelease(t, m, analyst, latest)
	waitRelease(t, m, analyst, first)
	k := m.Config.Threshold
	asked, shown := 0, 0

	// truth counts a wave's respondents per value of an attribute.
	truth := func(wave, attr, where string, args ...any) map[string]int {
		rows, err := m.Stack.CH.Query(ctx, fmt.Sprintf(`SELECT %s, uniqExact(response_id) FROM answers
WHERE org = ? AND wave_id = ? %s GROUP BY %[1]s`, attr, where), append([]any{demoOrg, wave}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int{}
		for rows.Next() {
			var v string
			var n uint64
			if err := rows.Scan(&v, &n); err != nil {
				t.Fatal(err)
			}
			out[v] = int(n)
		}
		return out
	}
	// heatmap checks a group-by result against the true group sizes.
	heatmap := func(path string, want map[string]int) result {
		t.Helper()
		r := apiScores(t, m, analyst, path)
		small, hiddenBig := 0, 0
		for _, g := range r.Groups {
			n := want[g.Value]
			asked++
			if n < k {
				small += n
				if g.Respondents.N != nil {
					t.Errorf("%s: %s (%d) shown under k=%d", path, g.Value, n, k)
				}
				continue
			}
			if g.Respondents.N == nil {
				hiddenBig++
				continue
			}
			shown++
			if *g.Respondents.N != n {
				t.Errorf("%s: %s shows %d, truth %d", path, g.Value, *g.Respondents.N, n)
			}
		}
		needed := 0
		if small > 0 && small < k {
			needed = 1
		}
		if hiddenBig > needed {
			t.Errorf("%s: %d groups of at least k hidden, complementary suppression needs %d (groups %v)", path, hiddenBig, needed, want)
		}
		return r
	}

	base := "/v1/orgs/" + demoOrg
	overview := apiScores(t, m, analyst, base+"/waves/"+latest+"/scores")
	asked++
	if overview.Respondents.N == nil {
		t.Fatalf("overview of %s suppressed", latest)
	}
	shown++
	for _, d := range overview.Dimensions {
		asked++
		if d.N == nil {
			t.Errorf("overview: dimension %s suppressed", d.Key)
		} else {
			shown++
		}
	}
	depts := truth(latest, "department", "")
	byDept := heatmap(base+"/waves/"+latest+"/scores?group_by=department", depts)
	for _, g := range byDept.Groups {
		// A department hidden in the heatmap (under k, or as the complement
		// of one that is) stays hidden with it: its teams are not asked.
		if g.Respondents.N == nil {
			continue
		}
		d := g.Value
		heatmap(base+"/waves/"+latest+"/scores?department="+url.QueryEscape(d)+"&group_by=team", truth(latest, "team", "AND department = ?", d))
	}
	heatmap(base+"/waves/"+first+"/scores?group_by=location", truth(first, "location", ""))
	t.Logf("utility on the demo: %d of %d requested cells served", shown, asked)
	if shown*10 < asked*8 {
		t.Errorf("only %d of %d cells served", shown, asked)
	}
}
