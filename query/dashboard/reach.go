package dashboard

import (
	"context"
	"net/http"
	"strings"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// What a manager may choose on the explorer and the comments page: the
// organisation overall (explorer only), or exactly one manager= or
// reports_to= filter naming themself or a manager below them
// (query.MayFilter). The pages offer these as one select, "scope", whose
// values are "" (no filter) and "<attr>:<person id>"; nothing else of the
// analysts' form (attribute filters, group-by) is shown to a manager.

// scopeParam is the form's parameter of a manager's choice.
const scopeParam = "scope"

// scopeValue is the form's value of a manager's filter clause.
func scopeValue(c query.Clause) string { return c.Attr + ":" + c.Values[0] }

// parseScope reads a manager's choice: nil for the organisation overall,
// else one manager= or reports_to= clause naming a person id; 400 for
// anything else. Whether the person is in reach is query.MayFilter's call.
func parseScope(value string) ([]query.Clause, error) {
	if value == "" {
		return nil, nil
	}
	attr, id, _ := strings.Cut(value, ":")
	if (attr != "manager" && attr != query.ReportsTo) || !schemas.ValidPersonID(id) {
		return nil, schemas.Errorf(http.StatusBadRequest, "invalid_filter", "choose one of the listed teams")
	}
	return []query.Clause{{Attr: attr, Values: []string{id}}}, nil
}

// reachChoices are a manager's teams, by name: everyone below them and
// their direct reports, then the same for each manager below them (those
// with direct reports on today's roster, as GET managers lists them).
func (d *Dashboard) reachChoices(ctx context.Context, v viewer) ([]option, error) {
	managers, err := d.q.Managers(ctx, v.p)
	if err != nil {
		return nil, err
	}
	var mine, below []option
	for _, m := range managers {
		name := m.Name
		if name == "" {
			name = m.EmployeeID
		}
		if m.PersonID == v.p.PersonID {
			name = "you (" + name + ")"
		}
		opts := []option{
			{Value: scopeValue(query.Clause{Attr: query.ReportsTo, Values: []string{m.PersonID}}), Label: "All reports of " + name},
			{Value: scopeValue(query.Clause{Attr: "manager", Values: []string{m.PersonID}}), Label: "Direct reports of " + name},
		}
		if m.PersonID == v.p.PersonID {
			mine = opts
		} else {
			below = append(below, opts...)
		}
	}
	return append(mine, below...), nil
}

// scopeSelect is the form's select of a manager's choices, the chosen one
// (filter) selected; overall adds the organisation overall, first.
func scopeSelect(choices []option, filter []query.Clause, overall bool) []option {
	chosen := ""
	if len(filter) == 1 {
		chosen = scopeValue(filter[0])
	}
	var out []option
	if overall {
		out = append(out, option{Value: "", Label: "The organisation overall", Selected: chosen == ""})
	}
	for _, c := range choices {
		c.Selected = c.Value == chosen
		out = append(out, c)
	}
	return out
}

// scopeLabel names a manager's filter as the select does ("" for none);
// a person in reach who is not offered (they manage nobody) is named
// by what the filter is.
func scopeLabel(choices []option, filter []query.Clause) string {
	if len(filter) != 1 {
		return ""
	}
	for _, c := range choices {
		if c.Value == scopeValue(filter[0]) {
			return c.Label
		}
	}
	if filter[0].Attr == "manager" {
		return "Direct reports of the chosen person"
	}
	return "All reports of the chosen person"
}
