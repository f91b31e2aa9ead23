package query

import (
	"context"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// TrendPoint is one wave of a dimension's trend. Change and Significant
// compare it with the previous wave shown for the dimension.
type TrendPoint struct {
	WaveID     string    `json:"wave_id"`
	OpensAt    time.Time `json:"opens_at"`
	Suppressed bool      `json:"suppressed,omitempty"`
	N          *int      `json:"n,omitempty"`
	Mean       *float64  `json:"mean,omitempty"`
	Favorable  *float64  `json:"favorable,omitempty"`
	ENPS       *float64  `json:"enps,omitempty"`
	// Change is the difference of the mean from the previous shown wave.
	Change *float64 `json:"change,omitempty"`
	// Significant says whether Change is unlikely to be chance: a Welch
	// t-test on the answers of both waves at the 95% level.
	Significant *bool `json:"significant,omitempty"`
}

// Trend is a dimension across waves.
type Trend struct {
	Dimension string       `json:"dimension"`
	Points    []TrendPoint `json:"points"`
}

// trendsHandler serves every dimension across the released waves, oldest
// first, optionally within attribute filters.
func (s *Server) trendsHandler(c *fiber.Ctx) error {
	org := c.Params("org")
	filter, _, err := sliceRequest(c, "format") // no group_by: refused as unknown
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 30*time.Second)
	defer cancel()
	out, err := s.Trends(ctx, org, filter)
	if err != nil {
		return err
	}
	if wantsCSV(c) {
		setCSVHeaders(c, org+"-trends.csv")
		return WriteTrendsCSV(c.Response().BodyWriter(), out)
	}
	return c.JSON(fiber.Map{"org": org, "filter": filterMap(filter), "trends": out})
}

// Trends computes every dimension across the released waves, oldest first.
// Different waves hold different answers, so a trend is never refused
// because the number of respondents changes between waves; each point
// passes the guard in its own wave, all in one decision.
func (s *Server) Trends(ctx context.Context, org string, filter []Clause) ([]Trend, error) {
	waves, err := s.ReleasedWaves(ctx, org)
	if err != nil {
		return nil, err
	}
	scopes := make([]Scope, len(waves))
	for i, w := range waves {
		scopes[i] = NewScope([]WaveInfo{w}, filter, s.guard.K)
	}
	results, err := s.ScoresBatch(ctx, org, scopes, "")
	if err != nil {
		return nil, err
	}
	trends := map[string]*Trend{}
	last := map[string]Score{}
	for i, w := range waves {
		for _, d := range results[i].Dimensions {
			t := trends[d.Dimension]
			if t == nil {
				t = &Trend{Dimension: d.Dimension}
				trends[d.Dimension] = t
			}
			p := TrendPoint{WaveID: w.ID, OpensAt: w.OpensAt, Suppressed: d.Suppressed, N: d.N, Mean: d.Mean, Favorable: d.Favorable, ENPS: d.ENPS}
			if !d.Suppressed {
				if prev, ok := last[d.Dimension]; ok {
					p.Change = round(*d.Mean-*prev.Mean, 2)
					sig := welchSignificant(prev, d)
					p.Significant = &sig
				}
				last[d.Dimension] = d
			}
			t.Points = append(t.Points, p)
		}
	}
	out := []Trend{}
	for _, dim := range schemas.Dimensions {
		if t := trends[string(dim)]; t != nil {
			out = append(out, *t)
		}
	}
	return out, nil
}

// ReleasedWaves returns an organisation's waves whose results may be
// served, oldest first.
func (s *Server) ReleasedWaves(ctx context.Context, org string) ([]WaveInfo, error) {
	waves, cp, err := s.wavesAndCheckpoint(ctx, org)
	if err != nil {
		return nil, err
	}
	waves = slices.DeleteFunc(slices.Clone(waves), func(w WaveInfo) bool { return !released(w, cp) })
	slices.SortFunc(waves, func(a, b WaveInfo) int { return a.OpensAt.Compare(b.OpensAt) })
	return waves, nil
}

// WriteTrendsCSV writes trends as CSV, one row per dimension and wave.
func WriteTrendsCSV(w io.Writer, trends []Trend) error {
	t := newCSV(w, "dimension", "wave_id", "opens_at", "suppressed", "n", "mean", "favorable", "enps", "change", "significant")
	for _, tr := range trends {
		for _, p := range tr.Points {
			sig := ""
			if p.Significant != nil {
				sig = strconv.FormatBool(*p.Significant)
			}
			t.row(tr.Dimension, p.WaveID, p.OpensAt.Format(time.RFC3339), strconv.FormatBool(p.Suppressed), inum(p.N), fnum(p.Mean), fnum(p.Favorable), fnum(p.ENPS), fnum(p.Change), sig)
		}
	}
	return t.close()
}

// clauses is the filter of a served filter map.
func clauses(filter map[string]string) []Clause {
	var out []Clause
	for _, a := range sortedAttrs() {
		if v, ok := filter[a]; ok {
			out = append(out, Clause{Attr: a, Values: []string{v}})
		}
	}
	return out
}

// filterMap is a filter as served: attribute → value, or nil.
func filterMap(filter []Clause) map[string]string {
	if len(filter) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, c := range filter {
		out[c.Attr] = c.Values[0]
	}
	return out
}

// welchSignificant reports whether two cells' means differ at the 95% level
// (|t| > 1.96, normal approximation of Welch's t-test on the answers).
func welchSignificant(a, b Score) bool {
	if a.answers < 2 || b.answers < 2 {
		return false
	}
	se := math.Sqrt(a.variance/float64(a.answers) + b.variance/float64(b.answers))
	if se == 0 || math.IsNaN(se) {
		return false
	}
	return math.Abs(*b.Mean-*a.Mean)/se > 1.96
}
