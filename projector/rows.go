package projector

import (
	"fmt"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// rowTables are the tables a batch writes, in parallel (insertAll says why
// any order is safe, projected_events' among them).
var rowTables = []string{"surveys", "waves", "wave_thresholds", "wave_closures", "wave_seals", "invitations", "roster_events", "api_tokens", "api_token_revocations", "answers", "comments", "comment_thread", "action_plans", "projected_events"}

// insertSQL is each table's INSERT. Column lists are explicit: ClickHouse
// 18.16 refuses a batch insert without one.
var insertSQL = map[string]string{
	"surveys":               "INSERT INTO surveys (org, survey_id, title, question_ids, question_texts, dimensions, drivers, seq, proj_part)",
	"waves":                 "INSERT INTO waves (org, wave_id, survey_id, opens_at, closes_at, seq, proj_part)",
	"wave_thresholds":       "INSERT INTO wave_thresholds (org, wave_id, threshold, seq, proj_part)",
	"wave_closures":         "INSERT INTO wave_closures (org, wave_id, seq, proj_part)",
	"wave_seals":            "INSERT INTO wave_seals (org, wave_id, seq, proj_part)",
	"invitations":           "INSERT INTO invitations (org, wave_id, department, team, location, tenure_band, managers, manager, seq, proj_part)",
	"roster_events":         "INSERT INTO roster_events (org, person_id, kind, department, team, location, start_date, left_on, manager_person_id, seq, proj_part)",
	"api_tokens":            "INSERT INTO api_tokens (org, token_id, hash, role, name, person_id, seq, proj_part)",
	"api_token_revocations": "INSERT INTO api_token_revocations (org, token_id, seq, proj_part)",
	"answers":               "INSERT INTO answers (org, wave_id, survey_id, question_id, dimension, value, response_id, department, team, location, tenure_band, managers, manager, response_date, seq, proj_part)",
	"comments":              "INSERT INTO comments (org, wave_id, survey_id, question_id, text, department, team, location, tenure_band, managers, manager, comment_id, reply_hash, seq, proj_part)",
	"comment_thread":        "INSERT INTO comment_thread (org, wave_id, comment_id, entry_id, kind, text, token_id, role, person_id, day, seq, proj_part)",
	"action_plans":          "INSERT INTO action_plans (org, plan_id, wave_id, manager, kind, focus_drivers, commitments, token_id, role, author_name, author_person, at, seq, proj_part)",
	"projected_events":      "INSERT INTO projected_events (event_id, seq, proj_part)",
}

// The projector's reads. sqlLookupProjected reads a batch's ids from the
// external table it names (%s; lookupProjected).
const (
	sqlLookupProjected  = "SELECT event_id, min(seq) FROM projected_events WHERE event_id IN %s GROUP BY event_id"
	sqlCheckpoint       = "SELECT max(seq) FROM projector_checkpoint WHERE consumer = ?"
	sqlHighWaterMark    = "SELECT max(seq) FROM %s WHERE proj_part = ?"
	sqlHighWaterMarkAll = "SELECT max(seq) FROM %s"
)

// InsertStatements returns every INSERT the projector issues, by table, for
// the compatibility test against current ClickHouse.
func InsertStatements() map[string]string { return insertSQL }

// Statements returns every other statement the projector and a replay
// issue, with example arguments.
func Statements() []schemas.Statement {
	out := []schemas.Statement{
		{Name: "lookup projected", SQL: fmt.Sprintf(sqlLookupProjected, "batch_ids_1"), External: &schemas.ExternalTable{Name: "batch_ids_1", Structure: "event_id String", Rows: []string{"('e1')", "('e2')"}}},
		{Name: "checkpoint", SQL: sqlCheckpoint, Args: []any{schemas.ProjectorConsumer}},
		{Name: "hash probe", SQL: sqlHashProbe},
		{Name: "count projected event ids", SQL: sqlCountIDs},
		{Name: "projected event id hashes", SQL: sqlProjectedIDs},
	}
	for _, t := range rowTables {
		out = append(out, schemas.Statement{Name: "high-water mark of " + t, SQL: fmt.Sprintf(sqlHighWaterMark, t), Args: []any{uint16(0)}},
			schemas.Statement{Name: "replay's high-water mark of " + t, SQL: fmt.Sprintf(sqlHighWaterMarkAll, t)})
	}
	for _, t := range schemas.ProjectionTables {
		for i, q := range emptyTableSQL(t) {
			out = append(out, schemas.Statement{Name: fmt.Sprintf("empty %s (%d)", t, i+1), SQL: q})
		}
	}
	return out
}

// row is one row for one table, tagged with its event's stream sequence.
type row struct {
	seq    uint64
	values []any
}

// buildRows turns a batch of events into rows per table; partOf gives the
// proj_part every row of an organisation carries, last.
func buildRows(evs []delivered, partOf func(org string) uint16) (map[string][]row, error) {
	out := map[string][]row{}
	var part uint16
	add := func(t string, seq uint64, vals ...any) {
		out[t] = append(out[t], row{seq: seq, values: append(vals, part)})
	}
	for _, d := range evs {
		e, seq := d.env, d.seq
		part = partOf(e.OrgID)
		add("projected_events", seq, e.ID.String(), seq)
		switch e.Type {
		case schemas.SurveyPublishedType:
			s, err := schemas.DecodePayload[schemas.SurveyPublished](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			var ids, texts, dims, drivers []string
			for _, q := range s.Questions {
				ids, texts = append(ids, q.ID), append(texts, q.Text)
				dims, drivers = append(dims, string(q.Dimension)), append(drivers, q.Driver)
			}
			add("surveys", seq, e.OrgID, s.SurveyID, s.Title, ids, texts, dims, drivers, seq)
		case schemas.WaveOpenedType:
			w, err := schemas.DecodePayload[schemas.WaveOpened](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			add("waves", seq, e.OrgID, w.WaveID, w.SurveyID, w.OpensAt.UTC(), w.ClosesAt.UTC(), seq)
			if w.Threshold > 0 {
				add("wave_thresholds", seq, e.OrgID, w.WaveID, uint8(w.Threshold), seq)
			}
		case schemas.WaveClosedType:
			w, err := schemas.DecodePayload[schemas.WaveClosed](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			add("wave_closures", seq, e.OrgID, w.WaveID, seq)
		case schemas.WaveSealedType:
			w, err := schemas.DecodePayload[schemas.WaveSealed](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			add("wave_seals", seq, e.OrgID, w.WaveID, seq)
		case schemas.EmployeeJoinedType, schemas.EmployeeUpdatedType:
			p, err := schemas.DecodePayload[schemas.EmployeeJoined](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			start, err := time.Parse(schemas.DateLayout, p.StartDate)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: start date: %w", seq, err)
			}
			add("roster_events", seq, e.OrgID, p.PersonID, string(e.Type), p.Department, p.Team, p.Location, start, time.Unix(0, 0).UTC(), p.ManagerPersonID, seq)
		case schemas.EmployeeLeftType:
			p, err := schemas.DecodePayload[schemas.EmployeeLeft](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			left, err := time.Parse(schemas.DateLayout, p.LeftOn)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: left date: %w", seq, err)
			}
			add("roster_events", seq, e.OrgID, p.PersonID, string(e.Type), "", "", "", time.Unix(0, 0).UTC(), left, "", seq)
		case schemas.TokenIssuedType:
			tk, err := schemas.DecodePayload[schemas.TokenIssued](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			add("api_tokens", seq, e.OrgID, tk.TokenID, tk.Hash, string(tk.Role), tk.Name, tk.PersonID, seq)
		case schemas.TokenRevokedType:
			tk, err := schemas.DecodePayload[schemas.TokenRevoked](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			add("api_token_revocations", seq, e.OrgID, tk.TokenID, seq)
		case schemas.ScheduleSetType, schemas.OrgConfiguredType:
			// Nothing to project: schedules act through the waves they
			// open, settings through the emails.
		case schemas.InvitationIssuedType:
			inv, err := schemas.DecodePayload[schemas.InvitationIssued](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			c := inv.Cohort
			add("invitations", seq, e.OrgID, inv.WaveID, c.Department, c.Team, c.Location, c.TenureBand, line(c), c.Manager, seq)
		case schemas.ResponseSubmittedType:
			r, err := schemas.DecodePayload[schemas.ResponseSubmitted](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			day, err := time.Parse(schemas.DateLayout, r.Date)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: response date: %w", seq, err)
			}
			c := r.Cohort
			for _, a := range r.Answers {
				add("answers", seq, e.OrgID, r.WaveID, r.SurveyID, a.QuestionID, string(a.Dimension), uint8(a.Value),
					e.ID, c.Department, c.Team, c.Location, c.TenureBand, line(c), c.Manager, day, seq)
			}
			// Comments of version 1 events (upcast into LegacyComments) are
			// written with seq 0, not the response's seq: the comments table
			// must not join them to these answers. They still count for the
			// wave (0 precedes every seal). The row keeps seq as its
			// high-water-mark tag, but the table's max(seq) does not see
			// them: a crash between this batch's comments insert and its
			// checkpoint, while projecting version 1 history, can write
			// them twice; `trustpulse replay` rebuilds them exactly.
			for _, w := range r.LegacyComments {
				// No comment_id: the only id of a version 1 comment is its
				// response's, which answers.response_id holds.
				add("comments", seq, e.OrgID, r.WaveID, r.SurveyID, w.QuestionID, w.Text, c.Department, c.Team, c.Location, c.TenureBand, line(c), c.Manager, "", "", uint64(0))
			}
		case schemas.CommentSubmittedType:
			// A comment is its own event at its own place in the shuffled
			// release, so its seq says nothing about which answers are its
			// author's.
			w, err := schemas.DecodePayload[schemas.CommentSubmitted](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			c := w.Cohort
			// Its event id is its handle for replies: drawn for this event
			// alone, it names nothing else (docs/anonymity.md, "Replies to
			// comments").
			add("comments", seq, e.OrgID, w.WaveID, w.SurveyID, w.QuestionID, w.Text, c.Department, c.Team, c.Location, c.TenureBand, line(c), c.Manager, e.ID.String(), w.ReplyHash, seq)
		case schemas.CommentRepliedType:
			r, err := schemas.DecodePayload[schemas.CommentReplied](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			add("comment_thread", seq, e.OrgID, r.WaveID, r.CommentID, r.ReplyID, "reply", r.Text, r.TokenID, string(r.Role), r.PersonID, dayOf(e.Time), seq)
		case schemas.CommentAnsweredType:
			a, err := schemas.DecodePayload[schemas.CommentAnswered](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			add("comment_thread", seq, e.OrgID, a.WaveID, a.CommentID, a.AnswerID, "answer", a.Text, "", "", "", dayOf(e.Time), seq)
		case schemas.ActionPlannedType:
			a, err := schemas.DecodePayload[schemas.ActionPlanned](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			add("action_plans", seq, e.OrgID, a.PlanID, a.WaveID, a.Manager, "planned", strs(a.FocusDrivers), strs(a.Commitments),
				a.Author.TokenID, string(a.Author.Role), a.Author.Name, a.Author.PersonID, e.Time.UTC().Truncate(time.Second), seq)
		case schemas.ActionUpdatedType:
			a, err := schemas.DecodePayload[schemas.ActionUpdated](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			add("action_plans", seq, e.OrgID, a.PlanID, a.WaveID, a.Manager, "updated", strs(a.FocusDrivers), strs(a.Commitments),
				a.Author.TokenID, string(a.Author.Role), a.Author.Name, a.Author.PersonID, e.Time.UTC().Truncate(time.Second), seq)
		case schemas.ActionCompletedType:
			a, err := schemas.DecodePayload[schemas.ActionCompleted](e, e.Type)
			if err != nil {
				return nil, fmt.Errorf("projector: stream_seq %d: %w", seq, err)
			}
			add("action_plans", seq, e.OrgID, a.PlanID, a.WaveID, a.Manager, "completed", []string{}, []string{},
				a.Author.TokenID, string(a.Author.Role), a.Author.Name, a.Author.PersonID, e.Time.UTC().Truncate(time.Second), seq)
		default:
			return nil, fmt.Errorf("projector: stream_seq %d: no projection for %s: %w", seq, e.Type, schemas.ErrUnknownEvent)
		}
	}
	return out, nil
}

// line is a cohort's reporting line as an Array(String) value: never nil,
// which the driver would refuse.
func line(c schemas.Cohort) []string {
	if c.Managers == nil {
		return []string{}
	}
	return c.Managers
}

// strs is a string list as an Array(String) value: never nil.
func strs(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// dayOf is an event's day, the finest time a thread row keeps.
func dayOf(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }
