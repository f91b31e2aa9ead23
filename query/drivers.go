package query

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// MinDriverRespondents is the fewest respondents a driver's correlation is
// computed from: below it a correlation means little.
const MinDriverRespondents = 30

const (
	sqlSurveyDrivers = `SELECT argMax(question_ids, seq), argMax(dimensions, seq), argMax(drivers, seq)
FROM surveys WHERE org = ? AND survey_id = ?`
	// Per respondent: the outcome (mean of the outcome questions) and the
	// driver (mean of its questions); then their correlation over the
	// respondents who answered both.
	sqlDriverCorrelation = `SELECT corr(outcome, driver), count() FROM (
    SELECT response_id,
        avgIf(value, question_id IN ?) AS outcome,
        avgIf(value, question_id IN ?) AS driver
    FROM answers WHERE org = ? AND wave_id = ? AND seq < ? GROUP BY response_id
) WHERE isFinite(outcome) AND isFinite(driver)`
)

// DriverImpact is one driver's correlation with the outcome.
type DriverImpact struct {
	Driver     string   `json:"driver"`
	Suppressed bool     `json:"suppressed,omitempty"`
	N          *int     `json:"n,omitempty"`
	R          *float64 `json:"r,omitempty"`
	// CILow and CIHigh bound r at 95% (Fisher's z).
	CILow  *float64 `json:"ci_low,omitempty"`
	CIHigh *float64 `json:"ci_high,omitempty"`
}

// driversHandler serves the impact of each driver of a released wave: the
// correlation, across respondents, of their driver score with their
// engagement index (or, when the survey has no engagement index items, with
// their eNPS answer), with a 95% confidence interval. A driver is shown only
// with at least MinDriverRespondents (and the threshold) respondents.
func (s *Server) driversHandler(c *fiber.Ctx) error {
	org := c.Params("org")
	if err := onlyParams(c, "format"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 20*time.Second)
	defer cancel()
	w, err := s.ReleasedWave(ctx, org, c.Params("wave"))
	if err != nil {
		return err
	}
	res, err := s.Drivers(ctx, org, w)
	if err != nil {
		return err
	}
	return send(c, res)
}

// FileName names the result's CSV download.
func (r DriversResult) FileName() string { return r.Org + "-" + r.WaveID + "-drivers.csv" }

// WriteCSV writes the result as CSV, one row per driver.
func (r DriversResult) WriteCSV(w io.Writer) error {
	t := newCSV(w, "wave_id", "outcome", "driver", "suppressed", "n", "r", "ci_low", "ci_high")
	for _, d := range r.Drivers {
		t.row(r.WaveID, r.Outcome, d.Driver, strconv.FormatBool(d.Suppressed), inum(d.N), fnum(d.R), fnum(d.CILow), fnum(d.CIHigh))
	}
	return t.close()
}

// DriversResult is the result of GET .../waves/{wave}/drivers.
type DriversResult struct {
	Org    string `json:"org"`
	WaveID string `json:"wave_id"`
	// Outcome is what the drivers are correlated with: engagement, or enps
	// when the survey has no engagement index items.
	Outcome        string         `json:"outcome"`
	MinRespondents int            `json:"min_respondents"`
	Drivers        []DriverImpact `json:"drivers"`
}

// Drivers computes the impact of each driver of a released wave.
// Driver impact stands on the wave's whole set of respondents (a
// correlation over all of them, and its n), which the guard decides like
// any other set.
func (s *Server) Drivers(ctx context.Context, org string, w WaveInfo) (DriversResult, error) {
	key := org + "|" + w.ID + "@" + strconv.FormatUint(w.SealSeq, 10)
	res, ok := s.driverResults.get(key)
	if !ok {
		var err error
		if res, err = s.drivers(ctx, org, w); err != nil {
			return res, err
		}
		s.driverResults.put(key, res)
	}
	served, err := s.decideSets(ctx, org, []servedSet{{ref: "wave", waves: []WaveInfo{w}}})
	if err != nil {
		return DriversResult{}, err
	}
	if !served["wave"] {
		hidden := res
		hidden.Drivers = make([]DriverImpact, len(res.Drivers))
		for i, d := range res.Drivers {
			hidden.Drivers[i] = DriverImpact{Driver: d.Driver, Suppressed: true}
		}
		return hidden, nil
	}
	return res, nil
}

func (s *Server) drivers(ctx context.Context, org string, w WaveInfo) (DriversResult, error) {
	var ids, dims, drivers []string
	if err := s.store.ch.QueryRow(ctx, sqlSurveyDrivers, org, w.SurveyID).Scan(&ids, &dims, &drivers); err != nil {
		return DriversResult{}, fmt.Errorf("query: survey drivers: %w", err)
	}
	var outcome []string
	outcomeName := "engagement"
	for i, d := range dims {
		if d == string(schemas.Engagement) {
			outcome = append(outcome, ids[i])
		}
	}
	if len(outcome) == 0 {
		outcomeName = "enps"
		for i, d := range dims {
			if d == string(schemas.ENPS) {
				outcome = append(outcome, ids[i])
			}
		}
	}
	if len(outcome) == 0 {
		return DriversResult{}, schemas.Errorf(http.StatusConflict, "no_outcome", "the survey of wave %s has neither engagement index nor eNPS questions", w.ID)
	}
	byDriver := map[string][]string{}
	var order []string
	for i, d := range drivers {
		if d == "" || dims[i] == string(schemas.Engagement) || dims[i] == string(schemas.ENPS) || dims[i] == string(schemas.Comment) {
			continue
		}
		if _, ok := byDriver[d]; !ok {
			order = append(order, d)
		}
		byDriver[d] = append(byDriver[d], ids[i])
	}
	res := DriversResult{Org: org, WaveID: w.ID, Outcome: outcomeName, MinRespondents: max(MinDriverRespondents, w.threshold(s.guard.K)), Drivers: []DriverImpact{}}
	for _, d := range order {
		var r float64
		var n uint64
		if err := s.store.ch.QueryRow(ctx, sqlDriverCorrelation, groupSet(outcome), groupSet(byDriver[d]),
			org, w.ID, w.SealSeq).Scan(&r, &n); err != nil {
			return DriversResult{}, fmt.Errorf("query: driver %s: %w", d, err)
		}
		res.Drivers = append(res.Drivers, driverImpact(d, r, int(n), res.MinRespondents))
	}
	return res, nil
}

func driverImpact(driver string, r float64, n, minN int) DriverImpact {
	di := DriverImpact{Driver: strings.TrimSpace(driver)}
	if n < minN || math.IsNaN(r) || math.IsInf(r, 0) {
		di.Suppressed = true
		return di
	}
	di.N, di.R = &n, round(r, 3)
	z, se := math.Atanh(math.Max(-0.999999, math.Min(0.999999, r))), 1/math.Sqrt(float64(n-3))
	di.CILow, di.CIHigh = round(math.Tanh(z-1.96*se), 3), round(math.Tanh(z+1.96*se), 3)
	return di
}
