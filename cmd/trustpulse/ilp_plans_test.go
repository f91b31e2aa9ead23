package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// The colluding analysts also write action plans: an analyst may write a
// plan for any team (a direct manager's reports), so the analysts choose
// which teams have a plan and on which drivers, and then read the plan
// impact (GET .../waves/{wave}/plan-impact): each focus driver's mean in
// the plans' wave and the next released one, over
//
//	with the plan:    manager IN (the teams whose plan picked the driver)
//	the rest:         NOT manager IN (the same teams): everyone else
//
// Those are sets of the attacker's choosing, like a filter's. The attacker
// turns every mean served into constraints on them (ilpModel.addMean).

// ilpPlanWave is the wave the analysts write plans for; the next released
// wave is ilpOrg's second.
const ilpPlanWave = "w1"

// ilpPlanDrivers are the drivers of ilpSurvey, a plan's focus to pick from.
var ilpPlanDrivers = []string{"growth", "manager"}

// ilpPlanWrite is one plan the analysts write for a team: created the
// first time, updated (its focus replaced) after.
type ilpPlanWrite struct {
	manager string
	focus   []string
}

// ilpManagers lists the direct managers of the people, sorted: the teams.
func ilpManagers(people []ilpCohort) []string {
	var out []string
	for _, c := range people {
		if m := c[ilpManagerAttr]; m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// ilpPlanScript is what the analysts do with plans, in order: the two
// largest teams (by the roster) but the victims' on one driver each, read
// as a start; for one victim's team, the victim's team plus one other of
// at least k people on one driver and that other team alone on the other
// (every earlier plan moved to it first), read (one such read per
// organisation keeps the attack's time within bounds); then
// plans for every team but a victim's (on random drivers), read. Each read
// carries the plans as they stand then (the attacker wrote them all).
func ilpPlanScript(rng *rand.Rand, o *ilpOrg) []ilpRequest {
	managers := ilpManagers(o.people)
	state := map[string][]string{}
	var out []ilpRequest
	write := func(mgr string, focus ...string) {
		state[mgr] = focus
		out = append(out, ilpRequest{kind: "plan", groupBy: -1, plan: &ilpPlanWrite{manager: mgr, focus: focus}})
	}
	read := func() {
		out = append(out, ilpRequest{kind: "plan-impact", groupBy: -1, plans: maps.Clone(state),
			path: "/v1/orgs/acme/waves/" + ilpPlanWave + "/plan-impact"})
	}
	randomFocus := func() []string {
		switch rng.IntN(3) {
		case 0:
			return []string{ilpPlanDrivers[0]}
		case 1:
			return []string{ilpPlanDrivers[1]}
		}
		return slices.Clone(ilpPlanDrivers)
	}
	var victimTeams []string
	for _, v := range o.victims {
		if m := o.people[v][ilpManagerAttr]; !slices.Contains(victimTeams, m) {
			victimTeams = append(victimTeams, m)
		}
	}
	rng.Shuffle(len(victimTeams), func(i, j int) { victimTeams[i], victimTeams[j] = victimTeams[j], victimTeams[i] })
	size := map[string]int{}
	for _, c := range o.people {
		size[c[ilpManagerAttr]]++
	}
	var large []string // teams of at least k people, the largest first
	for _, m := range managers {
		if size[m] >= threshold {
			large = append(large, m)
		}
	}
	slices.SortStableFunc(large, func(a, b string) int { return size[b] - size[a] })
	var start []string
	for _, m := range large {
		if !slices.Contains(victimTeams, m) && len(start) < 2 {
			start = append(start, m)
		}
	}
	for i, m := range start {
		write(m, ilpPlanDrivers[i])
	}
	if len(start) > 0 {
		read()
	}
	for _, mv := range victimTeams[:min(1, len(victimTeams))] {
		d := rng.IntN(2)
		on, other := ilpPlanDrivers[d], ilpPlanDrivers[1-d]
		for _, m := range slices.Sorted(maps.Keys(state)) {
			if !slices.Equal(state[m], []string{other}) {
				write(m, other)
			}
		}
		others := slices.DeleteFunc(slices.Clone(large), func(m string) bool { return m == mv })
		if len(others) == 0 {
			others = slices.DeleteFunc(slices.Clone(managers), func(m string) bool { return m == mv })
		}
		u := others[rng.IntN(len(others))]
		write(mv, on)
		write(u, on, other)
		read()
	}
	// Every team but a victim's without a plan so far (or but a random
	// one) gets a plan: the teams without a plan are that team alone.
	var open []string
	for _, m := range managers {
		if state[m] == nil {
			open = append(open, m)
		}
	}
	if len(open) > 0 {
		spare := open[rng.IntN(len(open))]
		for _, mv := range victimTeams {
			if state[mv] == nil {
				spare = mv
				break
			}
		}
		for _, m := range open {
			if m != spare {
				write(m, randomFocus()...)
			}
		}
		read()
	}
	return out
}

// ilpInterleave puts the script's requests, in their order, at random
// places in the first half of the battery, so that some plan-impact sets
// come before most of the battery's (the guard refuses most of them once
// the battery's sets are served).
func ilpInterleave(rng *rand.Rand, battery, script []ilpRequest, analysts, replicas int) []ilpRequest {
	for i := range script {
		script[i].analyst, script[i].replica = rng.IntN(analysts), rng.IntN(replicas)
	}
	at := make([]int, len(script))
	for i := range at {
		at[i] = rng.IntN(len(battery)/2 + 1)
	}
	slices.Sort(at)
	var out []ilpRequest
	j := 0
	for i := 0; i <= len(battery); i++ {
		for ; j < len(script) && at[j] == i; j++ {
			out = append(out, script[j])
		}
		if i < len(battery) {
			out = append(out, battery[i])
		}
	}
	return out
}

// writePlan sends a plan write: a POST the first time for its team, a PUT
// of its plan after. Anything but success stops the test: the attacker's
// reads assume the plans it wrote.
func (a *ilpAttack) writePlan(req ilpRequest) {
	t := a.t
	t.Helper()
	p := req.plan
	body := planJSON(ilpPlanWave, p.manager, p.focus, "Talk it through")
	method, path, want := http.MethodPost, "/v1/orgs/acme/plans", http.StatusCreated
	if id := a.planIDs[p.manager]; id != "" {
		method, path, want = http.MethodPut, "/v1/orgs/acme/plans/"+id, http.StatusOK
	}
	status, resp := sendAs(t, method, a.tokens[req.analyst], a.urls[req.replica]+path, body)
	var plan struct {
		PlanID string `json:"plan_id"`
	}
	if status != want || json.Unmarshal([]byte(resp), &plan) != nil || plan.PlanID == "" {
		t.Fatalf("analyst %d: %s %s for %s: %d %s", req.analyst+1, method, path, ilpManagerName(p.manager), status, resp)
	}
	if a.planIDs == nil {
		a.planIDs = map[string]string{}
	}
	a.planIDs[p.manager] = plan.PlanID
	a.planWrites++
}

// ilpPlanSet is one set a plan-impact read asks about.
type ilpPlanSet struct {
	what   string
	driver string
	with   bool // the teams whose plan picked driver; else the rest of the organisation
	wave   string
	set    []bool
}

// ilpPlanSets lists the sets a plan-impact read of waves asks about, given
// the plans as they stood (team -> focus drivers): per focus driver, its
// teams and the rest of the organisation, in each wave.
func ilpPlanSets(m *ilpModel, plans map[string][]string, waves []string) []ilpPlanSet {
	pickedBy := map[string][]string{}
	for mgr, focus := range plans {
		for _, d := range focus {
			pickedBy[d] = append(pickedBy[d], mgr)
		}
	}
	in := func(w string, pick func(mgr string) bool) []bool {
		set := make([]bool, len(m.types))
		for i, ty := range m.types {
			mgr := ty.cohort[ilpManagerAttr]
			set[i] = ty.wave == w && mgr != "" && pick(mgr)
		}
		return set
	}
	// The rest: every type of the wave outside the teams, those with no
	// direct manager stored included.
	rest := func(w string, teams []string) []bool {
		set := make([]bool, len(m.types))
		for i, ty := range m.types {
			set[i] = ty.wave == w && !slices.Contains(teams, ty.cohort[ilpManagerAttr])
		}
		return set
	}
	var out []ilpPlanSet
	for _, d := range slices.Sorted(maps.Keys(pickedBy)) {
		teams := pickedBy[d]
		slices.Sort(teams)
		var names []string
		for _, mgr := range teams {
			names = append(names, ilpManagerName(mgr))
		}
		for _, w := range waves {
			out = append(out,
				ilpPlanSet{what: fmt.Sprintf("%s manager IN (%s) %s", w, strings.Join(names, ", "), d), driver: d, with: true, wave: w,
					set: in(w, func(mgr string) bool { return slices.Contains(teams, mgr) })},
				ilpPlanSet{what: fmt.Sprintf("%s rest of the organisation %s", w, d), driver: d, wave: w,
					set: rest(w, teams)})
		}
	}
	return out
}

// planSummary names the plans a plan-impact read stands on, for reports.
func planSummary(plans map[string][]string) string {
	byDriver := map[string][]string{}
	for mgr, focus := range plans {
		for _, d := range focus {
			byDriver[d] = append(byDriver[d], ilpManagerName(mgr))
		}
	}
	var out []string
	for _, d := range slices.Sorted(maps.Keys(byDriver)) {
		slices.Sort(byDriver[d])
		out = append(out, d+": "+strings.Join(byDriver[d], ", "))
	}
	return fmt.Sprintf("%d teams with a plan; %s", len(plans), strings.Join(out, "; "))
}

// planImpact records a plan-impact read: every mean served is a
// constraint on its set (the sets follow from the plans the attacker
// wrote; the counts of teams served must agree with them).
func (l *ilpLearner) planImpact(req int, r ilpRequest, p planImpactJSON) {
	waves := []string{p.WaveID}
	if p.NextWaveID != "" {
		waves = append(waves, p.NextWaveID)
	}
	if p.TeamsWithPlans != len(r.plans) {
		l.t.Fatalf("%s: %d teams with a plan served, the attacker wrote %d", r, p.TeamsWithPlans, len(r.plans))
	}
	sets := ilpPlanSets(l.m, r.plans, waves)
	for _, d := range p.Drivers {
		qs := l.m.questionsOf("driver", d.Driver)
		if len(qs) == 0 {
			l.t.Fatalf("%s: the attacker does not know driver %q", r, d.Driver)
		}
		teams := 0
		for _, focus := range r.plans {
			if slices.Contains(focus, d.Driver) {
				teams++
			}
		}
		if d.Teams != teams {
			l.t.Fatalf("%s: %s: %d teams served, the attacker's plans have %d", r, d.Driver, d.Teams, teams)
		}
		for _, s := range sets {
			if s.driver != d.Driver {
				continue
			}
			c := d.WithoutPlan
			if s.with {
				c = d.WithPlan
			}
			mean := c.Score
			if s.wave != p.WaveID {
				mean = c.Next
			}
			l.util.cell(mean != nil)
			if mean != nil {
				l.util.planImpact++
				l.m.addMean(req, fmt.Sprintf("#%d plan impact %s", req, s.what), s.set, qs, *mean)
			}
		}
	}
}

// ilpCountVars are a set's respondents written as a choice: z[n] is 1 when
// the set holds exactly n respondents, and exactly one z is 1.
type ilpCountVars struct {
	r []ilpTerm // sum of r_t over the set
	z []int     // n = 0 .. invited
}

// countVars returns the count choice of a set, creating it on first use
// with its structure (one z is 1; sum r = sum n*z[n]), which holds in
// every world and so is no request's.
func (m *ilpModel) countVars(set []bool) *ilpCountVars {
	key := setKey(set)
	if c := m.counts[key]; c != nil {
		return c
	}
	if m.counts == nil {
		m.counts = map[string]*ilpCountVars{}
	}
	c := &ilpCountVars{r: m.countTerms(set, 1)}
	one := []ilpTerm{}
	link := slices.Clone(c.r)
	for n := range m.invitedIn(set) + 1 {
		z := m.newVar(fmt.Sprintf("z%d_%d", len(m.counts), n), 1, true)
		c.z = append(c.z, z)
		one = append(one, ilpTerm{z, 1})
		link = append(link, ilpTerm{z, -int64(n)})
	}
	m.add(one, ilpBound{req: -1, lo: 1, hi: 1, what: "structure: a set holds one number of respondents"})
	m.add(link, ilpBound{req: -1, lo: 0, hi: 0, what: "structure: a set's respondents are the number chosen"})
	m.counts[key] = c
	return c
}

// addMean models a served mean (2 decimals, c/100) of a set's answers to
// qs whose respondents n are not served. With n*|qs| answers (every
// question is required) their sum S lies in [lo(n), hi(n)] =
// [ceil(n|qs|(2c-1)/200), floor(n|qs|(2c+1)/200)], which is empty for
// many n; and a shown cell has at least k respondents (the rule within
// one result, docs/anonymity.md section 3). Written over the set's count
// choice (countVars), so that the linear relaxation knows which n are
// possible: z[n] = 0 for every impossible n, and
// sum lo(n) z[n] <= S <= sum hi(n) z[n].
func (m *ilpModel) addMean(req int, what string, set []bool, qs []int, mean float64) {
	m.cells = append(m.cells, ilpCell{req: req, what: what, set: set, n: -1})
	q, c := int64(len(qs)), int64(math.Round(mean*100))
	cv := m.countVars(set)
	var none, below, above []ilpTerm
	sum := m.answerTerms(set, qs, func(v int) int64 { return int64(v) })
	below, above = slices.Clone(sum), slices.Clone(sum)
	for n, z := range cv.z {
		a := int64(n) * q
		lo := (a*(2*c-1) + 199) / 200 // ceil, a*(2c-1) >= 0
		hi := a * (2*c + 1) / 200
		if n < m.k || lo > hi {
			none = append(none, ilpTerm{z, 1})
			continue
		}
		below = append(below, ilpTerm{z, -lo})
		above = append(above, ilpTerm{z, -hi})
	}
	if len(none) > 0 {
		m.add(none, ilpBound{req: req, lo: 0, hi: 0, what: fmt.Sprintf("%s: mean %.2f, shown: no count below k or without a sum of that mean", what, mean)})
	}
	m.add(below, ilpBound{req: req, lo: 0, hi: ilpNoHi, what: fmt.Sprintf("%s: mean %.2f, from below", what, mean)})
	m.add(above, ilpBound{req: req, lo: ilpNoLo, hi: 0, what: fmt.Sprintf("%s: mean %.2f, from above", what, mean)})
}

// TestIntegerProgramAttackCatchesWeakenedGuardThroughPlans shows that the
// attacker learns from the plan impact: with the guard weakened on both
// replicas, the analysts plan for team Eng-solo (one person, the victim)
// and the largest other team on both drivers and read the plan impact,
// whose means over the two teams, against the large team's own scores
// (manager=), pin answers of the victim that the same requests without
// the plan-impact read do not.
func TestIntegerProgramAttackCatchesWeakenedGuardThroughPlans(t *testing.T) {
	ilpNeedCBC(t)
	rng := rand.New(rand.NewPCG(7, 0x11f))
	o := newILPOrg(rng, []ilpVictimSpec{ilpVictimPool[1]}, 45, 2)
	a := newILPAttack(t, o, true, 2)
	a.send(ilpPlanLeak(t, o))
	res := a.solve()
	for _, f := range res.leaks {
		t.Logf("found, as it should: %s", f)
	}
	a.checkPlanImpactPins(res, ilpVictimPool[1].cohort)
}

// ilpPlanLeak is what TestIntegerProgramAttackCatchesWeakenedGuardThroughPlans asks
// to leak through plans: plans for team Eng-solo (one person, a victim) and
// the largest other team, both on both drivers, the plan impact, and the
// large team's own scores (manager=) in both waves. The plan impact's
// means over the two teams, against the large team's, give the victim's
// answers away.
func ilpPlanLeak(t *testing.T, o *ilpOrg) []ilpRequest {
	t.Helper()
	size := map[string]int{}
	for _, c := range o.people {
		size[c[ilpManagerAttr]]++
	}
	solo, large := ilpLead("Eng-solo"), ""
	for _, mgr := range ilpManagers(o.people) {
		if mgr != solo && size[mgr] > size[large] {
			large = mgr
		}
	}
	t.Logf("plans for Eng-solo and %s (%d people)", ilpManagerName(large), size[large])
	return []ilpRequest{
		{kind: "plan", plan: &ilpPlanWrite{manager: solo, focus: ilpPlanDrivers}, analyst: 0, replica: 0},
		{kind: "plan", plan: &ilpPlanWrite{manager: large, focus: ilpPlanDrivers}, analyst: 1, replica: 1},
		{kind: "plan-impact", path: "/v1/orgs/acme/waves/" + ilpPlanWave + "/plan-impact", groupBy: -1, analyst: 0, replica: 1,
			plans: map[string][]string{solo: ilpPlanDrivers, large: ilpPlanDrivers}},
		{kind: "scores", path: "/v1/orgs/acme/waves/w1/scores?manager=" + large, filter: ilpFilter{ilpManagerAttr: large}, groupBy: -1, analyst: 1, replica: 0},
		{kind: "scores", path: "/v1/orgs/acme/waves/w2/scores?manager=" + large, filter: ilpFilter{ilpManagerAttr: large}, groupBy: -1, analyst: 0, replica: 1},
	}
}

// checkPlanImpactPins requires that answers of the victim of the given
// cohort are pinned, and that none of them is without the plan-impact
// reads (cbc finds a world of the other numbers where the victim gave
// none of those answers).
func (a *ilpAttack) checkPlanImpactPins(res ilpResult, victim ilpCohort) {
	t := a.t
	t.Helper()
	if a.learner.util.planImpact == 0 {
		t.Fatalf("the weakened guard served no plan-impact mean")
	}
	var pins []*ilpTarget
	for _, g := range res.pinned {
		if g.victim && a.model.types[g.ty].cohort == victim {
			pins = append(pins, g)
		}
	}
	if len(pins) == 0 {
		t.Fatalf("with the guard weakened, the plan impact pinned no answer of victim %s: the attacker cannot see the leak through plans", victim)
	}
	noImpact := func(req int) bool { return a.reqs[req].kind != "plan-impact" }
	for _, g := range pins {
		sol := a.solver.solve(a.model, "least "+g.what+" (without the plan impact)", g.terms, false, noImpact)
		if sol.status != "optimal" || sol.obj >= 0.5 {
			t.Errorf("%s is pinned without the plan impact too (cbc %s, %g): the plan impact's part is not shown", g.what, sol.status, sol.obj)
		}
	}
	t.Logf("%d answers of %s pinned through the plan impact, none without it", len(pins), victim)
}
