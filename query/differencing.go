package query

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The differencing rule: any two cells served for the same wave and key
// (respondents, a dimension or a question), to anyone at any time, stand on
// response sets whose symmetric difference is 0 or at least K. Otherwise
// the larger minus the smaller singles out fewer than K people: a department
// of 12 and, in another request, its team of 11 give away the twelfth.
//
// Every served cell is recorded (served_cells); before a result leaves, each
// of its cells is checked against the recorded cells of its wave and key
// with one ClickHouse query per key, and cells that would break the rule are
// suppressed. Suppressing only ever removes numbers, so the check is re-run
// on what is left until nothing breaks the rule.

// servedCell is one number-bearing cell: its key, its predicate (attr is
// one of values, or everyone when attr is empty) and its size. A derived
// cell, the union of a group-by's hidden groups (the total minus what is
// shown), has several values.
type servedCell struct {
	key, attr string
	values    []string
	n         int
}

// valueSep joins the values of a derived cell; cohort values never hold
// control characters.
const valueSep = "\x1f"

func (c servedCell) value() string { return strings.Join(c.values, valueSep) }

func (c servedCell) id() string { return c.key + "|" + c.attr + "|" + c.value() }

func cell(key, attr, value string, n int) servedCell {
	c := servedCell{key: key, attr: attr, n: n}
	if attr != "" {
		c.values = []string{value}
	}
	return c
}

// Cell keys.
const keyRespondents = "all"

func dimensionKey(d string) string { return "dim:" + d }
func questionKey(q string) string  { return "q:" + q }

// keyCondition is the SQL condition selecting a key's answer rows, and its
// argument.
func keyCondition(key string) (string, []any) {
	switch {
	case strings.HasPrefix(key, "dim:"):
		return "dimension = ?", []any{strings.TrimPrefix(key, "dim:")}
	case strings.HasPrefix(key, "q:"):
		return "question_id = ?", []any{strings.TrimPrefix(key, "q:")}
	}
	return "1", nil
}

const (
	sqlServedCells = `SELECT attr, value, any(n) FROM served_cells
WHERE org = ? AND wave_id = ? AND cell_key = ? GROUP BY attr, value`
	sqlRecordServed = `INSERT INTO served_cells (org, wave_id, cell_key, attr, value, n, served_at)`
	// %[1]s group expression, %[2]s the uniqExactIf columns, %[3]s the key condition.
	sqlIntersections = `SELECT %[1]s AS grp, %[2]s FROM answers
WHERE org = ? AND wave_id = ? AND seq < ? AND %[3]s GROUP BY grp`
)

// servedCells returns the cells served so far for a wave and key.
func (s *Store) servedCells(ctx context.Context, org, wave, key string) ([]servedCell, error) {
	rows, err := s.ch.Query(ctx, sqlServedCells, org, wave, key)
	if err != nil {
		return nil, fmt.Errorf("query: served cells: %w", err)
	}
	defer rows.Close()
	var out []servedCell
	for rows.Next() {
		c := servedCell{key: key}
		var n uint32
		var value string
		if err := rows.Scan(&c.attr, &value, &n); err != nil {
			return nil, err
		}
		if c.attr != "" {
			c.values = strings.Split(value, valueSep)
		}
		c.n = int(n)
		out = append(out, c)
	}
	return out, rows.Err()
}

// recordServed remembers cells as served.
func (s *Store) recordServed(ctx context.Context, org, wave string, cells []servedCell) error {
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
		if err := b.Append(org, wave, c.key, c.attr, c.value(), uint32(c.n), now); err != nil {
			return err
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("query: record served cells: %w", err)
	}
	return nil
}

// intersections returns, for every group of attr (or the whole wave when
// attr is empty) among a key's answers, its number of respondents followed
// by the number of them that each prior cell's predicate also selects.
func intersections(ctx context.Context, ch driver.Conn, org string, w WaveInfo, key, attr string, prior []servedCell) (map[string][]int, error) {
	grp, err := groupExpr(attr)
	if err != nil {
		return nil, err
	}
	cols := []string{"uniqExact(response_id)"}
	var args []any
	for _, p := range prior {
		if p.attr == "" {
			cols = append(cols, "uniqExact(response_id)")
			continue
		}
		col, ok := GroupColumns[p.attr]
		if !ok {
			return nil, fmt.Errorf("query: served cell with unknown attribute %q", p.attr)
		}
		values := make([]any, len(p.values))
		for i, v := range p.values {
			values[i] = v
		}
		cols = append(cols, "uniqExactIf(response_id, "+col+" IN ?)")
		args = append(args, clickhouse.GroupSet{Value: values})
	}
	cond, condArgs := keyCondition(key)
	args = append(append(args, org, w.ID, w.SealSeq), condArgs...)
	rows, err := ch.Query(ctx, fmt.Sprintf(sqlIntersections, grp, strings.Join(cols, ", "), cond), args...)
	if err != nil {
		return nil, fmt.Errorf("query: intersections: %w", err)
	}
	defer rows.Close()
	out := map[string][]int{}
	for rows.Next() {
		var g string
		counts := make([]uint64, len(prior)+1)
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

// differencingViolations returns the ids of the candidate cells that would
// differ from an already served cell of the same wave and key by 1 to K-1
// respondents, and the derived cells (hidden groups of a group-by, which the
// shown total minus the shown groups gives away) that come with the result.
// When a derived cell breaks the rule, the smallest shown group of its
// group-by is returned as a violation, so that the next round hides it too.
func (s *Server) differencingViolations(ctx context.Context, org string, w WaveInfo, candidates []servedCell) (map[string]bool, []servedCell, error) {
	byKeyAttr := map[[2]string][]servedCell{}
	for _, c := range candidates {
		k := [2]string{c.key, c.attr}
		byKeyAttr[k] = append(byKeyAttr[k], c)
	}
	bad := map[string]bool{}
	var derived []servedCell
	breaks := func(n, pn, both int) bool { d := n + pn - 2*both; return d > 0 && d < s.guard.K }
	for ka, cs := range byKeyAttr {
		key, attr := ka[0], ka[1]
		prior, err := s.store.servedCells(ctx, org, w.ID, key)
		if err != nil {
			return nil, nil, err
		}
		inter, err := intersections(ctx, s.store.ch, org, w, key, attr, prior)
		if err != nil {
			return nil, nil, err
		}
		shown := map[string]bool{}
		for _, c := range cs {
			shown[c.value()] = true
			for i, p := range prior {
				if breaks(c.n, p.n, inter[c.value()][i+1]) {
					bad[c.id()] = true
				}
			}
		}
		if attr == "" {
			continue
		}
		// The hidden groups together: the total minus the shown groups.
		h := servedCell{key: key, attr: attr}
		both := make([]int, len(prior))
		for g, counts := range inter {
			if shown[g] {
				continue
			}
			h.values = append(h.values, g)
			h.n += counts[0]
			for i := range prior {
				both[i] += counts[i+1]
			}
		}
		if h.n == 0 {
			continue
		}
		slices.Sort(h.values)
		derived = append(derived, h)
		for i, p := range prior {
			if breaks(h.n, p.n, both[i]) {
				smallest := cs[0]
				for _, c := range cs[1:] {
					if c.n < smallest.n {
						smallest = c
					}
				}
				bad[smallest.id()] = true
				break
			}
		}
	}
	return bad, derived, nil
}
