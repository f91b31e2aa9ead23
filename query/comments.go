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

// %[1]s is the scope's condition. comment_id, a random id drawn for the
// comment alone, breaks ties between equal words and says nothing more.
const sqlComments = `SELECT text, comment_id FROM comments WHERE org = ? AND question_id = ? AND %[1]s
ORDER BY cityHash64(text), text, comment_id LIMIT ?`

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
	// Items are the same comments in the same order, each with its handle
	// (for replies) and its thread.
	Items     []CommentItem `json:"items,omitempty"`
	Truncated bool          `json:"truncated,omitempty"`
}

// CommentItem is one served comment: its handle (the random event id of its
// CommentSubmitted; empty for comments of version 1 history, which cannot
// be replied to), its words, and the replies and answers under it.
type CommentItem struct {
	ID     string        `json:"id,omitempty"`
	Text   string        `json:"text"`
	Thread []ThreadEntry `json:"thread"`
}

func commentKey(q string) string { return "c:" + q }

// commentsHandler serves the comments to one question of a released wave,
// organisation-wide or within filters.
func (s *Server) commentsHandler(c *fiber.Ctx) error {
	filter, _, err := sliceRequest(c, "question") // no group_by: refused as unknown
	if err != nil {
		return err
	}
	if err := mayManagerComments(principalOf(c), filter); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	res, err := s.Comments(ctx, c.Params("org"), c.Params("wave"), c.Query("question"), filter)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

// Comments returns the comments to one comment question of a released
// wave within filter (nil: organisation-wide), each with its handle and
// thread, or Suppressed when the guard does not serve the list. Errors are
// ReleasedWave's, 400 for a question that is not a comment question of the
// wave's survey, and the store's.
func (s *Server) Comments(ctx context.Context, org, waveID, question string, filter []Clause) (CommentsResult, error) {
	w, sc, text, err := s.commentScope(ctx, org, waveID, question, filter)
	if err != nil {
		return CommentsResult{}, err
	}
	res := CommentsResult{Org: org, WaveID: w.ID, QuestionID: question, Text: text, Filter: filterMap(filter), Threshold: sc.K}
	ok, n, err := s.commentsAllowed(ctx, org, sc)
	if err != nil {
		return res, err
	}
	if !ok {
		res.Suppressed = true
		return res, nil
	}
	res.Respondents = &n
	where, args := sc.where()
	rows, err := s.store.ch.Query(ctx, fmt.Sprintf(sqlComments, where), append(append([]any{org, question}, args...), uint64(MaxComments+1))...)
	if err != nil {
		return res, fmt.Errorf("query: comments: %w", err)
	}
	defer rows.Close()
	res.Comments, res.Items = []string{}, []CommentItem{}
	for rows.Next() {
		var it CommentItem
		if err := rows.Scan(&it.Text, &it.ID); err != nil {
			return res, err
		}
		res.Comments, res.Items = append(res.Comments, it.Text), append(res.Items, it)
	}
	if err := rows.Err(); err != nil {
		return res, err
	}
	if len(res.Comments) > MaxComments {
		res.Comments, res.Items, res.Truncated = res.Comments[:MaxComments], res.Items[:MaxComments], true
	}
	if err := s.store.fillThreads(ctx, org, res.Items); err != nil {
		return res, err
	}
	return res, nil
}

// commentScope resolves a comment list's wave, scope (at the comment
// threshold) and question text.
func (s *Server) commentScope(ctx context.Context, org, waveID, question string, filter []Clause) (WaveInfo, Scope, string, error) {
	w, err := s.ReleasedWave(ctx, org, waveID)
	if err != nil {
		return w, Scope{}, "", err
	}
	qn, err := s.store.Questions(ctx, org, []string{w.SurveyID})
	if err != nil {
		return w, Scope{}, "", err
	}
	if question == "" || qn.Dimension[question] != string(schemas.Comment) {
		return w, Scope{}, "", schemas.Errorf(http.StatusBadRequest, "invalid_question", "question must be a comment question of wave %s's survey", w.ID)
	}
	sc := NewScope([]WaveInfo{w}, filter, s.guard.K)
	sc.K = max(sc.K, schemas.CommentThreshold)
	return w, sc, qn.Text[question], nil
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

// CommentQuestion is a comment question of a wave's survey.
type CommentQuestion struct{ ID, Text string }

// CommentQuestions returns the comment questions of w's survey, in survey
// order.
func (s *Server) CommentQuestions(ctx context.Context, org string, w WaveInfo) ([]CommentQuestion, error) {
	qn, err := s.store.Questions(ctx, org, []string{w.SurveyID})
	if err != nil {
		return nil, err
	}
	var out []CommentQuestion
	for _, id := range qn.Order {
		if qn.Dimension[id] == string(schemas.Comment) {
			out = append(out, CommentQuestion{ID: id, Text: qn.Text[id]})
		}
	}
	return out, nil
}

// MayReply reports whether p's role replies to comments (analysts and
// admins; the manager role plugs in at mayReply).
func MayReply(p *Principal) bool { return mayReply(p) == nil }
