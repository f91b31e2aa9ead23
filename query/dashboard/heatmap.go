package dashboard

import (
	"slices"

	"github.com/trustpulse/trustpulse/query"
)

// heatmapView is a table of dimensions by group, each cell coloured by its
// difference from the organisation overall and printing that difference.
type heatmapView struct {
	Caption, GroupLabel string
	Columns             []string // dimension labels
	Rows                []heatRow
}

type heatRow struct {
	Label       string
	Overall     bool // the organisation or the filtered whole, not a group
	Respondents cellText
	Cells       []heatCell
}

type heatCell struct {
	Dimension  string
	Value      string
	Diff       string // signed difference from the organisation overall
	Class      string // heat class
	Suppressed bool
}

// heatmap lays out a result: the organisation overall first, the filtered
// whole next (labelled whole) when the result is filtered, then its groups.
func heatmap(caption, groupLabel, whole string, s query.Scores) heatmapView {
	view := heatmapView{Caption: caption, GroupLabel: groupLabel}
	var dims []string
	for _, d := range s.Dimensions {
		if d.Dimension == "enps" || slices.Contains(scaleDimensions, d.Dimension) {
			dims = append(dims, d.Dimension)
			view.Columns = append(view.Columns, dimensionLabels[d.Dimension])
		}
	}
	row := func(label string, overall bool, respondents query.Count, scores []query.Score) heatRow {
		r := heatRow{Label: label, Overall: overall, Respondents: countCell(respondents)}
		for _, dim := range dims {
			r.Cells = append(r.Cells, heatCellOf(dim, scores))
		}
		return r
	}
	if len(s.Filter) > 0 {
		view.Rows = append(view.Rows, row("Organisation", true, query.Count{Suppressed: true}, s.Overall))
		view.Rows[0].Respondents = cellText{} // the overall's count is not part of this result
		view.Rows = append(view.Rows, row(whole, true, s.Respondents, s.Dimensions))
	} else {
		view.Rows = append(view.Rows, row("Organisation", true, s.Respondents, s.Dimensions))
	}
	for _, g := range s.Groups {
		view.Rows = append(view.Rows, row(g.Value, false, g.Respondents, g.Dimensions))
	}
	return view
}

func heatCellOf(dim string, scores []query.Score) heatCell {
	i := indexOf(scores, dim)
	if i < 0 || scores[i].Suppressed {
		return heatCell{Dimension: dimensionLabels[dim], Suppressed: true}
	}
	s := scores[i]
	c := heatCell{Dimension: dimensionLabels[dim], Class: "h-mid"}
	if dim == "enps" {
		c.Value = fmtSigned(*s.ENPS, 0)
	} else {
		c.Value = fmtFixed(*s.Mean, 2)
	}
	if s.VsOrg != nil {
		places := 2
		if dim == "enps" {
			places = 0
		}
		c.Diff, c.Class = fmtSigned(*s.VsOrg, places), heatClass(*s.VsOrg, dim == "enps")
	}
	return c
}

func countCell(c query.Count) cellText {
	if c.N == nil {
		return cellText{Suppressed: true}
	}
	return cellText{Text: fmtFixed(float64(*c.N), 0)}
}

// filterLabel names a filter: "department Sales, location Berlin".
func filterLabel(filter map[string]string) string {
	var out string
	for _, a := range []string{"department", "team", "location", "tenure_band"} {
		if v, ok := filter[a]; ok {
			if out != "" {
				out += ", "
			}
			out += attrLabels[a] + " " + v
		}
	}
	return out
}

var attrLabels = map[string]string{"department": "department", "team": "team", "location": "location", "tenure_band": "tenure band"}
