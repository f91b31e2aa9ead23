package query

import (
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/trustpulse/trustpulse/schemas"
)

// Score is one served cell. When Suppressed is set it carries no number at
// all, not even its count.
type Score struct {
	Key        string   `json:"key"`
	Text       string   `json:"text,omitempty"`
	Dimension  string   `json:"dimension,omitempty"`
	Suppressed bool     `json:"suppressed,omitempty"`
	N          *int     `json:"n,omitempty"`
	Mean       *float64 `json:"mean,omitempty"`
	// Favorable, Neutral and Unfavorable are the shares of 4–5, 3 and 1–2
	// answers on the 1–5 scale; for eNPS, of promoters (9–10), passives
	// (7–8) and detractors (0–6).
	Favorable   *float64 `json:"favorable,omitempty"`
	Neutral     *float64 `json:"neutral,omitempty"`
	Unfavorable *float64 `json:"unfavorable,omitempty"`
	// ENPS is promoters minus detractors, in percent of answers.
	ENPS *float64 `json:"enps,omitempty"`
	// Distribution is the share of answers of each value of the scale.
	Distribution []Share `json:"distribution,omitempty"`
	// VsOrg is the mean minus the organisation overall's mean for the same
	// waves (eNPS: points of eNPS), where both are shown.
	VsOrg *float64 `json:"vs_org,omitempty"`

	// For trend significance and differences, never served.
	answers  int
	variance float64
	mean     float64
	enps     float64
}

// Share is the share of answers of one value.
type Share struct {
	Value int     `json:"value"`
	Share float64 `json:"share"`
}

// Count is a served count, or Suppressed.
type Count struct {
	Suppressed bool `json:"suppressed,omitempty"`
	N          *int `json:"n,omitempty"`
}

// GroupScores is one group of a group-by result.
type GroupScores struct {
	Value       string  `json:"value"`
	Respondents Count   `json:"respondents"`
	Dimensions  []Score `json:"dimensions,omitempty"`
}

// Scores is the result of GET /v1/orgs/{org}/waves/{wave}/scores and
// GET /v1/orgs/{org}/scores.
type Scores struct {
	Org    string   `json:"org"`
	WaveID string   `json:"wave_id,omitempty"`
	Waves  []string `json:"waves"`
	// Filter is the attribute filters the result is restricted to.
	Filter    map[string]string `json:"filter,omitempty"`
	Threshold int               `json:"threshold"`
	// Invited is shown with the respondents only.
	Invited     *int    `json:"invited,omitempty"`
	Respondents Count   `json:"respondents"`
	Dimensions  []Score `json:"dimensions"`
	Drivers     []Score `json:"drivers"`
	Questions   []Score `json:"questions"`
	// Overall is the organisation overall's dimensions over the same
	// waves, given when the result is filtered.
	Overall []Score       `json:"overall,omitempty"`
	GroupBy string        `json:"group_by,omitempty"`
	Groups  []GroupScores `json:"groups,omitempty"`
}

func round(x float64, places int) *float64 {
	p := math.Pow(10, float64(places))
	v := math.Round(x*p) / p
	return &v
}

// served turns a raw cell into a served score, or a suppressed one.
func served(c Cell, visible bool) Score {
	s := Score{Key: c.Key, Dimension: c.Dimension}
	if !visible {
		s.Suppressed = true
		return s
	}
	n, answers := c.N, c.Answers()
	if answers == 0 {
		s.Suppressed = true
		return s
	}
	s.N, s.Mean = &n, round(c.Mean, 2)
	s.answers, s.variance, s.mean = answers, c.Variance, c.Mean
	share := func(from, to int) float64 {
		k := 0
		for v := from; v <= to; v++ {
			k += c.Dist[v]
		}
		return float64(k) / float64(answers)
	}
	lo, hi := 1, 5
	fav, neu, unf := share(4, 5), share(3, 3), share(1, 2)
	if schemas.Dimension(c.Dimension) == schemas.ENPS {
		lo, hi = 0, 10
		fav, neu, unf = share(9, 10), share(7, 8), share(0, 6)
		s.enps = 100 * (fav - unf)
		s.ENPS = round(s.enps, 1)
	}
	s.Favorable, s.Neutral, s.Unfavorable = round(fav, 3), round(neu, 3), round(unf, 3)
	for v := lo; v <= hi; v++ {
		s.Distribution = append(s.Distribution, Share{Value: v, Share: *round(share(v, v), 3)})
	}
	return s
}

// vsOrg sets the difference of a shown score from the organisation's.
func (s *Score) vsOrg(org Score) {
	if s.Suppressed || org.Suppressed || org.N == nil {
		return
	}
	if schemas.Dimension(s.Dimension) == schemas.ENPS {
		s.VsOrg = round(s.enps-org.enps, 1)
		return
	}
	s.VsOrg = round(s.mean-org.mean, 2)
}

func count(n int, visible bool) Count {
	if !visible {
		return Count{Suppressed: true}
	}
	return Count{N: &n}
}

// byDimension sorts cells by the schemas.Dimensions order.
func byDimension(cells []Cell) {
	rank := map[string]int{}
	for i, d := range schemas.Dimensions {
		rank[string(d)] = i
	}
	sort.SliceStable(cells, func(i, j int) bool { return rank[cells[i].Dimension] < rank[cells[j].Dimension] })
}

// scopeCells are a scope's raw aggregates, before the guard.
type scopeCells struct {
	total     int
	dims      []Cell
	questions []Cell
	drivers   []Cell
}

// guardScope builds the scope-wide part of a result: total respondents and
// the dimension, driver and question cells, each shown only under the
// guard's rules (nothing at all below K respondents). hidden is set when
// the guard refuses the scope's set.
func guardScope(g Guard, in scopeCells, texts map[string]string, order []string, hidden bool) (Count, []Score, []Score, []Score) {
	show := func(c Cell) Score {
		return served(c, in.total >= g.K && g.Visible(c.N, in.total) && !hidden)
	}
	dims := slices.Clone(in.dims)
	byDimension(dims)
	ds := make([]Score, 0, len(dims))
	for _, c := range dims {
		ds = append(ds, show(c))
	}
	drivers := slices.Clone(in.drivers)
	slices.SortFunc(drivers, func(a, b Cell) int { return strings.Compare(a.Key, b.Key) })
	drs := make([]Score, 0, len(drivers))
	for _, c := range drivers {
		s := show(c)
		s.Dimension = ""
		drs = append(drs, s)
	}
	pos := map[string]int{}
	for i, id := range order {
		pos[id] = i
	}
	questions := slices.Clone(in.questions)
	sort.SliceStable(questions, func(i, j int) bool { return pos[questions[i].Key] < pos[questions[j].Key] })
	qs := make([]Score, 0, len(questions))
	for _, c := range questions {
		s := show(c)
		s.Text = texts[c.Key]
		qs = append(qs, s)
	}
	return count(in.total, in.total >= g.K && !hidden), ds, drs, qs
}

// guardGroups builds a group-by result. Groups partition the scope's
// respondents, so complementary suppression runs over them.
//
// allowed holds the groups whose sets the guard serves (nil: all).
func guardGroups(g Guard, total int, groupN map[string]int, cells []Cell, allowed map[string]bool) []GroupScores {
	names := make([]string, 0, len(groupN))
	for name := range groupN {
		names = append(names, name)
	}
	sort.Strings(names)
	ns := make([]int, len(names))
	hidden := make([]bool, len(names))
	for i, name := range names {
		ns[i] = groupN[name]
		hidden[i] = total < g.K || !g.Visible(ns[i], total) || (allowed != nil && !allowed[name])
	}
	hidden = g.Complement(ns, hidden)

	// Per dimension: a cell is hidden with its group, or by rules 1-2 inside
	// the group. No suppression runs down a dimension's column: it would
	// make a cell depend on the answers of groups not served, and the
	// guard's invariant makes it unnecessary (package guard).
	byDim := map[string]map[string]Cell{}
	for _, c := range cells {
		if byDim[c.Dimension] == nil {
			byDim[c.Dimension] = map[string]Cell{}
		}
		byDim[c.Dimension][c.Group] = c
	}
	out := make([]GroupScores, 0, len(names))
	for i, name := range names {
		gs := GroupScores{Value: name, Respondents: count(ns[i], !hidden[i])}
		for _, d := range schemas.Dimensions {
			if c, ok := byDim[string(d)][name]; ok {
				gs.Dimensions = append(gs.Dimensions, served(c, !hidden[i] && g.Visible(c.N, ns[i])))
			}
		}
		out = append(out, gs)
	}
	return out
}
