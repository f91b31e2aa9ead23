package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/trustpulse/trustpulse/schemas"
)

// The integer program of the attacker in TestIntegerProgramAttack. It is
// built from what the attacker knows, the roster (who was invited to which
// wave, with which cohort) and the survey, and from the numbers the API
// served; nothing in it comes from package query.
//
// Unknowns, for every response type t = (wave, department, team, location,
// tenure band) of the roster:
//
//	r_t        respondents of type t, an integer in [0, invited_t]
//	x_{t,q,v}  respondents of type t who answered v to question q, integers
//	           with sum_v x_{t,q,v} = r_t (every question is required)
//
// Every served number is a linear constraint on them (ilpModel.addScore and
// friends), with the rounding of the number turned into integer bounds:
//
//   - a count n (respondents, participation's responded, a cell's n, a
//     trend point's n, driver impact's n): sum of r_t over the cell = n;
//   - a cell over questions Q (a dimension's, a driver's, one question) has
//     n respondents and n*|Q| answers A (every question is required), its
//     mean m (2 decimals) bounds sum v*x to [A(m-0.005), A(m+0.005)], each
//     share s of a value or of a range (favorable, neutral, unfavorable; 3
//     decimals) bounds the count to [A(s-0.0005), A(s+0.0005)], eNPS (1
//     decimal) bounds promoters minus detractors;
//   - a plan-impact mean m of a driver over a set whose n is not served:
//     for each n the set could hold, the sum of its answers lies in
//     [n|Q|(m-0.005), n|Q|(m+0.005)], empty for many n, and n >= k
//     (ilpModel.addMean, over a 0-1 choice of n);
//   - vs_org d, the unrounded mean of a cell minus the organisation's over
//     the same waves (both served with their n, so A and B are known):
//     B*sum_cell - A*sum_org within A*B*(d±0.005), or for eNPS the same on
//     promoters minus detractors.
//
// Not modelled, because they are not linear in the unknowns: driver
// impact's correlations and confidence intervals, trends' significance
// (variances); trends' change and participation's rate follow from numbers
// that are modelled; that a cell came back suppressed, or a result refused,
// is not used either.

// ilpType is a response type: a wave and a cohort.
type ilpType struct {
	wave   string
	cohort ilpCohort
}

// ilpQuestion is a question of ilpSurvey as the attacker models it.
type ilpQuestion struct {
	id, driver string
	dim        schemas.Dimension
	lo, hi     int
}

// ilpTerm is coef times variable v.
type ilpTerm struct {
	v int
	c int64
}

// ilpNoBound marks a missing lower or upper bound.
const (
	ilpNoLo = math.MinInt64
	ilpNoHi = math.MaxInt64
)

// ilpBound is what one served number says about a row: lo <= row <= hi.
// req is the request that served it, -1 for what the attacker knows
// without asking (the structure of the unknowns).
type ilpBound struct {
	req    int
	lo, hi int64
	what   string
}

// ilpRow is a linear expression and every bound served numbers put on it.
type ilpRow struct {
	terms  []ilpTerm
	bounds []ilpBound
}

// ilpCell is a served cell, kept for reports.
type ilpCell struct {
	req  int
	what string
	set  []bool
	n    int
}

type ilpModel struct {
	k         int
	types     []ilpType
	typeIndex map[ilpType]int
	invited   []int
	questions []ilpQuestion
	waves     []string

	names   []string
	upper   []int64
	integer []bool
	r       []int     // type -> variable
	x       [][][]int // type, question, value-lo -> variable
	// Aggregates, to keep the program small: y_{S,q,v} = sum over the
	// types t of a served set S of x_{t,q,v}, one per set, question and
	// value, defined by a row each (continuous: integral whenever the x
	// are).
	aux    []ilpAux
	blocks map[string][][]int // set -> question, value-lo -> variable
	// counts are, per set whose respondents a served mean leaves unknown,
	// one 0-1 unknown per possible count (ilpModel.countVars).
	counts map[string]*ilpCountVars

	rows   []*ilpRow
	rowKey map[string]*ilpRow
	cells  []ilpCell
	// bodies caches the constraints as written, over all requests, while
	// nBounds (bounds added so far) stays the same.
	bodies  map[bool]*ilpBody
	nBounds int
}

// newILPModel sets up the unknowns from the roster: every wave invited
// everyone in people.
func newILPModel(k int, waves []string, people []ilpCohort, survey schemas.SurveyPublished) *ilpModel {
	m := &ilpModel{k: k, typeIndex: map[ilpType]int{}, waves: waves, rowKey: map[string]*ilpRow{}, blocks: map[string][][]int{}}
	for _, q := range survey.Questions {
		lo, hi := q.Dimension.Range()
		driver := q.Driver
		if q.Dimension == schemas.ENPS || q.Dimension == schemas.Engagement {
			driver = "" // outcomes are not drivers
		}
		m.questions = append(m.questions, ilpQuestion{id: q.ID, driver: driver, dim: q.Dimension, lo: lo, hi: hi})
	}
	for _, w := range waves {
		for _, c := range people {
			ty := ilpType{w, c}
			i, ok := m.typeIndex[ty]
			if !ok {
				i = len(m.types)
				m.typeIndex[ty] = i
				m.types = append(m.types, ty)
				m.invited = append(m.invited, 0)
			}
			m.invited[i]++
		}
	}
	newVar := func(name string, upper int) int { return m.newVar(name, upper, true) }
	m.r = make([]int, len(m.types))
	m.x = make([][][]int, len(m.types))
	for t := range m.types {
		m.r[t] = newVar(fmt.Sprintf("r%d", t), m.invited[t])
		m.x[t] = make([][]int, len(m.questions))
		for qi, q := range m.questions {
			terms := []ilpTerm{{m.r[t], -1}}
			for v := q.lo; v <= q.hi; v++ {
				xv := newVar(fmt.Sprintf("x%d_%d_%d", t, qi, v), m.invited[t])
				m.x[t][qi] = append(m.x[t][qi], xv)
				terms = append(terms, ilpTerm{xv, 1})
			}
			// Every respondent answers every (required) question once.
			m.add(terms, ilpBound{req: -1, lo: 0, hi: 0, what: "structure: answers of a type to a question = its respondents"})
		}
	}
	return m
}

// ilpAux is an aggregate unknown: the sum of def.
type ilpAux struct {
	v   int
	def []ilpTerm
}

func (m *ilpModel) newVar(name string, upper int, integer bool) int {
	m.names = append(m.names, name)
	m.upper = append(m.upper, int64(upper))
	m.integer = append(m.integer, integer)
	return len(m.names) - 1
}

// block returns the aggregates of a set (creating them on first use), or
// nil for a set of one or two types, whose answers are summed directly.
func (m *ilpModel) block(set []bool) [][]int {
	n := 0
	for _, in := range set {
		if in {
			n++
		}
	}
	if n <= 2 {
		return nil
	}
	key := setKey(set)
	if b, ok := m.blocks[key]; ok {
		return b
	}
	j, inv := len(m.blocks), m.invitedIn(set)
	b := make([][]int, len(m.questions))
	for qi, q := range m.questions {
		for v := q.lo; v <= q.hi; v++ {
			y := m.newVar(fmt.Sprintf("y%d_%d_%d", j, qi, v), inv, false)
			var def []ilpTerm
			for t, in := range set {
				if in {
					def = append(def, ilpTerm{m.x[t][qi][v-q.lo], 1})
				}
			}
			m.aux = append(m.aux, ilpAux{y, def})
			m.add(append([]ilpTerm{{y, -1}}, def...), ilpBound{req: -1, lo: 0, hi: 0, what: "structure: an aggregate is the sum of its types' answers"})
			b[qi] = append(b[qi], y)
		}
	}
	m.blocks[key] = b
	return b
}

// bits is a set as a bitset.
func bits(set []bool) []uint64 {
	out := make([]uint64, (len(set)+63)/64)
	for i, in := range set {
		if in {
			out[i/64] |= 1 << (i % 64)
		}
	}
	return out
}

// setKey names a set compactly, for maps.
func setKey(set []bool) string {
	var b strings.Builder
	for _, w := range bits(set) {
		fmt.Fprintf(&b, "%x.", w)
	}
	return b.String()
}

// fillAux sets the aggregates of x from the other unknowns.
func (m *ilpModel) fillAux(x []int64) {
	for _, a := range m.aux {
		s := int64(0)
		for _, t := range a.def {
			s += t.c * x[t.v]
		}
		x[a.v] = s
	}
	for _, c := range m.counts {
		n := int64(0)
		for _, t := range c.r {
			n += x[t.v]
		}
		for i, z := range c.z {
			x[z] = 0
			if n == int64(i) {
				x[z] = 1
			}
		}
	}
}

// set is the response types of some waves within a filter.
func (m *ilpModel) set(waves []string, f ilpFilter) []bool {
	out := make([]bool, len(m.types))
	for i, ty := range m.types {
		out[i] = slices.Contains(waves, ty.wave) && f.matches(ty.cohort)
	}
	return out
}

// invitedIn is how many invitations the types of a set hold.
func (m *ilpModel) invitedIn(set []bool) int {
	n := 0
	for i, in := range set {
		if in {
			n += m.invited[i]
		}
	}
	return n
}

// questionsOf returns the questions a served key stands on: a dimension's,
// a question, or a driver's.
func (m *ilpModel) questionsOf(kind, key string) []int {
	var out []int
	for i, q := range m.questions {
		switch {
		case kind == "dimension" && string(q.dim) == key,
			kind == "question" && q.id == key,
			kind == "driver" && q.driver != "" && q.driver == key:
			out = append(out, i)
		}
	}
	return out
}

// add records bound b on the row of terms (merged with an identical row).
func (m *ilpModel) add(terms []ilpTerm, b ilpBound) {
	terms = mergeTerms(terms)
	var key strings.Builder
	for _, t := range terms {
		fmt.Fprintf(&key, "%d:%d ", t.v, t.c)
	}
	row := m.rowKey[key.String()]
	if row == nil {
		row = &ilpRow{terms: terms}
		m.rowKey[key.String()] = row
		m.rows = append(m.rows, row)
	}
	row.bounds = append(row.bounds, b)
	m.nBounds++
}

// mergeTerms adds up the coefficients of each variable, dropping zeros,
// sorted by variable.
func mergeTerms(terms []ilpTerm) []ilpTerm {
	merged := map[int]int64{}
	for _, t := range terms {
		merged[t.v] += t.c
	}
	out := make([]ilpTerm, 0, len(merged))
	for v, c := range merged {
		if c != 0 {
			out = append(out, ilpTerm{v, c})
		}
	}
	slices.SortFunc(out, func(a, b ilpTerm) int { return a.v - b.v })
	return out
}

// countTerms is sum of r_t over a set.
func (m *ilpModel) countTerms(set []bool, coef int64) []ilpTerm {
	var out []ilpTerm
	for t, in := range set {
		if in {
			out = append(out, ilpTerm{m.r[t], coef})
		}
	}
	return out
}

// answerTerms is sum over the set's types, questions qs and values of
// weight(v) x_{t,q,v}.
func (m *ilpModel) answerTerms(set []bool, qs []int, weight func(v int) int64) []ilpTerm {
	var out []ilpTerm
	if b := m.block(set); b != nil {
		for _, qi := range qs {
			q := m.questions[qi]
			for v := q.lo; v <= q.hi; v++ {
				if w := weight(v); w != 0 {
					out = append(out, ilpTerm{b[qi][v-q.lo], w})
				}
			}
		}
		return out
	}
	for t, in := range set {
		if !in {
			continue
		}
		for _, qi := range qs {
			q := m.questions[qi]
			for v := q.lo; v <= q.hi; v++ {
				if w := weight(v); w != 0 {
					out = append(out, ilpTerm{m.x[t][qi][v-q.lo], w})
				}
			}
		}
	}
	return out
}

// roundedBounds turns a served value s, rounded to places decimals, of a
// quantity X/den*scale into integer bounds on the integer X: the true value
// lies within half a unit of the last place of s.
func roundedBounds(s float64, places int, den int64, scale float64) (int64, int64) {
	half := 0.5 * math.Pow(10, -float64(places))
	lo := math.Ceil(float64(den)*(s-half)/scale - 1e-7)
	hi := math.Floor(float64(den)*(s+half)/scale + 1e-7)
	return int64(lo), int64(hi)
}

// ilpServed is the numbers of one served score cell (a dimension, question
// or driver, or a trend point); nil fields were not served.
type ilpServed struct {
	n                                *int
	mean, fav, neu, unf, enps, vsOrg *float64
	dist                             map[int]float64
}

// shareRanges are the value ranges behind favorable, neutral and
// unfavorable on a question's scale.
func shareRanges(q ilpQuestion) [3][2]int {
	if q.dim == schemas.ENPS {
		return [3][2]int{{9, 10}, {7, 8}, {0, 6}}
	}
	return [3][2]int{{4, 5}, {3, 3}, {1, 2}}
}

// addCount: the set holds n respondents.
func (m *ilpModel) addCount(req int, what string, set []bool, n int) {
	m.add(m.countTerms(set, 1), ilpBound{req: req, lo: int64(n), hi: int64(n), what: what + ": respondents n"})
}

// addScore models a served score cell over the set and questions qs: n
// respondents (each answered every question of qs, so n*len(qs) answers),
// the mean of all the answers, and the shares of answers per value and per
// range, each rounded as served.
func (m *ilpModel) addScore(req int, what string, set []bool, qs []int, s ilpServed) {
	if s.n == nil || len(qs) == 0 {
		return
	}
	m.cells = append(m.cells, ilpCell{req: req, what: what, set: set, n: *s.n})
	m.addCount(req, what, set, *s.n)
	answers := int64(*s.n * len(qs))
	if answers == 0 {
		return
	}
	bound := func(name string, terms []ilpTerm, lo, hi int64) {
		m.add(terms, ilpBound{req: req, lo: lo, hi: hi, what: what + ": " + name})
	}
	if s.mean != nil {
		lo, hi := roundedBounds(*s.mean, 2, answers, 1)
		bound(fmt.Sprintf("mean %.2f", *s.mean), m.answerTerms(set, qs, func(v int) int64 { return int64(v) }), lo, hi)
	}
	in := func(from, to int) func(int) int64 {
		return func(v int) int64 {
			if v >= from && v <= to {
				return 1
			}
			return 0
		}
	}
	for v, share := range s.dist {
		lo, hi := roundedBounds(share, 3, answers, 1)
		bound(fmt.Sprintf("share of %d %.3f", v, share), m.answerTerms(set, qs, in(v, v)), lo, hi)
	}
	rng := shareRanges(m.questions[qs[0]])
	for i, f := range []*float64{s.fav, s.neu, s.unf} {
		if f != nil {
			lo, hi := roundedBounds(*f, 3, answers, 1)
			bound(fmt.Sprintf("share of %d-%d %.3f", rng[i][0], rng[i][1], *f), m.answerTerms(set, qs, in(rng[i][0], rng[i][1])), lo, hi)
		}
	}
	if s.enps != nil {
		// 100 * (promoters - detractors) / answers, to 1 decimal.
		lo, hi := roundedBounds(*s.enps, 1, answers, 100)
		bound(fmt.Sprintf("enps %.1f", *s.enps), m.enpsTerms(set, qs, 1), lo, hi)
	}
}

// enpsTerms is coef times (promoters - detractors) of a set.
func (m *ilpModel) enpsTerms(set []bool, qs []int, coef int64) []ilpTerm {
	return m.answerTerms(set, qs, func(v int) int64 {
		switch {
		case v >= 9:
			return coef
		case v <= 6:
			return -coef
		}
		return 0
	})
}

// addVsOrg models vs_org: the cell's mean minus the organisation's (both
// unrounded), rounded to 2 decimals; for eNPS the difference of the eNPS
// values, to 1 decimal. With A answers in the cell and B in the
// organisation's cell, B*cell - A*org is an integer with known bounds.
func (m *ilpModel) addVsOrg(req int, what string, cell, org []bool, qs []int, nCell, nOrg int, d float64) {
	a, b := int64(nCell*len(qs)), int64(nOrg*len(qs))
	if a == 0 || b == 0 {
		return
	}
	var terms []ilpTerm
	var lo, hi int64
	if m.questions[qs[0]].dim == schemas.ENPS {
		terms = append(m.enpsTerms(cell, qs, b), m.enpsTerms(org, qs, -a)...)
		lo, hi = roundedBounds(d, 1, a*b, 100)
	} else {
		terms = append(m.answerTerms(cell, qs, func(v int) int64 { return b * int64(v) }),
			m.answerTerms(org, qs, func(v int) int64 { return -a * int64(v) })...)
		lo, hi = roundedBounds(d, 2, a*b, 1)
	}
	m.add(terms, ilpBound{req: req, lo: lo, hi: hi, what: fmt.Sprintf("%s: vs_org %g", what, d)})
}

// effective returns a row's bounds from the active requests' numbers, and
// whether any applies.
func (r *ilpRow) effective(active func(req int) bool) (lo, hi int64, ok bool) {
	lo, hi = ilpNoLo, ilpNoHi
	for _, b := range r.bounds {
		if b.req >= 0 && active != nil && !active(b.req) {
			continue
		}
		ok = true
		lo, hi = max(lo, b.lo), min(hi, b.hi)
	}
	return lo, hi, ok
}

func (r *ilpRow) value(x []int64) int64 {
	s := int64(0)
	for _, t := range r.terms {
		s += t.c * x[t.v]
	}
	return s
}

// checkTruth verifies that the true answers satisfy every constraint: the
// model must never exclude what really happened.
func (m *ilpModel) checkTruth(truth []int64) []string {
	var bad []string
	for v, x := range truth {
		if x < 0 || x > m.upper[v] {
			bad = append(bad, fmt.Sprintf("variable %s = %d outside [0, %d]", m.names[v], x, m.upper[v]))
		}
	}
	for _, row := range m.rows {
		val := row.value(truth)
		for _, b := range row.bounds {
			if val < b.lo || val > b.hi {
				bad = append(bad, fmt.Sprintf("request #%d %s: true value %d outside [%s, %s]", b.req, b.what, val, bnd(b.lo), bnd(b.hi)))
			}
		}
	}
	return bad
}

func bnd(v int64) string {
	switch v {
	case ilpNoLo:
		return "-inf"
	case ilpNoHi:
		return "+inf"
	}
	return strconv.FormatInt(v, 10)
}

// writeLP writes the program in CPLEX LP format with objective obj
// (minimised, or maximised), keeping the numbers of the active requests
// (all when active is nil); relaxed, without the integrality of the
// unknowns (its optimum bounds the integer program's).
func (m *ilpModel) writeLP(path, title string, obj []ilpTerm, maximize, relaxed bool, active func(req int) bool) ([]ilpRowRef, error) {
	var buf []byte
	buf = append(buf, "\\ trustpulse integer-program attacker: "+strings.ReplaceAll(title, "\n", " ")+"\n"...)
	if maximize {
		buf = append(buf, "Maximize\n"...)
	} else {
		buf = append(buf, "Minimize\n"...)
	}
	if obj = mergeTerms(obj); len(obj) == 0 {
		obj = []ilpTerm{{0, 0}}
	}
	buf = append(buf, " obj:"...)
	buf = m.appendTerms(buf, obj)
	buf = append(buf, '\n')
	// The constraints are the same for every objective over all requests:
	// written once.
	body, refs := m.body(active, relaxed)
	if err := os.WriteFile(path, append(buf, body...), 0o644); err != nil {
		return nil, err
	}
	return refs, nil
}

type ilpBody struct {
	bounds int
	text   []byte
	refs   []ilpRowRef
}

func (m *ilpModel) body(active func(req int) bool, relaxed bool) ([]byte, []ilpRowRef) {
	if c := m.bodies[relaxed]; active == nil && c != nil && c.bounds == m.nBounds {
		return c.text, c.refs
	}
	var refs []ilpRowRef
	buf := []byte("Subject To\n")
	for _, row := range m.rows {
		lo, hi, ok := row.effective(active)
		if !ok || len(row.terms) == 0 {
			continue
		}
		emit := func(op string, rhs int64) {
			buf = append(buf, " c"...)
			buf = strconv.AppendInt(buf, int64(len(refs)), 10)
			buf = append(buf, ':')
			refs = append(refs, ilpRowRef{row: row, lo: lo, hi: hi})
			buf = m.appendTerms(buf, row.terms)
			buf = append(buf, ' ')
			buf = append(buf, op...)
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, rhs, 10)
			buf = append(buf, '\n')
		}
		switch {
		case lo == hi:
			emit("=", lo)
		default:
			if lo != ilpNoLo {
				emit(">=", lo)
			}
			if hi != ilpNoHi {
				emit("<=", hi)
			}
		}
	}
	buf = append(buf, "Bounds\n"...)
	for v, name := range m.names {
		buf = append(buf, " 0 <= "+name+" <= "...)
		buf = strconv.AppendInt(buf, m.upper[v], 10)
		buf = append(buf, '\n')
	}
	if !relaxed {
		buf = append(buf, "General\n"...)
		n := 0
		for i, name := range m.names {
			if !m.integer[i] {
				continue
			}
			buf = append(buf, " "+name...)
			if n++; n%16 == 0 {
				buf = append(buf, '\n')
			}
		}
		buf = append(buf, '\n')
	}
	buf = append(buf, "End\n"...)
	if active == nil {
		if m.bodies == nil {
			m.bodies = map[bool]*ilpBody{}
		}
		m.bodies[relaxed] = &ilpBody{bounds: m.nBounds, text: buf, refs: refs}
	}
	return buf, refs
}

// ilpRowRef is a row as written to an LP file (c0, c1, ...): a row of the
// model and its bounds there.
type ilpRowRef struct {
	row    *ilpRow
	lo, hi int64
}

func (m *ilpModel) appendTerms(buf []byte, terms []ilpTerm) []byte {
	for i, t := range terms {
		if i > 0 && i%12 == 0 {
			buf = append(buf, "\n   "...)
		}
		c := t.c
		if c < 0 {
			buf, c = append(buf, " - "...), -c
		} else {
			buf = append(buf, " + "...)
		}
		buf = strconv.AppendInt(buf, c, 10)
		buf = append(buf, ' ')
		buf = append(buf, m.names[t.v]...)
	}
	return buf
}
