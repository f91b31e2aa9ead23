package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The requests the colluding analysts send, and how the attacker turns
// what comes back into constraints of its integer program.

// ilpRequest is one request of the battery.
type ilpRequest struct {
	kind    string // scores, participation, trends, drivers, plan, plan-impact
	path    string
	filter  ilpFilter
	groupBy int // index into ilpAttrs, -1 for none
	analyst int
	replica int
	// plan is the plan a plan request writes; plans, for a plan-impact
	// read, the plans as they stand when it is sent (team -> focus).
	plan  *ilpPlanWrite
	plans map[string][]string
	// what came back
	status int
	body   string
}

func (r ilpRequest) String() string {
	s := fmt.Sprintf("analyst %d on replica %d: GET %s", r.analyst+1, r.replica+1, strings.ReplaceAll(r.path, "%2C", ","))
	if r.kind == "plan-impact" {
		s += " (" + planSummary(r.plans) + ")"
	}
	return s
}

// ilpQuery builds the query string of a filter and group-by, plus extra.
func ilpQuery(f ilpFilter, groupBy int, extra url.Values) string {
	v := url.Values{}
	for k, vs := range extra {
		v[k] = vs
	}
	for i, val := range f {
		if val != "" {
			v.Set(ilpAttrs[i], val)
		}
	}
	if groupBy >= 0 {
		v.Set("group_by", ilpAttrs[groupBy])
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// ilpBattery draws a random battery of n requests: every plain group-by of
// every wave, then filters of 1-3 attributes aimed at the victims' cohorts
// and their neighbours, with and without group-bys, over single waves and
// pooled periods, participation, trends and driver impact.
func ilpBattery(rng *rand.Rand, o *ilpOrg, n, analysts, replicas int) []ilpRequest {
	values := ilpValues(o.people)
	waves := o.waveIDs()
	filter := func() ilpFilter {
		var f ilpFilter
		if rng.IntN(5) == 0 {
			return f
		}
		v := o.people[o.victims[rng.IntN(len(o.victims))]]
		for _, a := range rng.Perm(len(ilpAttrs))[:1+rng.IntN(3)] {
			f[a] = v[a]
			if a == ilpLineAttr { // someone on the victim's line
				line := v.line()
				f[a] = line[rng.IntN(len(line))]
			}
			if rng.IntN(3) == 0 { // a neighbour
				f[a] = values[a][rng.IntN(len(values[a]))]
			}
		}
		return f
	}
	groupBy := func(f ilpFilter) int {
		if rng.IntN(3) == 0 {
			return -1
		}
		var free []int
		for a := range ilpGroupable {
			if f[a] == "" {
				free = append(free, a)
			}
		}
		return free[rng.IntN(len(free))]
	}
	var out []ilpRequest
	for _, w := range waves {
		for a := range ilpGroupable {
			out = append(out, ilpRequest{kind: "scores", path: "/v1/orgs/acme/waves/" + w + "/scores" + ilpQuery(ilpFilter{}, a, nil), groupBy: a})
		}
	}
	for len(out) < n {
		f := filter()
		g := groupBy(f)
		w := waves[rng.IntN(len(waves))]
		var req ilpRequest
		switch k := rng.IntN(20); {
		case k < 9:
			req = ilpRequest{kind: "scores", path: "/v1/orgs/acme/waves/" + w + "/scores" + ilpQuery(f, g, nil)}
		case k < 12:
			req = ilpRequest{kind: "scores", path: "/v1/orgs/acme/scores" + ilpQuery(f, g, url.Values{"waves": {strings.Join(waves, ",")}})}
		case k < 13:
			from := o.waves[0].opensAt.AddDate(0, 0, -1).Format(time.DateOnly)
			to := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
			req = ilpRequest{kind: "scores", path: "/v1/orgs/acme/scores" + ilpQuery(f, g, url.Values{"from": {from}, "to": {to}})}
		case k < 17:
			req = ilpRequest{kind: "participation", path: "/v1/orgs/acme/waves/" + w + "/participation" + ilpQuery(f, g, nil)}
		case k < 19:
			g = -1
			req = ilpRequest{kind: "trends", path: "/v1/orgs/acme/trends" + ilpQuery(f, -1, nil)}
		default:
			f, g = ilpFilter{}, -1
			req = ilpRequest{kind: "drivers", path: "/v1/orgs/acme/waves/" + w + "/drivers"}
		}
		req.filter, req.groupBy = f, g
		out = append(out, req)
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	for i := range out {
		out[i].analyst, out[i].replica = rng.IntN(analysts), rng.IntN(replicas)
	}
	return out
}

// JSON as served (query/scores.go, participation.go, trends.go,
// drivers.go), decoded by the attacker.
type ilpScoreJSON struct {
	Key          string   `json:"key"`
	Dimension    string   `json:"dimension"`
	Suppressed   bool     `json:"suppressed"`
	N            *int     `json:"n"`
	Mean         *float64 `json:"mean"`
	Favorable    *float64 `json:"favorable"`
	Neutral      *float64 `json:"neutral"`
	Unfavorable  *float64 `json:"unfavorable"`
	ENPS         *float64 `json:"enps"`
	VsOrg        *float64 `json:"vs_org"`
	Distribution []struct {
		Value int     `json:"value"`
		Share float64 `json:"share"`
	} `json:"distribution"`
}

type ilpCountJSON struct {
	Suppressed bool `json:"suppressed"`
	N          *int `json:"n"`
}

type ilpScoresJSON struct {
	Waves       []string          `json:"waves"`
	Filter      map[string]string `json:"filter"`
	Invited     *int              `json:"invited"`
	Respondents ilpCountJSON      `json:"respondents"`
	Dimensions  []ilpScoreJSON    `json:"dimensions"`
	Drivers     []ilpScoreJSON    `json:"drivers"`
	Questions   []ilpScoreJSON    `json:"questions"`
	Overall     []ilpScoreJSON    `json:"overall"`
	GroupBy     string            `json:"group_by"`
	Groups      []struct {
		Value       string         `json:"value"`
		Respondents ilpCountJSON   `json:"respondents"`
		Dimensions  []ilpScoreJSON `json:"dimensions"`
	} `json:"groups"`
}

type ilpParticipationJSON struct {
	WaveID  string `json:"wave_id"`
	GroupBy string `json:"group_by"`
	Overall ilpPartJSON
	Groups  []ilpPartJSON `json:"groups"`
}

type ilpPartJSON struct {
	Value      string   `json:"value"`
	Suppressed bool     `json:"suppressed"`
	Invited    *int     `json:"invited"`
	Responded  *int     `json:"responded"`
	Rate       *float64 `json:"rate"`
}

type ilpTrendsJSON struct {
	Trends []struct {
		Dimension string `json:"dimension"`
		Points    []struct {
			WaveID     string   `json:"wave_id"`
			Suppressed bool     `json:"suppressed"`
			N          *int     `json:"n"`
			Mean       *float64 `json:"mean"`
			Favorable  *float64 `json:"favorable"`
			ENPS       *float64 `json:"enps"`
		} `json:"points"`
	} `json:"trends"`
}

type ilpDriversJSON struct {
	WaveID  string `json:"wave_id"`
	Drivers []struct {
		Driver     string `json:"driver"`
		Suppressed bool   `json:"suppressed"`
		N          *int   `json:"n"`
	} `json:"drivers"`
}

// ilpUtility counts cells asked for and cells served with numbers (of
// which planImpact were plan-impact means).
type ilpUtility struct{ requested, served, refused, planImpact int }

func (u *ilpUtility) cell(served bool) {
	u.requested++
	if served {
		u.served++
	}
}

// ilpLearner turns served results into constraints.
type ilpLearner struct {
	t     *testing.T
	m     *ilpModel
	util  ilpUtility
	small []string // served counts under k: a failure on their own
}

func (l *ilpLearner) served(s ilpScoreJSON) ilpServed {
	out := ilpServed{n: s.N, mean: s.Mean, fav: s.Favorable, neu: s.Neutral, unf: s.Unfavorable, enps: s.ENPS, vsOrg: s.VsOrg}
	if s.Suppressed || s.N == nil {
		return ilpServed{}
	}
	if len(s.Distribution) > 0 {
		out.dist = map[int]float64{}
		for _, d := range s.Distribution {
			out.dist[d.Value] = d.Share
		}
	}
	return out
}

// checkN notes a served count under k.
func (l *ilpLearner) checkN(req int, what string, n *int) {
	if n != nil && *n > 0 && *n < l.m.k {
		l.small = append(l.small, fmt.Sprintf("request #%d %s: n = %d served", req, what, *n))
	}
}

// checkInvited compares a served invited count with the roster: a
// mismatch means the attacker models the set wrongly.
func (l *ilpLearner) checkInvited(what string, set []bool, invited *int) {
	if invited != nil && *invited != l.m.invitedIn(set) {
		l.t.Fatalf("%s: %d invited served, the roster says %d: the attacker's set is wrong", what, *invited, l.m.invitedIn(set))
	}
}

// learn records everything request req served.
func (l *ilpLearner) learn(req int, r ilpRequest) {
	t := l.t
	t.Helper()
	if r.status == http.StatusConflict && strings.Contains(r.body, `"differencing"`) {
		l.util.refused++
		return
	}
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d %s", r, r.status, r.body)
	}
	switch r.kind {
	case "scores":
		var s ilpScoresJSON
		if err := json.Unmarshal([]byte(r.body), &s); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		l.scores(req, r, s)
	case "participation":
		var p ilpParticipationJSON
		if err := json.Unmarshal([]byte(r.body), &p); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		scope := l.m.set([]string{p.WaveID}, r.filter)
		l.part(req, r, "overall", scope, p.Overall)
		for _, g := range p.Groups {
			f := r.filter
			f[r.groupBy] = g.Value
			l.part(req, r, ilpAttrs[r.groupBy]+"="+g.Value, l.m.set([]string{p.WaveID}, f), g)
		}
	case "trends":
		var tr ilpTrendsJSON
		if err := json.Unmarshal([]byte(r.body), &tr); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		for _, d := range tr.Trends {
			qs := l.m.questionsOf("dimension", d.Dimension)
			for _, p := range d.Points {
				what := fmt.Sprintf("#%d trend%s %s %s", req, r.filter, d.Dimension, p.WaveID)
				l.util.cell(p.N != nil)
				l.checkN(req, what, p.N)
				if p.N == nil {
					continue
				}
				l.m.addScore(req, what, l.m.set([]string{p.WaveID}, r.filter), qs, ilpServed{n: p.N, mean: p.Mean, fav: p.Favorable, enps: p.ENPS})
			}
		}
	case "plan-impact":
		var p planImpactJSON
		if err := json.Unmarshal([]byte(r.body), &p); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		l.planImpact(req, r, p)
	case "drivers":
		var d ilpDriversJSON
		if err := json.Unmarshal([]byte(r.body), &d); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		// Correlations are not sums and are not modelled; n is the
		// respondents of the wave who answered the outcome (eNPS) and the
		// driver: all of them, every question being required.
		for _, dr := range d.Drivers {
			l.util.cell(dr.N != nil)
			l.checkN(req, "driver impact "+dr.Driver, dr.N)
			if dr.N != nil {
				l.m.addCount(req, fmt.Sprintf("#%d driver impact %s %s", req, dr.Driver, d.WaveID), l.m.set([]string{d.WaveID}, ilpFilter{}), *dr.N)
			}
		}
	}
}

func (l *ilpLearner) part(req int, r ilpRequest, what string, set []bool, p ilpPartJSON) {
	what = fmt.Sprintf("#%d participation%s %s", req, r.filter, what)
	l.util.cell(p.Responded != nil)
	l.checkN(req, what, p.Responded)
	l.checkInvited(what, set, p.Invited)
	if p.Responded != nil {
		l.m.addCount(req, what, set, *p.Responded)
		l.m.cells = append(l.m.cells, ilpCell{req: req, what: what, set: set, n: *p.Responded})
	}
}

func (l *ilpLearner) scores(req int, r ilpRequest, s ilpScoresJSON) {
	m := l.m
	scope := m.set(s.Waves, r.filter)
	org := m.set(s.Waves, ilpFilter{})
	name := func(parts ...string) string {
		return fmt.Sprintf("#%d %s%s %s", req, strings.Join(s.Waves, "+"), r.filter, strings.Join(parts, " "))
	}
	l.util.cell(s.Respondents.N != nil)
	l.checkN(req, name("respondents"), s.Respondents.N)
	l.checkInvited(name("invited"), scope, s.Invited)
	if s.Respondents.N != nil {
		m.addCount(req, name("respondents"), scope, *s.Respondents.N)
		m.cells = append(m.cells, ilpCell{req: req, what: name("respondents"), set: scope, n: *s.Respondents.N})
	}
	// score models one cell; org is its organisation's cell for vs_org.
	score := func(what string, set []bool, kind string, c ilpScoreJSON, orgSet []bool, orgCells []ilpScoreJSON) {
		l.util.cell(c.N != nil)
		l.checkN(req, what, c.N)
		if c.N == nil || c.Suppressed {
			return
		}
		key := c.Key
		if kind == "dimension" {
			key = c.Dimension
		}
		qs := m.questionsOf(kind, key)
		if len(qs) == 0 {
			l.t.Fatalf("%s: the attacker does not know %s %q", what, kind, key)
		}
		m.addScore(req, what, set, qs, l.served(c))
		if c.VsOrg != nil {
			i := slices.IndexFunc(orgCells, func(o ilpScoreJSON) bool { return o.Dimension == c.Dimension && o.N != nil })
			if i < 0 {
				l.t.Fatalf("%s: vs_org served without the organisation's cell", what)
			}
			m.addVsOrg(req, what, set, orgSet, qs, *c.N, *orgCells[i].N, *c.VsOrg)
		}
	}
	orgDims := s.Dimensions
	if len(s.Overall) > 0 {
		orgDims = s.Overall
	}
	for _, c := range s.Dimensions {
		score(name("dimension", c.Dimension), scope, "dimension", c, org, orgDims)
	}
	for _, c := range s.Questions {
		score(name("question", c.Key), scope, "question", c, nil, nil)
	}
	for _, c := range s.Drivers {
		score(name("driver", c.Key), scope, "driver", c, nil, nil)
	}
	for _, c := range s.Overall {
		score(name("overall", c.Dimension), org, "dimension", c, nil, nil)
	}
	for _, g := range s.Groups {
		f := r.filter
		f[slices.Index(ilpAttrs[:], s.GroupBy)] = g.Value
		set := m.set(s.Waves, f)
		gname := s.GroupBy + "=" + g.Value
		l.util.cell(g.Respondents.N != nil)
		l.checkN(req, name(gname, "respondents"), g.Respondents.N)
		if g.Respondents.N != nil {
			m.addCount(req, name(gname, "respondents"), set, *g.Respondents.N)
			m.cells = append(m.cells, ilpCell{req: req, what: name(gname, "respondents"), set: set, n: *g.Respondents.N})
		}
		for _, c := range g.Dimensions {
			score(name(gname, "dimension", c.Dimension), set, "dimension", c, org, orgDims)
		}
	}
}
