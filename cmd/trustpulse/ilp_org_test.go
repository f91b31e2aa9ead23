package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// The organisations TestIntegerProgramAttack plays against: random people
// plus planted victims with rare or unique cohorts.

// ilpAttrs are the cohort attributes, in the order of ilpCohort, as the
// API names their filters: the four of the roster's columns, the direct
// manager (a person id) and the reporting line (reports_to filters by a
// person on it; it is no group).
var ilpAttrs = [6]string{"department", "team", "location", "tenure_band", "manager", "reports_to"}

// ilpLineAttr is the index of the reporting line; ilpGroupable the number
// of attributes (the first ones) a result may be grouped by.
const (
	ilpManagerAttr = 4
	ilpLineAttr    = 5
	ilpGroupable   = 5
)

// ilpCohort is department, team, location, tenure band, direct manager and
// reporting line (person ids joined by commas, top first; the manager is
// its last).
type ilpCohort [6]string

func (c ilpCohort) line() []string {
	if c[ilpLineAttr] == "" {
		return nil
	}
	return strings.Split(c[ilpLineAttr], ",")
}

func (c ilpCohort) schema() schemas.Cohort {
	return schemas.Cohort{Department: c[0], Team: c[1], Location: c[2], TenureBand: c[3]}.WithLine(c.line())
}

func (c ilpCohort) String() string {
	return fmt.Sprintf("%s/%s/%s/%s/%s", c[0], c[1], c[2], c[3], ilpManagerName(c[ilpManagerAttr]))
}

// The organisation's reporting tree: one top, a head per department, a
// lead per team (ilpLead), as person ids.
var (
	ilpTop   = ilpPersonID(0)
	ilpHeads = map[string]string{"Eng": ilpPersonID(1), "Sales": ilpPersonID(2), "Ops": ilpPersonID(3), "Legal": ilpPersonID(4)}
	ilpTeams = []string{"Eng-a", "Eng-b", "Eng-solo", "Sales-a", "Sales-b", "Ops-a", "Ops-b", "Legal-solo", "Legal-core"}
)

func ilpPersonID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// ilpLead is the person id of the lead of a team.
func ilpLead(team string) string {
	return ilpPersonID(1000 + int(crc32.ChecksumIEEE([]byte(team))%100000))
}

// ilpManagerName names a manager's person id for the logs ("" if none).
func ilpManagerName(id string) string {
	if id == ilpTop {
		return "top"
	}
	for d, h := range ilpHeads {
		if h == id {
			return "head of " + d
		}
	}
	for _, team := range ilpTeams {
		if ilpLead(team) == id {
			return "lead of " + team
		}
	}
	return id
}

// ilpC is a cohort under its team's lead (viaLead) or directly under its
// department's head.
func ilpC(dept, team, loc, tenure string, viaLead bool) ilpCohort {
	line := []string{ilpTop, ilpHeads[dept]}
	if viaLead {
		line = append(line, ilpLead(team))
	}
	return ilpCohort{dept, team, loc, tenure, line[len(line)-1], strings.Join(line, ",")}
}

// ilpFilter is attribute values a response must have ("" for any); the
// reporting line's is a person on it.
type ilpFilter [6]string

func (f ilpFilter) String() string {
	var out []string
	for i, v := range f {
		if v != "" {
			if i >= ilpManagerAttr {
				v = ilpManagerName(v)
			}
			out = append(out, ilpAttrs[i]+"="+v)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "[" + strings.Join(out, ",") + "]"
}

func (f ilpFilter) matches(c ilpCohort) bool {
	for i, v := range f {
		switch {
		case v == "":
		case i == ilpLineAttr:
			if !slices.Contains(c.line(), v) {
				return false
			}
		case c[i] != v:
			return false
		}
	}
	return true
}

// ilpValues lists, per attribute, the values people have (for the line:
// the people on their lines), sorted.
func ilpValues(people []ilpCohort) [6][]string {
	var values [6][]string
	add := func(a int, v string) {
		if !slices.Contains(values[a], v) {
			values[a] = append(values[a], v)
		}
	}
	for _, c := range people {
		for a := range ilpAttrs {
			if a == ilpLineAttr {
				for _, m := range c.line() {
					add(a, m)
				}
				continue
			}
			add(a, c[a])
		}
	}
	for a := range values {
		slices.Sort(values[a])
	}
	return values
}

// ilpSurvey is small, so the integer program stays small: four required
// questions on the 1-5 scale (two in one dimension, two sharing a driver
// across dimensions) and eNPS, the drivers' outcome.
var ilpSurvey = schemas.SurveyPublished{SurveyID: "ilp", Title: "ILP pulse", Questions: []schemas.Question{
	{ID: "trust-a", Text: "I trust my manager.", Dimension: schemas.Trust, Driver: "manager"},
	{ID: "trust-b", Text: "My manager keeps their promises.", Dimension: schemas.Trust, Driver: "manager"},
	{ID: "auto", Text: "I decide how I reach my goals.", Dimension: schemas.Empowerment, Driver: "growth"},
	{ID: "moti", Text: "My work motivates me.", Dimension: schemas.Motivation, Driver: "growth"},
	{ID: "enps", Text: "Would you recommend us?", Dimension: schemas.ENPS},
}}

// ilpVictimSpec is a planted individual: a cohort, and the attribute sets
// (indices into ilpAttrs) on which nobody else matches it.
type ilpVictimSpec struct {
	name   string
	cohort ilpCohort
	alone  [][]int
	// extra people the plant needs (a department of one team and one more).
	extra func(rng *rand.Rand) []ilpCohort
}

var ilpVictimPool = []ilpVictimSpec{
	{name: "the only 0-1y person in Lisbon", cohort: ilpC("Eng", "Eng-a", "Lisbon", "0-1y", true), alone: [][]int{{2, 3}}},
	{name: "alone in team Eng-solo", cohort: ilpC("Eng", "Eng-solo", "Berlin", "2-5y", true), alone: [][]int{{1}, {4}}},
	{name: "the only remote worker", cohort: ilpC("Sales", "Sales-a", "Remote", "1-2y", true), alone: [][]int{{2}}},
	{name: "the only 10y+ person", cohort: ilpC("Ops", "Ops-b", "Lisbon", "10y+", true), alone: [][]int{{3}}},
	{name: "Legal minus its core team", cohort: ilpC("Legal", "Legal-solo", "Berlin", "1-2y", true), alone: [][]int{{1}, {4}},
		extra: func(rng *rand.Rand) []ilpCohort {
			var out []ilpCohort
			for range 6 + rng.IntN(4) {
				out = append(out, ilpC("Legal", "Legal-core", ilpPick(rng, "Berlin", "Lisbon"), ilpPick(rng, "1-2y", "2-5y"), true))
			}
			return out
		}},
	{name: "the only Ops-a person in Lisbon", cohort: ilpC("Ops", "Ops-a", "Lisbon", "2-5y", true), alone: [][]int{{1, 2}}},
	{name: "the only 5y+ person of Sales-b", cohort: ilpC("Sales", "Sales-b", "Berlin", "5y+", true), alone: [][]int{{1, 3}}},
	{name: "a unique cohort", alone: [][]int{{0, 1, 2, 3, 4}}}, // cohort drawn per organisation
	// Planted through the reporting tree: in a common cohort, but alone
	// in their direct-reports group (the rest of their team has its lead).
	{name: "the only direct report of the head of Sales", cohort: ilpC("Sales", "Sales-a", "Berlin", "2-5y", false), alone: [][]int{{4}}},
	{name: "the one Ops-b person led from Eng-a", cohort: ilpCohort{"Ops", "Ops-b", "Berlin", "1-2y", ilpLead("Eng-a"),
		strings.Join([]string{ilpTop, ilpHeads["Eng"], ilpLead("Eng-a")}, ",")}, alone: [][]int{{0, 4}, {1, 4}}},
}

func ilpPick(rng *rand.Rand, opts ...string) string { return opts[rng.IntN(len(opts))] }

// ilpRandomPerson is one of the ordinary people: under their team's lead,
// or (one in eight) directly under their department's head.
func ilpRandomPerson(rng *rand.Rand) ilpCohort {
	dept := ilpPick(rng, "Eng", "Sales", "Ops")
	return ilpC(dept, dept+"-"+ilpPick(rng, "a", "b"), ilpPick(rng, "Berlin", "Berlin", "Lisbon"), ilpPick(rng, "0-1y", "1-2y", "2-5y", "5y+"), rng.IntN(8) != 0)
}

type ilpOrg struct {
	people  []ilpCohort
	victims []int          // indices into people
	named   map[int]string // victim -> what makes them rare
	waves   []*ilpWave
}

type ilpWave struct {
	id      string
	opensAt time.Time
	// rare is, per question, the value the victims answer and nobody else.
	rare map[string]int
	// answers per person; nil: did not respond.
	answers []map[string]int
}

func (o *ilpOrg) waveIDs() []string {
	var out []string
	for _, w := range o.waves {
		out = append(out, w.id)
	}
	return out
}

// clashes reports whether c matches victim spec v on one of its alone sets.
func clashes(c ilpCohort, v ilpVictimSpec) bool {
	for _, attrs := range v.alone {
		same := true
		for _, a := range attrs {
			same = same && c[a] == v.cohort[a]
		}
		if same {
			return true
		}
	}
	return false
}

// newILPOrg builds an organisation of ordinary people and the given
// victims, and their answers to nWaves waves: every victim answers, to
// every question, the wave's rare value for it, which nobody else gives;
// about 15% of the others do not respond.
func newILPOrg(rng *rand.Rand, specs []ilpVictimSpec, ordinary, nWaves int) *ilpOrg {
	o := &ilpOrg{named: map[int]string{}}
	for i := range specs {
		if specs[i].cohort == (ilpCohort{}) { // a unique cohort, clear of the other plants
			for {
				c := ilpRandomPerson(rng)
				if !slices.ContainsFunc(specs, func(s ilpVictimSpec) bool { return s.cohort != (ilpCohort{}) && clashes(c, s) }) {
					specs[i].cohort = c
					break
				}
			}
		}
	}
	var others []ilpCohort
	for range ordinary {
		others = append(others, ilpRandomPerson(rng))
	}
	for _, s := range specs {
		if s.extra != nil {
			others = append(others, s.extra(rng)...)
		}
	}
	for i := range others {
		for tries := 0; slices.ContainsFunc(specs, func(s ilpVictimSpec) bool { return clashes(others[i], s) }); tries++ {
			if tries > 1000 {
				panic("cannot place an ordinary person clear of the victims")
			}
			others[i] = ilpRandomPerson(rng)
		}
	}
	o.people = others
	for _, s := range specs {
		o.named[len(o.people)] = s.name
		o.victims = append(o.victims, len(o.people))
		o.people = append(o.people, s.cohort)
	}
	rng.Shuffle(len(o.people), func(i, j int) { o.people[i], o.people[j] = o.people[j], o.people[i] })
	// Follow the victims through the shuffle: recompute them by cohort
	// (each victim's cohort is unique).
	o.victims, o.named = nil, map[int]string{}
	for i, c := range o.people {
		for _, s := range specs {
			if c == s.cohort {
				o.victims = append(o.victims, i)
				o.named[i] = s.name
			}
		}
	}
	month := time.Now().UTC().AddDate(0, -1, 0)
	for wi := range nWaves {
		w := &ilpWave{id: fmt.Sprintf("w%d", wi+1), opensAt: month.AddDate(0, wi, 0).Add(-time.Minute), rare: map[string]int{}}
		if wi == nWaves-1 {
			w.opensAt = time.Now().UTC().Add(-time.Minute)
		}
		for _, q := range ilpSurvey.Questions {
			lo, hi := q.Dimension.Range()
			w.rare[q.ID] = []int{lo, hi}[rng.IntN(2)]
		}
		for i := range o.people {
			victim := slices.Contains(o.victims, i)
			if !victim && rng.IntN(100) < 15 {
				w.answers = append(w.answers, nil)
				continue
			}
			a := map[string]int{}
			for _, q := range ilpSurvey.Questions {
				lo, hi := q.Dimension.Range()
				if victim {
					a[q.ID] = w.rare[q.ID]
					continue
				}
				for {
					if v := lo + rng.IntN(hi-lo+1); v != w.rare[q.ID] {
						a[q.ID] = v
						break
					}
				}
			}
			w.answers = append(w.answers, a)
		}
		o.waves = append(o.waves, w)
	}
	return o
}

// play publishes the survey, runs every wave (invite everyone, submit the
// answers through the ingest API, close).
func (o *ilpOrg) play(t *testing.T, m *Main) {
	t.Helper()
	ctx := context.Background()
	if err := m.Admin.PublishSurvey(ctx, "acme", ilpSurvey); err != nil {
		t.Fatal(err)
	}
	cohorts := make([]schemas.Cohort, len(o.people))
	for i, c := range o.people {
		cohorts[i] = c.schema()
	}
	closes := time.Now().UTC().Add(time.Hour)
	for _, w := range o.waves {
		if err := m.Admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: w.id, SurveyID: ilpSurvey.SurveyID, OpensAt: w.opensAt, ClosesAt: closes}); err != nil {
			t.Fatal(err)
		}
		tokens, err := m.Admin.IssueInvitations(ctx, "acme", w.id, cohorts)
		if err != nil {
			t.Fatal(err)
		}
		ilpSubmitAll(t, m, tokens, w.answers)
		if err := m.Admin.CloseWave(ctx, "acme", w.id); err != nil {
			t.Fatal(err)
		}
	}
}

// ilpSubmitAll posts the answers (nil: none) through the ingest API, four
// at a time.
func ilpSubmitAll(t *testing.T, m *Main, tokens []string, answers []map[string]int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	work := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				body, _ := json.Marshal(map[string]any{"token": tokens[i], "answers": answers[i]})
				resp, err := http.Post(m.IngestURL+"/v1/responses", "application/json", bytes.NewReader(body))
				if err == nil {
					if resp.StatusCode != http.StatusAccepted {
						b, _ := io.ReadAll(resp.Body)
						err = fmt.Errorf("%d %s", resp.StatusCode, b)
					}
					resp.Body.Close()
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	for i := range tokens {
		if answers[i] != nil {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("submit: %v", errs)
	}
}

// truth is the true value of every unknown of the attacker's model (call
// it once the model is complete).
func (o *ilpOrg) truth(m *ilpModel) []int64 {
	x := make([]int64, len(m.names))
	for _, w := range o.waves {
		for p, a := range w.answers {
			if a == nil {
				continue
			}
			t := m.typeIndex[ilpType{w.id, o.people[p]}]
			x[m.r[t]]++
			for qi, q := range m.questions {
				x[m.x[t][qi][a[q.id]-q.lo]]++
			}
		}
	}
	m.fillAux(x)
	return x
}

// ilpMain is mustMain, with the guard of its query service weakened
// before the service starts when weaken is set (so that no request races
// with the change).
func ilpMain(t *testing.T, weaken bool) *Main {
	t.Helper()
	if !weaken {
		return mustMain(t, nil)
	}
	m, err := Open(context.Background(), testConfig(t), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	m.Query.WeakenGuardForTest()
	m.Admin.KeepCohortsForTest(true) // as mustMain: the victims are planted
	m.RestartWait = 50 * time.Millisecond
	m.Start()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	authorize(t, m, schemas.RoleAnalyst)
	return m
}

// secondQueryURL starts a second replica of the query service, sharing m's
// ClickHouse (and NATS, for live counts), built as `trustpulse serve
// --target=query` builds its query part, and returns its URL. With weaken
// set its guard is weakened before it serves anything. It stops when the
// test ends.
//
// This is the one place that knows what a query server needs: adapt it
// when that changes (a shared guard record over NATS, say).
func secondQueryURL(t *testing.T, m *Main, weaken bool) string {
	t.Helper()
	srv := query.NewServer(query.NewStore(m.Stack.CH), m.Config.Threshold, schemas.ProjectorConsumer, testenv.Logger(t))
	srv.SetLive(query.NewLiveCounts(m.Stack.JS))
	srv.SetDirectory(query.NewDirectory(m.Stack.JS))
	// The replicas share the guard's record, as every --target query does.
	srv.SetRecordStore(query.NewRecordStore(m.Stack.JS))
	// Plans are kept in the plan bucket and published as events, as serve
	// does.
	srv.SetPlans(query.NewPlanStore(m.Stack.JS))
	srv.SetPublisher(query.NewPublisher(m.Stack.JS))
	if weaken {
		srv.WeakenGuardForTest()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := srv.App()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = app.Listener(ln)
	}()
	t.Cleanup(func() {
		_ = app.ShutdownWithTimeout(5 * time.Second)
		<-done
	})
	return "http://" + ln.Addr().String()
}
