package query

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/trustpulse/trustpulse/schemas"
)

// Replies to comments. People-ops and the responsible manager reply to a comment they may see; the holder of the
// comment's reply link reads the thread and may answer back. A reply is
// allowed only on a comment of a list the guard serves to the replier (the
// same decision as the list), and the thread is shown wherever the comment
// is. Nothing here records that a reply link was opened.

// ThreadEntry is one reply or answer under a comment, oldest first.
type ThreadEntry struct {
	ID string `json:"id"`
	// Kind is "reply" (people-ops or a manager) or "answer" (the comment's
	// writer, through the reply link).
	Kind string `json:"kind"`
	Text string `json:"text"`
	// Role is the replier's role; empty for an answer.
	Role string `json:"role,omitempty"`
	// Date is the day it was written, YYYY-MM-DD.
	Date string `json:"date"`
}

// Kinds of thread entries.
const (
	KindReply  = "reply"
	KindAnswer = "answer"
)

const (
	sqlThreads = `SELECT comment_id, entry_id, kind, text, role, day FROM comment_thread
WHERE org = ? AND comment_id IN ? ORDER BY comment_id, seq`
	sqlCommentByID = `SELECT wave_id, survey_id, question_id, text, department, team, location, tenure_band, managers, manager, seq
FROM comments WHERE org = ? AND comment_id = ? LIMIT 1`
)

// fillThreads reads the threads of items.
func (s *Store) fillThreads(ctx context.Context, org string, items []CommentItem) error {
	var ids []string
	at := map[string]int{}
	for i, it := range items {
		if it.ID != "" {
			ids, at[it.ID] = append(ids, it.ID), i
		}
		items[i].Thread = []ThreadEntry{}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := s.ch.Query(ctx, sqlThreads, org, groupSet(ids))
	if err != nil {
		return fmt.Errorf("query: comment threads: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var e ThreadEntry
		var day time.Time
		if err := rows.Scan(&id, &e.ID, &e.Kind, &e.Text, &e.Role, &day); err != nil {
			return err
		}
		e.Date = day.Format(schemas.DateLayout)
		if i, ok := at[id]; ok {
			items[i].Thread = append(items[i].Thread, e)
		}
	}
	return rows.Err()
}

// storedComment is one row of comments, found by its handle.
type storedComment struct {
	waveID, surveyID, questionID, text string
	cohort                             respType
	seq                                uint64
}

func (s *Store) commentByID(ctx context.Context, org, id string) (storedComment, bool, error) {
	var c storedComment
	var dept, team, loc, tenure, manager string
	var line []string
	err := s.ch.QueryRow(ctx, sqlCommentByID, org, id).Scan(&c.waveID, &c.surveyID, &c.questionID, &c.text, &dept, &team, &loc, &tenure, &line, &manager, &c.seq)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("query: comment: %w", err)
	}
	c.cohort = respType{
		values: map[string]string{"department": dept, "team": team, "location": loc, "tenure_band": tenure, "manager": manager},
		line:   line,
	}
	return c, true, nil
}

// Publisher puts an event on the event stream durably (NewPublisher).
type Publisher interface {
	Publish(ctx context.Context, env schemas.Envelope) error
}

// SetPublisher gives the service the event stream that replies and
// answers are published to. Without one, they are refused with 503.
func (s *Server) SetPublisher(p Publisher) { s.publisher = p }

func (s *Server) publish(ctx context.Context, env schemas.Envelope) error {
	if s.publisher == nil {
		return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "replies cannot be recorded right now; nothing was saved, please try again in a minute")
	}
	if err := s.publisher.Publish(ctx, env); err != nil {
		s.log.Error("reply not stored", "org", env.OrgID, "event_id", env.ID, "err", err)
		return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "replies cannot be recorded right now; nothing was saved, please try again in a minute")
	}
	return nil
}

// mayReply says whether p may reply to comments at all: people-ops
// (analysts and admins) and managers, whose lists are their own team's
// (mayManagerComments); Reply's guard check then decides as for anyone.
// Leaders read comments but do not reply.
func mayReply(p *Principal) error {
	if p != nil && (p.Role == schemas.RoleAnalyst || p.Role == schemas.RoleAdmin || p.Role == schemas.RoleManager) {
		// A manager replies only from their own team's lists: the filter
		// came through parseSlice, which limits theirs to their reach.
		return nil
	}
	return schemas.Errorf(http.StatusForbidden, "forbidden", "only people-ops (analysts and admins) and managers, for their own team's comments, reply to comments")
}

var errCommentNotFound = schemas.Errorf(http.StatusNotFound, "comment_not_found", "no comment with that id in the results you may see")

// Reply records p's reply to the comment id, as seen in the comment list of
// filter (nil: organisation-wide) of its wave. Returns 403 for a role that
// may not reply or when the guard does not serve that list to p, 404 for a
// comment that does not exist, is not counted in a released wave or is not
// in that list, 422 for empty or overlong words, 503 when the event stream
// cannot store it. Nothing is published unless it returns nil.
func (s *Server) Reply(ctx context.Context, p *Principal, commentID, text string, filter []Clause) (ThreadEntry, error) {
	if err := mayReply(p); err != nil {
		return ThreadEntry{}, err
	}
	if err := mayManagerComments(p, filter); err != nil {
		return ThreadEntry{}, err
	}
	if err := MayFilter(p, filter); err != nil { // whatever built the filter
		return ThreadEntry{}, err
	}
	text, err := replyText(text)
	if err != nil {
		return ThreadEntry{}, err
	}
	if _, err := uuid.Parse(commentID); err != nil {
		return ThreadEntry{}, errCommentNotFound
	}
	c, ok, err := s.store.commentByID(ctx, p.Org, commentID)
	if err != nil {
		return ThreadEntry{}, err
	}
	if !ok {
		return ThreadEntry{}, errCommentNotFound
	}
	w, sc, _, err := s.commentScope(ctx, p.Org, c.waveID, c.questionID, filter)
	if err != nil {
		var appErr *schemas.Error
		if errors.As(err, &appErr) && appErr.Status < 500 {
			return ThreadEntry{}, errCommentNotFound // not in a released wave's lists
		}
		return ThreadEntry{}, err
	}
	// The list's decision first, whichever of its wave's comments is
	// named: answering "not in the list" for a suppressed list would tell
	// which comments a hidden group wrote.
	allowed, _, err := s.commentsAllowed(ctx, p.Org, sc)
	if err != nil {
		return ThreadEntry{}, err
	}
	if !allowed {
		return ThreadEntry{}, schemas.Errorf(http.StatusForbidden, "comments_suppressed",
			"this comment list is not shown to you (too few respondents, or it would narrow another list), so its comments cannot be replied to")
	}
	if c.seq >= w.SealSeq || !matches(c.cohort, sc.Filter) {
		return ThreadEntry{}, errCommentNotFound
	}
	now := time.Now().UTC()
	e := ThreadEntry{ID: uuid.NewString(), Kind: KindReply, Text: text, Role: string(p.Role), Date: now.Format(schemas.DateLayout)}
	env, err := schemas.NewEnvelope(schemas.CommentRepliedType, p.Org, now, schemas.CommentReplied{
		CommentID: commentID, ReplyID: e.ID, WaveID: w.ID, Text: text, TokenID: p.TokenID, Role: p.Role,
	})
	if err != nil {
		return ThreadEntry{}, err
	}
	return e, s.publish(ctx, env)
}

// replyText cleans a reply's or answer's words: trimmed, control
// characters other than line breaks and tabs dropped; 422 when empty or
// longer than schemas.MaxReplyLen.
func replyText(text string) (string, error) {
	text = schemas.CleanText(text)
	switch n := len([]rune(text)); {
	case n == 0:
		return "", &schemas.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_text", Detail: "write something to send",
			Fields: []schemas.FieldError{{Field: "text", Detail: "required"}}}
	case n > schemas.MaxReplyLen:
		return "", &schemas.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_text", Detail: fmt.Sprintf("at most %d characters", schemas.MaxReplyLen),
			Fields: []schemas.FieldError{{Field: "text", Detail: fmt.Sprintf("at most %d characters", schemas.MaxReplyLen)}}}
	}
	return text, nil
}

// HeldComment is one comment of a reply link, as its holder sees it.
type HeldComment struct {
	Org, WaveID, QuestionID string
	// Question is the question's text.
	Question string
	ID, Text string
	Thread   []ThreadEntry
}

// HeldComments returns the comments whose reply capabilities are caps,
// with their threads, in a fixed order: those of released waves only (a
// comment is in no store of ClickHouse before its wave is released). None
// means an unknown link or a wave not yet released, which cannot be told
// apart. It records nothing of its own, and no query it sends names a
// hash or a comment (replyIndex): ClickHouse sees the comments of a wave
// and the threads of an organisation read whole, with its query log off
// (docs/anonymity.md, section 11).
func (s *Server) HeldComments(ctx context.Context, caps []string) ([]HeldComment, error) {
	hashes := make([]string, len(caps))
	for i, c := range caps {
		hashes[i] = schemas.ReplyHash(c)
	}
	found, err := s.replies.lookup(ctx, s.store, hashes)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(found, func(a, b indexedComment) int {
		return cmp.Or(cmp.Compare(a.org, b.org), cmp.Compare(a.waveID, b.waveID), cmp.Compare(a.questionID, b.questionID), cmp.Compare(a.id, b.id))
	})
	var out []HeldComment
	texts := map[string]map[string]string{}          // org|wave -> comment id -> words
	threads := map[string]map[string][]ThreadEntry{} // org -> comment id -> thread
	surveys := map[string]Questionnaire{}            // org|survey -> its questions
	for _, f := range found {
		w, err := s.ReleasedWave(ctx, f.org, f.waveID)
		var appErr *schemas.Error
		if errors.As(err, &appErr) && appErr.Status < 500 || err == nil && f.seq >= w.SealSeq {
			continue
		}
		if err != nil {
			return nil, err
		}
		key := f.org + "|" + f.waveID
		if texts[key] == nil {
			if texts[key], err = s.store.waveCommentTexts(ctx, f.org, f.waveID); err != nil {
				return nil, err
			}
		}
		text, ok := texts[key][f.id]
		if !ok { // removed since the index was read
			continue
		}
		if threads[f.org] == nil {
			if threads[f.org], err = s.store.orgThreads(ctx, f.org); err != nil {
				return nil, err
			}
		}
		// Once per survey, not per comment: the number of queries must not
		// tell how many comments the link holds.
		qkey := f.org + "|" + f.surveyID
		qn, ok := surveys[qkey]
		if !ok {
			if qn, err = s.store.Questions(ctx, f.org, []string{f.surveyID}); err != nil {
				return nil, err
			}
			surveys[qkey] = qn
		}
		thread := threads[f.org][f.id]
		if thread == nil {
			thread = []ThreadEntry{}
		}
		out = append(out, HeldComment{Org: f.org, WaveID: f.waveID, QuestionID: f.questionID, Question: qn.Text[f.questionID],
			ID: f.id, Text: text, Thread: thread})
	}
	return out, nil
}

// Answer records the holder's answer to one comment of their reply link:
// 404 when commentID is not one of caps' comments, 422 for empty or
// overlong words, 503 when the event stream cannot store it. The event
// names no one and carries only the day.
func (s *Server) Answer(ctx context.Context, caps []string, commentID, text string) (ThreadEntry, error) {
	text, err := replyText(text)
	if err != nil {
		return ThreadEntry{}, err
	}
	held, err := s.HeldComments(ctx, caps)
	if err != nil {
		return ThreadEntry{}, err
	}
	for _, h := range held {
		if h.ID != commentID || h.ID == "" {
			continue
		}
		day := time.Now().UTC().Truncate(24 * time.Hour)
		e := ThreadEntry{ID: uuid.NewString(), Kind: KindAnswer, Text: text, Date: day.Format(schemas.DateLayout)}
		env, err := schemas.NewEnvelope(schemas.CommentAnsweredType, h.Org, day, schemas.CommentAnswered{
			CommentID: h.ID, AnswerID: e.ID, WaveID: h.WaveID, Text: text,
		})
		if err != nil {
			return ThreadEntry{}, err
		}
		return e, s.publish(ctx, env)
	}
	return ThreadEntry{}, errCommentNotFound
}
