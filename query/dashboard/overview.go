package dashboard

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// dimensionLabels name the dimensions on the pages.
var dimensionLabels = map[string]string{
	"engagement": "Engagement", "trust": "Trust", "empowerment": "Empowerment", "motivation": "Motivation", "enps": "eNPS",
}

// scaleDimensions are the 1–5 dimensions, in display order.
var scaleDimensions = []string{"engagement", "trust", "empowerment", "motivation"}

// overviewView is the leadership overview.
type overviewView struct {
	Nav       *navView
	Threshold int
	// Wave is the latest released wave; Prev the one before, if any.
	Wave, Prev, WaveDate string
	NoWave               bool
	Tiles                []tileView
	Live                 *liveView
	Trend, ENPSTrend     chartView
	Heatmap              heatmapView
	Drivers              driversView
	Plans                planImpactView
	Retention            retentionView
}

// tileView is one headline number with its change from the previous wave.
type tileView struct {
	Key, Label, Value, Detail string
	Change, Direction         string // Direction: up, down or flat
	Significant, Suppressed   bool
	NotAsked                  bool
}

// liveView is the participation of the open wave so far.
type liveView struct {
	WaveID, ClosesAt string
	Overall          participationRow
	Groups           []participationRow
}

type participationRow struct {
	Label, Invited, Responded, Rate string
	Suppressed                      bool
}

// chartView is a chart and the table with the same values.
type chartView struct {
	ID, Title string
	SVG       template.HTML
	Header    []string
	Rows      [][]cellText
}

// cellText is a table cell: a value or a "not enough responses" mark.
type cellText struct {
	Text       string
	Suppressed bool
}

type driversView struct {
	Outcome, Note string
	Top, Bottom   []driverRow
}

type driverRow struct {
	Driver, R, Interval string
	Bar                 template.HTML
}

type retentionView struct {
	From, To string
	Rows     []retentionRow
}

type retentionRow struct {
	Department string
	Engagement cellText
	Attrition  cellText
	Headcount  string
}

func (d *Dashboard) overviewHandler(c *fiber.Ctx, v viewer) error {
	if v.p.Role == schemas.RoleManager { // their team and the organisation overall
		return c.Redirect("/dashboard/team", http.StatusSeeOther)
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 30*time.Second)
	defer cancel()
	view, err := d.overview(ctx, v)
	if err != nil {
		return d.errorPage(c, err)
	}
	return d.render(c, http.StatusOK, "overview", view)
}

func (d *Dashboard) overview(ctx context.Context, v viewer) (overviewView, error) {
	org := v.s.Org
	view := overviewView{Nav: d.nav(v, "overview"), Threshold: d.q.Threshold()}
	live, err := d.liveView(ctx, org)
	if err != nil {
		return view, err
	}
	view.Live = live
	waves, err := d.q.ReleasedWaves(ctx, org)
	if err != nil {
		return view, err
	}
	if len(waves) == 0 {
		view.NoWave = true
		return view, nil
	}
	latest := waves[len(waves)-1]
	view.Wave, view.WaveDate = latest.ID, latest.OpensAt.Format("2 January 2006")
	scores, err := d.q.Scores(ctx, org, query.NewScope([]query.WaveInfo{latest}, nil, d.q.Threshold()), "department")
	if err != nil {
		return view, err
	}
	view.Threshold = scores.Threshold
	trends, err := d.q.Trends(ctx, org, nil)
	if err != nil {
		return view, err
	}
	var prevRate *float64
	if len(waves) > 1 {
		prev := waves[len(waves)-2]
		view.Prev = prev.ID
		p, err := d.q.Participation(ctx, org, prev, nil, "")
		if err != nil {
			return view, err
		}
		prevRate = p.Overall.Rate
	}
	view.Tiles = tiles(trends, scores, prevRate)
	share, err := d.q.PlanShare(ctx, org, latest.ID)
	if err != nil {
		return view, err
	}
	if share.Teams > 0 {
		view.Tiles = append(view.Tiles, tileView{Key: "plans", Label: "Teams with an action plan",
			Value:  fmt.Sprintf("%d of %d", share.WithPlans, share.Teams),
			Detail: fmt.Sprintf("%s of the teams have a plan from %s's results or one still open", fmtPercent(float64(share.WithPlans)/float64(share.Teams)), latest.ID)})
	}
	view.Trend, view.ENPSTrend = trendCharts(waves, trends)
	view.Heatmap = heatmap("Scores by department, wave "+latest.ID, "Department", "", scores)
	if view.Drivers, err = d.drivers(ctx, org, latest); err != nil {
		return view, err
	}
	now := d.now().UTC()
	ret, err := d.q.Retention(ctx, org, "department", now.AddDate(-1, 0, 0).Truncate(24*time.Hour), now.AddDate(0, 0, 1).Truncate(24*time.Hour))
	if err != nil {
		return view, err
	}
	view.Retention = retentionBeside(ret, scores)
	// Last: its sets (groups of teams) are decided after the departments'.
	if view.Plans, err = d.planImpact(ctx, v.p, waves); err != nil {
		return view, err
	}
	return view, nil
}

// tiles are the headline numbers: each scale dimension's favourable share
// and mean, eNPS, and participation, each with its change from the
// previous shown wave.
func tiles(trends []query.Trend, scores query.Scores, prevRate *float64) []tileView {
	byDim := map[string]query.Trend{}
	for _, t := range trends {
		byDim[t.Dimension] = t
	}
	var out []tileView
	for _, dim := range append(slices.Clone(scaleDimensions), "enps") {
		t := tileView{Key: dim, Label: dimensionLabels[dim]}
		tr, ok := byDim[dim]
		if !ok || len(tr.Points) == 0 {
			t.NotAsked = true
			out = append(out, t)
			continue
		}
		last := tr.Points[len(tr.Points)-1]
		if last.WaveID != scores.WaveID || last.Suppressed {
			t.Suppressed = true
			out = append(out, t)
			continue
		}
		if dim == "enps" {
			t.Value, t.Detail = fmtSigned(*last.ENPS, 0), "promoters minus detractors, of 100"
			if prev := previousShown(tr.Points); prev != nil {
				change := *last.ENPS - *prev.ENPS
				t.Change, t.Direction = fmtSigned(change, 0)+" points since "+prev.WaveID, direction(change)
			}
		} else {
			t.Value, t.Detail = fmtPercent(*last.Favorable), "favourable · mean "+fmtFixed(*last.Mean, 2)+" of 5"
			if last.Change != nil {
				prev := previousShown(tr.Points)
				t.Change, t.Direction = fmtSigned(*last.Change, 2)+" since "+prev.WaveID, direction(*last.Change)
				t.Significant = last.Significant != nil && *last.Significant
			}
		}
		out = append(out, t)
	}
	p := tileView{Key: "participation", Label: "Participation"}
	if scores.Respondents.N == nil || scores.Invited == nil || *scores.Invited == 0 {
		p.Suppressed = true
	} else {
		rate := float64(*scores.Respondents.N) / float64(*scores.Invited)
		p.Value, p.Detail = fmtPercent(rate), fmtFixed(float64(*scores.Respondents.N), 0)+" of "+fmtFixed(float64(*scores.Invited), 0)+" invited"
		if prevRate != nil {
			change := (rate - *prevRate) * 100
			p.Change, p.Direction = fmtSigned(change, 0)+" points since the previous wave", direction(change)
		}
	}
	return append(out, p)
}

// previousShown is the shown point before the last one.
func previousShown(points []query.TrendPoint) *query.TrendPoint {
	for i := len(points) - 2; i >= 0; i-- {
		if !points[i].Suppressed {
			return &points[i]
		}
	}
	return nil
}

func direction(change float64) string {
	switch {
	case change > 0.005:
		return "up"
	case change < -0.005:
		return "down"
	}
	return "flat"
}

// trendCharts draws the scale dimensions' favourable shares and eNPS
// across the released waves.
func trendCharts(waves []query.WaveInfo, trends []query.Trend) (chartView, chartView) {
	labels := make([]string, len(waves))
	for i, w := range waves {
		labels[i] = w.ID
	}
	at := func(t query.Trend, value func(query.TrendPoint) *float64) []*float64 {
		out := make([]*float64, len(waves))
		for _, p := range t.Points {
			i := slices.IndexFunc(waves, func(w query.WaveInfo) bool { return w.ID == p.WaveID })
			if i >= 0 && !p.Suppressed {
				out[i] = value(p)
			}
		}
		return out
	}
	pct := func(p query.TrendPoint) *float64 { v := *p.Favorable * 100; return &v }
	var scale []series
	var enps []series
	for _, t := range trends {
		if t.Dimension == "enps" {
			enps = append(enps, series{Name: "eNPS", Values: at(t, func(p query.TrendPoint) *float64 { return p.ENPS })})
		} else if slices.Contains(scaleDimensions, t.Dimension) {
			scale = append(scale, series{Name: dimensionLabels[t.Dimension], Values: at(t, pct)})
		}
	}
	percent := func(v float64) string { return fmtFixed(v, 0) + "%" }
	signed := func(v float64) string { return fmtSigned(v, 0) }
	return chartView{ID: "trend", Title: "Favourable answers across waves", Header: append([]string{"Wave"}, names(scale)...), Rows: chartRows(labels, scale, percent),
			SVG: lineChart("trend", "Favourable answers across waves, in percent", labels, 0, 100, []float64{0, 25, 50, 75, 100}, percent, scale)},
		chartView{ID: "enps", Title: "eNPS across waves", Header: append([]string{"Wave"}, names(enps)...), Rows: chartRows(labels, enps, signed),
			SVG: lineChart("enps", "eNPS across waves", labels, -100, 100, []float64{-100, -50, 0, 50, 100}, signed, enps)}
}

func names(ss []series) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

func chartRows(labels []string, ss []series, format func(float64) string) [][]cellText {
	rows := make([][]cellText, len(labels))
	for i, l := range labels {
		row := []cellText{{Text: l}}
		for _, s := range ss {
			if v := s.Values[i]; v != nil {
				row = append(row, cellText{Text: format(*v)})
			} else {
				row = append(row, cellText{Suppressed: true})
			}
		}
		rows[i] = row
	}
	return rows
}

// drivers are the top and bottom drivers by their correlation with the
// outcome.
func (d *Dashboard) drivers(ctx context.Context, org string, w query.WaveInfo) (driversView, error) {
	res, err := d.q.Drivers(ctx, org, w)
	var appErr *schemas.Error
	if errors.As(err, &appErr) && appErr.Code == "no_outcome" {
		return driversView{Note: "This wave's survey asks neither the engagement index nor eNPS, so there is nothing to relate drivers to."}, nil
	}
	if err != nil {
		return driversView{}, err
	}
	view := driversView{Outcome: res.Outcome}
	var shown []query.DriverImpact
	for _, di := range res.Drivers {
		if !di.Suppressed {
			shown = append(shown, di)
		}
	}
	if len(shown) == 0 {
		view.Note = "Driver impact needs at least " + fmtFixed(float64(res.MinRespondents), 0) + " respondents."
		return view, nil
	}
	slices.SortFunc(shown, func(a, b query.DriverImpact) int { return compareDesc(*a.R, *b.R) })
	row := func(di query.DriverImpact) driverRow {
		return driverRow{Driver: di.Driver, R: fmtFixed(*di.R, 2), Interval: fmtFixed(*di.CILow, 2) + " to " + fmtFixed(*di.CIHigh, 2), Bar: bar(*di.R, "#0072B2")}
	}
	n := min(3, (len(shown)+1)/2)
	for _, di := range shown[:n] {
		view.Top = append(view.Top, row(di))
	}
	for i := len(shown) - 1; i >= n && len(view.Bottom) < 3; i-- {
		view.Bottom = append(view.Bottom, row(shown[i]))
	}
	return view, nil
}

func compareDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// retentionBeside puts each department's attrition next to its engagement
// (or, without engagement items, its first dimension) of the latest wave.
func retentionBeside(ret query.RetentionResult, scores query.Scores) retentionView {
	view := retentionView{From: ret.From, To: ret.To}
	dim := "engagement"
	if indexOf(scores.Dimensions, dim) < 0 && len(scores.Dimensions) > 0 {
		dim = scores.Dimensions[0].Dimension
	}
	for _, g := range ret.Groups {
		row := retentionRow{Department: g.Value, Attrition: cellText{Suppressed: true}, Engagement: cellText{Suppressed: true}}
		if !g.Suppressed {
			row.Attrition = cellText{Text: fmtPercent(*g.Attrition)}
			row.Headcount = fmtFixed(float64(*g.Headcount), 0)
		}
		for _, sg := range scores.Groups {
			if sg.Value != g.Value {
				continue
			}
			if i := indexOf(sg.Dimensions, dim); i >= 0 && !sg.Dimensions[i].Suppressed {
				row.Engagement = cellText{Text: fmtPercent(*sg.Dimensions[i].Favorable)}
			}
		}
		view.Rows = append(view.Rows, row)
	}
	return view
}

func indexOf(scores []query.Score, dim string) int {
	return slices.IndexFunc(scores, func(s query.Score) bool { return s.Dimension == dim })
}

// liveView is the participation of the latest open wave, if any.
func (d *Dashboard) liveView(ctx context.Context, org string) (*liveView, error) {
	waves, err := d.q.Waves(ctx, org)
	if err != nil {
		return nil, err
	}
	var open *query.WaveInfo
	for i, w := range waves {
		if !w.Closed() && (open == nil || w.OpensAt.After(open.OpensAt)) {
			open = &waves[i]
		}
	}
	if open == nil {
		return nil, nil
	}
	res, err := d.q.LiveParticipation(ctx, org, open.ID)
	var appErr *schemas.Error
	if errors.As(err, &appErr) && appErr.Status == http.StatusServiceUnavailable {
		return nil, nil // no event stream here: the page goes without
	}
	if err != nil {
		return nil, err
	}
	view := &liveView{WaveID: res.WaveID, ClosesAt: res.ClosesAt.Format("2 January 2006, 15:04 MST"), Overall: participationCells("Everyone", res.Overall)}
	for _, g := range res.Groups {
		view.Groups = append(view.Groups, participationCells(g.Value, g))
	}
	return view, nil
}

func participationCells(label string, p query.Participation) participationRow {
	if p.Suppressed || p.Responded == nil {
		return participationRow{Label: label, Suppressed: true}
	}
	row := participationRow{Label: label, Invited: fmtFixed(float64(*p.Invited), 0), Responded: fmtFixed(float64(*p.Responded), 0)}
	if p.Rate != nil {
		row.Rate = fmtPercent(*p.Rate)
	}
	return row
}
