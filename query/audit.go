package query

import (
	"cmp"
	"log/slog"
	"slices"
	"strings"

	"github.com/trustpulse/trustpulse/schemas"
)

// The linear rule. A served number is a sum over a response set (a mean
// times its n, a share of answers times its n), so anyone may add and
// subtract served numbers: Sales plus Ops minus (Sales or Ops in Berlin)
// is Sales and Ops outside Berlin, whatever results it took. The rule: for
// every question, no combination of the numbers served for it — to anyone,
// at any time, over any waves — equals the answers of fewer than K
// respondents.
//
// Responses of one wave and one cohort (department, team, location, tenure
// band) are indistinguishable to every result, and types that every result
// takes or leaves together merge into atoms. Per question, each served
// cell is a 0/1 vector over the atoms; the rule holds when no atom of fewer
// than K respondents lies in their span. The span is kept in reduced row
// echelon form modulo a large prime: an atom e_a lies in the span exactly
// when some row of that form is e_a. Candidate cells are added largest
// first; one that would bring a small atom into the span is suppressed. The
// differencing rule is this rule's two-cell case, kept because it also
// guards sets of several atoms. Comments are multisets of words, which
// subtract like sums: the same rule guards them, with the comment threshold.

// auditPrime is the modulus of the echelon form: a 0/1 vector in the
// rational span is in the span modulo p, and the converse fails only if p
// divides a minor of the matrix.
const auditPrime = 1_000_000_007

// linearViolations returns the refs of the candidate cells the linear rule
// refuses. served are the cells served before over the scope's waves and
// the waves linked to them; tc counts the response types of all of them.
func linearViolations(log *slog.Logger, sc Scope, qn Questionnaire, candidates, served []servedCell, inServed [][]bool, tc typeCounts) map[string]bool {
	bad := map[string]bool{}
	order := slices.Clone(candidates)
	slices.SortStableFunc(order, func(a, b servedCell) int {
		return cmp.Or(cmp.Compare(len(a.values), len(b.values)), cmp.Compare(b.n, a.n))
	})
	// Cells and the types each takes: served first, then the candidates.
	var cells []servedCell
	var member [][]bool
	for i, c := range served {
		if !c.derived && c.key != keyRespondents { // derived cells are in the span already
			cells, member = append(cells, c), append(member, inServed[i])
		}
	}
	nPrior := len(cells)
	for _, c := range order {
		if c.key != keyRespondents {
			cells = append(cells, c)
		}
	}
	if nPrior == len(cells) {
		return bad
	}
	member = append(member, tc.membership(cells[nPrior:])...)
	covers := map[string][]string{}
	for _, c := range cells {
		if _, ok := covers[c.key]; !ok {
			covers[c.key] = qn.questionsOf(c.key)
		}
	}
	for _, q := range qn.Order {
		var idx []int
		for i, c := range cells {
			if slices.Contains(covers[c.key], q) {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 || idx[len(idx)-1] < nPrior {
			continue // no candidate for this question
		}
		// The people an atom stands for: those who answered the question,
		// or for comments every respondent (any of them may have written).
		people := questionKey(q)
		if qn.Dimension[q] == string(schemas.Comment) {
			people = commentKey(q)
		}
		a := newAtoms(tc.both[keyPair(people, people)], member, idx)
		basis := &echelon{width: len(a.size)}
		seen := map[string]bool{}
		for _, i := range idx {
			if i >= nPrior {
				break
			}
			if v, key := a.vector(member[i]); !seen[key] {
				seen[key] = true
				basis.add(v)
			}
		}
		before := basis.units()
		for atom := range before {
			if a.size[atom] < sc.K {
				// Only reachable with results served under older rules.
				log.Warn("served results already isolate a small group", "question", q, "waves", strings.Join(sc.WaveIDs(), ","))
				break
			}
		}
		for _, i := range idx {
			c := cells[i]
			if i < nPrior || bad[c.ref] {
				continue
			}
			v, key := a.vector(member[i])
			if seen[key] || basis.contains(v) {
				continue // adds nothing new
			}
			trial := basis.clone()
			trial.add(v)
			isolates := false
			for atom := range trial.units() {
				if !before[atom] && a.size[atom] < sc.K {
					isolates = true
					break
				}
			}
			if isolates {
				bad[c.ref] = true
				continue
			}
			seen[key] = true
			basis = trial
		}
	}
	return bad
}

// atoms groups the response types that answered a question by the cells
// that take them: types every cell takes or leaves together are one atom.
type atoms struct {
	// rep is a type of each atom; size its respondents of the question.
	rep  []int
	size []int
}

// newAtoms builds the atoms of the types with answered > 0 under the
// cells idx of member.
func newAtoms(answered []int, member [][]bool, idx []int) atoms {
	var a atoms
	bySignature := map[string]int{}
	sig := make([]byte, len(idx))
	for ti, n := range answered {
		if n == 0 {
			continue
		}
		for k, i := range idx {
			sig[k] = '0'
			if member[i][ti] {
				sig[k] = '1'
			}
		}
		id, ok := bySignature[string(sig)]
		if !ok {
			id = len(a.size)
			bySignature[string(sig)] = id
			a.rep, a.size = append(a.rep, ti), append(a.size, 0)
		}
		a.size[id] += n
	}
	return a
}

// vector is a cell (its types) as a 0/1 vector over the atoms, and a key
// naming that vector.
func (a atoms) vector(types []bool) ([]int64, string) {
	v := make([]int64, len(a.size))
	key := make([]byte, len(a.size))
	for id, ti := range a.rep {
		key[id] = '0'
		if types[ti] {
			v[id], key[id] = 1, '1'
		}
	}
	return v, string(key)
}

// echelon is a span in reduced row echelon form modulo auditPrime.
type echelon struct {
	width int
	rows  [][]int64
	pivot []int
}

func (e *echelon) clone() *echelon {
	c := &echelon{width: e.width, pivot: slices.Clone(e.pivot), rows: make([][]int64, len(e.rows))}
	for i, r := range e.rows {
		c.rows[i] = slices.Clone(r)
	}
	return c
}

// subMul sets x to x - f*row modulo auditPrime.
func subMul(x, row []int64, f int64) {
	for i, r := range row {
		if r != 0 {
			x[i] = ((x[i]-f*r)%auditPrime + auditPrime) % auditPrime
		}
	}
}

// add adds v to the span and reports whether it was independent of it.
func (e *echelon) add(v []int64) bool {
	x := slices.Clone(v)
	for k, row := range e.rows {
		if f := x[e.pivot[k]]; f != 0 {
			subMul(x, row, f)
		}
	}
	p := slices.IndexFunc(x, func(c int64) bool { return c != 0 })
	if p < 0 {
		return false
	}
	inv := modPow(x[p], auditPrime-2)
	for i := range x {
		x[i] = x[i] * inv % auditPrime
	}
	for k, row := range e.rows {
		if f := row[p]; f != 0 {
			subMul(row, x, f)
			e.rows[k] = row
		}
	}
	e.rows, e.pivot = append(e.rows, x), append(e.pivot, p)
	return true
}

// contains reports whether v lies in the span.
func (e *echelon) contains(v []int64) bool {
	x := slices.Clone(v)
	for k, row := range e.rows {
		if f := x[e.pivot[k]]; f != 0 {
			subMul(x, row, f)
		}
	}
	return !slices.ContainsFunc(x, func(c int64) bool { return c != 0 })
}

// units returns the atoms whose unit vector lies in the span: the pivots
// of rows with no other non-zero entry.
func (e *echelon) units() map[int]bool {
	out := map[int]bool{}
	for k, row := range e.rows {
		nonzero := 0
		for _, c := range row {
			if c != 0 {
				nonzero++
			}
		}
		if nonzero == 1 {
			out[e.pivot[k]] = true
		}
	}
	return out
}

func modPow(b, exp int64) int64 {
	result := int64(1)
	b %= auditPrime
	for exp > 0 {
		if exp&1 == 1 {
			result = result * b % auditPrime
		}
		b = b * b % auditPrime
		exp >>= 1
	}
	return result
}
