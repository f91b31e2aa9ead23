package query

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/trustpulse/trustpulse/schemas"
)

func TestGuardVisible(t *testing.T) {
	g := Guard{K: 5}
	for _, tc := range []struct {
		n, parent int
		want      bool
	}{
		{0, 10, false}, {4, 10, false}, {5, 5, true}, {5, 10, true}, {5, 9, false},
		{6, 10, false}, {7, 8, false}, {10, 10, true}, {100, 104, false}, {100, 105, true},
	} {
		if got := g.Visible(tc.n, tc.parent); got != tc.want {
			t.Errorf("Visible(%d of %d) = %v, want %v", tc.n, tc.parent, got, tc.want)
		}
	}
}

func TestGuardComplement(t *testing.T) {
	g := Guard{K: 5}
	for _, tc := range []struct {
		ns     []int
		hidden []bool
		want   []bool
	}{
		{[]int{3, 40, 20}, []bool{true, false, false}, []bool{true, false, true}},
		{[]int{3, 2, 40}, []bool{true, true, false}, []bool{true, true, false}},
		{[]int{10, 20}, []bool{false, false}, []bool{false, false}},
		{[]int{1, 6, 7}, []bool{true, false, false}, []bool{true, true, false}},
		{[]int{4, 0, 30}, []bool{true, false, false}, []bool{true, false, true}},
	} {
		if got := g.Complement(tc.ns, tc.hidden); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Complement(%v, %v) = %v, want %v", tc.ns, tc.hidden, got, tc.want)
		}
	}
}

// TestGuardGroupsProperty generates random organisations and checks the
// guard's promises on every group-by result: each shown number stands on at
// least K respondents, and the hidden groups hold 0 or at least K
// respondents, so no total minus the shown groups singles out fewer than K.
func TestGuardGroupsProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 11))
	for trial := range 2000 {
		k := 3 + rng.IntN(8)
		g := Guard{K: k}
		groups := 1 + rng.IntN(7)
		groupN := map[string]int{}
		var cells []Cell
		total := 0
		for i := range groups {
			name := fmt.Sprintf("g%d", i)
			n := 1 + rng.IntN(3*k)
			if rng.IntN(3) == 0 {
				n = 1 + rng.IntN(k)
			}
			groupN[name] = n
			total += n
			for _, d := range schemas.Dimensions {
				// Optional questions: a dimension may have fewer respondents.
				dn := n - rng.IntN(min(n, 3))
				if rng.IntN(4) == 0 {
					dn = n
				}
				if dn == 0 {
					continue
				}
				cells = append(cells, Cell{Group: name, Key: string(d), Dimension: string(d), N: dn, Dist: answersOf(3, dn), Mean: 3})
			}
		}
		out := guardGroups(g, total, groupN, cells, nil)
		hiddenGroups := 0
		for _, gs := range out {
			n := groupN[gs.Value]
			if gs.Respondents.Suppressed {
				hiddenGroups += n
			} else if n < k {
				t.Fatalf("trial %d: group %s of %d shown with k=%d", trial, gs.Value, n, k)
			}
			for _, s := range gs.Dimensions {
				var truth Cell
				for _, c := range cells {
					if c.Group == gs.Value && c.Dimension == s.Dimension {
						truth = c
					}
				}
				if s.Suppressed {
					if s.N != nil || s.Mean != nil {
						t.Fatalf("trial %d: suppressed cell carries numbers", trial)
					}
					continue
				}
				if truth.N < k || (n-truth.N > 0 && n-truth.N < k) {
					t.Fatalf("trial %d: cell %s/%s of %d (group %d) shown with k=%d", trial, gs.Value, s.Dimension, truth.N, n, k)
				}
			}
		}
		// Partitions of a total that is itself not served need no complement.
		if total >= k && hiddenGroups > 0 && hiddenGroups < k {
			t.Fatalf("trial %d: hidden groups hold %d < k=%d respondents (groups %v, total %d)", trial, hiddenGroups, k, groupN, total)
		}
	}
}

// answersOf is a distribution of n answers of value v.
func answersOf(v, n int) (d [11]int) {
	d[v] = n
	return d
}

func TestGuardScopeBelowThreshold(t *testing.T) {
	g := Guard{K: 5}
	in := scopeCells{total: 4,
		dims:      []Cell{{Key: "trust", Dimension: "trust", N: 4, Dist: answersOf(4, 4), Mean: 4}},
		questions: []Cell{{Key: "q", Dimension: "trust", N: 4, Dist: answersOf(4, 4), Mean: 4}},
		drivers:   []Cell{{Key: "Autonomy", Dimension: "trust", N: 4, Dist: answersOf(4, 4), Mean: 4}}}
	resp, ds, drs, qs := guardScope(g, in, nil, nil, false)
	if !resp.Suppressed || resp.N != nil {
		t.Fatalf("respondents of a scope of 4 served: %+v", resp)
	}
	for _, s := range append(append(ds, drs...), qs...) {
		if !s.Suppressed || s.N != nil || s.Mean != nil || s.Distribution != nil {
			t.Fatalf("cell of a scope of 4 respondents served: %+v", s)
		}
	}
}

func TestServedShares(t *testing.T) {
	c := Cell{Key: "trust", Dimension: "trust", N: 10, Mean: 3.2}
	c.Dist[1], c.Dist[2], c.Dist[3], c.Dist[4], c.Dist[5] = 1, 2, 3, 2, 2
	s := served(c, true)
	if *s.Favorable != 0.4 || *s.Neutral != 0.3 || *s.Unfavorable != 0.3 {
		t.Fatalf("shares %v %v %v, want 0.4 0.3 0.3", *s.Favorable, *s.Neutral, *s.Unfavorable)
	}
	if len(s.Distribution) != 5 || s.Distribution[0] != (Share{1, 0.1}) || s.Distribution[4] != (Share{5, 0.2}) {
		t.Fatalf("distribution %v", s.Distribution)
	}
	e := Cell{Key: "enps", Dimension: "enps", N: 10}
	e.Dist[10], e.Dist[9], e.Dist[8], e.Dist[3], e.Dist[0] = 3, 2, 2, 2, 1
	es := served(e, true)
	if *es.ENPS != 20 || *es.Favorable != 0.5 || *es.Neutral != 0.2 || *es.Unfavorable != 0.3 || len(es.Distribution) != 11 {
		t.Fatalf("eNPS %v shares %v %v %v, distribution %v", *es.ENPS, *es.Favorable, *es.Neutral, *es.Unfavorable, es.Distribution)
	}
	org := served(Cell{Key: "trust", Dimension: "trust", N: 20, Mean: 3.5, Dist: answersOf(3, 20)}, true)
	s.vsOrg(org)
	if s.VsOrg == nil || *s.VsOrg != -0.3 {
		t.Fatalf("vs_org %v, want -0.3", s.VsOrg)
	}
}
