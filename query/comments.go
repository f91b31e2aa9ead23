package query

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// Comments are served word for word, so their rules are stricter than the
// numbers': a group sees its comments only when it holds at least
// max(CommentThreshold, the wave's threshold) respondents, and the guard
// keeps a partition of its own for comment lists with that threshold —
// comments shown for Sales and for Sales-in-Berlin would narrow the
// difference's authors to the Sales people outside Berlin. The order is a hash of the
// words: it says nothing about when or by whom they were written.

// MaxComments bounds the comments of one result.
const MaxComments = 1000

// %[1]s is the scope's condition.
const sqlComments = `SELECT text FROM comments WHERE org = ? AND question_id = ? AND %[1]s
ORDER BY cityHash64(text), text LIMIT ?`

// CommentsResult is the result of GET .../waves/{wave}/comments.
type CommentsResult struct {
	Org        string            `json:"org"`
	WaveID     string            `json:"wave_id"`
	QuestionID string            `json:"question_id"`
	Text       string            `json:"text"`
	Filter     map[string]string `json:"filter,omitempty"`
	Threshold  int               `json:"threshold"`
	Suppressed bool              `json:"suppressed,omitempty"`
	// Respondents is the group's respondents to the survey (not only those
	// who commented).
	Respondents *int     `json:"respondents,omitempty"`
	Comments    []string `json:"comments,omitempty"`
	Truncated   bool     `json:"truncated,omitempty"`
}

func commentKey(q string) string { return "c:" + q }

// commentsHandler serves the comments to one question of a released wave,
// organisation-wide or within filters.
func (s *Server) commentsHandler(c *fiber.Ctx) error {
	org, question := c.Params("org"), c.Query("question")
	filter, _, err := sliceRequest(c, "question") // no group_by: refused as unknown
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	w, err := s.ReleasedWave(ctx, org, c.Params("wave"))
	if err != nil {
		return err
	}
	qn, err := s.store.Questions(ctx, org, []string{w.SurveyID})
	if err != nil {
		return err
	}
	if question == "" || qn.Dimension[question] != string(schemas.Comment) {
		return schemas.Errorf(http.StatusBadRequest, "invalid_question", "question must be a comment question of wave %s's survey", w.ID)
	}
	sc := NewScope([]WaveInfo{w}, filter, s.guard.K)
	sc.K = max(sc.K, schemas.CommentThreshold)
	res := CommentsResult{Org: org, WaveID: w.ID, QuestionID: question, Text: qn.Text[question], Filter: filterMap(filter), Threshold: sc.K}
	ok, n, err := s.commentsAllowed(ctx, org, sc)
	if err != nil {
		return err
	}
	if !ok {
		res.Suppressed = true
		return c.JSON(res)
	}
	res.Respondents = &n
	where, args := sc.where()
	rows, err := s.store.ch.Query(ctx, fmt.Sprintf(sqlComments, where), append(append([]any{org, question}, args...), uint64(MaxComments+1))...)
	if err != nil {
		return fmt.Errorf("query: comments: %w", err)
	}
	defer rows.Close()
	res.Comments = []string{}
	for rows.Next() {
		var text string
		if err := rows.Scan(&text); err != nil {
			return err
		}
		res.Comments = append(res.Comments, text)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(res.Comments) > MaxComments {
		res.Comments, res.Truncated = res.Comments[:MaxComments], true
	}
	return c.JSON(res)
}

// commentsAllowed decides, under the comment threshold, whether a scope's
// comments may be shown with their number of respondents: the list goes
// through the guard's comment partition and the count through its
// numbers, in one decision.
func (s *Server) commentsAllowed(ctx context.Context, org string, sc Scope) (bool, int, error) {
	totals, err := s.store.GroupRespondents(ctx, org, sc, "")
	if err != nil {
		return false, 0, err
	}
	n := totals[""]
	if n < sc.K {
		return false, n, nil
	}
	const ref = "comments"
	served, err := s.decideSets(ctx, org, []servedSet{
		{ref: ref, waves: sc.Waves, pred: sc.Filter},
		{ref: ref, waves: sc.Waves, pred: sc.Filter, comments: true},
	})
	return served[ref], n, err
}
