package ingest

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/trustpulse/trustpulse/schemas"
)

// CohortColumns is the header of a cohorts CSV file, in this order.
var CohortColumns = []string{"department", "team", "location", "tenure_band"}

// ParseCohorts reads a cohorts CSV: the header CohortColumns, then one
// invitee's cohort per row (trustpulse invite --cohorts). Any bad row fails
// the whole file; every problem names its line.
func ParseCohorts(r io.Reader) ([]schemas.Cohort, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(CohortColumns)
	want := strings.Join(CohortColumns, ",")
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("line 1: the file is empty; want a header %s", want)
	}
	if err != nil {
		return nil, fmt.Errorf("line 1: header: %s", csvProblem(err))
	}
	head[0] = strings.TrimPrefix(head[0], "\ufeff")
	if strings.Join(head, ",") != want {
		return nil, fmt.Errorf("line 1: header must be %s", want)
	}
	var out []schemas.Cohort
	var errs []error
	err = readRecords(cr, func(line int, problem string) {
		errs = append(errs, fmt.Errorf("line %d: %s", line, problem))
	}, func(line int, rec []string) {
		c := schemas.Cohort{Department: rec[0], Team: rec[1], Location: rec[2], TenureBand: rec[3]}
		if err := c.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", line, err))
			return
		}
		out = append(out, c)
	})
	if err != nil {
		return nil, fmt.Errorf("cohorts: read: %w", err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(out) == 0 {
		return nil, errors.New("line 2: no invitees after the header")
	}
	return out, nil
}
