package query

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// Attrition over a period, per cohort, from the roster's events: the
// headcount on the first day and how many of them left before the last.
// Each person counts with the attributes of their latest join or update.
const sqlRetention = `SELECT %[1]s AS grp,
    countIf(start <= toDate(?) AND (left = toDate('1970-01-01') OR left >= toDate(?))) AS headcount,
    countIf(left != toDate('1970-01-01') AND left >= toDate(?) AND left < toDate(?) AND start <= toDate(?)) AS leavers
FROM (
    SELECT person_id,
        argMaxIf(department, seq, kind != 'EmployeeLeft') AS department,
        argMaxIf(team, seq, kind != 'EmployeeLeft') AS team,
        argMaxIf(location, seq, kind != 'EmployeeLeft') AS location,
        argMaxIf(start_date, seq, kind != 'EmployeeLeft') AS start,
        if(maxIf(seq, kind = 'EmployeeLeft') > maxIf(seq, kind != 'EmployeeLeft'),
           argMaxIf(left_on, seq, kind = 'EmployeeLeft'), toDate('1970-01-01')) AS left
    FROM roster_events WHERE org = ? GROUP BY person_id
) GROUP BY grp`

// retentionColumns are the attributes retention can be grouped by (tenure
// band changes over the period, so it is not one of them).
var retentionColumns = map[string]string{"": "''", "department": "department", "team": "team", "location": "location"}

// Retention is the attrition of one cohort.
type Retention struct {
	Value      string   `json:"value,omitempty"`
	Suppressed bool     `json:"suppressed,omitempty"`
	Headcount  *int     `json:"headcount,omitempty"`
	Leavers    *int     `json:"leavers,omitempty"`
	Attrition  *float64 `json:"attrition,omitempty"`
}

func retention(value string, headcount, leavers, k int) Retention {
	r := Retention{Value: value}
	if headcount < k {
		r.Suppressed = true
		return r
	}
	r.Headcount, r.Leavers = &headcount, &leavers
	r.Attrition = round(float64(leavers)/float64(headcount), 3)
	return r
}

// orgThreshold is the threshold of an organisation's latest wave (the
// query service's default before its first).
func (s *Server) orgThreshold(ctx context.Context, org string) (int, error) {
	waves, err := s.store.Waves(ctx, org)
	if err != nil {
		return 0, err
	}
	k, latest := s.guard.K, time.Time{}
	for _, w := range waves {
		if w.OpensAt.After(latest) {
			k, latest = w.threshold(s.guard.K), w.OpensAt
		}
	}
	return k, nil
}

// retentionHandler serves attrition per cohort over [from, to): leavers
// among those employed on from. Cohorts of fewer than the threshold are
// suppressed, and so is the next smallest when one is, as everywhere.
func (s *Server) retentionHandler(c *fiber.Ctx) error {
	r, err := parseRetention(c.Context().QueryArgs(), principalOf(c), time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	res, err := s.Retention(ctx, c.Params("org"), r.GroupBy, r.From, r.To)
	if err != nil {
		return err
	}
	return send(c, res)
}

// FileName names the result's CSV download.
func (r RetentionResult) FileName() string {
	return r.Org + "-retention-" + r.From + "-" + r.To + ".csv"
}

// WriteCSV writes the result as CSV, the overall row first.
func (r RetentionResult) WriteCSV(w io.Writer) error {
	t := newCSV(w, "from", "to", "group_by", "group", "suppressed", "headcount", "leavers", "attrition")
	for _, c := range append([]Retention{r.Overall}, r.Groups...) {
		t.row(r.From, r.To, r.GroupBy, c.Value, strconv.FormatBool(c.Suppressed), inum(c.Headcount), inum(c.Leavers), fnum(c.Attrition))
	}
	return t.close()
}

// RetentionResult is the result of GET /v1/orgs/{org}/retention.
type RetentionResult struct {
	Org       string      `json:"org"`
	From      string      `json:"from"`
	To        string      `json:"to"`
	Threshold int         `json:"threshold"`
	GroupBy   string      `json:"group_by"`
	Overall   Retention   `json:"overall"`
	Groups    []Retention `json:"groups,omitempty"`
}

// Retention computes attrition per cohort over [from, to): leavers among
// those employed on from. Cohorts of fewer than the threshold are
// suppressed, and so is the next smallest when one is, as everywhere.
// groupBy is "", department, team or location.
func (s *Server) Retention(ctx context.Context, org, groupBy string, from, to time.Time) (RetentionResult, error) {
	grp, ok := retentionColumns[groupBy]
	if !ok {
		return RetentionResult{}, schemas.Errorf(http.StatusBadRequest, "invalid_group_by", "group_by must be department, team or location")
	}
	f, t := from.Format(schemas.DateLayout), to.Format(schemas.DateLayout)
	rows, err := s.store.ch.Query(ctx, fmt.Sprintf(sqlRetention, grp), f, f, f, t, f, org)
	if err != nil {
		return RetentionResult{}, fmt.Errorf("query: retention: %w", err)
	}
	defer rows.Close()
	type cohort struct {
		name               string
		headcount, leavers int
	}
	var cohorts []cohort
	total := cohort{}
	for rows.Next() {
		var name string
		var h, l uint64
		if err := rows.Scan(&name, &h, &l); err != nil {
			return RetentionResult{}, err
		}
		cohorts = append(cohorts, cohort{name, int(h), int(l)})
		total.headcount += int(h)
		total.leavers += int(l)
	}
	if err := rows.Err(); err != nil {
		return RetentionResult{}, err
	}
	k, err := s.orgThreshold(ctx, org)
	if err != nil {
		return RetentionResult{}, err
	}
	g := Guard{K: k}
	res := RetentionResult{Org: org, From: f, To: t, Threshold: k, GroupBy: groupBy, Overall: retention("", total.headcount, total.leavers, k)}
	if groupBy != "" {
		sort.Slice(cohorts, func(i, j int) bool { return cohorts[i].name < cohorts[j].name })
		ns := make([]int, len(cohorts))
		hidden := make([]bool, len(cohorts))
		for i, c := range cohorts {
			ns[i], hidden[i] = c.headcount, c.headcount < k
		}
		hidden = g.Complement(ns, hidden)
		res.Groups = []Retention{}
		for i, c := range cohorts {
			if hidden[i] {
				res.Groups = append(res.Groups, Retention{Value: c.name, Suppressed: true})
			} else {
				res.Groups = append(res.Groups, retention(c.name, c.headcount, c.leavers, k))
			}
		}
	}
	return res, nil
}
