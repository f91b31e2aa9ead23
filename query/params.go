package query

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/trustpulse/trustpulse/schemas"
)

// The parsers of request parameters. Each reads a request's query
// arguments alone (no I/O), so that it can be fuzzed; every refusal is a
// *schemas.Error with a 4xx status. The handlers resolve what they accept
// against the store.

// parseSlice reads the group-by attribute and the attribute filters of a
// query (?department=Sales&group_by=team), and checks that p's role may
// slice by them. Besides the filters, the query may hold only the
// parameters named in extra (group_by among them where the endpoint
// groups). The filter holds at most one clause per attribute, sorted by
// attribute, each with one value of 1 to schemas.MaxAttrLen bytes and no
// control character (a person id for manager and reports_to); group_by is
// empty or a key of GroupColumns and is not also filtered by.
func parseSlice(args *fasthttp.Args, p *Principal, extra ...string) (filter []Clause, groupBy string, err error) {
	if err := checkParams(args, sliceParams(extra...)...); err != nil {
		return nil, "", err
	}
	groupBy = string(args.Peek("group_by"))
	if _, ok := GroupColumns[groupBy]; groupBy != "" && !ok {
		return nil, "", schemas.Errorf(http.StatusBadRequest, "invalid_group_by", "group_by must be one of department, team, location, tenure_band, manager")
	}
	if err := mayGroupBy(p, groupBy); err != nil {
		return nil, "", err
	}
	for _, attr := range sortedAttrs() {
		values := args.PeekMulti(attr)
		if len(values) == 0 {
			continue
		}
		v := string(values[0])
		switch {
		case len(values) > 1:
			return nil, "", schemas.Errorf(http.StatusBadRequest, "invalid_filter", "filter %s is given more than once; give one value", attr)
		case v == "" || len(v) > schemas.MaxAttrLen || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' }):
			return nil, "", schemas.Errorf(http.StatusBadRequest, "invalid_filter", "filter %s: want 1 to %d printable characters", attr, schemas.MaxAttrLen)
		case attr == groupBy:
			return nil, "", schemas.Errorf(http.StatusBadRequest, "invalid_filter", "cannot filter and group by %s at once", attr)
		case (attr == "manager" || attr == ReportsTo) && !schemas.ValidPersonID(v):
			return nil, "", schemas.Errorf(http.StatusBadRequest, "invalid_filter", "filter %s: want a person id (a lower-case UUID, as GET /v1/orgs/{org}/managers lists them)", attr)
		}
		if err := mayGroupBy(p, attr); err != nil {
			return nil, "", err
		}
		filter = append(filter, Clause{Attr: attr, Values: []string{v}})
	}
	if err := mayManagerSlice(p, filter, groupBy); err != nil {
		return nil, "", err
	}
	return filter, groupBy, nil
}

// checkParams refuses query parameters an endpoint does not take, so that
// a misspelt filter is an error rather than a silently wider result.
func checkParams(args *fasthttp.Args, allowed ...string) error {
	var unknown string
	args.VisitAll(func(k, _ []byte) {
		if unknown == "" && !slices.Contains(allowed, string(k)) {
			unknown = string(k)
		}
	})
	if unknown != "" {
		if len(unknown) > 40 {
			unknown = unknown[:40]
		}
		return schemas.Errorf(http.StatusBadRequest, "invalid_parameter", "unknown parameter %q; this endpoint takes %s", unknown, strings.Join(allowed, ", "))
	}
	return nil
}

// period is what a period request asks for: listed waves, or the waves
// opening on the days from to to.
type period struct {
	// Waves are the listed ids, each valid and none twice; nil for a
	// period of days.
	Waves []string
	// From and To are the first and last day (To not before From), when
	// Waves is nil.
	From, To time.Time
}

// parsePeriod reads ?waves=a,b (at most MaxPeriodWaves valid ids, none
// twice) or ?from=YYYY-MM-DD&to=YYYY-MM-DD (both, to not before from).
func parsePeriod(args *fasthttp.Args) (period, error) {
	list, from, to := string(args.Peek("waves")), string(args.Peek("from")), string(args.Peek("to"))
	if (list == "") == (from == "" && to == "") {
		return period{}, schemas.Errorf(http.StatusBadRequest, "invalid_period", "give either waves=<id>,<id>,... or from=YYYY-MM-DD&to=YYYY-MM-DD")
	}
	if list != "" {
		ids := strings.Split(list, ",")
		if len(ids) > MaxPeriodWaves {
			return period{}, schemas.Errorf(http.StatusBadRequest, "invalid_period", "at most %d waves at once", MaxPeriodWaves)
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if !schemas.ValidID(id) {
				return period{}, schemas.Errorf(http.StatusBadRequest, "invalid_id", "wave id is malformed")
			}
			if seen[id] {
				return period{}, schemas.Errorf(http.StatusBadRequest, "invalid_period", "wave %q is listed twice", id)
			}
			seen[id] = true
		}
		return period{Waves: ids}, nil
	}
	day := func(name, v string) (time.Time, error) {
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return t, schemas.Errorf(http.StatusBadRequest, "invalid_period", "%s must be a date, YYYY-MM-DD", name)
		}
		return t, nil
	}
	f, err := day("from", from)
	if err != nil {
		return period{}, err
	}
	t, err := day("to", to)
	if err != nil {
		return period{}, err
	}
	if t.Before(f) {
		return period{}, schemas.Errorf(http.StatusBadRequest, "invalid_period", "to must not be before from")
	}
	return period{From: f, To: t}, nil
}

// retentionRequest is what a retention request asks for.
type retentionRequest struct {
	// GroupBy is a key of retentionColumns ("" for the organisation).
	GroupBy string
	// From is before To, both midnights UTC.
	From, To time.Time
}

// parseRetention reads ?group_by=&from=YYYY-MM-DD&to=YYYY-MM-DD: to
// defaults to the day after now, from to a year before to.
func parseRetention(args *fasthttp.Args, p *Principal, now time.Time) (retentionRequest, error) {
	r := retentionRequest{GroupBy: string(args.Peek("group_by"))}
	if err := checkParams(args, "from", "to", "group_by", "format"); err != nil {
		return r, err
	}
	if _, ok := retentionColumns[r.GroupBy]; !ok {
		return r, schemas.Errorf(http.StatusBadRequest, "invalid_group_by", "group_by must be department, team or location")
	}
	if err := mayGroupBy(p, r.GroupBy); err != nil {
		return r, err
	}
	r.To = now.UTC().AddDate(0, 0, 1).Truncate(24 * time.Hour)
	r.From = r.To.AddDate(-1, 0, 0)
	var err error
	if v := string(args.Peek("from")); v != "" {
		if r.From, err = time.Parse(schemas.DateLayout, v); err != nil {
			return r, schemas.Errorf(http.StatusBadRequest, "invalid_period", "from must be a date as YYYY-MM-DD")
		}
	}
	if v := string(args.Peek("to")); v != "" {
		if r.To, err = time.Parse(schemas.DateLayout, v); err != nil {
			return r, schemas.Errorf(http.StatusBadRequest, "invalid_period", "to must be a date as YYYY-MM-DD")
		}
	}
	if !r.From.Before(r.To) {
		return r, schemas.Errorf(http.StatusBadRequest, "invalid_period", "from must be before to")
	}
	return r, nil
}
