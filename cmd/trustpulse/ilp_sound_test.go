package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// TestIntegerProgramAttackerSpareAPartition checks the attacker's verdicts
// themselves, without any server: it computes exact numbers (rounded as
// served) for a family of group-bys that a sound guard could serve (every
// atom of the partition they induce on a wave's respondent types holds no
// respondent or at least k), plays the attacker on them, and requires that
// it pins nothing. Then it adds one group-by that breaks the partition and
// requires a pin. So a pin reported by TestIntegerProgramAttack is the
// guard's, not the attacker's.
func TestIntegerProgramAttackerSpareAPartition(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 0x11f))
	pool := slices.Clone(ilpVictimPool)
	o := newILPOrg(rng, pool, 50, 2)

	// Candidate results: plain group-bys, and group-bys within a filter on
	// another attribute, in a random order.
	type cand struct {
		filter ilpFilter
		attr   int
	}
	var cands []cand
	values := ilpValues(o.people)
	for attr := range ilpGroupable {
		cands = append(cands, cand{attr: attr})
		for other := range ilpAttrs {
			if other == attr {
				continue
			}
			for _, v := range values[other] {
				var f ilpFilter
				f[other] = v
				cands = append(cands, cand{f, attr})
			}
		}
	}
	rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })

	// play serves every candidate a sound guard could serve, greedily, and
	// with leak set the plain group-by by that attribute whatever it breaks.
	play := func(t *testing.T, leak int) ilpResult {
		a := &ilpAttack{t: t, o: o, started: time.Now()}
		a.model = newILPModel(threshold, o.waveIDs(), o.people, ilpSurvey)
		a.learner = &ilpLearner{t: t, m: a.model}
		truth := o.truth(a.model) // the types' respondents; aggregates come later
		for _, w := range o.waveIDs() {
			family := [][]bool{a.model.set([]string{w}, ilpFilter{})}
			served := 0
			asked := 0
			for _, c := range cands {
				for _, set := range ilpGroupSets(a.model, w, c.filter, c.attr, truth) {
					asked++
					if !ilpPartitionSound(a.model, truth, append(slices.Clone(family), set)) {
						continue // a sound guard would not serve this cell
					}
					family = append(family, set)
					served++
				}
			}
			if leak >= 0 {
				family = append(family, ilpGroupSets(a.model, w, ilpFilter{}, leak, truth)...)
			}
			t.Logf("%s: %d of %d candidate sets served", w, served, asked)
			for _, set := range family {
				req := len(a.reqs)
				a.reqs = append(a.reqs, ilpRequest{kind: "synthetic", path: fmt.Sprintf("exact numbers of a %s set", w), status: http.StatusOK})
				ilpServeExactly(a, req, set)
			}
		}
		return a.solve()
	}
	t.Run("sound", func(t *testing.T) {
		res := play(t, -1)
		for _, l := range res.leaks {
			t.Errorf("the attacker reports a pin a sound guard allows: %s", l)
		}
	})
	t.Run("leaky", func(t *testing.T) {
		res := play(t, 2) // by location: the remote worker is alone
		if len(res.leaks) == 0 {
			t.Errorf("a group-by that breaks the partition, and the attacker pins nothing")
		}
	})
}

// ilpGroupSets are the groups of a group-by of one wave within a filter
// that hold at least k respondents (the others a guard hides), and the
// filter's set.
func ilpGroupSets(m *ilpModel, wave string, filter ilpFilter, attr int, truth []int64) [][]bool {
	var values []string
	for _, ty := range m.types {
		if !slices.Contains(values, ty.cohort[attr]) {
			values = append(values, ty.cohort[attr])
		}
	}
	out := [][]bool{m.set([]string{wave}, filter)}
	for _, v := range values {
		f := filter
		f[attr] = v
		set := m.set([]string{wave}, f)
		n := int64(0)
		for ty, in := range set {
			if in {
				n += truth[m.r[ty]]
			}
		}
		if n >= int64(m.k) {
			out = append(out, set)
		}
	}
	return out
}

// ilpPartitionSound reports whether every atom the sets induce on the
// respondent types (types alike in every set) holds 0 or at least k
// respondents.
func ilpPartitionSound(m *ilpModel, truth []int64, sets [][]bool) bool {
	atoms := map[string]int64{}
	for ty := range m.types {
		r := truth[m.r[ty]]
		if r == 0 {
			continue
		}
		sig := ""
		for _, s := range sets {
			sig += map[bool]string{true: "1", false: "0"}[s[ty]]
		}
		atoms[sig] += r
	}
	for _, n := range atoms {
		if n > 0 && n < int64(m.k) {
			return false
		}
	}
	return true
}

// ilpServeExactly feeds the attacker the true numbers of a set, rounded as
// the API rounds them: respondents, and per dimension and question n, mean,
// shares, favourable/neutral/unfavourable and eNPS.
func ilpServeExactly(a *ilpAttack, req int, set []bool) {
	m, o := a.model, a.o
	var cells [][]int
	for _, d := range schemas.Dimensions {
		if qs := m.questionsOf("dimension", string(d)); len(qs) > 0 {
			cells = append(cells, qs)
		}
	}
	for qi := range m.questions {
		cells = append(cells, []int{qi})
	}
	n := 0
	for _, w := range o.waves {
		for p, ans := range w.answers {
			if ans != nil && set[m.typeIndex[ilpType{w.id, o.people[p]}]] {
				n++
			}
		}
	}
	m.addCount(req, fmt.Sprintf("#%d respondents", req), set, n)
	if n == 0 {
		return
	}
	round := func(x float64, places int) *float64 {
		p := math.Pow(10, float64(places))
		v := math.Round(x*p) / p
		return &v
	}
	for _, qs := range cells {
		q0 := m.questions[qs[0]]
		dist := map[int]int{}
		sum, answers := 0, 0
		for _, w := range o.waves {
			for p, ans := range w.answers {
				if ans == nil || !set[m.typeIndex[ilpType{w.id, o.people[p]}]] {
					continue
				}
				for _, qi := range qs {
					v := ans[m.questions[qi].id]
					dist[v]++
					sum += v
					answers++
				}
			}
		}
		share := func(from, to int) float64 {
			k := 0
			for v := from; v <= to; v++ {
				k += dist[v]
			}
			return float64(k) / float64(answers)
		}
		nn := n
		s := ilpServed{n: &nn, mean: round(float64(sum)/float64(answers), 2), dist: map[int]float64{}}
		for v := q0.lo; v <= q0.hi; v++ {
			s.dist[v] = *round(share(v, v), 3)
		}
		rng := shareRanges(q0)
		s.fav, s.neu, s.unf = round(share(rng[0][0], rng[0][1]), 3), round(share(rng[1][0], rng[1][1]), 3), round(share(rng[2][0], rng[2][1]), 3)
		if q0.dim == schemas.ENPS {
			s.enps = round(100*(share(9, 10)-share(0, 6)), 1)
		}
		m.addScore(req, fmt.Sprintf("#%d %s", req, m.questions[qs[0]].dim), set, qs, s)
	}
}
