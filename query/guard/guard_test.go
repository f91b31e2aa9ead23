package guard

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// oneWave builds a wave of types named by their index, with respondents n.
func oneWave(id string, k int, n ...int) Wave {
	w := Wave{ID: id, K: k, N: n}
	for i := range n {
		w.Types = append(w.Types, fmt.Sprint("t", i))
	}
	return w
}

func cell(ref, wave string, idx ...int) Cell {
	return Cell{Ref: ref, Parts: map[string][]int{wave: idx}}
}

// decideAll runs requests one after another, each against the record the
// previous ones left, and returns which refs each served.
func decideAll(waves map[string]Wave, reqs ...Request) ([]map[string]bool, Record) {
	var rec Record
	var out []map[string]bool
	for _, r := range reqs {
		d := Decide(r, rec, waves)
		out = append(out, d.Served)
		rec = d.Record
	}
	return out, rec
}

func TestDecideGroupByHidesComplement(t *testing.T) {
	// Departments of 20, 3 and 20, and a 6: the 3 is too small, and the
	// 6 goes with it, so that the total minus the shown ones is 9.
	waves := map[string]Wave{"w": oneWave("w", 5, 20, 3, 20, 6)}
	served, _ := decideAll(waves, Request{Cells: []Cell{
		cell("all", "w", 0, 1, 2, 3), cell("a", "w", 0), cell("c", "w", 2), cell("d", "w", 3), cell("b", "w", 1),
	}})
	want := map[string]bool{"all": true, "a": true, "c": true}
	if fmt.Sprint(served[0]) != fmt.Sprint(want) {
		t.Fatalf("served %v, want %v", served[0], want)
	}
}

func TestDecideTwoGroupBys(t *testing.T) {
	// Finding 10 of issue 10: by tenure band, then by location. Types are
	// (tenure, location): (0-1y, Lisbon) holds one person. Either group-by
	// alone is fine; the second must not split the first's groups into
	// the one person.
	// Types: 0 = (0-1y, Lisbon) 1, 1 = (0-1y, Berlin) 9, 2 = (1-3y, Lisbon) 9, 3 = (1-3y, Berlin) 12.
	waves := map[string]Wave{"w": oneWave("w", 5, 1, 9, 9, 12)}
	served, _ := decideAll(waves,
		Request{Cells: []Cell{cell("t:0-1y", "w", 0, 1), cell("t:1-3y", "w", 2, 3)}},
		Request{Cells: []Cell{cell("l:Lisbon", "w", 0, 2), cell("l:Berlin", "w", 1, 3)}},
	)
	if !served[0]["t:0-1y"] || !served[0]["t:1-3y"] {
		t.Fatalf("tenure groups: %v", served[0])
	}
	if served[1]["l:Lisbon"] || served[1]["l:Berlin"] {
		t.Fatalf("location groups served after tenure groups: %v", served[1])
	}
}

func TestDecideThreeCellCombination(t *testing.T) {
	// Finding 3: X − Y + Z is a victim and a colluder, though every pair
	// differs by at least 10. Types 0..3 with a victim (1) and a colluder
	// (1) among many.
	waves := map[string]Wave{"w": oneWave("w", 5, 1, 1, 20, 20)}
	served, _ := decideAll(waves,
		Request{Cells: []Cell{cell("X", "w", 0, 2)}},
		Request{Cells: []Cell{cell("Y", "w", 2, 3)}},
		Request{Cells: []Cell{cell("Z", "w", 1, 3)}},
	)
	if served[0]["X"] && served[1]["Y"] && served[2]["Z"] {
		t.Fatal("X, Y and Z all served")
	}
}

func TestDecideChainOfPeriods(t *testing.T) {
	// Finding 2: D in wave 1, then D&L pooled over consecutive pairs of
	// waves, then D&L in the last: the alternating sum is one person. With
	// ten waves, no bound on the chain may let it through.
	const n = 10
	waves := map[string]Wave{}
	for i := range n {
		id := fmt.Sprint("w", i)
		waves[id] = oneWave(id, 5, 1, 30, 30) // type 0: D not L (1); type 1: D and L; type 2: others
	}
	var reqs []Request
	reqs = append(reqs, Request{Cells: []Cell{cell("D-w0", "w0", 0, 1)}})
	for i := range n - 1 {
		a, b := fmt.Sprint("w", i), fmt.Sprint("w", i+1)
		reqs = append(reqs, Request{Cells: []Cell{{Ref: "DL-" + a + b, Parts: map[string][]int{a: {1}, b: {1}}}}})
	}
	reqs = append(reqs, Request{Cells: []Cell{cell("DL-last", fmt.Sprint("w", n-1), 1)}})
	served, _ := decideAll(waves, reqs...)
	all := true
	for _, s := range served {
		if len(s) == 0 {
			all = false
		}
	}
	if all {
		t.Fatal("every result of the chain was served")
	}
	if !served[0]["D-w0"] {
		t.Fatal("D alone was refused")
	}
}

func TestDecideWaveThresholds(t *testing.T) {
	// Finding 5: a group of 3 in a k=10 wave, pooled with a k=3 wave and
	// set against that wave alone. Each wave's own threshold applies to
	// its part of a pooled cell.
	waves := map[string]Wave{"a": oneWave("a", 3, 3, 40), "b": oneWave("b", 10, 3, 40)}
	served, _ := decideAll(waves,
		Request{Cells: []Cell{cell("G-a", "a", 0)}},
		Request{Cells: []Cell{{Ref: "G-ab", Parts: map[string][]int{"a": {0}, "b": {0}}}}},
	)
	if !served[0]["G-a"] {
		t.Fatal("a group of 3 refused in a k=3 wave")
	}
	if served[1]["G-ab"] {
		t.Fatal("a k=10 wave's group of 3 served inside a pooled cell")
	}
}

func TestDecideRepeatsAndMonotone(t *testing.T) {
	waves := map[string]Wave{"w": oneWave("w", 5, 7, 8, 30)}
	served, rec := decideAll(waves,
		Request{Cells: []Cell{cell("A", "w", 0, 1)}},
		Request{Cells: []Cell{cell("A", "w", 0, 1)}},
		Request{Cells: []Cell{cell("B", "w", 1)}},
	)
	if !served[0]["A"] || !served[1]["A"] || !served[2]["B"] {
		t.Fatalf("served %v", served)
	}
	if d := Decide(Request{Cells: []Cell{cell("A", "w", 0, 1)}}, rec, waves); !d.Served["A"] || d.Changed {
		t.Fatalf("repeat: %+v", d)
	}
}

// TestDecideRefusedStaysRefused: a set refused once is refused after any
// further decisions, so what is served never depends on asking again.
func TestDecideRefusedStaysRefused(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for trial := range 500 {
		o := randomTinyOrg(rng)
		var rec Record
		var refused []Cell
		for r := range 12 {
			c := randomCell(rng, o, fmt.Sprint(r))
			d := Decide(Request{Cells: []Cell{c}}, rec, o.waves)
			rec = d.Record
			if !d.Served[c.Ref] {
				refused = append(refused, c)
			}
			for _, old := range refused {
				if again := Decide(Request{Cells: []Cell{old}}, rec, o.waves); again.Served[old.Ref] {
					t.Fatalf("trial %d: cell %v refused before, served after %d decisions", trial, old.Parts, r)
				}
			}
		}
	}
}

func TestDecideSharedRef(t *testing.T) {
	// A ref is served only if every cell with it is.
	waves := map[string]Wave{"a": oneWave("a", 5, 10, 10), "b": oneWave("b", 5, 2, 30)}
	d := Decide(Request{Cells: []Cell{cell("r", "a", 0), cell("r", "b", 0)}}, Record{}, waves)
	if d.Served["r"] {
		t.Fatal("ref served though one of its cells is refused")
	}
}

// TestDecideRefusedRefLeavesRecord: of a ref's cells, one refused means
// none is recorded (a comment list refused must not record its count).
func TestDecideRefusedRefLeavesRecord(t *testing.T) {
	waves := map[string]Wave{"w": oneWave("w", 5, 8, 30)}
	numbers := cell("r", "w", 0)
	comments := cell("r", "w", 0)
	comments.Comments = true
	d := Decide(Request{Cells: []Cell{numbers, comments}, CommentK: 10}, Record{}, waves)
	if d.Served["r"] || d.Changed {
		t.Fatalf("a ref with a refused cell: served %v, record changed %v", d.Served["r"], d.Changed)
	}
}

func TestDecideUnknownTypesAreOneAtom(t *testing.T) {
	rec := Record{Numbers: map[string]Partition{"w": {Types: []string{"t0", "t1"}, Atoms: []int{0, 1}}}}
	waves := map[string]Wave{"w": {ID: "w", K: 5, Types: []string{"t0", "t1", "t2"}, N: []int{10, 10, 2}}}
	if d := Decide(Request{Cells: []Cell{cell("x", "w", 2)}}, rec, waves); d.Served["x"] {
		t.Fatal("a type the record does not know was served alone")
	}
}

func TestCommentsPartitionApart(t *testing.T) {
	waves := map[string]Wave{"w": oneWave("w", 5, 6, 30)}
	// Numbers for the 6 are fine at k=5; comments need 10.
	d := Decide(Request{Cells: []Cell{cell("six", "w", 0)}}, Record{}, waves)
	if !d.Served["six"] {
		t.Fatal("numbers of 6 refused at k=5")
	}
	comments := func(c Cell) Cell { c.Comments = true; return c }
	c := Decide(Request{Cells: []Cell{comments(cell("six", "w", 0))}, CommentK: 10}, d.Record, waves)
	if c.Served["six"] {
		t.Fatal("comments of 6 served at a comment threshold of 10")
	}
	c = Decide(Request{Cells: []Cell{comments(cell("rest", "w", 1))}, CommentK: 10}, d.Record, waves)
	if c.Served["rest"] {
		t.Fatal("comments of the 30 served: the organisation's comments minus theirs are the 6's")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	rec := Record{Numbers: map[string]Partition{"w": {Types: []string{"a\x1fb", "c"}, Atoms: []int{0, 1}}},
		Comments: map[string]Partition{"w": {Types: []string{"a\x1fb", "c"}, Atoms: []int{0, 0}}}}
	b, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(rec) {
		t.Fatalf("got %v, want %v", got, rec)
	}
	for _, bad := range [][]byte{nil, []byte("{}"), b[:len(b)/2]} {
		if _, err := Unmarshal(bad); err == nil {
			t.Errorf("Unmarshal(%q) accepted", bad)
		}
	}
}

// memStore is a RecordStore in memory with revisions, for Run's tests.
type memStore struct {
	mu   sync.Mutex
	recs map[string][]byte
	rev  map[string]uint64
	// beforeSave runs before each save, outside the lock: a test can let
	// another decision win the race there.
	beforeSave func()
}

func (m *memStore) Load(_ context.Context, org string) (Record, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rev[org] == 0 {
		return Record{}, 0, nil
	}
	r, err := Unmarshal(m.recs[org])
	return r, m.rev[org], err
}

func (m *memStore) Save(_ context.Context, org string, rec Record, rev uint64) error {
	if f := m.beforeSave; f != nil {
		m.beforeSave = nil
		f()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rev[org] != rev {
		return ErrConflict
	}
	b, err := rec.Marshal()
	if err != nil {
		return err
	}
	m.recs[org], m.rev[org] = b, rev+1
	return nil
}

func TestRunRetriesOnConflict(t *testing.T) {
	// Two decisions race: D (type 0 and 1) and D&L (type 0), one person
	// apart. Whoever saves second decides again against the first's record
	// and is refused.
	waves := map[string]Wave{"w": oneWave("w", 5, 10, 1, 30)}
	st := &memStore{recs: map[string][]byte{}, rev: map[string]uint64{}}
	ctx := context.Background()
	var other Decision
	st.beforeSave = func() {
		var err error
		if other, err = Run(ctx, st, "acme", Request{Cells: []Cell{cell("D&L", "w", 0)}}, waves); err != nil {
			t.Error(err)
		}
	}
	d, err := Run(ctx, st, "acme", Request{Cells: []Cell{cell("D", "w", 0, 1)}}, waves)
	if err != nil {
		t.Fatal(err)
	}
	if !other.Served["D&L"] {
		t.Fatal("the first decision to save was refused")
	}
	if d.Served["D"] {
		t.Fatal("both racing decisions served")
	}
}

type failingStore struct{}

func (failingStore) Load(context.Context, string) (Record, uint64, error) {
	return Record{}, 0, errors.New("store down")
}
func (failingStore) Save(context.Context, string, Record, uint64) error { return nil }

func TestRunFailsClosed(t *testing.T) {
	waves := map[string]Wave{"w": oneWave("w", 5, 10, 10)}
	if _, err := Run(context.Background(), failingStore{}, "acme", Request{Cells: []Cell{cell("a", "w", 0)}}, waves); err == nil {
		t.Fatal("a decision without the record succeeded")
	}
}

// The exhaustive check. It shares nothing with Decide but the cells it
// served: for tiny organisations it enumerates every assignment of answers
// to respondents that gives the same distribution of answers in every
// served set as the true one (what any attacker can be sure of is what
// holds in all of them), and checks the guarantee's consequences, which
// need no model of atoms:
//   - pinned answers come in groups: for each value, the respondents whose
//     answer is that value in every consistent assignment number 0 or at
//     least k (only a unanimous group of k or more can be pinned);
//   - no set of 1..k-1 respondents is told apart: if the distribution of
//     such a set's answers is the same in every consistent assignment,
//     each of its members is pinned (it is inside unanimous groups).
//
// The respondents are people the attacker knows by cohort (type); answers
// are the secret.

type tinyOrg struct {
	k       int
	waves   map[string]Wave
	people  []tinyPerson
	answers []int // per person, in 0..values-1
	values  int
}

type tinyPerson struct {
	wave string
	typ  int
}

func randomTinyOrg(rng *rand.Rand) tinyOrg {
	o := tinyOrg{k: 2 + rng.IntN(2), waves: map[string]Wave{}, values: 3}
	nWaves := 1 + rng.IntN(2)
	total := 7 + rng.IntN(3)
	for w := range nWaves {
		id := fmt.Sprint("w", w)
		o.waves[id] = Wave{ID: id, K: o.k, Types: []string{"a0b0", "a0b1", "a1b0", "a1b1", "a2b0", "a2b1"}, N: make([]int, 6)}
	}
	for range total {
		id := fmt.Sprint("w", rng.IntN(nWaves))
		p := tinyPerson{wave: id, typ: rng.IntN(6)}
		o.waves[id].N[p.typ]++
		o.people = append(o.people, p)
		o.answers = append(o.answers, rng.IntN(o.values))
	}
	return o
}

// randomCell is a set an analyst might ask for: a filter on attribute a
// (values 0..2) and/or b (0..1), over one wave or all of them.
func randomCell(rng *rand.Rand, o tinyOrg, ref string) Cell {
	aVal, bVal := rng.IntN(4)-1, rng.IntN(3)-1 // -1: any
	var waves []string
	for id := range o.waves {
		waves = append(waves, id)
	}
	slices.Sort(waves)
	if rng.IntN(2) == 0 {
		waves = waves[rng.IntN(len(waves)):][:1]
	}
	c := Cell{Ref: ref, Parts: map[string][]int{}}
	for _, id := range waves {
		for t := range 6 {
			if (aVal < 0 || t/2 == aVal) && (bVal < 0 || t%2 == bVal) {
				c.Parts[id] = append(c.Parts[id], t)
			}
		}
	}
	return c
}

// members returns the people a cell takes.
func (o tinyOrg) members(c Cell) []int {
	var out []int
	for i, p := range o.people {
		if slices.Contains(c.Parts[p.wave], p.typ) {
			out = append(out, i)
		}
	}
	return out
}

// histogram counts the answers of a set of people under an assignment,
// four bits a value.
func histogram(assign []int, set []int, _ int) uint64 {
	var h uint64
	for _, i := range set {
		h += 1 << (4 * assign[i])
	}
	return h
}

// exhaustiveLeaks returns what the guarantee forbids that follows from the
// served sets, or nothing.
func (o tinyOrg) exhaustiveLeaks(served [][]int) []string {
	n := len(o.people)
	want := make([]uint64, len(served))
	for i, s := range served {
		want[i] = histogram(o.answers, s, o.values)
	}
	var consistent [][]int
	assign := make([]int, n)
	var walk func(i int)
	walk = func(i int) {
		if i == n {
			for j, s := range served {
				if histogram(assign, s, o.values) != want[j] {
					return
				}
			}
			consistent = append(consistent, slices.Clone(assign))
			return
		}
		for v := range o.values {
			assign[i] = v
			walk(i + 1)
		}
	}
	walk(0)
	pinned := make([]bool, n)
	pinnedTo := make([]int, o.values)
	for i := range n {
		pinned[i] = true
		for _, a := range consistent {
			if a[i] != o.answers[i] {
				pinned[i] = false
				break
			}
		}
		if pinned[i] {
			pinnedTo[o.answers[i]]++
		}
	}
	var leaks []string
	for v, c := range pinnedTo {
		if c > 0 && c < o.k {
			leaks = append(leaks, fmt.Sprintf("%d respondents pinned to answer %d (fewer than k=%d)", c, v, o.k))
		}
	}
	for mask := 1; mask < 1<<n; mask++ {
		var set []int
		for i := range n {
			if mask&(1<<i) != 0 {
				set = append(set, i)
			}
		}
		if len(set) >= o.k {
			continue
		}
		h := histogram(o.answers, set, o.values)
		fixed := true
		for _, a := range consistent {
			if histogram(a, set, o.values) != h {
				fixed = false
				break
			}
		}
		if !fixed {
			continue
		}
		for _, i := range set {
			if !pinned[i] {
				leaks = append(leaks, fmt.Sprintf("the answers of respondents %v (fewer than k=%d) are told apart", set, o.k))
				break
			}
		}
	}
	return leaks
}

// playTiny runs random requests against an organisation with decide and
// returns the sets of the cells it served.
func playTiny(rng *rand.Rand, o tinyOrg, decide func(Request, Record, map[string]Wave) Decision) [][]int {
	var rec Record
	var served [][]int
	// Every wave's total is known (the guard assumes it too).
	for id := range o.waves {
		all := Cell{Ref: "total-" + id, Parts: map[string][]int{id: {0, 1, 2, 3, 4, 5}}}
		if d := decide(Request{Cells: []Cell{all}}, rec, o.waves); d.Served[all.Ref] {
			served = append(served, o.members(all))
			rec = d.Record
		}
	}
	for r := range 4 + rng.IntN(5) {
		var cells []Cell
		for i := range 1 + rng.IntN(3) {
			cells = append(cells, randomCell(rng, o, fmt.Sprint(r, ".", i)))
		}
		d := decide(Request{Cells: cells}, rec, o.waves)
		rec = d.Record
		for _, c := range cells {
			if d.Served[c.Ref] {
				served = append(served, o.members(c))
			}
		}
	}
	return served
}

func TestDecideExhaustive(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 2026))
	trials, servedCells := 2000, 0
	if testing.Short() {
		trials = 200
	}
	for trial := range trials {
		o := randomTinyOrg(rng)
		served := playTiny(rng, o, Decide)
		servedCells += len(served)
		if leaks := o.exhaustiveLeaks(served); len(leaks) > 0 {
			t.Fatalf("trial %d (k=%d, people %v, answers %v, served %v): %v", trial, o.k, o.people, o.answers, served, leaks)
		}
	}
	if servedCells == 0 {
		t.Fatal("nothing was ever served: the check proves nothing")
	}
	t.Logf("%d trials, %d cells served", trials, servedCells)
}

// TestExhaustiveCatchesWeakGuard shows that the exhaustive check sees
// leaks: a guard that only asks each cell for k respondents leaks in some
// of the same random organisations.
func TestExhaustiveCatchesWeakGuard(t *testing.T) {
	weak := func(req Request, rec Record, waves map[string]Wave) Decision {
		d := Decision{Served: map[string]bool{}, Record: rec}
		for _, c := range req.Cells {
			n := 0
			for id, idx := range c.Parts {
				for _, i := range idx {
					n += waves[id].N[i]
				}
			}
			if n >= waves["w0"].K {
				d.Served[c.Ref] = true
			}
		}
		return d
	}
	rng := rand.New(rand.NewPCG(10, 2026))
	for trial := range 300 {
		o := randomTinyOrg(rng)
		if leaks := o.exhaustiveLeaks(playTiny(rng, o, weak)); len(leaks) > 0 {
			t.Logf("trial %d: the weak guard leaks: %s", trial, leaks[0])
			return
		}
	}
	t.Fatal("the exhaustive check found no leak of a guard that only counts each cell")
}
