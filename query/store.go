package query

import (
	"context"
	"fmt"
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
}

// Closed reports whether the wave has been closed.
func (w WaveInfo) Closed() bool { return w.CloseSeq > 0 }

// GroupColumns are the attributes a result may be grouped by, mapped to
// their columns. Only these names ever reach SQL.
var GroupColumns = map[string]string{
	"department":  "department",
	"team":        "team",
	"location":    "location",
	"tenure_band": "tenure_band",
}

// The SQL this package issues. Statements() lists them for the
// compatibility test against current ClickHouse.
const (
	sqlWaves = `SELECT wave_id, argMax(survey_id, seq), argMax(opens_at, seq), argMax(closes_at, seq)
FROM waves WHERE org = ? GROUP BY wave_id ORDER BY wave_id`
	sqlClosures   = `SELECT wave_id, min(seq) FROM wave_closures WHERE org = ? GROUP BY wave_id`
	sqlSeals      = `SELECT wave_id, min(seq) FROM wave_seals WHERE org = ? GROUP BY wave_id`
	sqlCheckpoint = `SELECT max(seq) FROM projector_checkpoint WHERE consumer = ?`
	sqlSurvey     = `SELECT argMax(question_ids, seq), argMax(question_texts, seq)
FROM surveys WHERE org = ? AND survey_id = ?`
	sqlInvited = `SELECT count() FROM invitations WHERE org = ? AND wave_id = ? AND seq < ?`
	// %[1]s is the group expression.
	sqlInvitedBy = `SELECT %[1]s AS grp, count() FROM invitations WHERE org = ? AND wave_id = ? AND seq < ? GROUP BY grp`
	// %[1]s is the group expression: a column of GroupColumns, or ''.
	sqlGroupRespondents = `SELECT %[1]s AS grp, uniqExact(response_id) AS n
FROM answers WHERE org = ? AND wave_id = ? AND seq < ? GROUP BY grp`
	sqlDimensionCells = `SELECT %[1]s AS grp, dimension, uniqExact(response_id) AS n, avg(value) AS mean,
    countIf(value >= 4) AS favorable, countIf(value >= 9) AS promoters, countIf(value <= 6) AS detractors, count() AS answers,
    varSamp(value) AS variance
FROM answers WHERE org = ? AND wave_id = ? AND seq < ? GROUP BY grp, dimension`
	sqlQuestionCells = `SELECT question_id, any(dimension), uniqExact(response_id) AS n, avg(value) AS mean,
    countIf(value >= 4) AS favorable, countIf(value >= 9) AS promoters, countIf(value <= 6) AS detractors, count() AS answers,
    varSamp(value) AS variance
FROM answers WHERE org = ? AND wave_id = ? AND seq < ? GROUP BY question_id`
)

// Statements returns every query the package issues, with example
// arguments, each group expression spelled out.
func Statements() []schemas.Statement {
	org, wave := "acme", "w1"
	out := []schemas.Statement{
		{Name: "waves", SQL: sqlWaves, Args: []any{org}},
		{Name: "closures", SQL: sqlClosures, Args: []any{org}},
		{Name: "seals", SQL: sqlSeals, Args: []any{org}},
		{Name: "checkpoint", SQL: sqlCheckpoint, Args: []any{"projector-clickhouse"}},
		{Name: "token", SQL: sqlTokenByHash, Args: []any{"abc123"}},
		{Name: "token revoked", SQL: sqlTokenRevoked, Args: []any{"t0"}},
		{Name: "survey", SQL: sqlSurvey, Args: []any{org, "s1"}},
		{Name: "survey drivers", SQL: sqlSurveyDrivers, Args: []any{org, "s1"}},
		{Name: "retention", SQL: fmt.Sprintf(sqlRetention, "department"), Args: []any{"2024-06-01", "2024-06-01", "2024-06-01", "2027-01-01", "2024-06-01", org}},
		{Name: "driver correlation", SQL: sqlDriverCorrelation, Args: []any{clickhouse.GroupSet{Value: []any{"n1"}}, clickhouse.GroupSet{Value: []any{"q1"}}, org, wave, uint64(100)}},
		{Name: "invited", SQL: sqlInvited, Args: []any{org, wave, uint64(100)}},
		{Name: "questions", SQL: sqlQuestionCells, Args: []any{org, wave, uint64(100)}},
	}
	out = append(out,
		schemas.Statement{Name: "served cells", SQL: sqlServedCells, Args: []any{org, wave, "dim:trust"}},
		schemas.Statement{Name: "intersections", SQL: fmt.Sprintf(sqlIntersections, "team", "uniqExact(response_id), uniqExactIf(response_id, department = ?)", "dimension = ?"),
			Args: []any{"Engineering", org, wave, uint64(100), "trust"}})
	for _, g := range append([]string{"''"}, "department", "team", "location", "tenure_band") {
		out = append(out,
			schemas.Statement{Name: "respondents by " + g, SQL: fmt.Sprintf(sqlGroupRespondents, g), Args: []any{org, wave, uint64(100)}},
			schemas.Statement{Name: "dimensions by " + g, SQL: fmt.Sprintf(sqlDimensionCells, g), Args: []any{org, wave, uint64(100)}},
			schemas.Statement{Name: "invited by " + g, SQL: fmt.Sprintf(sqlInvitedBy, g), Args: []any{org, wave, uint64(100)}})
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
	for i := range out {
		out[i].CloseSeq, out[i].SealSeq = closes[out[i].ID], seals[out[i].ID]
	}
	return out, nil
}

// firstSeqs reads wave id → first stream sequence of a per-wave event table.
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

// Questions returns a survey's question ids in survey order and their
// texts by id.
func (s *Store) Questions(ctx context.Context, org, surveyID string) ([]string, map[string]string, error) {
	var ids, texts []string
	if err := s.ch.QueryRow(ctx, sqlSurvey, org, surveyID).Scan(&ids, &texts); err != nil {
		return nil, nil, fmt.Errorf("query: survey %s: %w", surveyID, err)
	}
	byID := make(map[string]string, len(ids))
	for i, id := range ids {
		if i < len(texts) {
			byID[id] = texts[i]
		}
	}
	return ids, byID, nil
}

// Invited counts a wave's invitations issued before it was sealed.
func (s *Store) Invited(ctx context.Context, org string, w WaveInfo) (int, error) {
	var n uint64
	if err := s.ch.QueryRow(ctx, sqlInvited, org, w.ID, w.SealSeq).Scan(&n); err != nil {
		return 0, fmt.Errorf("query: invitations of %s: %w", w.ID, err)
	}
	return int(n), nil
}

// InvitedBy counts a sealed wave's invitations per group.
func (s *Store) InvitedBy(ctx context.Context, org string, w WaveInfo, groupBy string) (map[string]int, error) {
	return s.groupCounts(ctx, sqlInvitedBy, "invitations", org, w, groupBy)
}

// Cell is an aggregate over the answers of one group and one dimension or
// question. It is raw: the guard has not seen it yet.
type Cell struct {
	Group      string
	Key        string // dimension, or question id
	Dimension  string
	N          int // distinct respondents
	Mean       float64
	Favorable  int // answers of 4 or 5 (agreement scale)
	Promoters  int // answers of 9 or 10 (eNPS)
	Detractors int // answers of 0 to 6 (eNPS)
	Answers    int
	Variance   float64 // sample variance of the answers
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

// GroupRespondents counts distinct respondents per group of a sealed wave.
func (s *Store) GroupRespondents(ctx context.Context, org string, w WaveInfo, groupBy string) (map[string]int, error) {
	return s.groupCounts(ctx, sqlGroupRespondents, "respondents", org, w, groupBy)
}

// groupCounts runs a per-group count (a SQL template whose %[1]s is the
// group expression) over a sealed wave.
func (s *Store) groupCounts(ctx context.Context, sqlTemplate, what, org string, w WaveInfo, groupBy string) (map[string]int, error) {
	g, err := groupExpr(groupBy)
	if err != nil {
		return nil, err
	}
	rows, err := s.ch.Query(ctx, fmt.Sprintf(sqlTemplate, g), org, w.ID, w.SealSeq)
	if err != nil {
		return nil, fmt.Errorf("query: %s of %s: %w", what, w.ID, err)
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

// DimensionCells aggregates a sealed wave per group and dimension.
func (s *Store) DimensionCells(ctx context.Context, org string, w WaveInfo, groupBy string) ([]Cell, error) {
	g, err := groupExpr(groupBy)
	if err != nil {
		return nil, err
	}
	return s.cells(ctx, fmt.Sprintf(sqlDimensionCells, g), org, w, true)
}

// QuestionCells aggregates a sealed wave per question, organisation-wide.
func (s *Store) QuestionCells(ctx context.Context, org string, w WaveInfo) ([]Cell, error) {
	return s.cells(ctx, sqlQuestionCells, org, w, false)
}

func (s *Store) cells(ctx context.Context, sql, org string, w WaveInfo, grouped bool) ([]Cell, error) {
	rows, err := s.ch.Query(ctx, sql, org, w.ID, w.SealSeq)
	if err != nil {
		return nil, fmt.Errorf("query: aggregate %s: %w", w.ID, err)
	}
	defer rows.Close()
	var out []Cell
	for rows.Next() {
		var c Cell
		var n, fav, pro, det, ans uint64
		dest := []any{&c.Key, &c.Dimension, &n, &c.Mean, &fav, &pro, &det, &ans, &c.Variance}
		if grouped {
			dest = append([]any{&c.Group}, &c.Dimension, &n, &c.Mean, &fav, &pro, &det, &ans, &c.Variance)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if grouped {
			c.Key = c.Dimension
		}
		c.N, c.Favorable, c.Promoters, c.Detractors, c.Answers = int(n), int(fav), int(pro), int(det), int(ans)
		out = append(out, c)
	}
	return out, rows.Err()
}
