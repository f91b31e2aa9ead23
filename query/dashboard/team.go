package dashboard

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// teamView is a manager's page: their team (everyone below them) against
// the organisation in the latest released wave, the team's trends across
// waves, its strongest and weakest drivers, and participation; the same
// guarded results as the API's reports_to=<manager>.
type teamView struct {
	Nav       *navView
	Threshold int
	// Manager is the person id the page is about; Name their name.
	Manager, Name string
	// Wave is the latest released wave.
	Wave, WaveDate string
	NoWave         bool
	Rows           []teamRow
	Participation  participationRow
	Trend          chartView
	Strongest      []teamDriver
	Weakest        []teamDriver
	DriversNote    string
}

// teamRow is one dimension: the team's favourable share and mean beside
// the organisation's.
type teamRow struct {
	Label                 string
	Team, Org, Difference cellText
}

// teamDriver is one driver's favourable share in the team.
type teamDriver struct {
	Driver, Favorable, Mean string
}

// teamHandler serves /dashboard/team: a manager's own team, or, for
// analysts and admins, any manager's (?manager=<person id>). Leaders see
// no manager groups.
func (d *Dashboard) teamHandler(c *fiber.Ctx, v viewer) error {
	manager := v.p.PersonID
	switch v.p.Role {
	case schemas.RoleManager:
		if m := c.Query("manager"); m != "" {
			manager = m // within reach, or refused below
		}
	case schemas.RoleAnalyst, schemas.RoleAdmin:
		manager = c.Query("manager")
		if manager == "" {
			return d.errorPage(c, schemas.Errorf(http.StatusBadRequest, "invalid_parameter", "Choose a manager: /dashboard/team?manager=<person id> (GET /v1/orgs/%s/managers lists them)", v.s.Org))
		}
	default:
		return d.errorPage(c, schemas.Errorf(http.StatusForbidden, "forbidden", "Team pages are for managers, and for people-ops; leaders see the overview."))
	}
	if !schemas.ValidPersonID(manager) {
		return d.errorPage(c, schemas.Errorf(http.StatusBadRequest, "invalid_parameter", "That is not a manager's person id."))
	}
	filter := []query.Clause{{Attr: query.ReportsTo, Values: []string{manager}}}
	if err := query.MayFilter(v.p, filter); err != nil {
		return d.errorPage(c, err)
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 30*time.Second)
	defer cancel()
	view, err := d.team(ctx, v, manager, filter)
	if err != nil {
		return d.errorPage(c, err)
	}
	return d.render(c, http.StatusOK, "team", view)
}

func (d *Dashboard) team(ctx context.Context, v viewer, manager string, filter []query.Clause) (teamView, error) {
	org := v.s.Org
	view := teamView{Nav: d.nav(v, "team"), Threshold: d.q.Threshold(), Manager: manager}
	if p, ok, err := d.q.Person(ctx, org, manager); err != nil {
		return view, err
	} else if ok {
		view.Name = p.Name
	}
	waves, err := d.q.ReleasedWaves(ctx, org)
	if err != nil || len(waves) == 0 {
		view.NoWave = true
		return view, err
	}
	latest := waves[len(waves)-1]
	view.Wave, view.WaveDate = latest.ID, latest.OpensAt.Format("2 January 2006")
	scores, err := d.q.Scores(ctx, org, query.NewScope([]query.WaveInfo{latest}, filter, d.q.Threshold()), "")
	if err != nil {
		return view, err
	}
	view.Threshold = scores.Threshold
	for _, dim := range append(slices.Clone(scaleDimensions), "enps") {
		row := teamRow{Label: dimensionLabels[dim], Team: cellText{Suppressed: true}, Org: cellText{Suppressed: true}, Difference: cellText{Suppressed: true}}
		i, j := indexOf(scores.Dimensions, dim), indexOf(scores.Overall, dim)
		if i < 0 && j < 0 {
			continue
		}
		show := func(s query.Score) cellText {
			if s.Suppressed || s.Mean == nil {
				return cellText{Suppressed: true}
			}
			if dim == "enps" {
				return cellText{Text: fmtSigned(*s.ENPS, 0)}
			}
			return cellText{Text: fmtPercent(*s.Favorable) + " favourable · mean " + fmtFixed(*s.Mean, 2)}
		}
		if i >= 0 {
			row.Team = show(scores.Dimensions[i])
			if s := scores.Dimensions[i]; s.VsOrg != nil && !s.Suppressed {
				places := 2
				if dim == "enps" {
					places = 0
				}
				row.Difference = cellText{Text: fmtSigned(*s.VsOrg, places)}
			}
		}
		if j >= 0 {
			row.Org = show(scores.Overall[j])
		}
		view.Rows = append(view.Rows, row)
	}
	part, err := d.q.Participation(ctx, org, latest, filter, "")
	if err != nil {
		return view, err
	}
	view.Participation = participationCells("Your team", part.Overall)
	trends, err := d.q.Trends(ctx, org, filter)
	if err != nil {
		return view, err
	}
	view.Trend, _ = trendCharts(waves, trends)
	view.Trend.ID, view.Trend.Title = "team-trend", "Your team's favourable answers across waves"
	var shown []query.Score
	for _, s := range scores.Drivers {
		if !s.Suppressed && s.Favorable != nil {
			shown = append(shown, s)
		}
	}
	slices.SortFunc(shown, func(a, b query.Score) int {
		return cmp.Or(cmp.Compare(*b.Favorable, *a.Favorable), cmp.Compare(a.Key, b.Key))
	})
	row := func(s query.Score) teamDriver {
		return teamDriver{Driver: s.Key, Favorable: fmtPercent(*s.Favorable), Mean: fmtFixed(*s.Mean, 2)}
	}
	n := min(3, (len(shown)+1)/2)
	for _, s := range shown[:n] {
		view.Strongest = append(view.Strongest, row(s))
	}
	for i := len(shown) - 1; i >= n && len(view.Weakest) < 3; i-- {
		view.Weakest = append(view.Weakest, row(shown[i]))
	}
	if len(shown) == 0 {
		view.DriversNote = "Driver scores are shown for teams of at least " + fmtFixed(float64(view.Threshold), 0) + " respondents."
	}
	return view, nil
}
