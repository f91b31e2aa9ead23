package query

import (
	"cmp"
	"context"
	"io"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// The leadership overview's macro view of action plans, beside the share
// of teams with a plan (plan_share.go): how the focus drivers of the plans
// made from a wave's results moved by the next released wave, in the
// teams whose plan focused on them against the rest of the organisation.
//
// A team is a manager's direct reports, as a plan's (TeamPlans scores a
// plan's drivers on manager=<its manager>). For each focus driver the two
// groups are sets of respondents in each of the two waves:
//
//	with the plan:  manager IN (the managers whose plan picked the driver)
//	the rest:       NOT manager IN (the same managers)
//
// The rest is everyone else: the teams without a plan, those whose plan
// is on other drivers, and those in no team (whose stored cohort holds no
// direct manager: team managers and heads, generalised away, or nobody's
// report). It is the complement on purpose: a wave's total is known, so
// the complement adds no boundary to the guard's partition beyond the
// driver's teams; the teams without a plan alone would leave out the
// managers (a department less its planned and unplanned teams is its few
// managers, a group the guard must refuse), and every planned team under
// k would split off with them.
//
// Every one of these sets goes through the guard with the rest of the
// organisation's record, like any filter (docs/anonymity.md section 13):
// a set it does not serve is a null score with its reason, never a
// number. A leader sees no driver picked by fewer than LeaderMinTeams
// teams (teams stored with the waves' invitations: invitedTeams), in
// either group (the rest and the organisation overall would
// give the teams' result away): their role stops at departments
// (parseSlice), and one team's or two teams' result is not the macro view
// it is for; people-ops see every group.

// ImpactCell is one group's score of a driver (its mean on the 1–5 scale,
// as a plan's DriverMove) in the plans' wave and in the next one, and the
// change between them when both are served.
type ImpactCell struct {
	Score  *float64 `json:"score"`
	Reason string   `json:"reason,omitempty"`
	Next   *float64 `json:"next"`
	// NextReason says why Next is null: no_next_wave,
	// not_enough_responses, not_asked or too_few_teams.
	NextReason string   `json:"next_reason,omitempty"`
	Change     *float64 `json:"change,omitempty"`
}

// FocusImpact is one focus driver: how many teams' plans picked it, and
// its scores in those teams and in the rest of the organisation.
type FocusImpact struct {
	Driver   string     `json:"driver"`
	Teams    int        `json:"teams"`
	WithPlan ImpactCell `json:"with_plan"`
	// WithoutPlan is the rest of the organisation: everyone not in the
	// teams of WithPlan.
	WithoutPlan ImpactCell `json:"without_plan"`
}

// PlanImpact is the result of GET /v1/orgs/{org}/waves/{wave}/plan-impact.
type PlanImpact struct {
	Org string `json:"org"`
	// WaveID is the wave the plans were made from; NextWaveID the next
	// released wave, empty until there is one.
	WaveID     string `json:"wave_id"`
	NextWaveID string `json:"next_wave_id,omitempty"`
	Threshold  int    `json:"threshold"`
	// TeamsWithPlans counts the teams with a plan made from the wave.
	TeamsWithPlans int `json:"teams_with_plans"`
	// Drivers are the plans' focus drivers, the most picked first.
	Drivers []FocusImpact `json:"drivers"`
}

// ReasonTooFewTeams says a leader is not shown a group of fewer than
// LeaderMinTeams teams.
const ReasonTooFewTeams = "too_few_teams"

// LeaderMinTeams is the fewest teams a group of the plan impact holds for
// a leader to see it.
const LeaderMinTeams = 3

// mayPlanImpact says whether p may see the organisation's plan impact:
// leaders, analysts and admins. A manager sees their own team's plans
// (TeamPlans); these groups span other teams.
func mayPlanImpact(p *Principal) error {
	switch {
	case p == nil:
		return errUnauthenticated
	case p.Role == schemas.RoleManager:
		return schemas.Errorf(http.StatusForbidden, "forbidden", "managers see how their own team's focus drivers moved (GET /v1/orgs/%s/plans?manager=<you>); the comparison across teams is for leaders and people-ops", p.Org)
	}
	return nil
}

func (s *Server) planImpactHandler(c *fiber.Ctx) error {
	if err := mayPlanImpact(principalOf(c)); err != nil {
		return err
	}
	if err := onlyParams(c, "format"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 30*time.Second)
	defer cancel()
	res, err := s.PlanImpact(ctx, principalOf(c), c.Params("wave"))
	if err != nil {
		return err
	}
	return send(c, res)
}

// PlanImpact compares, for the plans made from a released wave's results,
// how their focus drivers moved by the next released wave in the teams
// that picked them and in the rest of the organisation, in one decision of the
// guard. Errors as ReleasedWave's; 403 for a manager (mayPlanImpact); 503
// when plans cannot be read.
func (s *Server) PlanImpact(ctx context.Context, p *Principal, waveID string) (PlanImpact, error) {
	if err := mayPlanImpact(p); err != nil {
		return PlanImpact{}, err
	}
	org := p.Org
	minTeams := 1
	if p.Role == schemas.RoleLeader {
		minTeams = LeaderMinTeams
	}
	from, err := s.ReleasedWave(ctx, org, waveID)
	if err != nil {
		return PlanImpact{}, err
	}
	res := PlanImpact{Org: org, WaveID: from.ID, Threshold: from.threshold(s.guard.K), Drivers: []FocusImpact{}}
	if s.plans == nil {
		return PlanImpact{}, errPlansUnavailable
	}
	stored, err := s.plans.Wave(ctx, org, from.ID)
	if err != nil {
		s.log.Error("plans not read", "org", org, "err", err)
		return PlanImpact{}, errPlansUnavailable
	}
	// The managers whose plan picked each driver, and all with a plan.
	pickedBy := map[string][]string{}
	planned := map[string]bool{}
	for _, sp := range stored {
		planned[sp.Manager] = true
		for _, d := range sp.FocusDrivers {
			pickedBy[d] = append(pickedBy[d], sp.Manager)
		}
	}
	res.TeamsWithPlans = len(planned)
	if len(planned) == 0 {
		return res, nil
	}
	next, ok, err := s.nextReleased(ctx, org, from)
	if err != nil {
		return PlanImpact{}, err
	}
	waves := []WaveInfo{from}
	if ok {
		res.NextWaveID = next.ID
		waves = append(waves, next)
	}
	drivers := make([]string, 0, len(pickedBy))
	for d := range pickedBy {
		drivers = append(drivers, d)
	}
	slices.SortFunc(drivers, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(pickedBy[b]), len(pickedBy[a])), cmp.Compare(a, b))
	})

	// The scopes, in the order the guard should keep them: each driver's
	// teams and the rest, the most picked first.
	var scopes []Scope
	at := map[string]int{}      // group|driver|wave -> index in scopes
	tooFew := map[string]bool{} // drivers a leader is not shown
	for _, d := range drivers {
		ms := slices.Clone(pickedBy[d])
		slices.Sort(ms)
		if minTeams > 1 {
			n, err := s.invitedTeams(ctx, org, waves, ms)
			if err != nil {
				return PlanImpact{}, err
			}
			if n < minTeams {
				tooFew[d] = true
				continue
			}
		}
		for _, g := range []struct {
			name string
			not  bool
		}{{"with", false}, {"rest", true}} {
			for _, w := range waves {
				at[g.name+"|"+d+"|"+w.ID] = len(scopes)
				scopes = append(scopes, NewScope([]WaveInfo{w}, []Clause{{Attr: "manager", Values: ms, Not: g.not}}, s.guard.K))
			}
		}
	}
	results, err := s.ScoresBatch(ctx, org, scopes, "")
	if err != nil {
		return PlanImpact{}, err
	}
	score := func(group, driver string, w WaveInfo) (*float64, string) {
		if tooFew[driver] {
			return nil, ReasonTooFewTeams
		}
		i := at[group+"|"+driver+"|"+w.ID]
		for _, sc := range results[i].Drivers {
			if sc.Key == driver {
				if sc.Suppressed || sc.Mean == nil {
					return nil, ReasonSuppressed
				}
				return sc.Mean, ""
			}
		}
		return nil, ReasonNotAsked
	}
	cell := func(group, driver string) ImpactCell {
		var c ImpactCell
		c.Score, c.Reason = score(group, driver, from)
		if !ok {
			c.NextReason = ReasonNoNextWave
			return c
		}
		c.Next, c.NextReason = score(group, driver, next)
		if c.Score != nil && c.Next != nil {
			c.Change = round(*c.Next-*c.Score, 2)
		}
		return c
	}
	for _, d := range drivers {
		res.Drivers = append(res.Drivers, FocusImpact{Driver: d, Teams: len(pickedBy[d]),
			WithPlan: cell("with", d), WithoutPlan: cell("rest", d)})
	}
	return res, nil
}

// invitedTeams counts the teams of managers that are teams in every one
// of waves: their manager is stored with some of the wave's invitations.
// A plan for someone who leads nobody in the waves (an id made up, a team
// whose manager generalisation dropped) counts for nothing. It reads
// invitations, never responses, so what it decides says nothing of who
// answered.
func (s *Server) invitedTeams(ctx context.Context, org string, waves []WaveInfo, managers []string) (int, error) {
	n := len(managers)
	for _, w := range waves {
		by, err := s.store.InvitedBy(ctx, org, NewScope([]WaveInfo{w}, []Clause{{Attr: "manager", Values: managers}}, s.guard.K), "manager")
		if err != nil {
			return 0, err
		}
		teams := 0
		for m, k := range by {
			if m != "" && k > 0 {
				teams++
			}
		}
		n = min(n, teams)
	}
	return n, nil
}

// nextReleased returns the released wave opening next after w, if any.
func (s *Server) nextReleased(ctx context.Context, org string, w WaveInfo) (WaveInfo, bool, error) {
	waves, cp, err := s.wavesAndCheckpoint(ctx, org)
	if err != nil {
		return WaveInfo{}, false, err
	}
	var rel []WaveInfo
	for _, v := range waves {
		if released(v, cp) {
			rel = append(rel, v)
		}
	}
	sort.SliceStable(rel, func(i, j int) bool { return rel[i].OpensAt.Before(rel[j].OpensAt) })
	for i, v := range rel {
		if v.ID == w.ID && i+1 < len(rel) {
			return rel[i+1], true, nil
		}
	}
	return WaveInfo{}, false, nil
}

// FileName names the result's CSV download.
func (r PlanImpact) FileName() string { return r.Org + "-" + r.WaveID + "-plan-impact.csv" }

// WriteCSV writes the result as CSV, one row per driver and group.
func (r PlanImpact) WriteCSV(w io.Writer) error {
	t := newCSV(w, "wave_id", "next_wave_id", "driver", "group", "teams", "score", "reason", "next", "next_reason", "change")
	for _, d := range r.Drivers {
		for _, g := range []struct {
			name  string
			teams any
			c     ImpactCell
		}{{"with_plan", inum(&d.Teams), d.WithPlan}, {"without_plan", nil, d.WithoutPlan}} {
			t.row(r.WaveID, r.NextWaveID, d.Driver, g.name, g.teams, fnum(g.c.Score), g.c.Reason, fnum(g.c.Next), g.c.NextReason, fnum(g.c.Change))
		}
	}
	return t.close()
}
