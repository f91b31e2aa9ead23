package query

import (
	"math"
	"sort"

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
	// Favorable is the share of 4–5 answers on the 1–5 scale.
	Favorable *float64 `json:"favorable,omitempty"`
	// ENPS is promoters (9–10) minus detractors (0–6), in percent of answers.
	ENPS *float64 `json:"enps,omitempty"`

	// For trend significance, never served: the answers' count and variance.
	answers  int
	variance float64
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

// WaveScores is the result of GET /v1/orgs/{org}/waves/{wave}/scores.
type WaveScores struct {
	Org         string        `json:"org"`
	WaveID      string        `json:"wave_id"`
	SurveyID    string        `json:"survey_id"`
	Threshold   int           `json:"threshold"`
	Invited     int           `json:"invited"`
	Respondents Count         `json:"respondents"`
	Dimensions  []Score       `json:"dimensions"`
	Questions   []Score       `json:"questions"`
	GroupBy     string        `json:"group_by,omitempty"`
	Groups      []GroupScores `json:"groups,omitempty"`
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
	n := c.N
	s.N, s.Mean = &n, round(c.Mean, 2)
	s.answers, s.variance = c.Answers, c.Variance
	if schemas.Dimension(c.Dimension) == schemas.ENPS {
		s.ENPS = round(100*float64(c.Promoters-c.Detractors)/float64(c.Answers), 1)
	} else {
		s.Favorable = round(float64(c.Favorable)/float64(c.Answers), 3)
	}
	return s
}

func count(n int, visible bool) Count {
	if !visible {
		return Count{Suppressed: true}
	}
	return Count{N: &n}
}

// dimensionOrder sorts cells by the schemas.Dimensions order.
func dimensionOrder(cells []Cell) {
	rank := map[string]int{}
	for i, d := range schemas.Dimensions {
		rank[string(d)] = i
	}
	sort.SliceStable(cells, func(i, j int) bool { return rank[cells[i].Dimension] < rank[cells[j].Dimension] })
}

// guardWave builds the organisation-wide part of a result: total respondents,
// dimension and question cells, each shown only under the guard's rules.
//
// forced holds the ids of cells the differencing rule suppresses.
func guardWave(g Guard, total int, dims, questions []Cell, texts map[string]string, order []string, forced map[string]bool) (Count, []Score, []Score) {
	if total < g.K {
		// Nothing at all is served for a wave with too few respondents.
		out := make([]Score, 0, len(dims))
		dimensionOrder(dims)
		for _, c := range dims {
			out = append(out, served(c, false))
		}
		return count(total, false), out, []Score{}
	}
	dimensionOrder(dims)
	ds := make([]Score, 0, len(dims))
	for _, c := range dims {
		ds = append(ds, served(c, g.Visible(c.N, total) && !forced[cell(dimensionKey(c.Dimension), "", "", 0).id()]))
	}
	pos := map[string]int{}
	for i, id := range order {
		pos[id] = i
	}
	sort.SliceStable(questions, func(i, j int) bool { return pos[questions[i].Key] < pos[questions[j].Key] })
	qs := make([]Score, 0, len(questions))
	for _, c := range questions {
		s := served(c, g.Visible(c.N, total) && !forced[cell(questionKey(c.Key), "", "", 0).id()])
		s.Text = texts[c.Key]
		qs = append(qs, s)
	}
	return count(total, !forced[cell(keyRespondents, "", "", 0).id()]), ds, qs
}

// guardGroups builds a group-by result. Groups partition the wave's
// respondents, and each dimension's cells partition that dimension's
// organisation-wide cell, so complementary suppression runs over both.
//
// attr is the group-by attribute; forced holds the ids of cells the
// differencing rule suppresses.
func guardGroups(g Guard, total int, attr string, groupN map[string]int, cells []Cell, forced map[string]bool) []GroupScores {
	names := make([]string, 0, len(groupN))
	for name := range groupN {
		names = append(names, name)
	}
	sort.Strings(names)
	ns := make([]int, len(names))
	hidden := make([]bool, len(names))
	for i, name := range names {
		ns[i] = groupN[name]
		hidden[i] = !g.Visible(ns[i], total) || forced[cell(keyRespondents, attr, name, 0).id()]
	}
	hidden = g.Complement(ns, hidden)

	// Per dimension: a cell is hidden with its group, or by rules 1-2 inside
	// the group; then complementary suppression down the column.
	byDim := map[string]map[string]Cell{}
	for _, c := range cells {
		if byDim[c.Dimension] == nil {
			byDim[c.Dimension] = map[string]Cell{}
		}
		byDim[c.Dimension][c.Group] = c
	}
	cellHidden := map[string][]bool{}
	for dim, col := range byDim {
		cn := make([]int, len(names))
		ch := make([]bool, len(names))
		for i, name := range names {
			c, ok := col[name]
			cn[i] = c.N
			ch[i] = hidden[i] || (ok && !g.Visible(c.N, ns[i])) || forced[cell(dimensionKey(dim), attr, name, 0).id()]
		}
		cellHidden[dim] = g.Complement(cn, ch)
	}

	out := make([]GroupScores, 0, len(names))
	for i, name := range names {
		gs := GroupScores{Value: name, Respondents: count(ns[i], !hidden[i])}
		for _, d := range schemas.Dimensions {
			if c, ok := byDim[string(d)][name]; ok {
				gs.Dimensions = append(gs.Dimensions, served(c, !cellHidden[c.Dimension][i]))
			}
		}
		out = append(out, gs)
	}
	return out
}

// servedCells lists the cells of a result that carry numbers.
func (r WaveScores) servedCells() []servedCell {
	var out []servedCell
	if r.Respondents.N != nil {
		out = append(out, cell(keyRespondents, "", "", *r.Respondents.N))
	}
	for _, d := range r.Dimensions {
		if d.N != nil {
			out = append(out, cell(dimensionKey(d.Dimension), "", "", *d.N))
		}
	}
	for _, q := range r.Questions {
		if q.N != nil {
			out = append(out, cell(questionKey(q.Key), "", "", *q.N))
		}
	}
	for _, g := range r.Groups {
		if g.Respondents.N != nil {
			out = append(out, cell(keyRespondents, r.GroupBy, g.Value, *g.Respondents.N))
		}
		for _, d := range g.Dimensions {
			if d.N != nil {
				out = append(out, cell(dimensionKey(d.Dimension), r.GroupBy, g.Value, *d.N))
			}
		}
	}
	return out
}
