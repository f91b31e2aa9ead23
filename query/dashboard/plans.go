package dashboard

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// The plan panel: a team's action plans (query.Server.TeamPlans), wave
// after wave with how the focus drivers moved, a form to plan for a
// released wave, and, for an open plan, forms to update and complete it.
// The panel is its own page (/dashboard/plans?manager=<person id>) and the
// template "plans" (web/planpanel.html, parsed with every page), which a
// team page can include with a planPanel (Dashboard.planPanel builds one).

// planPanel is what the "plans" template shows.
type planPanel struct {
	Manager string
	CSRF    string
	// Plans are the team's, oldest wave first.
	Plans []planRow
	// New is the form for a plan of a wave without one (nil when every
	// released wave has one); Waves are the waves to choose from.
	New   *planForm
	Waves []option
}

type planRow struct {
	query.PlanView
	Open    bool
	Drivers []planDriverRow
	// Form edits an open plan.
	Form *planForm
}

type planDriverRow struct {
	Driver, Wave, Next, NextWave, Change string
	Suppressed, NextSuppressed           bool
}

// planForm is a create or update form: every driver of the wave's survey
// as a checkbox, and the commitments one per line.
type planForm struct {
	Action, Wave, Submit string
	Drivers              []option
	Commitments          string
}

type plansView struct {
	Nav     *navView
	Panel   *planPanel
	Problem string
	Saved   bool
}

func scoreText(v *float64) string {
	if v == nil {
		return ""
	}
	return fmtFixed(*v, 2)
}

// plansHandler renders the page. Without ?manager= (and without a team
// of the viewer's own) it asks for the manager's person id.
func (d *Dashboard) plansHandler(c *fiber.Ctx, v viewer) error {
	manager := c.Query("manager")
	if manager == "" {
		manager = v.p.PersonID
	}
	view := plansView{Nav: d.nav(v, "plans"), Saved: c.Query("saved") != ""}
	if manager == "" {
		return d.render(c, http.StatusOK, "plans", view)
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 30*time.Second)
	defer cancel()
	panel, err := d.planPanel(ctx, v, manager, c.Query("wave"))
	if err != nil {
		status, problem := problemOf(err)
		if status >= 500 {
			return d.errorPage(c, err)
		}
		view.Problem = problem
		return d.render(c, status, "plans", view)
	}
	view.Panel = panel
	return d.render(c, http.StatusOK, "plans", view)
}

// planPanel builds a team's panel; wave picks the new plan's wave (the
// latest released wave without a plan by default).
func (d *Dashboard) planPanel(ctx context.Context, v viewer, manager, wave string) (*planPanel, error) {
	list, err := d.q.TeamPlans(ctx, v.p, manager)
	if err != nil {
		return nil, err
	}
	released, err := d.q.ReleasedWaves(ctx, v.s.Org)
	if err != nil {
		return nil, err
	}
	p := &planPanel{Manager: manager, CSRF: d.csrfFor(v.s)}
	planned := map[string]bool{}
	for _, pl := range list.Plans {
		planned[pl.WaveID] = true
		row := planRow{PlanView: pl, Open: pl.Status == schemas.PlanOpen}
		for _, m := range pl.Drivers {
			dr := planDriverRow{Driver: m.Driver, Wave: scoreText(m.Score), Next: scoreText(m.Next), NextWave: m.NextWaveID,
				Suppressed: m.Reason == query.ReasonSuppressed, NextSuppressed: m.NextReason == query.ReasonSuppressed}
			if m.Score != nil && m.Next != nil {
				dr.Change = fmtSigned(*m.Next-*m.Score, 2)
			}
			row.Drivers = append(row.Drivers, dr)
		}
		if row.Open {
			ds, err := d.q.WaveDrivers(ctx, v.s.Org, pl.WaveID)
			if err != nil {
				return nil, err
			}
			row.Form = &planForm{Action: "/dashboard/plans/" + pl.PlanID, Wave: pl.WaveID, Submit: "Save changes to the plan for " + pl.WaveID,
				Drivers: driverOptions(ds, pl.FocusDrivers), Commitments: strings.Join(pl.Commitments, "\n")}
		}
		p.Plans = append(p.Plans, row)
	}
	var free []string
	for _, w := range released {
		if !planned[w.ID] {
			free = append(free, w.ID)
		}
	}
	if len(free) == 0 {
		return p, nil
	}
	if wave == "" || !slices.Contains(free, wave) {
		wave = free[len(free)-1]
	}
	for _, id := range free {
		p.Waves = append(p.Waves, option{Value: id, Label: id, Selected: id == wave})
	}
	ds, err := d.q.WaveDrivers(ctx, v.s.Org, wave)
	if err != nil {
		return nil, err
	}
	p.New = &planForm{Action: "/dashboard/plans", Wave: wave, Submit: "Save the plan for " + wave, Drivers: driverOptions(ds, nil)}
	return p, nil
}

func driverOptions(drivers, picked []string) []option {
	out := make([]option, 0, len(drivers))
	for _, d := range drivers {
		out = append(out, option{Value: d, Label: d, Selected: slices.Contains(picked, d)})
	}
	return out
}

// planInput reads a posted plan form: the picked drivers and the
// commitments, one per line.
func planInput(c *fiber.Ctx) query.PlanInput {
	args := c.Request().PostArgs()
	in := query.PlanInput{WaveID: string(args.Peek("wave")), Manager: string(args.Peek("manager"))}
	for _, f := range args.PeekMulti("focus") {
		in.FocusDrivers = append(in.FocusDrivers, string(f))
	}
	in.Commitments = strings.Split(string(args.Peek("commitments")), "\n")
	return in
}

// planPost runs a plan form's change, then goes back to the panel; a
// refusal is a page with its message, and nothing is stored.
func (d *Dashboard) planPost(c *fiber.Ctx, v viewer, change func(context.Context, query.PlanInput) (schemas.Plan, error)) error {
	if !sameOrigin(c) || !d.verify("csrf|"+v.s.ID, c.FormValue("csrf")) {
		return d.errorPage(c, schemas.Errorf(http.StatusForbidden, "csrf", "The form expired or came from another site; nothing was saved."))
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 30*time.Second)
	defer cancel()
	plan, err := change(ctx, planInput(c))
	if err != nil {
		status, problem := problemOf(err)
		if status >= 500 {
			return d.errorPage(c, err)
		}
		return d.errorPage(c, schemas.Errorf(status, "plan_refused", "The plan was not saved: %s", problem))
	}
	q := url.Values{"manager": {plan.Manager}, "saved": {"1"}}
	return c.Redirect("/dashboard/plans?"+q.Encode()+"#plan-"+plan.WaveID, http.StatusSeeOther)
}

func (d *Dashboard) createPlanHandler(c *fiber.Ctx, v viewer) error {
	return d.planPost(c, v, func(ctx context.Context, in query.PlanInput) (schemas.Plan, error) {
		return d.q.CreatePlan(ctx, v.p, in)
	})
}

func (d *Dashboard) updatePlanHandler(c *fiber.Ctx, v viewer) error {
	return d.planPost(c, v, func(ctx context.Context, in query.PlanInput) (schemas.Plan, error) {
		in.Manager = ""
		return d.q.UpdatePlan(ctx, v.p, c.Params("plan"), in)
	})
}

func (d *Dashboard) completePlanHandler(c *fiber.Ctx, v viewer) error {
	return d.planPost(c, v, func(ctx context.Context, _ query.PlanInput) (schemas.Plan, error) {
		return d.q.CompletePlan(ctx, v.p, c.Params("plan"))
	})
}
