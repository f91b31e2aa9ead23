package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/query/guard"
)

// The guard's decision, on its own: one organisation's universe of waves
// and response types, a record grown by serving random results through
// guard.Run against the real record store (the JetStream key-value bucket
// of the harness's NATS server), and then further decisions timed.

// guardSizes are the benchmark's record sizes (results served before the
// decisions are timed) and its samples per size.
type guardSizes struct {
	levels         []int
	warmN, refineN int
}

var (
	fullGuard  = guardSizes{levels: []int{100, 1000, 10000}, warmN: 1000, refineN: 200}
	quickGuard = guardSizes{levels: []int{100, 1000, 10000}, warmN: 200, refineN: 50}
)

// Universe of the guard benchmark: 16 waves of an organisation of 3,000
// employees, of whom about 85% answer each wave.
const (
	guardWaves   = 16
	guardStaff   = 3000
	guardAnswerP = 0.85
	guardK       = 5
)

var guardAttrs = []string{"department", "team", "location", "tenure_band"}

// guardType is one response type: its attribute values, in guardAttrs order.
type guardType [4]string

// guardWave is one wave of the universe: the guard's view (types and
// their respondents) and each type's attributes.
type guardWave struct {
	guard.Wave
	attrs []guardType
}

type guardUniverse struct {
	waves map[string]guard.Wave
	ids   []string
	byID  map[string]guardWave
}

// newGuardUniverse draws the universe from a fixed seed: twelve
// departments of skewed size (as the main benchmark's), up to six teams
// each of skewed size, five locations and four tenure bands of uneven
// weights; each wave, every employee answers with probability 0.85.
func newGuardUniverse() guardUniverse {
	rng := rand.New(rand.NewPCG(41, 42))
	pick := func(weights []float64) int {
		total := 0.0
		for _, w := range weights {
			total += w
		}
		x := rng.Float64() * total
		for i, w := range weights {
			if x < w {
				return i
			}
			x -= w
		}
		return len(weights) - 1
	}
	locW := []float64{40, 25, 15, 12, 8}
	tenW := []float64{18, 27, 33, 22}
	teamW := []float64{35, 25, 16, 11, 8, 5}
	staff := make([]guardType, guardStaff)
	for i := range staff {
		d := int(math.Min(float64(len(benchDepartments)-1), math.Abs(rng.NormFloat64())*4))
		teams := 4 + d%3
		staff[i] = guardType{
			benchDepartments[d],
			fmt.Sprintf("%s %d", benchDepartments[d], 1+pick(teamW[:teams])),
			benchLocations[pick(locW)],
			benchTenure[pick(tenW)],
		}
	}
	u := guardUniverse{waves: map[string]guard.Wave{}, byID: map[string]guardWave{}}
	for w := range guardWaves {
		id := fmt.Sprintf("g%02d", w+1)
		counts := map[guardType]int{}
		for _, p := range staff {
			if rng.Float64() < guardAnswerP {
				counts[p]++
			}
		}
		types := make([]guardType, 0, len(counts))
		for t := range counts {
			types = append(types, t)
		}
		slices.SortFunc(types, func(a, b guardType) int {
			return strings.Compare(strings.Join(a[:], "\x1f"), strings.Join(b[:], "\x1f"))
		})
		gw := guardWave{Wave: guard.Wave{ID: id, K: guardK}, attrs: types}
		for _, t := range types {
			// The query service's type key: the attributes joined by 0x1f.
			gw.Types = append(gw.Types, strings.Join(t[:], "\x1f"))
			gw.N = append(gw.N, counts[t])
		}
		u.ids = append(u.ids, id)
		u.waves[id] = gw.Wave
		u.byID[id] = gw
	}
	return u
}

func (u guardUniverse) typeCount() (min_, max_, total int) {
	min_ = math.MaxInt
	for _, w := range u.byID {
		min_, max_, total = min(min_, len(w.Types)), max(max_, len(w.Types)), total+len(w.Types)
	}
	return
}

// guardClause is one attribute = value of a filter or a group.
type guardClause struct {
	attr  int
	value string
}

// cellOf is the guard's cell for a set: the types of each wave that match
// every clause, as the query service's decideSets builds it.
func (u guardUniverse) cellOf(ref string, waves []string, pred []guardClause) (guard.Cell, int) {
	c := guard.Cell{Ref: ref, Parts: map[string][]int{}}
	n := 0
	for _, id := range waves {
		w := u.byID[id]
		idx := []int{}
	types:
		for i, t := range w.attrs {
			for _, cl := range pred {
				if t[cl.attr] != cl.value {
					continue types
				}
			}
			idx = append(idx, i)
			n += w.N[i]
		}
		c.Parts[id] = idx
	}
	return c, n
}

// result adds the cells of one result to a request, as the query
// service's Scores.sets lists them: the organisation overall (with a
// filter), the scope, then the groups from the largest; a group is left
// out, as the rules within one result leave it out, when it has fewer
// than k respondents or is hidden by complementary suppression.
func (u guardUniverse) result(req *guard.Request, prefix string, waves []string, filter []guardClause, groupBy int) {
	th := guard.Threshold{K: guardK}
	if len(filter) > 0 {
		if c, n := u.cellOf(prefix+"overall", waves, nil); n >= guardK {
			req.Cells = append(req.Cells, c)
		}
	}
	scope, n := u.cellOf(prefix+"scope", waves, filter)
	if n < guardK {
		return
	}
	req.Cells = append(req.Cells, scope)
	if groupBy < 0 {
		return
	}
	values := map[string]bool{}
	for _, id := range waves {
		for i, t := range u.byID[id].attrs {
			if slices.Contains(scope.Parts[id], i) {
				values[t[groupBy]] = true
			}
		}
	}
	type group struct {
		cell guard.Cell
		n    int
	}
	var groups []group
	for v := range values {
		c, gn := u.cellOf(prefix+"group|"+v, waves, append(slices.Clone(filter), guardClause{groupBy, v}))
		groups = append(groups, group{c, gn})
	}
	slices.SortFunc(groups, func(a, b group) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return strings.Compare(a.cell.Ref, b.cell.Ref)
	})
	ns := make([]int, len(groups))
	hidden := make([]bool, len(groups))
	for i, g := range groups {
		ns[i] = g.n
		hidden[i] = !th.Visible(g.n, n)
	}
	hidden = th.Complement(ns, hidden)
	for i, g := range groups {
		if !hidden[i] {
			req.Cells = append(req.Cells, g.cell)
		}
	}
}

// randomRequest draws one request as an analyst might send it: a trend
// (one result per wave, optionally filtered) or the scores of one wave or
// a pooled period of 2-4 waves, with a filter of 1-3 attributes or none,
// and a group-by of an attribute not filtered on, or none.
func (u guardUniverse) randomRequest(rng *rand.Rand) guard.Request {
	req := guard.Request{CommentK: guardK}
	// A filter's values are those of a type of the first wave, so that
	// the filter selects someone.
	filterOf := func(wave string, attrs int) []guardClause {
		w := u.byID[wave]
		t := w.attrs[rng.IntN(len(w.attrs))]
		var out []guardClause
		for _, a := range rng.Perm(len(guardAttrs))[:attrs] {
			out = append(out, guardClause{a, t[a]})
		}
		slices.SortFunc(out, func(a, b guardClause) int { return a.attr - b.attr })
		return out
	}
	if rng.IntN(100) < 15 { // a trend
		var filter []guardClause
		if rng.IntN(2) == 0 {
			filter = filterOf(u.ids[len(u.ids)-1], 1+rng.IntN(2))
		}
		for i, id := range u.ids {
			u.result(&req, fmt.Sprint(i, ":"), []string{id}, filter, -1)
		}
		return req
	}
	span := 1
	if rng.IntN(100) < 35 {
		span = 2 + rng.IntN(3)
	}
	first := rng.IntN(len(u.ids) - span + 1)
	waves := u.ids[first : first+span]
	var filter []guardClause
	if rng.IntN(2) == 0 {
		filter = filterOf(waves[0], 1+rng.IntN(3))
	}
	groupBy := -1
	if rng.IntN(100) < 70 {
		var free []int
		for a := range guardAttrs {
			if !slices.ContainsFunc(filter, func(c guardClause) bool { return c.attr == a }) {
				free = append(free, a)
			}
		}
		groupBy = free[rng.IntN(len(free))]
	}
	u.result(&req, "0:", waves, filter, groupBy)
	return req
}

// guardLevel is the figures of one record size, one run.
type guardLevel struct {
	results         int // results served through guard.Run before timing
	refined         int // of which changed the record
	cellsAsked      int // cells in those results
	cellsServed     int // of which served
	recordBytes     int // the stored record (gzipped JSON)
	atoms           int // atoms over every wave's partition of numbers
	warm, refine    latencies
	warmDecide      latencies // Decide alone, in memory, on the warm requests
	decode          latencies // guard.Unmarshal of the stored record
	encode          latencies // Record.Marshal, as every write does
	jsonBytes       int       // the record's JSON before gzip
	refineCandidate int       // random requests tried to find refining ones
}

// guardResult is one record size over every run.
type guardResult struct {
	results                         int
	warmP50, warmP99                runs
	refineP50, refineP99            runs
	decideP50, decodeP50, encodeP50 runs
	recordBytes, jsonBytes, atoms   runs
	refinedShare, servedShare       runs
	refineFound                     bool
	typesMin, typesMax, typesInAll  int
	cellsP50, cellsMax              int // cells per request
}

// benchGuard builds one organisation's record through guard.Run, level by
// level, and times warm and refining decisions at each level; it repeats
// that rounds times (each round a fresh organisation and a different
// sequence of requests over the same universe).
func benchGuard(ctx context.Context, e *env, gs guardSizes, rounds int) ([]guardResult, error) {
	u := newGuardUniverse()
	store := query.NewRecordStore(e.js)
	per := make([][]guardLevel, len(gs.levels))
	var cellCounts []int
	for round := range rounds {
		org := fmt.Sprintf("guardbench%d", round+1)
		rng := rand.New(rand.NewPCG(51, uint64(round)))
		var issued []guard.Request
		lv := guardLevel{}
		for li, level := range gs.levels {
			for len(issued) < level {
				req := u.randomRequest(rng)
				d, err := guard.Run(ctx, store, org, req, u.waves)
				if err != nil {
					return nil, fmt.Errorf("guard: building the record: %w", err)
				}
				issued = append(issued, req)
				cellCounts = append(cellCounts, len(req.Cells))
				lv.cellsAsked += len(req.Cells)
				for _, c := range req.Cells {
					if d.Served[c.Ref] {
						lv.cellsServed++
					}
				}
				if d.Changed {
					lv.refined++
				}
			}
			lv.results = level
			got, err := measureGuardLevel(ctx, store, org, u, issued, rng, gs)
			if err != nil {
				return nil, err
			}
			got.results, got.refined, got.cellsAsked, got.cellsServed = lv.results, lv.refined, lv.cellsAsked, lv.cellsServed
			per[li] = append(per[li], got)
			e.log.Info("guard", "round", round+1, "results", level, "refined", lv.refined, "record_bytes", got.recordBytes,
				"atoms", got.atoms, "warm_p99_ms", ms(got.warm.quantile(.99)), "refine_p99_ms", ms(got.refine.quantile(.99)), "refining_found", len(got.refine))
		}
	}
	mn, mx, total := u.typeCount()
	slices.Sort(cellCounts)
	var out []guardResult
	for li, level := range gs.levels {
		r := guardResult{results: level, typesMin: mn, typesMax: mx, typesInAll: total, refineFound: true}
		r.cellsP50, r.cellsMax = cellCounts[len(cellCounts)/2], cellCounts[len(cellCounts)-1]
		for _, l := range per[li] {
			r.warmP50 = append(r.warmP50, ms(l.warm.quantile(.5)))
			r.warmP99 = append(r.warmP99, ms(l.warm.quantile(.99)))
			r.decideP50 = append(r.decideP50, ms(l.warmDecide.quantile(.5)))
			r.decodeP50 = append(r.decodeP50, ms(l.decode.quantile(.5)))
			r.encodeP50 = append(r.encodeP50, ms(l.encode.quantile(.5)))
			r.jsonBytes = append(r.jsonBytes, float64(l.jsonBytes))
			if len(l.refine) > 0 {
				r.refineP50 = append(r.refineP50, ms(l.refine.quantile(.5)))
				r.refineP99 = append(r.refineP99, ms(l.refine.quantile(.99)))
			} else {
				r.refineFound = false
			}
			r.recordBytes = append(r.recordBytes, float64(l.recordBytes))
			r.atoms = append(r.atoms, float64(l.atoms))
			r.refinedShare = append(r.refinedShare, 100*float64(l.refined)/float64(l.results))
			r.servedShare = append(r.servedShare, 100*float64(l.cellsServed)/float64(max(1, l.cellsAsked)))
		}
		out = append(out, r)
	}
	return out, nil
}

// measureGuardLevel times decisions against the record as it stands.
// Warm: a request served before, again (nothing new: a read and Decide,
// no write). Refine: a new request that changes the record (a read,
// Decide and the compare-and-set write); after each, the record is put
// back as it was (untimed), so every sample refines the same record.
func measureGuardLevel(ctx context.Context, store guard.RecordStore, org string, u guardUniverse, issued []guard.Request, rng *rand.Rand, gs guardSizes) (guardLevel, error) {
	var out guardLevel
	rec, _, err := store.Load(ctx, org)
	if err != nil {
		return out, err
	}
	b, err := rec.Marshal()
	if err != nil {
		return out, err
	}
	out.recordBytes = len(b)
	for _, p := range rec.Numbers {
		out.atoms += atomsOf(p)
	}
	if raw, err := json.Marshal(rec); err == nil {
		out.jsonBytes = len(raw)
	}
	for range 50 {
		start := time.Now()
		if _, err := guard.Unmarshal(b); err != nil {
			return out, err
		}
		out.decode = append(out.decode, time.Since(start))
		start = time.Now()
		if _, err := rec.Marshal(); err != nil {
			return out, err
		}
		out.encode = append(out.encode, time.Since(start))
	}

	for i := range gs.warmN {
		req := issued[rng.IntN(len(issued))]
		start := time.Now()
		d, err := guard.Run(ctx, store, org, req, u.waves)
		took := time.Since(start)
		if err != nil {
			return out, err
		}
		if d.Changed {
			return out, fmt.Errorf("guard: a repeated request changed the record (sample %d)", i)
		}
		out.warm = append(out.warm, took)
		start = time.Now()
		guard.Decide(req, rec, u.waves)
		out.warmDecide = append(out.warmDecide, time.Since(start))
	}

	// Refining requests: drawn at random until enough change the record
	// (checked with Decide alone, untimed); the supply dries up as the
	// partition approaches its finest admissible form.
	var refining []guard.Request
	for tries := 0; len(refining) < gs.refineN && tries < 50*gs.refineN; tries++ {
		req := u.randomRequest(rng)
		out.refineCandidate++
		if guard.Decide(req, rec, u.waves).Changed {
			refining = append(refining, req)
		}
	}
	for _, req := range refining {
		start := time.Now()
		d, err := guard.Run(ctx, store, org, req, u.waves)
		took := time.Since(start)
		if err != nil {
			return out, err
		}
		if !d.Changed {
			return out, errors.New("guard: a refining request did not change the record")
		}
		out.refine = append(out.refine, took)
		// Put the record back as it was.
		_, now, err := store.Load(ctx, org)
		if err != nil {
			return out, err
		}
		if err := store.Save(ctx, org, rec, now); err != nil {
			return out, fmt.Errorf("guard: restoring the record: %w", err)
		}
	}
	return out, nil
}

func atomsOf(p guard.Partition) int {
	seen := map[int]bool{}
	for _, a := range p.Atoms {
		seen[a] = true
	}
	return len(seen)
}
