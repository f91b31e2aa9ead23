package query

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// Scope is the response set a result stands on: the released waves it
// covers and the attribute filters its responses match.
type Scope struct {
	// Waves are released waves, sorted by id.
	Waves []WaveInfo
	// Filter holds at most one clause per attribute, sorted by attribute,
	// each with one value.
	Filter []Clause
	// K is the threshold: the highest of the waves' own.
	K int
}

// Clause selects responses whose attribute (a key of GroupColumns) is one
// of Values, or, with Attr ReportsTo, whose stored reporting line holds one
// of Values; with Not, the responses it would not select. Requests never
// carry Not (parseSlice): only results built here do (PlanImpact).
type Clause struct {
	Attr   string
	Values []string
	Not    bool
}

// WaveIDs returns the ids of the scope's waves, sorted.
func (sc Scope) WaveIDs() []string {
	out := make([]string, len(sc.Waves))
	for i, w := range sc.Waves {
		out[i] = w.ID
	}
	return out
}

// Unfiltered returns the scope without its filters: the organisation
// overall over the same waves.
func (sc Scope) Unfiltered() Scope { sc.Filter = nil; return sc }

// where is the SQL condition selecting the scope's rows of answers or
// invitations (after "org = ? AND"), and its arguments. Only rows projected
// before a wave's seal count.
func (sc Scope) where() (string, []any) {
	var waves []string
	var args []any
	for _, w := range sc.Waves {
		waves = append(waves, "(wave_id = ? AND seq < ?)")
		args = append(args, w.ID, w.SealSeq)
	}
	cond := "(" + strings.Join(waves, " OR ") + ")"
	if p, pargs := predicateSQL(sc.Filter, ""); p != "" {
		cond += " AND " + p
		args = append(args, pargs...)
	}
	return cond, args
}

// predicateSQL is the SQL conjunction of clauses ("" for none) over
// columns named prefix+column, and its arguments. Only GroupColumns names
// (and the line's column, for ReportsTo) reach SQL; values are bound.
func predicateSQL(clauses []Clause, prefix string) (string, []any) {
	var parts []string
	var args []any
	for _, c := range clauses {
		var part string
		if c.Attr == ReportsTo {
			part = "hasAny(" + prefix + "managers, ?)"
			args = append(args, slices.Clone(c.Values))
		} else {
			part = prefix + GroupColumns[c.Attr] + " IN ?"
			args = append(args, groupSet(c.Values))
		}
		if c.Not {
			part = "NOT (" + part + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, " AND "), args
}

// groupSet binds strings as a SQL tuple, for IN.
func groupSet(values []string) clickhouse.GroupSet {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = v
	}
	return clickhouse.GroupSet{Value: out}
}

// threshold returns a wave's threshold, or def for a wave opened before
// thresholds were per organisation.
func (w WaveInfo) threshold(def int) int {
	if w.Threshold > 0 {
		return w.Threshold
	}
	return def
}

// NewScope builds the scope of released waves and a filter; def is the
// threshold of waves opened before thresholds were per organisation.
func NewScope(waves []WaveInfo, filter []Clause, def int) Scope {
	sc := Scope{Waves: slices.Clone(waves), Filter: filter}
	slices.SortFunc(sc.Waves, func(a, b WaveInfo) int { return strings.Compare(a.ID, b.ID) })
	for _, w := range sc.Waves {
		sc.K = max(sc.K, w.threshold(def))
	}
	return sc
}

// sliceRequest reads the group-by attribute and the attribute filters of a
// request (?department=Sales&group_by=team) with parseSlice, for the
// caller's role.
func sliceRequest(c *fiber.Ctx, extra ...string) (filter []Clause, groupBy string, err error) {
	return parseSlice(c.Context().QueryArgs(), principalOf(c), extra...)
}

// onlyParams refuses query parameters an endpoint does not take (see
// checkParams).
func onlyParams(c *fiber.Ctx, allowed ...string) error {
	return checkParams(c.Context().QueryArgs(), allowed...)
}

// sliceParams are the parameters of an endpoint that takes filters, plus
// extra.
func sliceParams(extra ...string) []string { return append(sortedAttrs(), extra...) }

// sortedAttrs are the filter attributes, sorted: GroupColumns' and
// ReportsTo.
func sortedAttrs() []string {
	out := make([]string, 0, len(GroupColumns)+1)
	for a := range GroupColumns {
		out = append(out, a)
	}
	out = append(out, ReportsTo)
	slices.Sort(out)
	return out
}

// released reports whether a wave's scores may be served: closed, sealed
// (every response released by the mixer) and projected up to its seal.
func released(w WaveInfo, checkpoint uint64) bool {
	return w.Closed() && w.SealSeq > 0 && checkpoint >= w.SealSeq
}

// ReleasedWave returns a wave whose scores may be served: 400 for a
// malformed id, 404 for an unknown wave, 409 while it is open, 503 until
// its responses are released and projected.
func (s *Server) ReleasedWave(ctx context.Context, org, waveID string) (WaveInfo, error) {
	if !schemas.ValidID(waveID) {
		return WaveInfo{}, schemas.Errorf(http.StatusBadRequest, "invalid_id", "wave id is malformed")
	}
	waves, cp, err := s.wavesAndCheckpoint(ctx, org)
	if err != nil {
		return WaveInfo{}, err
	}
	for _, w := range waves {
		if w.ID != waveID {
			continue
		}
		switch {
		case !w.Closed():
			return WaveInfo{}, schemas.Errorf(http.StatusConflict, "wave_open",
				"wave %s is still open; its scores are released once it closes", waveID)
		case !released(w, cp):
			return WaveInfo{}, schemas.Errorf(http.StatusServiceUnavailable, "results_pending",
				"wave %s closed moments ago; its results are being prepared, try again shortly", waveID)
		}
		return w, nil
	}
	return WaveInfo{}, schemas.Errorf(http.StatusNotFound, "wave_not_found", "wave %s not found", waveID)
}

// MaxPeriodWaves bounds the waves one period result covers.
const MaxPeriodWaves = 52

// periodWaves reads the waves of a period request: ?waves=a,b (each must be
// released) or ?from=YYYY-MM-DD&to=YYYY-MM-DD (the released waves opening
// on those days or between them).
func (s *Server) periodWaves(ctx context.Context, c *fiber.Ctx, org string) ([]WaveInfo, error) {
	per, err := parsePeriod(c.Context().QueryArgs())
	if err != nil {
		return nil, err
	}
	if per.Waves != nil {
		var out []WaveInfo
		for _, id := range per.Waves {
			w, err := s.ReleasedWave(ctx, org, id)
			if err != nil {
				return nil, err
			}
			out = append(out, w)
		}
		return out, nil
	}
	waves, cp, err := s.wavesAndCheckpoint(ctx, org)
	if err != nil {
		return nil, err
	}
	var out []WaveInfo
	for _, w := range waves {
		if released(w, cp) && !w.OpensAt.Before(per.From) && w.OpensAt.Before(per.To.AddDate(0, 0, 1)) {
			out = append(out, w)
		}
	}
	if len(out) == 0 {
		return nil, schemas.Errorf(http.StatusNotFound, "no_waves", "no wave with released results opened between %s and %s",
			per.From.Format(time.DateOnly), per.To.Format(time.DateOnly))
	}
	if len(out) > MaxPeriodWaves {
		return nil, schemas.Errorf(http.StatusBadRequest, "invalid_period", "the period holds more than %d waves; choose a shorter one", MaxPeriodWaves)
	}
	return out, nil
}

// String names the scope in logs and file names.
func (sc Scope) String() string {
	s := strings.Join(sc.WaveIDs(), "+")
	for _, c := range sc.Filter {
		not := ""
		if c.Not {
			not = "not-"
		}
		s += fmt.Sprintf("_%s%s-%s", not, c.Attr, strings.Join(c.Values, "-"))
	}
	return s
}
