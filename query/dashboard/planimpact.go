package dashboard

import (
	"context"
	"fmt"

	"github.com/trustpulse/trustpulse/query"
)

// planImpactView is the overview's comparison of teams with an action plan
// and the rest of the organisation (query.PlanImpact): for the plans made from the
// wave before the latest, how each focus driver moved by the latest wave.
type planImpactView struct {
	// Wave is the wave the plans were made from, Next the latest.
	Wave, Next string
	Note       string
	Rows       []planImpactRow
}

// planImpactRow is one focus driver: the teams that picked it and the
// rest of the organisation, each "mean → mean (change)".
type planImpactRow struct {
	Driver, Teams string
	With, Without cellText
}

// planImpact compares the plans made from the wave before the latest
// (waves are the released ones, oldest first); a single wave has nothing
// to compare yet.
func (d *Dashboard) planImpact(ctx context.Context, p *query.Principal, waves []query.WaveInfo) (planImpactView, error) {
	if len(waves) < 2 {
		return planImpactView{Note: "Plans made from a wave's results are compared here once the next wave is released."}, nil
	}
	res, err := d.q.PlanImpact(ctx, p, waves[len(waves)-2].ID)
	if err != nil {
		return planImpactView{}, err
	}
	view := planImpactView{Wave: res.WaveID, Next: res.NextWaveID}
	if len(res.Drivers) == 0 {
		view.Note = fmt.Sprintf("No team made an action plan from %s's results.", res.WaveID)
		return view, nil
	}
	for _, f := range res.Drivers {
		teams := "1 team"
		if f.Teams != 1 {
			teams = fmt.Sprintf("%d teams", f.Teams)
		}
		view.Rows = append(view.Rows, planImpactRow{Driver: f.Driver, Teams: teams,
			With: impactText(f.WithPlan), Without: impactText(f.WithoutPlan)})
	}
	return view, nil
}

// impactText shows a group's two means and the change, or why it cannot.
// A group with either wave not served by the guard is one "not enough
// responses" mark: half a comparison says nothing.
func impactText(c query.ImpactCell) cellText {
	for _, r := range []string{c.Reason, c.NextReason} {
		switch r {
		case query.ReasonNotAsked:
			return cellText{Text: "not asked in both waves"}
		case query.ReasonTooFewTeams:
			return cellText{Text: fmt.Sprintf("fewer than %d teams", query.LeaderMinTeams)}
		}
	}
	if c.Score == nil || c.Next == nil || c.Change == nil {
		return cellText{Suppressed: true}
	}
	return cellText{Text: fmt.Sprintf("%s → %s (%s)", fmtFixed(*c.Score, 2), fmtFixed(*c.Next, 2), fmtSigned(*c.Change, 2))}
}
