package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// TestIntegerProgramAttack plays colluding analysts against random
// organisations with planted victims (people alone in their team, location,
// tenure band or cohort, or in a department that is one team and one more
// person), who answer, to every question, a value nobody else in the wave
// gives. The analysts send a random battery of requests through the public
// API, spread over two query replicas: group-bys, filters aimed at the
// victims' cohorts and their neighbours, single waves and pooled periods,
// participation, trends and driver impact. They also write action plans
// for teams around the victims and read the plan impact between them
// (ilpPlanScript in ilp_plans_test.go).
//
// The attacker then builds, independently of package query, an integer
// program whose unknowns are, per response type (wave and cohort), the
// respondents and their answers, knowing the roster; every served number is
// a constraint, its rounding included (ilp_model_test.go). It checks that
// the true answers satisfy the program, and asks COIN-OR CBC:
//
//   - per victim, wave and question, the least number of respondents of the
//     victim's type who gave the victim's answer: at least 1 means the
//     victim's answer is pinned;
//   - per small group of 2 to k-1 invitees (a type, a cell the battery asked
//     about, the difference of two nested served cells), whether its
//     respondent count is pinned strictly between 0 and its invitees.
//
// Either is a failure, and so is a served count under k. Pins at none or
// all of a group's invitees (a whole group responding in full), and
// groups pinned only because each of their types is, are logged: a sound
// guard allows them (TestIntegerProgramAttackerSpareAPartition checks the
// verdicts against one). A pin is reported with a minimal set of requests
// behind it for the first victim and the first group, and the served sets
// of its cohort. A seed is picked at random on every run besides the fixed
// ones and logged; TRUSTPULSE_ILP_SEED=N replays seed N alone.
func TestIntegerProgramAttack(t *testing.T) {
	ilpNeedCBC(t)
	seeds := []uint64{1, 2}
	if s := os.Getenv("TRUSTPULSE_ILP_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TRUSTPULSE_ILP_SEED=%q: %v", s, err)
		}
		seeds = []uint64{seed}
	} else {
		seed := rand.Uint64N(1_000_000)
		t.Logf("random seed %d (replay it alone with TRUSTPULSE_ILP_SEED=%d)", seed, seed)
		seeds = append(seeds, seed)
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x11f))
			pool := slices.Clone(ilpVictimPool)
			rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
			o := newILPOrg(rng, pool[:3+rng.IntN(4)], 38+rng.IntN(20), 2)
			a := newILPAttack(t, o, false, 2+rng.IntN(2))
			battery := ilpBattery(rng, o, 40+rng.IntN(41), len(a.tokens), len(a.urls))
			a.send(ilpInterleave(rng, battery, ilpPlanScript(rng, o), len(a.tokens), len(a.urls)))
			res := a.solve()
			for _, f := range res.leaks {
				t.Errorf("seed %d: %s", seed, f)
			}
			if len(res.leaks) > 0 {
				t.Errorf("seed %d: the integer-program attacker broke anonymity %d time(s) (replay with TRUSTPULSE_ILP_SEED=%d)", seed, len(res.leaks), seed)
			}
		})
	}
}

// TestIntegerProgramAttackCatchesWeakenedGuard shows that the same
// attacker finds a leak when there is one: with the guard weakened on both
// replicas, the two plain group-bys of a wave by tenure band and by
// location pin the answers of the only 0-1y person in Lisbon (everyone
// else in the wave answers other values).
func TestIntegerProgramAttackCatchesWeakenedGuard(t *testing.T) {
	ilpNeedCBC(t)
	rng := rand.New(rand.NewPCG(7, 0x11f))
	o := newILPOrg(rng, []ilpVictimSpec{ilpVictimPool[0]}, 45, 1)
	a := newILPAttack(t, o, true, 2)
	a.send([]ilpRequest{
		{kind: "scores", path: "/v1/orgs/acme/waves/w1/scores?group_by=tenure_band", groupBy: 3, analyst: 0, replica: 0},
		{kind: "scores", path: "/v1/orgs/acme/waves/w1/scores?group_by=location", groupBy: 2, analyst: 1, replica: 1},
	})
	res := a.solve()
	if res.pinnedVictims == 0 {
		t.Fatalf("with the guard weakened, the attacker pinned no victim's answer: it cannot see the leak it exists to find")
	}
	for _, f := range res.leaks {
		t.Logf("found, as it should: %s", f)
	}
}

// ilpAttack is one organisation under attack.
type ilpAttack struct {
	t       *testing.T
	o       *ilpOrg
	m       *Main
	urls    []string // the query replicas
	tokens  []string // the colluding analysts
	reqs    []ilpRequest
	model   *ilpModel
	learner *ilpLearner
	truth   []int64
	started time.Time
	sent    time.Duration
	// typeTargets are the group targets of single types.
	typeTargets map[int]*ilpTarget
	// shrink: find a minimal set of requests behind a pin.
	shrink bool
	// planIDs are the plans the analysts wrote, by team; planWrites
	// counts their writes.
	planIDs    map[string]string
	planWrites int
	// solver is the last solve's.
	solver *ilpSolver
}

// newILPAttack runs the organisation's waves on a fresh program with a
// second query replica, and issues the analysts' tokens.
func newILPAttack(t *testing.T, o *ilpOrg, weaken bool, analysts int) *ilpAttack {
	t.Helper()
	a := &ilpAttack{t: t, o: o, started: time.Now(), shrink: true}
	a.m = ilpMain(t, weaken)
	a.urls = []string{a.m.QueryURL, secondQueryURL(t, a.m, weaken)}
	for range analysts {
		tok := authorize(t, a.m, schemas.RoleAnalyst) // a new token each time
		if slices.Contains(a.tokens, tok) {
			t.Fatal("authorize gave the same token twice")
		}
		a.tokens = append(a.tokens, tok)
	}
	o.play(t, a.m)
	a.model = newILPModel(threshold, o.waveIDs(), o.people, ilpSurvey)
	a.learner = &ilpLearner{t: t, m: a.model}
	return a
}

// send waits for the waves' release (the participation that answers first
// is learnt too), then sends the battery.
func (a *ilpAttack) send(battery []ilpRequest) {
	t := a.t
	t.Helper()
	start := time.Now()
	for _, w := range a.o.waveIDs() {
		req := ilpRequest{kind: "participation", path: "/v1/orgs/acme/waves/" + w + "/participation", groupBy: -1}
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			req.status, req.body = getAs(t, a.tokens[0], a.urls[0]+req.path)
			if req.status == http.StatusOK {
				break
			}
			pending := req.status == http.StatusServiceUnavailable || req.status == http.StatusNotFound ||
				req.status == http.StatusConflict && strings.Contains(req.body, "wave_open")
			if !pending || time.Now().After(deadline) {
				t.Fatalf("wave %s not released: %d %s", w, req.status, req.body)
			}
		}
		a.record(req)
	}
	for _, req := range battery {
		if req.kind == "plan" { // serves no number: not a request of the model's
			a.writePlan(req)
			continue
		}
		req.status, req.body = getAs(t, a.tokens[req.analyst], a.urls[req.replica]+req.path)
		a.record(req)
	}
	a.sent = time.Since(start)
}

func (a *ilpAttack) record(req ilpRequest) {
	a.reqs = append(a.reqs, req)
	a.learner.learn(len(a.reqs)-1, req)
}

// ilpTarget is a quantity the attacker tries to pin.
type ilpTarget struct {
	what  string
	terms []ilpTerm
	truth int64
	// victim targets count the respondents of a victim's type giving the
	// victim's answer: pinned if at least 1 in every solution.
	victim bool
	ty     int // the victim's type
	// group targets count a small group's respondents: pinned if equal to
	// the truth in every solution.
	set      []bool
	invited  int
	resolved bool // a solution showed it is not pinned
	pinned   bool // proven pinned (or given up on)
	// undecided says why cbc could not decide.
	undecided string
	// byLP: the pin is proven by the linear relaxation already.
	byLP bool
}

func (g *ilpTarget) value(x []int64) int64 {
	s := int64(0)
	for _, t := range g.terms {
		s += t.c * x[t.v]
	}
	return s
}

// witness marks the targets a solution shows unpinned.
func witness(targets []*ilpTarget, x []int64) int {
	n := 0
	for _, g := range targets {
		if g.resolved || x == nil {
			continue
		}
		v := g.value(x)
		if g.victim && v == 0 || !g.victim && v != g.truth {
			g.resolved = true
			n++
		}
	}
	return n
}

type ilpResult struct {
	leaks         []string
	pinnedVictims int
	// pinned are the pinned targets, victims first.
	pinned []*ilpTarget
}

// solve plays the attacker on everything served.
func (a *ilpAttack) solve() ilpResult {
	t := a.t
	t.Helper()
	m := a.model
	a.truth = a.o.truth(m)
	if bad := m.checkTruth(a.truth); len(bad) > 0 {
		t.Fatalf("the true answers break %d constraints of the attacker's model (a bug in the model, or the API served a wrong number):\n%s",
			len(bad), strings.Join(bad[:min(len(bad), 15)], "\n"))
	}
	solveStart := time.Now()
	s := newILPSolver(t, strings.ReplaceAll(t.Name(), "/", "_"))
	a.solver = s
	var res ilpResult
	res.leaks = append(res.leaks, a.learner.small...)

	victims, groups := a.targets()
	all := append(slices.Clone(victims), groups...)
	unresolved := func(ts []*ilpTarget) []*ilpTarget {
		var out []*ilpTarget
		for _, g := range ts {
			if !g.resolved && !g.pinned {
				out = append(out, g)
			}
		}
		return out
	}
	sum := func(ts []*ilpTarget) []ilpTerm {
		var out []ilpTerm
		for _, g := range ts {
			out = append(out, g.terms...)
		}
		return out
	}
	// Sweeps: one solve pushes many targets at once; each solution found
	// is a witness for every target.
	for range 4 {
		open := unresolved(victims)
		if len(open) == 0 {
			break
		}
		sol := s.solve(m, fmt.Sprintf("sweep: least victim answers over %d targets", len(open)), sum(open), false, nil)
		witness(all, sol.values)
		if len(unresolved(victims)) == len(open) {
			break
		}
	}
	// One by one.
	var pinned []*ilpTarget
	// The linear relaxation proves most pins at a fraction of the cost.
	open := unresolved(victims)
	var jobs []ilpJob
	for _, g := range open {
		jobs = append(jobs, ilpJob{"least " + g.what, g.terms, false})
	}
	for i, lp := range s.boundAll(m, jobs) {
		if lp.status == "optimal" && lp.obj >= 0.5 {
			open[i].pinned, open[i].byLP = true, true
			pinned = append(pinned, open[i])
		}
	}
	for _, g := range victims {
		if g.resolved || g.pinned {
			continue
		}
		sol := s.solve(m, "least "+g.what, g.terms, false, nil)
		witness(all, sol.values)
		switch {
		case g.resolved:
		case sol.status == "optimal" && sol.obj >= 0.5:
			g.pinned = true
			pinned = append(pinned, g)
		default:
			g.undecided = fmt.Sprintf("cbc %s, best %g", sol.status, sol.obj)
		}
	}
	// Groups whose true count is none or all of their invitees: one solve
	// pushes them all the other way at once; when none moves, every one is
	// pinned there (allowed, logged).
	var logged []string
	edge := func(g *ilpTarget, full bool) bool {
		return full && g.truth == int64(g.invited) || !full && g.truth == 0
	}
	allow := func(g *ilpTarget) {
		g.pinned = true
		logged = append(logged, fmt.Sprintf("%s: pinned at %d of %d invited (none or all: allowed)", g.what, g.truth, g.invited))
	}
	for _, full := range []bool{true, false} {
		for {
			var open []*ilpTarget
			want := int64(0)
			for _, g := range unresolved(groups) {
				if edge(g, full) {
					open, want = append(open, g), want+g.truth
				}
			}
			if len(open) == 0 {
				break
			}
			title := fmt.Sprintf("sweep: respondents of %d groups at %s", len(open), map[bool]string{true: "all", false: "none"}[full])
			lp := s.bound(m, title, sum(open), !full, nil)
			provenByLP := lp.status == "optimal" && math.Abs(lp.obj-float64(want)) < 0.5
			sol := lp
			if !provenByLP {
				sol = s.solve(m, title, sum(open), !full, nil)
				witness(all, sol.values)
			}
			if provenByLP || sol.status == "optimal" && int64(math.Round(sol.obj)) == want {
				for _, g := range open {
					allow(g)
				}
				break
			}
			if len(unresolved(open)) == len(open) {
				for _, g := range open {
					g.undecided = "cbc " + sol.status
					g.pinned = true // not proven: nothing more to try
				}
				break
			}
		}
	}
	// Groups with some but not all invitees responding: pushed down and up
	// together, then one by one.
	for _, maximize := range []bool{false, true} {
		if open := unresolved(groups); len(open) > 0 {
			sol := s.solve(m, fmt.Sprintf("sweep: respondents of %d groups (maximise %v)", len(open), maximize), sum(open), maximize, nil)
			witness(all, sol.values)
		}
	}
	open = unresolved(groups)
	jobs = nil
	for _, g := range open {
		jobs = append(jobs, ilpJob{"least " + g.what, g.terms, false}, ilpJob{"most " + g.what, g.terms, true})
	}
	lps := s.boundAll(m, jobs)
	for i, g := range open {
		lpLo, lpHi := lps[2*i], lps[2*i+1]
		if lpLo.status == "optimal" && lpHi.status == "optimal" && lpLo.obj > float64(g.truth)-0.5 && lpHi.obj < float64(g.truth)+0.5 {
			g.pinned, g.byLP = true, true
			if a.explainedByTypes(s, g, all) {
				logged = append(logged, fmt.Sprintf("%s: pinned at %d of %d invited, but each of its types is pinned at none or all of its invitees (allowed)", g.what, g.truth, g.invited))
			} else {
				pinned = append(pinned, g)
			}
		}
	}
	for _, g := range groups {
		if g.resolved || g.pinned {
			continue
		}
		lo := s.solve(m, "least "+g.what, g.terms, false, nil)
		witness(all, lo.values)
		if g.resolved {
			continue
		}
		hi := s.solve(m, "most "+g.what, g.terms, true, nil)
		witness(all, hi.values)
		if g.resolved {
			continue
		}
		if lo.status != "optimal" || hi.status != "optimal" {
			g.undecided = fmt.Sprintf("cbc %s/%s", lo.status, hi.status)
			continue
		}
		g.pinned = true
		if a.explainedByTypes(s, g, all) {
			logged = append(logged, fmt.Sprintf("%s: pinned at %d of %d invited, but each of its types is pinned at none or all of its invitees (allowed)", g.what, g.truth, g.invited))
			continue
		}
		pinned = append(pinned, g)
	}
	if len(logged) > 0 {
		t.Logf("%d pins the rules allow (whole types responding in full or not at all):\n    %s", len(logged), strings.Join(logged, "\n    "))
	}
	undecided := 0
	for _, g := range all {
		if g.undecided != "" && !g.resolved {
			undecided++
			res.leaks = append(res.leaks, fmt.Sprintf("could not decide whether %s is pinned (%s)", g.what, g.undecided))
		}
	}
	// Report each pin, with a minimal list of requests for the first
	// (a victim's if any).
	budget := time.Now().Add(30 * time.Second)
	shrunk := false
	detailed := 0
	sort.SliceStable(pinned, func(i, j int) bool { return pinned[i].victim && !pinned[j].victim })
	res.pinned = pinned
	for _, g := range pinned {
		if g.victim {
			res.pinnedVictims++
		}
		msg := "PINNED " + g.what
		if g.victim {
			msg += ": at least 1 in every solution of the served numbers"
		} else {
			msg += fmt.Sprintf(": exactly %d of %d invitees responded, in every solution", g.truth, g.invited)
		}
		msg += map[bool]string{true: " (proven by the linear relaxation)", false: " (proven by the integer program)"}[g.byLP]
		if a.shrink && !shrunk && time.Now().Before(budget) {
			shrunk = true
			reqs, minimal := a.minimalRequests(s, g, budget)
			how := "a minimal set: dropping any one loses the proof"
			if !minimal {
				how = "shrunk as far as time allowed"
			}
			msg += fmt.Sprintf("\n    by these %d request(s) (%s):", len(reqs), how)
			for _, r := range reqs {
				msg += fmt.Sprintf("\n      #%d %s", r, a.reqs[r])
			}
			msg += a.cellsOf(g, reqs)
		} else if detailed < 4 {
			msg += a.cellsOf(g, nil)
		}
		detailed++
		res.leaks = append(res.leaks, msg)
	}
	served := 0
	for _, r := range a.reqs {
		if r.status == http.StatusOK {
			served++
		}
	}
	u := a.learner.util
	t.Logf("%d requests (%d answered, %d refused as differencing) and %d plan writes by %d analysts over %d replicas in %v; %d of %d cells served (%.0f%%, %d plan-impact means); "+
		"%d victims (%d answer targets), %d small groups; %d rows over %d unknowns; %d cbc solves (%v in cbc) in %v; %d pinned, %d undecided; total %v",
		len(a.reqs), served, u.refused, a.planWrites, len(a.tokens), len(a.urls), a.sent.Round(time.Millisecond), u.served, u.requested, 100*float64(u.served)/float64(max(1, u.requested)), u.planImpact,
		len(a.o.victims), len(victims), len(groups), len(m.rows), len(m.names), s.solves, s.spent.Round(time.Millisecond), time.Since(solveStart).Round(time.Millisecond),
		len(pinned), undecided, time.Since(a.started).Round(time.Millisecond))
	for _, v := range a.o.victims {
		t.Logf("victim %s: %s", a.o.people[v], a.o.named[v])
	}
	return res
}

// targets lists what the attacker tries to pin: each victim's answer to
// each question in each wave, and the respondents of small groups (types
// and, per wave, the cells the battery asked about and differences of
// nested served cells, of 1 to k-1 invitees).
func (a *ilpAttack) targets() (victims, groups []*ilpTarget) {
	m := a.model
	for _, p := range a.o.victims {
		for _, w := range a.o.waves {
			ty := m.typeIndex[ilpType{w.id, a.o.people[p]}]
			for qi, q := range m.questions {
				v := m.x[ty][qi][w.rare[q.id]-q.lo]
				victims = append(victims, &ilpTarget{victim: true, ty: ty, truth: a.truth[v], terms: []ilpTerm{{v, 1}},
					what: fmt.Sprintf("victim %s (%s) in %s: answer %d to %s", a.o.people[p], a.o.named[p], w.id, w.rare[q.id], q.id)})
			}
		}
	}
	seen := map[string]bool{}
	addGroup := func(what string, set []bool) {
		inv := m.invitedIn(set)
		if inv == 0 || inv >= m.k {
			return
		}
		key := setKey(set)
		if seen[key] {
			return
		}
		seen[key] = true
		terms := m.countTerms(set, 1)
		g := &ilpTarget{what: fmt.Sprintf("group %s (%d invited)", what, inv), terms: terms, set: set, invited: inv}
		g.truth = g.value(a.truth)
		groups = append(groups, g)
	}
	a.typeTargets = map[int]*ilpTarget{}
	for ty := range m.types {
		set := make([]bool, len(m.types))
		set[ty] = true
		n := len(groups)
		addGroup(fmt.Sprintf("type %s %s", m.types[ty].wave, m.types[ty].cohort), set)
		if len(groups) > n {
			a.typeTargets[ty] = groups[n]
		}
	}
	values := ilpValues(a.o.people)
	for _, r := range a.reqs {
		for _, w := range m.waves {
			if !strings.Contains(r.path, "/waves/"+w+"/") && strings.Contains(r.path, "/waves/") {
				continue
			}
			addGroup(fmt.Sprintf("%s %v", w, r.filter), m.set([]string{w}, r.filter))
			if r.groupBy >= 0 {
				for _, v := range values[r.groupBy] {
					f := r.filter
					f[r.groupBy] = v
					addGroup(fmt.Sprintf("%s %v", w, f), m.set([]string{w}, f))
				}
			}
		}
	}
	// The sets of the plan-impact reads.
	for _, r := range a.reqs {
		if r.kind == "plan-impact" {
			for _, ps := range ilpPlanSets(m, r.plans, m.waves) {
				addGroup(ps.what, ps.set)
			}
		}
	}
	// Differences of nested served cells, per wave (as bitsets: there are
	// many pairs).
	var sets [][]uint64
	var names []string
	setSeen := map[string]bool{}
	for _, c := range m.cells {
		for _, w := range m.waves {
			part := slices.Clone(c.set)
			for i := range part {
				part[i] = part[i] && m.types[i].wave == w
			}
			if k := setKey(part); !setSeen[k] && slices.Contains(part, true) {
				setSeen[k] = true
				sets, names = append(sets, bits(part)), append(names, w+" "+c.what)
			}
		}
	}
	for i, big := range sets {
		for j, small := range sets {
			nested := i != j
			for x := range big {
				nested = nested && small[x]&^big[x] == 0
			}
			if !nested {
				continue
			}
			diff := make([]bool, len(m.types))
			for ty := range diff {
				diff[ty] = big[ty/64]&^small[ty/64]&(1<<(ty%64)) != 0
			}
			addGroup(fmt.Sprintf("(%s) minus (%s)", names[i], names[j]), diff)
		}
	}
	return victims, groups
}

// explainedByTypes reports whether every type of a pinned group is pinned
// at none or all of its invitees: then the group's count follows from
// whole types responding in full or not at all.
func (a *ilpAttack) explainedByTypes(s *ilpSolver, g *ilpTarget, all []*ilpTarget) bool {
	m := a.model
	for ty, in := range g.set {
		if !in {
			continue
		}
		tr := a.truth[m.r[ty]]
		if tr != 0 && tr != int64(m.invited[ty]) {
			return false
		}
		if tt := a.typeTargets[ty]; tt != nil { // decided already
			if tt.resolved || !tt.pinned || tt.undecided != "" {
				return false
			}
			continue
		}
		terms := []ilpTerm{{m.r[ty], 1}}
		lo := s.solve(m, fmt.Sprintf("least respondents of type %d", ty), terms, false, nil)
		hi := s.solve(m, fmt.Sprintf("most respondents of type %d", ty), terms, true, nil)
		witness(all, lo.values)
		witness(all, hi.values)
		if lo.status != "optimal" || hi.status != "optimal" || lo.obj != hi.obj {
			return false
		}
	}
	return true
}

// pinnedWith reports whether a target stays pinned with the numbers of the
// active requests only.
func (a *ilpAttack) pinnedWith(s *ilpSolver, g *ilpTarget, active func(int) bool) bool {
	if g.byLP { // the same proof with fewer requests
		lo := s.bound(a.model, "least "+g.what+" (fewer requests)", g.terms, false, active)
		if g.victim {
			return lo.status == "optimal" && lo.obj >= 0.5
		}
		hi := s.bound(a.model, "most "+g.what+" (fewer requests)", g.terms, true, active)
		return lo.status == "optimal" && hi.status == "optimal" && lo.obj > float64(g.truth)-0.5 && hi.obj < float64(g.truth)+0.5
	}
	lo := s.solve(a.model, "least "+g.what+" (fewer requests)", g.terms, false, active)
	if g.victim {
		return lo.status == "optimal" && lo.obj >= 0.5
	}
	if lo.status != "optimal" || int64(lo.obj+0.5) != g.truth {
		return false
	}
	hi := s.solve(a.model, "most "+g.what+" (fewer requests)", g.terms, true, active)
	return hi.status == "optimal" && int64(hi.obj+0.5) == g.truth
}

// minimalRequests shrinks the answered requests to a set that still pins
// the target and from which no request can be dropped (until the budget
// runs out).
func (a *ilpAttack) minimalRequests(s *ilpSolver, g *ilpTarget, budget time.Time) ([]int, bool) {
	var keep []int
	for i, r := range a.reqs {
		if r.status == http.StatusOK {
			keep = append(keep, i)
		}
	}
	with := func(reqs []int) func(int) bool {
		in := map[int]bool{}
		for _, r := range reqs {
			in[r] = true
		}
		return func(r int) bool { return in[r] }
	}
	if g.byLP {
		// The rows with a nonzero dual value certify the relaxation's
		// bound on their own: their requests suffice.
		var used []int
		for _, maximize := range []bool{false, true} {
			if g.victim && maximize {
				break
			}
			sol := s.bound(a.model, "dual certificate of "+g.what, g.terms, maximize, nil)
			for i, d := range sol.duals {
				if math.Abs(d) < 1e-9 {
					continue
				}
				ref := sol.rows[i]
				for _, b := range ref.row.bounds {
					if b.req >= 0 && (b.lo == ref.lo || b.hi == ref.hi) && !slices.Contains(used, b.req) {
						used = append(used, b.req)
					}
				}
			}
		}
		slices.Sort(used)
		if a.pinnedWith(s, g, with(used)) {
			keep = used
		}
	}
	for chunk := max(1, len(keep)/2); ; chunk = max(1, chunk/2) {
		for i := 0; i < len(keep) && time.Now().Before(budget); {
			trial := append(slices.Clone(keep[:i]), keep[min(len(keep), i+chunk):]...)
			if a.pinnedWith(s, g, with(trial)) {
				keep = trial
			} else {
				i += chunk
			}
		}
		if !time.Now().Before(budget) {
			return keep, false
		}
		if chunk == 1 {
			return keep, true
		}
	}
}

// cellsOf lists the served sets holding the target's cohort (those of
// reqs, or of every request), smallest first.
func (a *ilpAttack) cellsOf(g *ilpTarget, reqs []int) string {
	var cells []ilpCell
	seen := map[string]bool{}
	for _, c := range a.model.cells {
		if reqs != nil && !slices.Contains(reqs, c.req) {
			continue
		}
		in := false
		for ty, on := range c.set {
			in = in || on && (g.victim && ty == g.ty || !g.victim && g.set[ty])
		}
		if key := fmt.Sprint(c.req) + setKey(c.set); in && !seen[key] {
			seen[key] = true
			cells = append(cells, c)
		}
	}
	sort.SliceStable(cells, func(i, j int) bool { return cells[i].n < cells[j].n })
	out := fmt.Sprintf("\n    %d served sets hold the %s; the smallest:", len(cells), map[bool]string{true: "victim's type", false: "group"}[g.victim])
	for i, c := range cells {
		if i == 8 {
			out += "\n      ..."
			break
		}
		n := fmt.Sprintf("n=%d", c.n)
		if c.n < 0 {
			n = "n not served"
		}
		out += fmt.Sprintf("\n      %s (%s)", c.what, n)
	}
	return out
}
