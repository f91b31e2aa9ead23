package dashboard

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// exploreView is the analyst explorer: a form to choose waves, filters and
// a group-by, and the result under it.
type exploreView struct {
	Nav     *navView
	Form    formView
	Result  *exploreResult
	Problem string
}

type formView struct {
	Waves   []option
	Filters []filterSelect
	GroupBy []option
	// Scope is a manager's one select (reach.go) in place of Filters and
	// GroupBy; nil for the other roles.
	Scope []option
}

type option struct {
	Value, Label string
	Selected     bool
}

type filterSelect struct {
	Attr, Label string
	Options     []option
}

type exploreResult struct {
	Summary       string
	Respondents   cellText
	Threshold     int
	Heatmap       heatmapView
	Distributions []distributionRow
	Drivers       []scoreRow
	Questions     []scoreRow
	Downloads     []download
}

type distributionRow struct {
	Label                           string
	Suppressed                      bool
	Unfavorable, Neutral, Favorable string
	Bar                             template.HTML
}

type scoreRow struct {
	Label, Text, N, Mean, Favorable string
	Suppressed                      bool
}

type download struct {
	Label, Href string
}

// exploreRequest is what the explorer's form asks for.
type exploreRequest struct {
	waves   []query.WaveInfo
	filter  []query.Clause
	groupBy string
	// label names a manager's filter (scopeLabel), "" for the others'.
	label string
}

func (r exploreRequest) query() url.Values {
	v := url.Values{}
	for _, w := range r.waves {
		v.Add("wave", w.ID)
	}
	for _, c := range r.filter {
		if c.Attr == "manager" || c.Attr == query.ReportsTo {
			v.Set(scopeParam, scopeValue(c))
			continue
		}
		v.Set(c.Attr, c.Values[0])
	}
	if r.groupBy != "" {
		v.Set("group_by", r.groupBy)
	}
	return v
}

var attrs = []string{"department", "team", "location", "tenure_band"}

// parseExplore reads the form's query arguments: released waves (the
// latest by default), attribute filters and a group-by, each allowed to
// the viewer's role, or, for a manager, their one choice of scope
// (reach.go). Every refusal is a *schemas.Error with a 4xx status.
func parseExplore(args *fasthttp.Args, v viewer, released []query.WaveInfo) (exploreRequest, error) {
	var r exploreRequest
	var bad error
	args.VisitAll(func(k, val []byte) {
		key, value := string(k), string(val)
		switch {
		case bad != nil:
		case key == "wave":
			i := slices.IndexFunc(released, func(w query.WaveInfo) bool { return w.ID == value })
			if i < 0 {
				bad = schemas.Errorf(http.StatusBadRequest, "invalid_wave", "wave %q has no released results; choose one of the listed waves", truncate(value))
				return
			}
			if !slices.ContainsFunc(r.waves, func(w query.WaveInfo) bool { return w.ID == value }) {
				r.waves = append(r.waves, released[i])
			}
		case key == "group_by":
			if value != "" && !slices.Contains(attrs, value) {
				bad = schemas.Errorf(http.StatusBadRequest, "invalid_group_by", "group by one of department, team, location or tenure band")
				return
			}
			r.groupBy = value
		case key == scopeParam && v.p.Role == schemas.RoleManager:
			if len(r.filter) > 0 {
				bad = schemas.Errorf(http.StatusBadRequest, "invalid_filter", "choose one team")
				return
			}
			r.filter, bad = parseScope(value)
		case slices.Contains(attrs, key):
			if value == "" {
				return // "any"
			}
			if len(value) > schemas.MaxAttrLen || strings.ContainsFunc(value, unicode.IsControl) {
				bad = schemas.Errorf(http.StatusBadRequest, "invalid_filter", "the %s filter is not a valid value", attrLabels[key])
				return
			}
			if slices.ContainsFunc(r.filter, func(c query.Clause) bool { return c.Attr == key }) {
				bad = schemas.Errorf(http.StatusBadRequest, "invalid_filter", "the %s filter is given more than once; choose one value", attrLabels[key])
				return
			}
			r.filter = append(r.filter, query.Clause{Attr: key, Values: []string{value}})
		default:
			bad = schemas.Errorf(http.StatusBadRequest, "invalid_parameter", "unknown parameter %q", truncate(key))
		}
	})
	if bad != nil {
		return r, bad
	}
	if len(r.waves) == 0 && len(released) > 0 {
		r.waves = released[len(released)-1:]
	}
	slices.SortFunc(r.filter, func(a, b query.Clause) int { return strings.Compare(a.Attr, b.Attr) })
	for _, c := range r.filter {
		if c.Attr == r.groupBy {
			return r, schemas.Errorf(http.StatusBadRequest, "invalid_filter", "cannot filter and group by %s at once", attrLabels[c.Attr])
		}
		if err := query.MayGroupBy(v.p, c.Attr); err != nil {
			return r, err
		}
	}
	if err := query.MayGroupBy(v.p, r.groupBy); err != nil {
		return r, err
	}
	return r, query.MayFilter(v.p, r.filter)
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}

func (d *Dashboard) exploreHandler(c *fiber.Ctx, v viewer) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 30*time.Second)
	defer cancel()
	released, err := d.q.ReleasedWaves(ctx, v.s.Org)
	if err != nil {
		return d.errorPage(c, err)
	}
	values, err := d.q.AttributeValues(ctx, v.s.Org)
	if err != nil {
		return d.errorPage(c, err)
	}
	view := exploreView{Nav: d.nav(v, "explore")}
	r, perr := parseExplore(c.Context().QueryArgs(), v, released)
	view.Form = exploreForm(v, released, values, r)
	if v.p.Role == schemas.RoleManager {
		choices, err := d.reachChoices(ctx, v)
		if err != nil {
			return d.errorPage(c, err)
		}
		view.Form.Scope, view.Form.GroupBy = scopeSelect(choices, r.filter, true), nil
		r.label = scopeLabel(choices, r.filter)
	}
	status := http.StatusOK
	switch {
	case perr != nil:
		status, view.Problem = problemOf(perr)
	case len(r.waves) == 0:
		view.Problem = "No wave has released results yet: results appear once a wave closes."
	default:
		res, err := d.explore(ctx, v, r)
		if err != nil {
			status, view.Problem = problemOf(err)
			if status >= 500 {
				return d.errorPage(c, err)
			}
		} else {
			view.Result = res
		}
	}
	return d.render(c, status, "explore", view)
}

// problemOf is the status and message of a refusal; an unreachable
// dependency is 503, other errors are 500.
func problemOf(err error) (int, string) {
	if e, ok := err.(*schemas.Error); ok {
		return e.Status, e.Detail
	}
	if httpproblem.Unavailable(err) {
		return errUnavailable.Status, errUnavailable.Detail
	}
	return http.StatusInternalServerError, "Something went wrong on our side; please try again in a minute."
}

// exploreForm fills the form with the choices the viewer's role has.
func exploreForm(v viewer, released []query.WaveInfo, values map[string][]string, r exploreRequest) formView {
	var f formView
	for i := len(released) - 1; i >= 0; i-- {
		w := released[i]
		f.Waves = append(f.Waves, option{Value: w.ID, Label: w.ID + " (opened " + w.OpensAt.Format("2 Jan 2006") + ")",
			Selected: slices.ContainsFunc(r.waves, func(x query.WaveInfo) bool { return x.ID == w.ID })})
	}
	chosen := map[string]string{}
	for _, c := range r.filter {
		chosen[c.Attr] = c.Values[0]
	}
	f.GroupBy = []option{{Value: "", Label: "nothing (whole scope)", Selected: r.groupBy == ""}}
	for _, a := range attrs {
		if query.MayGroupBy(v.p, a) != nil {
			continue
		}
		fs := filterSelect{Attr: a, Label: attrLabels[a], Options: []option{{Value: "", Label: "any", Selected: chosen[a] == ""}}}
		for _, val := range values[a] {
			fs.Options = append(fs.Options, option{Value: val, Label: val, Selected: chosen[a] == val})
		}
		f.Filters = append(f.Filters, fs)
		f.GroupBy = append(f.GroupBy, option{Value: a, Label: attrLabels[a], Selected: r.groupBy == a})
	}
	return f
}

// explore computes the chosen result.
func (d *Dashboard) explore(ctx context.Context, v viewer, r exploreRequest) (*exploreResult, error) {
	s, err := d.q.Scores(ctx, v.s.Org, query.NewScope(r.waves, r.filter, d.q.Threshold()), r.groupBy)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(r.waves))
	for i, w := range r.waves {
		ids[i] = w.ID
	}
	res := &exploreResult{Threshold: s.Threshold, Respondents: countCell(s.Respondents)}
	res.Summary = "Wave " + strings.Join(ids, ", ")
	if len(ids) > 1 {
		res.Summary = "Waves " + strings.Join(ids, ", ") + " together"
	}
	whole := "All in " + filterLabel(s.Filter)
	if r.label != "" {
		whole = r.label
		res.Summary += ", " + strings.ToLower(r.label[:1]) + r.label[1:]
	} else if len(r.filter) > 0 {
		res.Summary += ", " + filterLabel(s.Filter)
	}
	groupLabel := "Group"
	if r.groupBy != "" {
		res.Summary += ", by " + attrLabels[r.groupBy]
		groupLabel = strings.ToUpper(attrLabels[r.groupBy][:1]) + attrLabels[r.groupBy][1:]
	}
	res.Heatmap = heatmap(res.Summary, groupLabel, whole, s)
	for _, sc := range s.Dimensions {
		res.Distributions = append(res.Distributions, distribution(dimensionLabels[sc.Dimension], sc))
	}
	for _, sc := range s.Drivers {
		res.Drivers = append(res.Drivers, scoreRowOf(sc.Key, "", sc))
	}
	for _, sc := range s.Questions {
		res.Questions = append(res.Questions, scoreRowOf(sc.Key, sc.Text, sc))
	}
	q := r.query().Encode()
	res.Downloads = []download{{"Scores (CSV)", "/dashboard/export/scores?" + q}}
	if len(r.waves) == 1 {
		res.Downloads = append(res.Downloads, download{"Participation (CSV)", "/dashboard/export/participation?" + q})
	}
	trendQuery := r.query()
	trendQuery.Del("wave")
	trendQuery.Del("group_by")
	res.Downloads = append(res.Downloads, download{"Trends across waves (CSV)", "/dashboard/export/trends?" + trendQuery.Encode()})
	return res, nil
}

func distribution(label string, s query.Score) distributionRow {
	if s.Suppressed {
		return distributionRow{Label: label, Suppressed: true}
	}
	return distributionRow{Label: label, Unfavorable: fmtPercent(*s.Unfavorable), Neutral: fmtPercent(*s.Neutral), Favorable: fmtPercent(*s.Favorable),
		Bar: stacked(*s.Unfavorable, *s.Neutral, *s.Favorable)}
}

func scoreRowOf(label, text string, s query.Score) scoreRow {
	if s.Suppressed {
		return scoreRow{Label: label, Text: text, Suppressed: true}
	}
	row := scoreRow{Label: label, Text: text, N: fmtFixed(float64(*s.N), 0), Mean: fmtFixed(*s.Mean, 2)}
	if s.ENPS != nil {
		row.Favorable = "eNPS " + fmtSigned(*s.ENPS, 0)
	} else if s.Favorable != nil {
		row.Favorable = fmtPercent(*s.Favorable)
	}
	return row
}

// exportHandler sends the CSV behind a table, computed through the same
// guard as the page.
func (d *Dashboard) exportHandler(c *fiber.Ctx, v viewer) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 30*time.Second)
	defer cancel()
	org := v.s.Org
	released, err := d.q.ReleasedWaves(ctx, org)
	if err != nil {
		return d.errorPage(c, err)
	}
	r, err := parseExplore(c.Context().QueryArgs(), v, released)
	if err != nil {
		return d.errorPage(c, err)
	}
	if len(r.waves) == 0 {
		return d.errorPage(c, schemas.Errorf(http.StatusConflict, "no_waves", "No wave has released results yet."))
	}
	var name string
	var write func() error
	w := c.Response().BodyWriter()
	switch c.Params("table") {
	case "scores":
		s, err := d.q.Scores(ctx, org, query.NewScope(r.waves, r.filter, d.q.Threshold()), r.groupBy)
		if err != nil {
			return d.errorPage(c, err)
		}
		name, write = s.FileName(), func() error { return s.WriteCSV(w) }
	case "participation":
		if len(r.waves) != 1 {
			return d.errorPage(c, schemas.Errorf(http.StatusBadRequest, "invalid_wave", "Participation is per wave: choose one wave."))
		}
		p, err := d.q.Participation(ctx, org, r.waves[0], r.filter, r.groupBy)
		if err != nil {
			return d.errorPage(c, err)
		}
		name, write = p.FileName(), func() error { return p.WriteCSV(w) }
	case "trends":
		t, err := d.q.Trends(ctx, org, r.filter)
		if err != nil {
			return d.errorPage(c, err)
		}
		name, write = org+"-trends.csv", func() error { return query.WriteTrendsCSV(w, t) }
	case "drivers":
		res, err := d.q.Drivers(ctx, org, r.waves[len(r.waves)-1])
		if err != nil {
			return d.errorPage(c, err)
		}
		name, write = res.FileName(), func() error { return res.WriteCSV(w) }
	case "retention":
		if err := query.MayGroupBy(v.p, "department"); err != nil { // it is by department
			return d.errorPage(c, err)
		}
		now := d.now().UTC()
		res, err := d.q.Retention(ctx, org, "department", now.AddDate(-1, 0, 0).Truncate(24*time.Hour), now.AddDate(0, 0, 1).Truncate(24*time.Hour))
		if err != nil {
			return d.errorPage(c, err)
		}
		name, write = res.FileName(), func() error { return res.WriteCSV(w) }
	default:
		return d.errorPage(c, schemas.Errorf(http.StatusNotFound, "not_found", "There is no such table to download."))
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s"`, safeFileName(name)))
	return write()
}

// safeFileName keeps letters, digits and a few marks.
func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("._+-", r)) {
			return r
		}
		return '_'
	}, s)
}
