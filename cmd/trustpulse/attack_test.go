package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// TestAttack plays two colluding analysts against random organisations with
// planted individuals (people alone in their team, location or tenure band,
// or in a department that is one team and one more person). Through the
// public API only, they poll an open wave as its answers arrive, then ask
// for every kind of slice in a random order: group-bys, attribute filters
// and their intersections, single waves, several waves and nested periods,
// and the same questions again. The test then plays the strongest attacker
// it can: each served number is taken as the exact sum of every one of its
// questions' answers over its response set, and linear algebra decides
// whether any planted individual's answer to any question is a combination
// of them. It also checks the guard's properties on what was served: every
// number stands on at least k people, and any two response sets served for
// a common question (totals minus shown groups included) differ by 0 or at
// least k.
func TestAttack(t *testing.T) {
	for seed := range uint64(2) {
		t.Run(fmt.Sprint("org", seed), func(t *testing.T) {
			newAttack(t, rand.New(rand.NewPCG(seed, 99))).run(t)
		})
	}
}

// attackAttrs are the attributes the analysts slice by.
var attackAttrs = []string{"department", "team", "location", "tenure_band"}

type attack struct {
	m       *Main
	rng     *rand.Rand
	people  []map[string]string
	planted []int // indices into people
	// responses: one per person who answered a wave.
	responses []attackResponse
	analysts  [2]string
	// known holds every served cell: its questions and its response set.
	known []knownCell
	month time.Time
}

type attackResponse struct {
	wave   string
	person int
}

type knownCell struct {
	what      string
	questions []string
	// parts are the groups whose union is the cell's response set; the set
	// is computed once every response is in.
	parts []part
	n     int // served size; -1 for a derived cell
}

// part is the response set of waves, a filter and a group.
type part struct {
	waves          []string
	filter         map[string]string
	groupBy, value string
}

func newAttack(t *testing.T, rng *rand.Rand) *attack {
	a := &attack{m: mustMain(t, nil), rng: rng, month: time.Now().UTC().AddDate(0, -1, 0)}
	// The attacks plant individuals in cohorts of their own: the guard
	// alone must hide them, so cohorts are stored as planted.
	a.m.Admin.KeepCohortsForTest(true)
	pick := func(opts ...string) string { return opts[rng.IntN(len(opts))] }
	for range 40 + rng.IntN(30) {
		dept := pick("Eng", "Sales", "Ops")
		a.people = append(a.people, map[string]string{
			"department": dept, "team": dept + "-" + pick("a", "b"), "location": pick("Berlin", "Lisbon"), "tenure_band": pick("<1y", "1-2y", "2-5y"),
		})
	}
	// A department that is one team and one more person: department minus
	// team is that person.
	for range 12 {
		a.people = append(a.people, map[string]string{"department": "Legal", "team": "Legal-core", "location": pick("Berlin", "Lisbon"), "tenure_band": pick("<1y", "1-2y")})
	}
	for _, p := range []map[string]string{
		{"department": "Legal", "team": "Legal-solo", "location": "Berlin", "tenure_band": "<1y"},
		{"department": "Eng", "team": "Eng-solo", "location": "Berlin", "tenure_band": "1-2y"},
		{"department": "Sales", "team": "Sales-a", "location": "Remote", "tenure_band": "2-5y"},
		{"department": "Ops", "team": "Ops-b", "location": "Lisbon", "tenure_band": "10y+"},
	} {
		a.planted = append(a.planted, len(a.people))
		a.people = append(a.people, p)
	}
	a.analysts = [2]string{authorize(t, a.m, schemas.RoleAnalyst), authorize(t, a.m, schemas.RoleAnalyst)}
	return a
}

func (a *attack) run(t *testing.T) {
	ctx := context.Background()
	m := a.m
	if err := m.Admin.PublishSurvey(ctx, "acme", e2eSurvey); err != nil {
		t.Fatal(err)
	}
	cohorts := make([]schemas.Cohort, len(a.people))
	for i, p := range a.people {
		cohorts[i] = schemas.Cohort{Department: p["department"], Team: p["team"], Location: p["location"], TenureBand: p["tenure_band"]}
	}
	now := time.Now().UTC()
	for _, w := range []string{"w1", "w2"} {
		opens := a.month
		if w == "w2" {
			opens = now.Add(-time.Minute)
		}
		if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: w, SurveyID: "pulse", OpensAt: opens, ClosesAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		tokens, err := m.Admin.IssueInvitations(ctx, "acme", w, cohorts)
		if err != nil {
			t.Fatal(err)
		}
		for i, tok := range tokens {
			if w == "w2" && a.rng.IntN(5) == 0 && !slices.Contains(a.planted, i) {
				continue
			}
			answers := map[string]int{}
			for _, q := range e2eSurvey.Questions {
				lo, hi := q.Dimension.Range()
				answers[q.ID] = lo + a.rng.IntN(hi-lo+1)
			}
			submit(t, m, tok, answers)
			a.responses = append(a.responses, attackResponse{wave: w, person: i})
			if w == "w2" && len(a.responses)%4 == 0 {
				a.pollOpenWave(t)
			}
		}
		if err := m.Admin.CloseWave(ctx, "acme", w); err != nil {
			t.Fatal(err)
		}
		if w == "w1" {
			waitScores(t, m, "")
		}
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if status, _ := a.get(t, 0, "/v1/orgs/acme/waves/w2/participation"); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("w2 never released")
		}
	}
	a.slice(t)
	a.check(t)
}

func (a *attack) get(t *testing.T, analyst int, path string) (int, string) {
	t.Helper()
	return getAs(t, a.analysts[analyst], a.m.QueryURL+path)
}

// period is a from/to query covering both waves' opening days.
func (a *attack) period() string {
	return "from=" + a.month.AddDate(0, 0, -1).Format(time.DateOnly) + "&to=" + time.Now().UTC().Format(time.DateOnly)
}

// pollOpenWave asks, while w2 is open, for everything that could show an
// arriving answer: w2's scores and participation are refused, results over
// periods and trends leave w2 out.
func (a *attack) pollOpenWave(t *testing.T) {
	t.Helper()
	for _, path := range []string{"/v1/orgs/acme/waves/w2/scores", "/v1/orgs/acme/waves/w2/participation",
		"/v1/orgs/acme/waves/w2/drivers", "/v1/orgs/acme/scores?waves=w1,w2"} {
		status, body := a.get(t, a.rng.IntN(2), path)
		refused := status == http.StatusConflict && strings.Contains(body, `"wave_open"`) ||
			status == http.StatusNotFound && strings.Contains(body, `"wave_not_found"`) // not projected yet
		if !refused {
			t.Fatalf("open wave: %s answered %d %s", path, status, body)
		}
	}
	// Live participation shows counts only, each of at least k.
	if status, body := a.get(t, a.rng.IntN(2), "/v1/orgs/acme/waves/w2/live"); status == http.StatusOK {
		var live struct {
			Overall struct{ Responded *int }   `json:"overall"`
			Groups  []struct{ Responded *int } `json:"groups"`
		}
		if err := json.Unmarshal([]byte(body), &live); err != nil {
			t.Fatal(err)
		}
		for _, g := range append(live.Groups, live.Overall) {
			if g.Responded != nil && *g.Responded < threshold {
				t.Fatalf("live participation shows a count under k: %s", body)
			}
		}
		if strings.Contains(body, `"mean"`) || strings.Contains(body, `"answers"`) {
			t.Fatalf("live participation carries more than counts: %s", body)
		}
	} else if status != http.StatusNotFound {
		t.Fatalf("live participation: %d %s", status, body)
	}
	path := "/v1/orgs/acme/scores?" + a.period()
	status, body := a.get(t, a.rng.IntN(2), path)
	if status != http.StatusOK {
		t.Fatalf("%s: %d %s", path, status, body)
	}
	a.learn(t, path, []string{"w1"}, nil, "", body)
	status, body = a.get(t, a.rng.IntN(2), "/v1/orgs/acme/trends")
	if status != http.StatusOK || strings.Contains(body, `"w2"`) {
		t.Fatalf("trends while w2 is open: %d %s", status, body)
	}
}

// slice asks for every kind of slice in a random order, alternating the
// analysts, and asks some of them again.
func (a *attack) slice(t *testing.T) {
	values := map[string][]string{}
	for _, p := range a.people {
		for _, attr := range attackAttrs {
			if !slices.Contains(values[attr], p[attr]) {
				values[attr] = append(values[attr], p[attr])
			}
		}
	}
	filters := []map[string]string{nil}
	for _, attr := range attackAttrs {
		for _, v := range values[attr] {
			filters = append(filters, map[string]string{attr: v})
		}
	}
	for range 25 { // intersections of filters
		x, y := attackAttrs[a.rng.IntN(4)], attackAttrs[a.rng.IntN(4)]
		if x != y {
			filters = append(filters, map[string]string{x: values[x][a.rng.IntN(len(values[x]))], y: values[y][a.rng.IntN(len(values[y]))]})
		}
	}
	scopes := []struct {
		prefix string
		waves  []string
	}{
		{"/v1/orgs/acme/waves/w1/scores?", []string{"w1"}},
		{"/v1/orgs/acme/waves/w2/scores?", []string{"w2"}},
		{"/v1/orgs/acme/scores?waves=w1,w2&", []string{"w1", "w2"}},
		{"/v1/orgs/acme/scores?" + a.period() + "&", []string{"w1", "w2"}},
	}
	type query struct {
		path    string
		waves   []string
		filter  map[string]string
		groupBy string
	}
	var queries []query
	for _, sc := range scopes {
		for _, f := range filters {
			for _, g := range append([]string{""}, attackAttrs...) {
				if _, filtered := f[g]; filtered {
					continue
				}
				v := url.Values{}
				for attr, val := range f {
					v.Set(attr, val)
				}
				if g != "" {
					v.Set("group_by", g)
				}
				queries = append(queries, query{sc.prefix + v.Encode(), sc.waves, f, g})
			}
		}
	}
	a.rng.Shuffle(len(queries), func(i, j int) { queries[i], queries[j] = queries[j], queries[i] })
	queries = queries[:min(len(queries), 160)]
	for range 20 { // the same questions again, by the other analyst
		queries = append(queries, queries[a.rng.IntN(len(queries))])
	}
	for i, q := range queries {
		status, body := a.get(t, i%2, q.path)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", q.path, status, body)
		}
		a.learn(t, q.path, q.waves, q.filter, q.groupBy, body)
	}
	status, body := a.get(t, 0, "/v1/orgs/acme/trends")
	if status != http.StatusOK {
		t.Fatalf("trends: %d %s", status, body)
	}
	var tr struct {
		Trends []struct {
			Dimension string `json:"dimension"`
			Points    []struct {
				WaveID string `json:"wave_id"`
				N      *int   `json:"n"`
			} `json:"points"`
		} `json:"trends"`
	}
	if err := json.Unmarshal([]byte(body), &tr); err != nil {
		t.Fatal(err)
	}
	for _, d := range tr.Trends {
		for _, p := range d.Points {
			if p.N != nil {
				a.know("trend "+d.Dimension+" "+p.WaveID, "dim:"+d.Dimension, part{waves: []string{p.WaveID}}, *p.N)
			}
		}
	}
}

// members is the response set of a cell.
func (a *attack) members(c knownCell) []bool {
	set := make([]bool, len(a.responses))
	for i, r := range a.responses {
		p := a.people[r.person]
		for _, pt := range c.parts {
			ok := slices.Contains(pt.waves, r.wave) && (pt.groupBy == "" || p[pt.groupBy] == pt.value)
			for attr, v := range pt.filter {
				ok = ok && p[attr] == v
			}
			set[i] = set[i] || ok
		}
	}
	return set
}

func size(set []bool) int {
	n := 0
	for _, in := range set {
		if in {
			n++
		}
	}
	return n
}

// questionsOf maps a cell key to the questions behind it.
func questionsOf(key string) []string {
	var out []string
	for _, q := range e2eSurvey.Questions {
		if key == "dim:"+string(q.Dimension) || key == "q:"+q.ID || key == "drv:"+q.Driver {
			out = append(out, q.ID)
		}
	}
	return out
}

// know records a served number.
func (a *attack) know(what, key string, pt part, n int) {
	a.known = append(a.known, knownCell{what: what, questions: questionsOf(key), parts: []part{pt}, n: n})
}

// learn records every number of a scores result, and what its group-by
// gives away: the scope's total minus the shown groups.
func (a *attack) learn(t *testing.T, path string, waves []string, filter map[string]string, groupBy, body string) {
	t.Helper()
	var r result
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	scope := part{waves: waves, filter: filter}
	scopeN := map[string]bool{} // keys shown scope-wide
	for _, s := range r.Dimensions {
		if s.N != nil {
			a.know(path+" "+s.Key, "dim:"+s.Dimension, scope, *s.N)
			scopeN["dim:"+s.Dimension] = true
		}
	}
	for _, s := range r.Questions {
		if s.N != nil {
			a.know(path+" "+s.Key, "q:"+s.Key, scope, *s.N)
		}
	}
	for _, s := range r.Drivers {
		if s.N != nil {
			a.know(path+" driver "+s.Key, "drv:"+s.Key, scope, *s.N)
		}
	}
	for _, s := range r.Overall {
		if s.N != nil {
			a.know(path+" overall "+s.Key, "dim:"+s.Dimension, part{waves: waves}, *s.N)
		}
	}
	hidden := map[string][]part{}
	for _, g := range r.Groups {
		for _, s := range g.Dimensions {
			key := "dim:" + s.Dimension
			pt := part{waves: waves, filter: filter, groupBy: groupBy, value: g.Value}
			if s.N != nil {
				a.know(path+" "+g.Value+" "+s.Key, key, pt, *s.N)
			} else {
				hidden[key] = append(hidden[key], pt)
			}
		}
	}
	for key, parts := range hidden {
		if scopeN[key] {
			// Derived, not served: the pairwise property applies to it.
			a.known = append(a.known, knownCell{what: path + " hidden " + groupBy + " groups " + key, questions: questionsOf(key), parts: parts, n: -1})
		}
	}
}

// check plays the linear-algebra attacker and checks the pairwise property.
func (a *attack) check(t *testing.T) {
	if len(a.known) < 50 {
		t.Fatalf("only %d numbers served; the attack learned too little to mean anything", len(a.known))
	}
	all := make([][]bool, len(a.known))
	for i, c := range a.known {
		all[i] = a.members(c)
		n := size(all[i])
		if c.n >= 0 && c.n != n {
			t.Fatalf("%s: served n=%d, truth %d", c.what, c.n, n)
		}
		if n > 0 && n < threshold {
			t.Errorf("%s: %d people served or derivable", c.what, n)
		}
	}
	for _, q := range e2eSurvey.Questions {
		var sets [][]bool
		var names []string
		for i, c := range a.known {
			if slices.Contains(c.questions, q.ID) {
				sets, names = append(sets, all[i]), append(names, c.what)
			}
		}
		// Pairwise: no two sets differ by 1 to k-1 people.
		for i := range sets {
			for j := i + 1; j < len(sets); j++ {
				d := 0
				for x := range sets[i] {
					if sets[i][x] != sets[j][x] {
						d++
					}
				}
				if d > 0 && d < threshold {
					t.Errorf("question %s: %q and %q differ by %d people", q.ID, names[i], names[j], d)
				}
			}
		}
		// Linear algebra: is any planted response's answer a combination of
		// the served sums?
		basis := newSpan(len(a.responses))
		for _, s := range sets {
			basis.add(s)
		}
		for r, resp := range a.responses {
			if !slices.Contains(a.planted, resp.person) {
				continue
			}
			unit := make([]bool, len(a.responses))
			unit[r] = true
			if basis.contains(unit) {
				t.Errorf("question %s: the answer of planted person %v in %s is recoverable from the served numbers", q.ID, a.people[resp.person], resp.wave)
			}
		}
		t.Logf("question %s: %d served sets, rank %d of %d responses", q.ID, len(sets), len(basis.rows), len(a.responses))
	}
}

// span is a row-echelon basis over the integers modulo a large prime: a
// vector in the rational span of 0/1 rows is in it modulo p, and the
// converse fails only if p divides a minor, which for these sizes it does
// not in practice.
type span struct {
	rows  [][]int64
	pivot []int
}

const spanPrime = 1_000_000_007

func newSpan(int) *span { return &span{} }

func (s *span) reduce(v []bool) []int64 {
	x := make([]int64, len(v))
	for i, in := range v {
		if in {
			x[i] = 1
		}
	}
	for k, row := range s.rows {
		if f := x[s.pivot[k]]; f != 0 {
			for i := range x {
				x[i] = ((x[i]-f*row[i])%spanPrime + spanPrime) % spanPrime
			}
		}
	}
	return x
}

func (s *span) add(v []bool) {
	x := s.reduce(v)
	p := slices.IndexFunc(x, func(e int64) bool { return e != 0 })
	if p < 0 {
		return
	}
	inv := modInverse(x[p])
	for i := range x {
		x[i] = x[i] * inv % spanPrime
	}
	// Keep the basis reduced: clear the new pivot from the other rows.
	for k, row := range s.rows {
		if f := row[p]; f != 0 {
			for i := range row {
				row[i] = ((row[i]-f*x[i])%spanPrime + spanPrime) % spanPrime
			}
			s.rows[k] = row
		}
	}
	s.rows, s.pivot = append(s.rows, x), append(s.pivot, p)
}

func (s *span) contains(v []bool) bool {
	return !slices.ContainsFunc(s.reduce(v), func(e int64) bool { return e != 0 })
}

func modInverse(a int64) int64 {
	result, base, e := int64(1), a%spanPrime, int64(spanPrime-2)
	for e > 0 {
		if e&1 == 1 {
			result = result * base % spanPrime
		}
		base = base * base % spanPrime
		e >>= 1
	}
	return result
}
