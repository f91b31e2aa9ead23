package query

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// The differencing rule: any two cells served for the same key (respondents,
// a dimension, a question or a driver) over overlapping waves, to anyone at
// any time, stand on response sets whose symmetric difference is 0 or at
// least K. Otherwise the larger minus the smaller singles out fewer than K
// people: a department of 12 and, in another request, its team of 11 give
// away the twelfth; the first quarter's waves and the first four months'
// give away April's small wave; Sales and Sales-in-Berlin give away Sales
// outside Berlin.
//
// Every served cell is recorded (served_sets) with its waves and its
// predicate; before a result leaves, each of its cells is checked against
// the recorded cells that share a wave and a question. The sizes of all
// intersections come from one count of the waves' responses per type (wave
// and cohort), matched against the cells' predicates in Go. Cells that would
// break the rule are suppressed; suppressing only ever removes numbers, so
// the check is re-run on what is left until nothing breaks the rule.

// servedCell is one number-bearing cell: its key, the waves it covers, its
// predicate (the result's filter, and group is one of values when group is
// set) and its size. A derived cell — the union of a group-by's hidden
// groups (the total minus what is shown) or of its shown groups (their sum)
// — has several values.
type servedCell struct {
	// ref names the cell within its result, for suppressing it.
	ref    string
	key    string
	waves  []string
	filter []Clause
	group  string
	values []string
	n      int
	// derived marks a cell that is not served but follows from served
	// ones by subtraction.
	derived bool
}

// Separators of the recorded predicate; cohort values never hold control
// characters (sliceRequest and the roster refuse them).
const (
	valueSep  = "\x1f"
	clauseSep = "\x1e"
	attrSep   = "&"
	waveSep   = ","
)

// predicate is the cell's conjunction of clauses, sorted by attribute.
func (c servedCell) predicate() []Clause {
	p := slices.Clone(c.filter)
	if c.group != "" {
		p = append(p, Clause{Attr: c.group, Values: c.values})
	}
	slices.SortFunc(p, func(a, b Clause) int { return strings.Compare(a.Attr, b.Attr) })
	return p
}

// recordID names a cell as recorded: key, waves and predicate.
func (c servedCell) recordID() string {
	attr, value := c.encode()
	return c.key + "|" + strings.Join(c.waves, waveSep) + "|" + attr + "|" + value
}

// alreadyRecorded reports whether recording c would add nothing: the same
// set is recorded as served, or c is derived and the set is recorded at
// all. recorded maps record ids to whether they were served (guardViolations).
func (c servedCell) alreadyRecorded(recorded map[string]bool) bool {
	served, ok := recorded[c.recordID()]
	return ok && (served || c.derived)
}

// encode returns the recorded form of the cell's predicate.
func (c servedCell) encode() (attr, value string) {
	var attrs, values []string
	for _, cl := range c.predicate() {
		attrs, values = append(attrs, cl.Attr), append(values, strings.Join(cl.Values, valueSep))
	}
	return strings.Join(attrs, attrSep), strings.Join(values, clauseSep)
}

// decodePredicate reverses encode.
func decodePredicate(attr, value string) []Clause {
	if attr == "" {
		return nil
	}
	attrs, values := strings.Split(attr, attrSep), strings.Split(value, clauseSep)
	out := make([]Clause, len(attrs))
	for i, a := range attrs {
		out[i] = Clause{Attr: a}
		if i < len(values) {
			out[i].Values = strings.Split(values[i], valueSep)
		}
	}
	return out
}

// Cell keys.
const keyRespondents = "all"

func dimensionKey(d string) string { return "dim:" + d }
func questionKey(q string) string  { return "q:" + q }
func driverKey(d string) string    { return "drv:" + d }

// keyCondition is the SQL condition selecting a key's answer rows, and its
// arguments; drivers maps a driver to its question ids.
func keyCondition(key string, drivers map[string][]string) (string, []any) {
	switch {
	case strings.HasPrefix(key, "dim:"):
		return "dimension = ?", []any{strings.TrimPrefix(key, "dim:")}
	case strings.HasPrefix(key, "q:"):
		return "question_id = ?", []any{strings.TrimPrefix(key, "q:")}
	case strings.HasPrefix(key, "drv:"):
		ids := drivers[strings.TrimPrefix(key, "drv:")]
		if len(ids) == 0 {
			return "0", nil
		}
		return "question_id IN ?", []any{groupSet(ids)}
	}
	return "1", nil
}

// overlaps reports whether two cell keys stand on a common question (or
// are both respondent counts): their numbers can be set against each other.
func (qn Questionnaire) overlaps(a, b string) bool {
	if a == b {
		return true
	}
	qa, qb := qn.questionsOf(a), qn.questionsOf(b)
	for _, q := range qa {
		if slices.Contains(qb, q) {
			return true
		}
	}
	return false
}

const (
	sqlServedSets = `SELECT cell_key, waves, attr, value, any(n), min(derived) FROM served_sets
WHERE org = ? AND wave_id IN ? GROUP BY cell_key, waves, attr, value`
	sqlRecordServed = `INSERT INTO served_sets (org, wave_id, waves, cell_key, attr, value, n, derived, served_at)`
	// Per response type (wave and cohort) of a scope: how many responses
	// answered both keys of each pair. The inner query flags, per response,
	// which keys it answered (k0, k1, ...). %[1]s the countIf columns, %[2]s
	// the per-key flags, %[3]s the scope's condition.
	sqlTypeCounts = `SELECT r_wave_id, r_department, r_team, r_location, r_tenure_band, %[1]s FROM (
    SELECT response_id, any(wave_id) AS r_wave_id, any(department) AS r_department, any(team) AS r_team,
        any(location) AS r_location, any(tenure_band) AS r_tenure_band, %[2]s
    FROM answers WHERE org = ? AND %[3]s GROUP BY response_id
) GROUP BY r_wave_id, r_department, r_team, r_location, r_tenure_band`
)

// servedBefore returns the cells served so far over any of waves.
func (s *Store) servedBefore(ctx context.Context, org string, waves []string) ([]servedCell, error) {
	rows, err := s.ch.Query(ctx, sqlServedSets, org, groupSet(waves))
	if err != nil {
		return nil, fmt.Errorf("query: served sets: %w", err)
	}
	defer rows.Close()
	var out []servedCell
	for rows.Next() {
		var key, waves, attr, value string
		var n uint32
		var derived uint8
		if err := rows.Scan(&key, &waves, &attr, &value, &n, &derived); err != nil {
			return nil, err
		}
		out = append(out, servedCell{key: key, waves: strings.Split(waves, waveSep), filter: decodePredicate(attr, value), n: int(n), derived: derived == 1})
	}
	return out, rows.Err()
}

// recordServed remembers cells as served, one row per wave each covers.
func (s *Store) recordServed(ctx context.Context, org string, cells []servedCell) error {
	if len(cells) == 0 {
		return nil
	}
	b, err := s.ch.PrepareBatch(ctx, sqlRecordServed)
	if err != nil {
		return fmt.Errorf("query: record served cells: %w", err)
	}
	defer b.Abort()
	now := time.Now().UTC()
	served := map[string]bool{}
	for _, c := range cells {
		if !c.derived {
			attr, value := c.encode()
			served[c.key+"|"+attr+"|"+value] = true
		}
	}
	for _, c := range cells {
		attr, value := c.encode()
		if c.derived && served[c.key+"|"+attr+"|"+value] {
			continue // the same set is served as such
		}
		for _, w := range c.waves {
			var derived uint8
			if c.derived {
				derived = 1
			}
			if err := b.Append(org, w, strings.Join(c.waves, waveSep), c.key, attr, value, uint32(c.n), derived, now); err != nil {
				return err
			}
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("query: record served cells: %w", err)
	}
	return nil
}

// respType is a kind of response no result can tell apart: its wave and
// cohort. Every served cell's response set is a union of types.
type respType struct {
	wave  string
	attrs map[string]string // by GroupColumns name
}

// matches reports whether responses of the type stand on a cell of these
// waves and predicate (ignoring which questions they answered).
func (t respType) matches(waves []string, pred []Clause) bool {
	if !slices.Contains(waves, t.wave) {
		return false
	}
	for _, cl := range pred {
		if !slices.Contains(cl.Values, t.attrs[cl.Attr]) {
			return false
		}
	}
	return true
}

// membership returns, for each cell, which types it takes.
func (tc typeCounts) membership(cells []servedCell) [][]bool {
	out := make([][]bool, len(cells))
	for i, c := range cells {
		pred := c.predicate()
		out[i] = make([]bool, len(tc.types))
		for ti, t := range tc.types {
			out[i][ti] = t.matches(c.waves, pred)
		}
	}
	return out
}

// typeCounts holds, per response type of a scope, the number of responses
// that answered both keys of each pair.
type typeCounts struct {
	types []respType
	both  map[[2]string][]int
}

func keyPair(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// typeCountsSQL builds the query behind Store.typeCounts.
func typeCountsSQL(org string, sc Scope, pairs [][2]string, drivers map[string][]string) (string, []any) {
	col := map[string]string{}
	var flags []string
	var args []any
	var keys []string
	for _, p := range pairs {
		for _, k := range p {
			if _, ok := col[k]; !ok {
				col[k] = "k" + strconv.Itoa(len(keys))
				keys = append(keys, k)
			}
		}
	}
	var counts []string
	for _, p := range pairs {
		counts = append(counts, "countIf("+col[p[0]]+" AND "+col[p[1]]+")")
	}
	for _, k := range keys {
		cond, kargs := keyCondition(k, drivers)
		flags = append(flags, "max("+cond+") AS "+col[k])
		args = append(args, kargs...)
	}
	where, whereArgs := sc.where()
	args = append(append(args, org), whereArgs...)
	return fmt.Sprintf(sqlTypeCounts, strings.Join(counts, ", "), strings.Join(flags, ", "), where), args
}

// typeCounts reads, for each response type of a scope, how many responses
// answered both keys of each pair. The scope's filter is ignored: cells are
// matched against types in Go.
func (s *Store) typeCounts(ctx context.Context, org string, sc Scope, pairs [][2]string, drivers map[string][]string) (typeCounts, error) {
	tc := typeCounts{both: map[[2]string][]int{}}
	if len(pairs) == 0 {
		return tc, nil
	}
	sql, args := typeCountsSQL(org, sc.Unfiltered(), pairs, drivers)
	rows, err := s.ch.Query(ctx, sql, args...)
	if err != nil {
		return tc, fmt.Errorf("query: response types: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var wave, dept, team, loc, tenure string
		counts := make([]uint64, len(pairs))
		dest := []any{&wave, &dept, &team, &loc, &tenure}
		for i := range counts {
			dest = append(dest, &counts[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return tc, err
		}
		tc.types = append(tc.types, respType{wave: wave, attrs: map[string]string{"department": dept, "team": team, "location": loc, "tenure_band": tenure}})
		for i, p := range pairs {
			tc.both[p] = append(tc.both[p], int(counts[i]))
		}
	}
	return tc, rows.Err()
}

// intersections returns, for every group of a batch's cells (one key, one
// filter, one group-by attribute; the whole filter when group is empty),
// its number of respondents of the key followed by the number of them that
// each prior cell also stands on.
// inPrior holds the types of each prior cell (typeCounts.membership).
func (tc typeCounts) intersections(key string, waves []string, filter []Clause, group string, prior []servedCell, inPrior [][]bool) map[string][]int {
	out := map[string][]int{}
	own := tc.both[keyPair(key, key)]
	bothWith := make([][]int, len(prior))
	for i, p := range prior {
		bothWith[i] = tc.both[keyPair(key, p.key)]
	}
	for ti, t := range tc.types {
		if own[ti] == 0 || !t.matches(waves, filter) {
			continue
		}
		g := ""
		if group != "" {
			g = t.attrs[group]
		}
		counts := out[g]
		if counts == nil {
			counts = make([]int, len(prior)+1)
			out[g] = counts
		}
		counts[0] += own[ti]
		for i := range prior {
			if inPrior[i][ti] {
				counts[i+1] += bothWith[i][ti]
			}
		}
	}
	return out
}

// guardViolations returns the refs of the candidate cells that the
// differencing rule or the linear rule (audit.go) refuses, the derived
// cells that come with the result, and the record ids (recordID) of the
// cells served before.
func (s *Server) guardViolations(ctx context.Context, org string, sc Scope, qn Questionnaire, candidates []servedCell, rec *record) (map[string]bool, []servedCell, map[string]bool, error) {
	served, universe, err := rec.closure(ctx, s, org, sc)
	if err != nil {
		return nil, nil, nil, err
	}
	// Which pairs of keys' respondents are counted together: each candidate
	// key with itself and with every served key that shares a question, and
	// each question with itself (for the linear rule).
	priors := map[string][]int{} // candidate key -> indices into served
	seen := map[[2]string]bool{}
	var pairs [][2]string
	addPair := func(a, b string) {
		if p := keyPair(a, b); !seen[p] {
			seen[p] = true
			pairs = append(pairs, p)
		}
	}
	for _, c := range candidates {
		if _, ok := priors[c.key]; ok {
			continue
		}
		addPair(c.key, c.key)
		priors[c.key] = []int{}
		for i, p := range served {
			if qn.overlaps(c.key, p.key) {
				priors[c.key] = append(priors[c.key], i)
				addPair(c.key, p.key)
			}
		}
	}
	for _, q := range qn.Order {
		addPair(questionKey(q), questionKey(q))
		if qn.Dimension[q] == string(schemas.Comment) {
			addPair(commentKey(q), commentKey(q))
		}
	}
	tc, err := s.typeCountsOf(ctx, org, universe, pairs, qn.Drivers)
	if err != nil {
		return nil, nil, nil, err
	}
	inServed := tc.membership(served)
	bad, derived := differencingViolations(sc, candidates, served, inServed, priors, tc)
	for ref := range linearViolations(s.log, sc, qn, candidates, served, inServed, tc) {
		bad[ref] = true
	}
	recorded := map[string]bool{}
	for _, c := range served {
		recorded[c.recordID()] = recorded[c.recordID()] || !c.derived
	}
	return bad, derived, recorded, nil
}

// maxClosureRounds bounds the search for waves linked to a scope by served
// results over several waves.
const maxClosureRounds = 8

// record is the cells served so far over some waves, read once and kept
// up to date while one or more results are decided under servedMu; fresh
// holds the cells decided since, to be recorded.
type record struct {
	cells, fresh []servedCell
}

// readRecord reads the cells served over waves and over every wave linked
// to them through results over several waves (a period of w1 and w2 links
// w2's results to w1's).
func (s *Server) readRecord(ctx context.Context, org string, waveIDs []string) (*record, error) {
	waves := map[string]bool{}
	for _, w := range waveIDs {
		waves[w] = true
	}
	var served []servedCell
	for range maxClosureRounds {
		ids := make([]string, 0, len(waves))
		for w := range waves {
			ids = append(ids, w)
		}
		slices.Sort(ids)
		var err error
		if served, err = s.store.servedBefore(ctx, org, ids); err != nil {
			return nil, err
		}
		if !grow(waves, served) {
			break
		}
	}
	return &record{cells: served}, nil
}

// grow adds the waves of cells that touch waves, and reports whether any
// was new.
func grow(waves map[string]bool, cells []servedCell) bool {
	grew := false
	for _, c := range cells {
		if !slices.ContainsFunc(c.waves, func(w string) bool { return waves[w] }) {
			continue
		}
		for _, w := range c.waves {
			if !waves[w] {
				waves[w], grew = true, true
			}
		}
	}
	return grew
}

// closure returns the recorded cells over a scope's waves and the waves
// linked to them, and the scope of all those waves.
func (r *record) closure(ctx context.Context, s *Server, org string, sc Scope) ([]servedCell, Scope, error) {
	waves := map[string]bool{}
	for _, w := range sc.WaveIDs() {
		waves[w] = true
	}
	for range maxClosureRounds {
		if !grow(waves, r.cells) {
			break
		}
	}
	var served []servedCell
	for _, c := range r.cells {
		if slices.ContainsFunc(c.waves, func(w string) bool { return waves[w] }) {
			served = append(served, c)
		}
	}
	universe := sc.Unfiltered()
	if len(waves) > len(sc.Waves) {
		all, _, err := s.wavesAndCheckpoint(ctx, org)
		if err != nil {
			return nil, Scope{}, err
		}
		universe.Waves = slices.DeleteFunc(slices.Clone(all), func(w WaveInfo) bool { return !waves[w.ID] || w.SealSeq == 0 })
	}
	return served, universe, nil
}

// add takes cells decided into the record (those not recorded already).
func (r *record) add(cells []servedCell, recorded map[string]bool) {
	for _, c := range cells {
		if !c.alreadyRecorded(recorded) {
			r.cells = append(r.cells, c)
			r.fresh = append(r.fresh, c)
		}
	}
}

// differencingViolations applies the differencing rule: it returns the
// refs of the candidate cells that would differ by 1 to K-1 respondents from
// an already served cell over a common wave and a common question, and the
// derived cells that come with the result: for each group-by, the union of
// its hidden groups (the total minus the shown groups) and of its shown
// groups (their sum). When a derived cell breaks the rule, the smallest
// shown group of its group-by is returned as a violation, so that the next
// round hides it too. priors maps each candidate key to the indices of the
// served cells that share a question with it; inServed holds their types.
func differencingViolations(sc Scope, candidates, served []servedCell, inServed [][]bool, priors map[string][]int, tc typeCounts) (map[string]bool, []servedCell) {
	type batch struct{ key, filter, group string }
	batches := map[batch][]servedCell{}
	var order []batch
	for _, c := range candidates {
		f, _ := servedCell{filter: c.filter}.encode()
		b := batch{c.key, f, c.group}
		if _, ok := batches[b]; !ok {
			order = append(order, b)
		}
		batches[b] = append(batches[b], c)
	}
	bad := map[string]bool{}
	var derived []servedCell
	breaks := func(n, pn, both int) bool { d := n + pn - 2*both; return d > 0 && d < sc.K }
	for _, b := range order {
		cs := batches[b]
		prior := make([]servedCell, len(priors[b.key]))
		inPrior := make([][]bool, len(priors[b.key]))
		for k, i := range priors[b.key] {
			prior[k], inPrior[k] = served[i], inServed[i]
		}
		_, totalShown := batches[batch{b.key, b.filter, ""}]
		inter := tc.intersections(b.key, sc.WaveIDs(), cs[0].filter, b.group, prior, inPrior)
		shown := map[string]bool{}
		for _, c := range cs {
			v := ""
			if c.group != "" {
				v = c.values[0]
			}
			shown[v] = true
			for i, p := range prior {
				if breaks(c.n, p.n, inter[v][i+1]) {
					bad[c.ref] = true
				}
			}
		}
		if b.group == "" {
			continue
		}
		// The hidden groups together (the total minus the shown ones, when
		// the total is shown), and the shown groups together (their sum).
		hidden := servedCell{key: b.key, waves: sc.WaveIDs(), filter: cs[0].filter, group: b.group, derived: true}
		union := hidden
		hiddenBoth, unionBoth := make([]int, len(prior)), make([]int, len(prior))
		for g, counts := range inter {
			c, both := &hidden, hiddenBoth
			if shown[g] {
				c, both = &union, unionBoth
			}
			c.values = append(c.values, g)
			c.n += counts[0]
			for i := range prior {
				both[i] += counts[i+1]
			}
		}
		for _, d := range []struct {
			c         servedCell
			both      []int
			derivable bool
		}{{hidden, hiddenBoth, totalShown}, {union, unionBoth, true}} {
			if d.c.n == 0 || !d.derivable {
				continue
			}
			slices.Sort(d.c.values)
			derived = append(derived, d.c)
			for i, p := range prior {
				if breaks(d.c.n, p.n, d.both[i]) {
					smallest := cs[0]
					for _, c := range cs[1:] {
						if c.n < smallest.n {
							smallest = c
						}
					}
					bad[smallest.ref] = true
					break
				}
			}
		}
	}
	return bad, derived
}
