package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trustpulse/trustpulse/query/guard"
	"github.com/trustpulse/trustpulse/schemas"
)

// What this file does: it turns the sets a result would serve numbers on
// into the guard's cells (sets of response types per wave), reads the
// response types of released waves (once: they never change), and runs
// the guard's decision against the shared record. The rules themselves
// are in package guard.

// servedSet is one set a result would serve numbers or comments on: its
// waves and its predicate (the filter, and group = value for a group).
type servedSet struct {
	ref      string
	waves    []WaveInfo
	pred     []Clause
	comments bool
}

// waveTypes is a released wave's response types for the guard, with each
// type's attributes for matching predicates.
type waveTypes struct {
	guard.Wave
	attrs []respType
}

// respType is one response type's stored cohort: its attributes by
// GroupColumns name (manager included) and its reporting line.
type respType struct {
	values map[string]string
	line   []string
}

// A type is the whole stored cohort, reporting line included: two
// respondents with different lines are told apart by manager filters, so
// they must be different types, or an atom could be split by a served set
// without the guard seeing it.
const sqlWaveTypes = `SELECT department, team, location, tenure_band, managers, manager, uniqExact(response_id)
FROM answers WHERE org = ? AND wave_id = ? AND seq < ?
GROUP BY department, team, location, tenure_band, managers, manager
ORDER BY department, team, location, tenure_band, managers, manager`

// typeSep joins a type's attribute values into its key; cohort values
// never hold control characters (sliceRequest and the roster refuse them).
const typeSep = "\x1f"

// waveTypesOf reads (or recalls) a released wave's response types.
func (s *Server) waveTypesOf(ctx context.Context, org string, w WaveInfo) (waveTypes, error) {
	key := org + "|" + w.ID + "@" + strconv.FormatUint(w.SealSeq, 10)
	if t, ok := s.types.get(key); ok {
		return t, nil
	}
	rows, err := s.store.ch.Query(ctx, sqlWaveTypes, org, w.ID, w.SealSeq)
	if err != nil {
		return waveTypes{}, fmt.Errorf("query: response types of %s: %w", w.ID, err)
	}
	defer rows.Close()
	t := waveTypes{Wave: guard.Wave{ID: w.ID, K: w.threshold(s.guard.K)}}
	for rows.Next() {
		var dept, team, loc, tenure, manager string
		var line []string
		var n uint64
		if err := rows.Scan(&dept, &team, &loc, &tenure, &line, &manager, &n); err != nil {
			return waveTypes{}, err
		}
		t.Types = append(t.Types, typeKey(dept, team, loc, tenure, line, manager))
		t.N = append(t.N, int(n))
		t.attrs = append(t.attrs, respType{
			values: map[string]string{"department": dept, "team": team, "location": loc, "tenure_band": tenure, "manager": manager},
			line:   line,
		})
	}
	if err := rows.Err(); err != nil {
		return waveTypes{}, err
	}
	s.types.put(key, t)
	return t, nil
}

// typeKey is a response type's key in the guard's record. A type without
// a reporting line keeps the key it had before lines were stored, so that
// records written then stay aligned with the types they name.
func typeKey(dept, team, loc, tenure string, line []string, manager string) string {
	parts := []string{dept, team, loc, tenure}
	if len(line) > 0 || manager != "" {
		// Person ids are UUIDs: no comma, no typeSep.
		parts = append(parts, strings.Join(line, ","), manager)
	}
	return strings.Join(parts, typeSep)
}

// matches reports whether a type satisfies a predicate.
func matches(t respType, pred []Clause) bool {
	for _, cl := range pred {
		var in bool
		if cl.Attr == ReportsTo {
			in = slices.ContainsFunc(cl.Values, func(v string) bool { return slices.Contains(t.line, v) })
		} else {
			in = slices.Contains(cl.Values, t.values[cl.Attr])
		}
		if in == cl.Not {
			return false
		}
	}
	return true
}

// decideSets runs the guard on sets, in order, and returns the refs it
// serves. One decision per organisation at a time across every replica
// that shares the record (guard.Run).
func (s *Server) decideSets(ctx context.Context, org string, sets []servedSet) (map[string]bool, error) {
	req, waves, err := s.guardRequest(ctx, org, sets)
	if err != nil {
		return nil, err
	}
	return s.runGuard(ctx, org, sets, req, waves)
}

// wouldServe decides sets, in order, against the organisation's record as
// decideSets would, but writes nothing: it reports which would be served
// if asked now, and leaves the record to what is actually served.
func (s *Server) wouldServe(ctx context.Context, org string, sets []servedSet) (map[string]bool, error) {
	req, waves, err := s.guardRequest(ctx, org, sets)
	if err != nil {
		return nil, err
	}
	if s.records == nil {
		return nil, schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "the anonymity guard's record is not reachable")
	}
	rec, _, err := s.records.Load(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("query: guard record: %w", err)
	}
	return guard.Decide(req, rec, waves).Served, nil
}

// guardRequest turns sets into the guard's cells, reading the response
// types of their waves.
func (s *Server) guardRequest(ctx context.Context, org string, sets []servedSet) (guard.Request, map[string]guard.Wave, error) {
	waves := map[string]guard.Wave{}
	types := map[string]waveTypes{}
	req := guard.Request{CommentK: schemas.CommentThreshold}
	for _, set := range sets {
		c := guard.Cell{Ref: set.ref, Parts: map[string][]int{}, Comments: set.comments}
		for _, w := range set.waves {
			t, ok := types[w.ID]
			if !ok {
				var err error
				if t, err = s.waveTypesOf(ctx, org, w); err != nil {
					return guard.Request{}, nil, err
				}
				types[w.ID], waves[w.ID] = t, t.Wave
			}
			idx := []int{}
			for i, a := range t.attrs {
				if matches(a, set.pred) {
					idx = append(idx, i)
				}
			}
			c.Parts[w.ID] = idx
		}
		req.Cells = append(req.Cells, c)
	}
	return req, waves, nil
}

// runGuard decides a request against the shared record and writes it back
// (guard.Run).
func (s *Server) runGuard(ctx context.Context, org string, sets []servedSet, req guard.Request, waves map[string]guard.Wave) (map[string]bool, error) {
	if s.records == nil && !s.weakened {
		return nil, schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "the anonymity guard's record is not reachable; results cannot be served")
	}
	if s.weakened {
		served := map[string]bool{}
		for _, set := range sets {
			served[set.ref] = true
		}
		return served, nil
	}
	start := time.Now()
	d, err := guard.Run(ctx, s.records, org, req, waves)
	s.countDecision(time.Since(start), sets, d, err)
	if errors.Is(err, guard.ErrBusy) {
		return nil, schemas.Errorf(http.StatusServiceUnavailable, "busy", "too many results are being decided at once for this organisation; try again")
	}
	if err != nil {
		s.log.Error("guard record unavailable", "org", org, "err", err)
		return nil, schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "the anonymity guard's record is not reachable; results cannot be served now, try again shortly")
	}
	return d.Served, nil
}

// countDecision records a decision of the guard: how long it took and its
// sets (by ref) served, suppressed, or refused when it failed.
func (s *Server) countDecision(took time.Duration, sets []servedSet, d guard.Decision, err error) {
	if s.Metrics == nil {
		return
	}
	refs := map[string]bool{}
	for _, set := range sets {
		refs[set.ref] = true
	}
	served, suppressed, refused := 0, 0, 0
	for ref := range refs {
		switch {
		case err != nil:
			refused++
		case d.Served[ref]:
			served++
		default:
			suppressed++
		}
	}
	s.Metrics.GuardDecided(took, served, suppressed, refused)
}

// Set refs within a result: the scope, the organisation overall, a group.
const (
	scopeSet   = "scope"
	overallSet = "overall"
)

func groupSetRef(value string) string { return "group|" + value }

// sets lists the sets a computed result serves numbers on, in the order
// the guard should try them: the organisation overall, the scope, then
// the groups from the largest. prefix tells results of a batch apart.
func (r Scores) sets(sc Scope, prefix string) []servedSet {
	var out []servedSet
	if slices.ContainsFunc(r.Overall, func(s Score) bool { return s.N != nil }) {
		out = append(out, servedSet{ref: prefix + overallSet, waves: sc.Waves})
	}
	if r.Respondents.N != nil {
		out = append(out, servedSet{ref: prefix + scopeSet, waves: sc.Waves, pred: sc.Filter})
	}
	groups := slices.Clone(r.Groups)
	slices.SortStableFunc(groups, func(a, b GroupScores) int {
		return cmpN(b.Respondents.N, a.Respondents.N)
	})
	for _, g := range groups {
		if g.Respondents.N == nil {
			continue
		}
		pred := append(slices.Clone(sc.Filter), Clause{Attr: r.GroupBy, Values: []string{g.Value}})
		out = append(out, servedSet{ref: prefix + groupSetRef(g.Value), waves: sc.Waves, pred: pred})
	}
	return out
}

func cmpN(a, b *int) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return *a - *b
}
