package query

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/trustpulse/trustpulse/schemas"
)

// Store reads the projections. Its methods read like questions.
type Store struct {
	ch driver.Conn
}

// NewStore returns a Store over a ClickHouse connection.
func NewStore(ch driver.Conn) *Store { return &Store{ch: ch} }

// WaveInfo is a wave as the projections know it.
type WaveInfo struct {
	ID       string
	SurveyID string
	OpensAt  time.Time
	ClosesAt time.Time
	// CloseSeq is the stream sequence of the WaveClosed event; 0 while open.
	CloseSeq uint64
	// SealSeq is the stream sequence of the WaveSealed event, which follows
	// the wave's last response; 0 until the mixer has released them all.
	// Only events before it count.
	SealSeq uint64
	// Threshold is the wave's reporting threshold, fixed when it opened; 0
	// for a wave opened before thresholds were per organisation.
	Threshold int
}

// Closed reports whether the wave has been closed.
func (w WaveInfo) Closed() bool { return w.CloseSeq > 0 }

// GroupColumns are the attributes a result may be grouped by, mapped to
// their columns. Only these names ever reach SQL. manager is the direct
// manager's person id of the stored cohort: a group of manager = M is M's
// direct reports (their answers count for M's group, never for their own
// as managers); the group "" holds whoever has no direct manager stored
// (none in the roster, or generalised away).
var GroupColumns = map[string]string{
	"department":  "department",
	"team":        "team",
	"location":    "location",
	"tenure_band": "tenure_band",
	"manager":     "manager",
}

// ReportsTo is the filter (not a group: its sets overlap) of everyone a
// person manages at any depth: the stored reporting line holds them.
const ReportsTo = "reports_to"

// The SQL this package issues. Statements() lists them for the
// compatibility test against current ClickHouse. In the templates, %[1]s is
// the group expression (a column of GroupColumns, or ”) and %[2]s the
// scope's condition (Scope.where).
const (
	sqlWaves = `SELECT wave_id, argMax(survey_id, seq), argMax(opens_at, seq), argMax(closes_at, seq)
FROM waves WHERE org = ? GROUP BY wave_id ORDER BY wave_id`
	sqlClosures   = `SELECT wave_id, min(seq) FROM wave_closures WHERE org = ? GROUP BY wave_id`
	sqlSeals      = `SELECT wave_id, min(seq) FROM wave_seals WHERE org = ? GROUP BY wave_id`
	sqlThresholds = `SELECT wave_id, toUInt64(argMin(threshold, seq)) FROM wave_thresholds WHERE org = ? GROUP BY wave_id`
	sqlCheckpoint = `SELECT max(seq) FROM projector_checkpoint WHERE consumer = ?`
	sqlSurvey     = `SELECT argMax(question_ids, seq), argMax(question_texts, seq), argMax(dimensions, seq), argMax(drivers, seq)
FROM surveys WHERE org = ? AND survey_id = ?`
	sqlAttributeValues = `SELECT groupUniqArray(department), groupUniqArray(team), groupUniqArray(location), groupUniqArray(tenure_band)
FROM invitations WHERE org = ?`
	sqlInvitedBy        = `SELECT %[1]s AS grp, count() FROM invitations WHERE org = ? AND %[2]s GROUP BY grp`
	sqlGroupRespondents = `SELECT %[1]s AS grp, uniqExact(response_id) AS n
FROM answers WHERE org = ? AND %[2]s GROUP BY grp`
	// The answers' distribution: dist[v] answers of value v, 0 to 10.
	cellAggregates = `uniqExact(response_id) AS n, avg(value) AS mean, varSamp(value) AS variance,
    [countIf(value = 0), countIf(value = 1), countIf(value = 2), countIf(value = 3), countIf(value = 4), countIf(value = 5),
     countIf(value = 6), countIf(value = 7), countIf(value = 8), countIf(value = 9), countIf(value = 10)] AS dist`
	sqlDimensionCells = `SELECT %[1]s AS grp, dimension, ` + cellAggregates + `
FROM answers WHERE org = ? AND %[2]s GROUP BY grp, dimension`
	sqlQuestionCells = `SELECT question_id, any(dimension), ` + cellAggregates + `
FROM answers WHERE org = ? AND %[2]s GROUP BY question_id`
	// %[3]s is the driver expression: transform(question_id, ids, drivers, '').
	sqlDriverCells = `SELECT %[3]s AS driver, any(dimension), ` + cellAggregates + `
FROM answers WHERE org = ? AND %[2]s AND driver != '' GROUP BY driver`
)

// exampleScope is the scope the compatibility test's statements run over.
var exampleScope = Scope{Waves: []WaveInfo{{ID: "w1", SealSeq: 100}, {ID: "w2", SealSeq: 200}},
	Filter: []Clause{{Attr: "department", Values: []string{"Engineering"}}}, K: 5}

// Statements returns every query the package issues, with example
// arguments, each group expression spelled out.
func Statements() []schemas.Statement {
	org, wave := "acme", "w1"
	where, whereArgs := exampleScope.where()
	scoped := func(name, template, group string) schemas.Statement {
		return schemas.Statement{Name: name, SQL: fmt.Sprintf(template, group, where), Args: append([]any{org}, whereArgs...)}
	}
	out := []schemas.Statement{
		{Name: "waves", SQL: sqlWaves, Args: []any{org}},
		{Name: "closures", SQL: sqlClosures, Args: []any{org}},
		{Name: "seals", SQL: sqlSeals, Args: []any{org}},
		{Name: "thresholds", SQL: sqlThresholds, Args: []any{org}},
		{Name: "checkpoint", SQL: sqlCheckpoint, Args: []any{"projector-clickhouse"}},
		{Name: "token", SQL: sqlTokenByHash, Args: []any{"abc123"}},
		{Name: "token revoked", SQL: sqlTokenRevoked, Args: []any{"t0"}},
		{Name: "survey", SQL: sqlSurvey, Args: []any{org, "s1"}},
		{Name: "survey drivers", SQL: sqlSurveyDrivers, Args: []any{org, "s1"}},
		{Name: "attribute values", SQL: sqlAttributeValues, Args: []any{org}},
		{Name: "retention", SQL: fmt.Sprintf(sqlRetention, "department"), Args: []any{"2024-06-01", "2024-06-01", "2024-06-01", "2027-01-01", "2024-06-01", org}},
		{Name: "driver correlation", SQL: sqlDriverCorrelation, Args: []any{clickhouse.GroupSet{Value: []any{"n1"}}, clickhouse.GroupSet{Value: []any{"q1"}}, org, wave, uint64(100)}},
		scoped("questions", sqlQuestionCells, ""),
		{Name: "drivers", SQL: fmt.Sprintf(sqlDriverCells, "", where, driverExpr), Args: append([]any{[]string{"q1", "q2"}, []string{"support", "growth"}, org}, whereArgs...)},
		{Name: "comments", SQL: fmt.Sprintf(sqlComments, where), Args: append(append([]any{org, "c1"}, whereArgs...), uint64(MaxComments+1))},
		{Name: "response types", SQL: sqlWaveTypes, Args: []any{org, wave, uint64(100)}},
		{Name: "organisations", SQL: sqlOrgs},
		{Name: "respondents per manager", SQL: sqlLineRespondents, Args: []any{org, wave, uint64(100)}},
		{Name: "token name", SQL: sqlTokenName, Args: []any{org, "t1"}},
		{Name: "plan share", SQL: sqlPlanShare, Args: []any{org, wave, org}},
	}
	line := Scope{Waves: exampleScope.Waves, K: exampleScope.K, Filter: []Clause{
		{Attr: "manager", Values: []string{"7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01"}},
		{Attr: ReportsTo, Values: []string{"7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01"}},
	}}
	lineWhere, lineArgs := line.where()
	out = append(out, schemas.Statement{Name: "respondents of a reporting line", SQL: fmt.Sprintf(sqlGroupRespondents, "manager", lineWhere), Args: append([]any{org}, lineArgs...)})
	for _, g := range append([]string{"''"}, "department", "team", "location", "tenure_band", "manager") {
		out = append(out,
			scoped("respondents by "+g, sqlGroupRespondents, g),
			scoped("dimensions by "+g, sqlDimensionCells, g),
			scoped("invited by "+g, sqlInvitedBy, g))
	}
	return out
}

// Waves returns an organisation's waves by id.
func (s *Store) Waves(ctx context.Context, org string) ([]WaveInfo, error) {
	rows, err := s.ch.Query(ctx, sqlWaves, org)
	if err != nil {
		return nil, fmt.Errorf("query: waves of %s: %w", org, err)
	}
	var out []WaveInfo
	for rows.Next() {
		var w WaveInfo
		if err := rows.Scan(&w.ID, &w.SurveyID, &w.OpensAt, &w.ClosesAt); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	closes, err := s.firstSeqs(ctx, sqlClosures, org)
	if err != nil {
		return nil, err
	}
	seals, err := s.firstSeqs(ctx, sqlSeals, org)
	if err != nil {
		return nil, err
	}
	thresholds, err := s.firstSeqs(ctx, sqlThresholds, org)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].CloseSeq, out[i].SealSeq = closes[out[i].ID], seals[out[i].ID]
		out[i].Threshold = int(thresholds[out[i].ID])
	}
	return out, nil
}

// firstSeqs reads wave id → a number (the first stream sequence of a
// per-wave event table, or the wave's threshold).
func (s *Store) firstSeqs(ctx context.Context, sql, org string) (map[string]uint64, error) {
	rows, err := s.ch.Query(ctx, sql, org)
	if err != nil {
		return nil, fmt.Errorf("query: waves of %s: %w", org, err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var id string
		var seq uint64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, err
		}
		out[id] = seq
	}
	return out, rows.Err()
}

// Checkpoint returns how far the projector has got in the stream.
func (s *Store) Checkpoint(ctx context.Context, consumer string) (uint64, error) {
	var cp uint64
	if err := s.ch.QueryRow(ctx, sqlCheckpoint, consumer).Scan(&cp); err != nil {
		return 0, fmt.Errorf("query: checkpoint: %w", err)
	}
	return cp, nil
}

// AttributeValues returns, per attribute, the values invitations of an
// organisation carry, sorted: what a result may be filtered by.
func (s *Store) AttributeValues(ctx context.Context, org string) (map[string][]string, error) {
	var dept, team, loc, tenure []string
	if err := s.ch.QueryRow(ctx, sqlAttributeValues, org).Scan(&dept, &team, &loc, &tenure); err != nil {
		return nil, fmt.Errorf("query: attribute values: %w", err)
	}
	out := map[string][]string{"department": dept, "team": team, "location": loc, "tenure_band": tenure}
	for _, vs := range out {
		slices.Sort(vs)
	}
	return out, nil
}

// Questionnaire is what the surveys of a scope ask.
type Questionnaire struct {
	// Order is the question ids in survey order, the first survey's first.
	Order []string
	Text  map[string]string
	// Dimension maps a question id to its dimension.
	Dimension map[string]string
	// Drivers maps a driver to its question ids (questions of the 1–5
	// scale only).
	Drivers map[string][]string
}

// questionsOf returns the question ids a cell key's numbers are computed
// from; nil for the respondents key, which carries counts only.
func (qn Questionnaire) questionsOf(key string) []string {
	switch {
	case strings.HasPrefix(key, "dim:"):
		var out []string
		for _, q := range qn.Order {
			if qn.Dimension[q] == strings.TrimPrefix(key, "dim:") {
				out = append(out, q)
			}
		}
		return out
	case strings.HasPrefix(key, "q:"):
		return []string{strings.TrimPrefix(key, "q:")}
	case strings.HasPrefix(key, "drv:"):
		return qn.Drivers[strings.TrimPrefix(key, "drv:")]
	case strings.HasPrefix(key, "c:"):
		return []string{strings.TrimPrefix(key, "c:")}
	}
	return nil
}

// Questions returns what the surveys ask.
func (s *Store) Questions(ctx context.Context, org string, surveyIDs []string) (Questionnaire, error) {
	qn := Questionnaire{Text: map[string]string{}, Dimension: map[string]string{}, Drivers: map[string][]string{}}
	for _, id := range surveyIDs {
		var ids, ts, dims, ds []string
		if err := s.ch.QueryRow(ctx, sqlSurvey, org, id).Scan(&ids, &ts, &dims, &ds); err != nil {
			return qn, fmt.Errorf("query: survey %s: %w", id, err)
		}
		for i, q := range ids {
			if _, seen := qn.Text[q]; seen {
				continue
			}
			qn.Order = append(qn.Order, q)
			qn.Text[q] = ""
			if i < len(ts) {
				qn.Text[q] = ts[i]
			}
			if i < len(dims) {
				qn.Dimension[q] = dims[i]
			}
			// A driver groups questions on one scale: eNPS and comments are
			// outcomes and words, not drivers.
			scaled := i < len(dims) && dims[i] != string(schemas.ENPS) && dims[i] != string(schemas.Comment)
			if scaled && i < len(ds) && strings.TrimSpace(ds[i]) != "" {
				d := strings.TrimSpace(ds[i])
				qn.Drivers[d] = append(qn.Drivers[d], q)
			}
		}
	}
	return qn, nil
}

// InvitedBy counts a scope's invitations per group ("" for all).
func (s *Store) InvitedBy(ctx context.Context, org string, sc Scope, groupBy string) (map[string]int, error) {
	return s.groupCounts(ctx, sqlInvitedBy, "invitations", org, sc, groupBy)
}

// Cell is an aggregate over the answers of one group and one dimension,
// question or driver. It is raw: the guard has not seen it yet.
type Cell struct {
	Group     string
	Key       string // dimension, question id or driver
	Dimension string
	N         int // distinct respondents
	Mean      float64
	Variance  float64 // sample variance of the answers
	// Dist counts the answers of each value, 0 to 10.
	Dist [11]int
}

// Answers is the number of answers behind the cell.
func (c Cell) Answers() int {
	n := 0
	for _, d := range c.Dist {
		n += d
	}
	return n
}

// groupExpr maps a group-by attribute to its SQL expression; "" is no grouping.
func groupExpr(groupBy string) (string, error) {
	if groupBy == "" {
		return "''", nil
	}
	col, ok := GroupColumns[groupBy]
	if !ok {
		return "", fmt.Errorf("query: cannot group by %q", groupBy)
	}
	return col, nil
}

// GroupRespondents counts distinct respondents per group of a scope.
func (s *Store) GroupRespondents(ctx context.Context, org string, sc Scope, groupBy string) (map[string]int, error) {
	return s.groupCounts(ctx, sqlGroupRespondents, "respondents", org, sc, groupBy)
}

// groupCounts runs a per-group count over a scope.
func (s *Store) groupCounts(ctx context.Context, sqlTemplate, what, org string, sc Scope, groupBy string) (map[string]int, error) {
	g, err := groupExpr(groupBy)
	if err != nil {
		return nil, err
	}
	where, args := sc.where()
	rows, err := s.ch.Query(ctx, fmt.Sprintf(sqlTemplate, g, where), append([]any{org}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("query: %s of %s: %w", what, sc, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var grp string
		var n uint64
		if err := rows.Scan(&grp, &n); err != nil {
			return nil, err
		}
		out[grp] = int(n)
	}
	return out, rows.Err()
}

// DimensionCells aggregates a scope per group and dimension.
func (s *Store) DimensionCells(ctx context.Context, org string, sc Scope, groupBy string) ([]Cell, error) {
	g, err := groupExpr(groupBy)
	if err != nil {
		return nil, err
	}
	where, args := sc.where()
	return s.cells(ctx, fmt.Sprintf(sqlDimensionCells, g, where), append([]any{org}, args...), true)
}

// QuestionCells aggregates a scope per question.
func (s *Store) QuestionCells(ctx context.Context, org string, sc Scope) ([]Cell, error) {
	where, args := sc.where()
	return s.cells(ctx, fmt.Sprintf(sqlQuestionCells, "", where), append([]any{org}, args...), false)
}

// driverExpr maps a question id to its driver.
const driverExpr = "transform(question_id, ?, ?, '')"

// DriverCells aggregates a scope per driver, given the question ids of
// each driver.
func (s *Store) DriverCells(ctx context.Context, org string, sc Scope, drivers map[string][]string) ([]Cell, error) {
	if len(drivers) == 0 {
		return nil, nil
	}
	var ids, names []string
	for d, qs := range drivers {
		for _, q := range qs {
			ids, names = append(ids, q), append(names, d)
		}
	}
	where, args := sc.where()
	return s.cells(ctx, fmt.Sprintf(sqlDriverCells, "", where, driverExpr), append([]any{ids, names, org}, args...), false)
}

func (s *Store) cells(ctx context.Context, sql string, args []any, grouped bool) ([]Cell, error) {
	rows, err := s.ch.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query: aggregate: %w", err)
	}
	defer rows.Close()
	var out []Cell
	for rows.Next() {
		var c Cell
		var n uint64
		var dist []uint64
		dest := []any{&c.Key, &c.Dimension, &n, &c.Mean, &c.Variance, &dist}
		if grouped {
			dest[0] = &c.Group
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if grouped {
			c.Key = c.Dimension
		}
		c.N = int(n)
		for i := 0; i < len(dist) && i < len(c.Dist); i++ {
			c.Dist[i] = int(dist[i])
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
