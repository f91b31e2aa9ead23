package query

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
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
// the recorded cells that share a wave and a key, with one ClickHouse query
// per key, and cells that would break the rule are suppressed. Suppressing
// only ever removes numbers, so the check is re-run on what is left until
// nothing breaks the rule.

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
		var ids []any
		for _, q := range drivers[strings.TrimPrefix(key, "drv:")] {
			ids = append(ids, q)
		}
		if len(ids) == 0 {
			return "0", nil
		}
		return "question_id IN ?", []any{clickhouse.GroupSet{Value: ids}}
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
	sqlServedSets = `SELECT cell_key, waves, attr, value, any(n) FROM served_sets
WHERE org = ? AND wave_id IN ? GROUP BY cell_key, waves, attr, value`
	sqlRecordServed = `INSERT INTO served_sets (org, wave_id, waves, cell_key, attr, value, n, served_at)`
	// Per response of the scope: its wave and cohort, and whether it
	// answered each key (k0 the candidate's, k1... the prior cells'); then
	// per group, the candidate's respondents and how many of them each prior
	// cell stands on. %[1]s group expression, %[2]s the countIf columns,
	// %[3]s the per-key columns, %[4]s the scope's condition.
	sqlIntersections = `SELECT %[1]s AS grp, count(), %[2]s FROM (
    SELECT response_id, any(wave_id) AS r_wave_id, any(department) AS r_department, any(team) AS r_team,
        any(location) AS r_location, any(tenure_band) AS r_tenure_band, %[3]s
    FROM answers WHERE org = ? AND %[4]s GROUP BY response_id
) WHERE k0 GROUP BY grp`
)

// servedBefore returns the cells served so far over any of waves.
func (s *Store) servedBefore(ctx context.Context, org string, waves []string) ([]servedCell, error) {
	ws := make([]any, len(waves))
	for i, w := range waves {
		ws[i] = w
	}
	rows, err := s.ch.Query(ctx, sqlServedSets, org, clickhouse.GroupSet{Value: ws})
	if err != nil {
		return nil, fmt.Errorf("query: served sets: %w", err)
	}
	defer rows.Close()
	var out []servedCell
	for rows.Next() {
		var key, waves, attr, value string
		var n uint32
		if err := rows.Scan(&key, &waves, &attr, &value, &n); err != nil {
			return nil, err
		}
		out = append(out, servedCell{key: key, waves: strings.Split(waves, waveSep), filter: decodePredicate(attr, value), n: int(n)})
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
	for _, c := range cells {
		attr, value := c.encode()
		for _, w := range c.waves {
			if err := b.Append(org, w, strings.Join(c.waves, waveSep), c.key, attr, value, uint32(c.n), now); err != nil {
				return err
			}
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("query: record served cells: %w", err)
	}
	return nil
}

// intersectionsSQL builds the query behind intersections.
func intersectionsSQL(org string, sc Scope, key, group string, drivers map[string][]string, prior []servedCell) (string, []any) {
	grp := "''"
	if group != "" {
		grp = "r_" + GroupColumns[group]
	}
	keys := []string{key}
	keyCol := map[string]string{key: "k0"}
	var cols []string
	var args []any
	for _, p := range prior {
		if _, ok := keyCol[p.key]; !ok {
			keyCol[p.key] = "k" + strconv.Itoa(len(keys))
			keys = append(keys, p.key)
		}
		ws := make([]any, len(p.waves))
		for i, w := range p.waves {
			ws[i] = w
		}
		cond := keyCol[p.key] + " AND r_wave_id IN ?"
		args = append(args, clickhouse.GroupSet{Value: ws})
		if pred, pargs := predicateSQL(p.predicate(), "r_"); pred != "" {
			cond += " AND " + pred
			args = append(args, pargs...)
		}
		cols = append(cols, "countIf("+cond+")")
	}
	var keyCols []string
	for i, k := range keys {
		cond, kargs := keyCondition(k, drivers)
		keyCols = append(keyCols, "max("+cond+") AS k"+strconv.Itoa(i))
		args = append(args, kargs...)
	}
	if len(cols) == 0 {
		cols = []string{"toUInt64(0)"}
	}
	where, whereArgs := sc.where()
	args = append(append(args, org), whereArgs...)
	return fmt.Sprintf(sqlIntersections, grp, strings.Join(cols, ", "), strings.Join(keyCols, ", "), where), args
}

// intersections returns, for every group of a scope's respondents of a key
// (the whole scope when group is empty), its number of respondents
// followed by the number of them that each prior cell also stands on.
func intersections(ctx context.Context, ch driver.Conn, org string, sc Scope, key, group string, drivers map[string][]string, prior []servedCell) (map[string][]int, error) {
	for _, p := range prior {
		for _, cl := range p.predicate() {
			if _, ok := GroupColumns[cl.Attr]; !ok {
				return nil, fmt.Errorf("query: served cell with unknown attribute %q", cl.Attr)
			}
		}
	}
	sql, args := intersectionsSQL(org, sc, key, group, drivers, prior)
	rows, err := ch.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query: intersections: %w", err)
	}
	defer rows.Close()
	out := map[string][]int{}
	for rows.Next() {
		var g string
		counts := make([]uint64, max(len(prior), 1)+1)
		dest := []any{&g}
		for i := range counts {
			dest = append(dest, &counts[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		ns := make([]int, len(counts))
		for i, c := range counts {
			ns[i] = int(c)
		}
		out[g] = ns
	}
	return out, rows.Err()
}

// differencingViolations returns the refs of the candidate cells that would
// differ by 1 to K-1 respondents from an already served cell over a common
// wave and a common question, and the derived cells that come with the
// result: for each group-by, the union of its hidden groups (the total
// minus the shown groups) and of its shown groups (their sum). When a
// derived cell breaks the rule, the smallest shown group of its group-by is
// returned as a violation, so that the next round hides it too.
func (s *Server) differencingViolations(ctx context.Context, org string, sc Scope, qn Questionnaire, candidates []servedCell) (map[string]bool, []servedCell, error) {
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
	served, err := s.store.servedBefore(ctx, org, sc.WaveIDs())
	if err != nil {
		return nil, nil, err
	}
	bad := map[string]bool{}
	var derived []servedCell
	breaks := func(n, pn, both int) bool { d := n + pn - 2*both; return d > 0 && d < sc.K }
	for _, b := range order {
		cs := batches[b]
		var prior []servedCell
		for _, p := range served {
			if qn.overlaps(b.key, p.key) {
				prior = append(prior, p)
			}
		}
		cellScope := sc
		cellScope.Filter = cs[0].filter
		inter, err := intersections(ctx, s.store.ch, org, cellScope, b.key, b.group, qn.Drivers, prior)
		if err != nil {
			return nil, nil, err
		}
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
		// The hidden groups together (the total minus the shown ones), and
		// the shown groups together (their sum).
		hidden := servedCell{key: b.key, waves: sc.WaveIDs(), filter: cs[0].filter, group: b.group}
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
			c    servedCell
			both []int
		}{{hidden, hiddenBoth}, {union, unionBoth}} {
			if d.c.n == 0 {
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
	return bad, derived, nil
}
