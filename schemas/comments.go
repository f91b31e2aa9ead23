package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// CommentSubmitted is the words one respondent gave to one comment question.
// Ingest publishes it as a message of its own, with a random event id, next
// to the ResponseSubmitted of the same submission on the wave's pending
// subject, and the mixer shuffles it with every other held message of the
// wave. It carries what a comment is sliced by — survey, wave, question,
// cohort snapshot and day, the same values the response carries — and
// nothing that names the response: no response id, no stream sequence, no
// time finer than the day. So neither the event stream nor the comments
// table can join a comment to its author's answers; only the cohort and the
// day they share, which every respondent of that cohort and day shares too.
type CommentSubmitted struct {
	SurveyID   string `json:"survey_id"`
	WaveID     string `json:"wave_id"`
	QuestionID string `json:"question_id"`
	// Text is the comment as ingest cleaned it: trimmed, control characters
	// other than line breaks and tabs removed, at most MaxCommentLen
	// characters.
	Text   string `json:"text"`
	Cohort Cohort `json:"cohort"`
	Date   string `json:"date"` // YYYY-MM-DD, UTC
	// ReplyHash is the hex SHA-256 of the comment's reply capability
	// (ReplyHash, replies.go): the one thing that lets the holder of the
	// reply link shown after submitting find this comment. Every comment
	// has its own; comments written before replies existed have none.
	ReplyHash string `json:"reply_hash,omitempty"`
}

// responseV1 is ResponseSubmitted as version 1 wrote it: the comments rode
// inside the response.
type responseV1 struct {
	SurveyID string          `json:"survey_id"`
	WaveID   string          `json:"wave_id"`
	Date     string          `json:"date"`
	Cohort   Cohort          `json:"cohort"`
	Answers  []Answer        `json:"answers"`
	Comments []CommentAnswer `json:"comments,omitempty"`
}

// upcastResponseV1 turns a version 1 ResponseSubmitted into version 2. Its
// comments move to LegacyComments, so that old history replays with its
// comments. The projector writes those rows with stream sequence 0 (see
// projector/rows.go): the one event still holds words and numbers together
// on the stream, but the comments table does not repeat that link.
func upcastResponseV1(p json.RawMessage) (json.RawMessage, error) {
	var v1 responseV1
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v1); err != nil {
		return nil, fmt.Errorf("schemas: ResponseSubmitted v1: %w", err)
	}
	return json.Marshal(ResponseSubmitted{
		SurveyID: v1.SurveyID, WaveID: v1.WaveID, Date: v1.Date, Cohort: v1.Cohort,
		Answers: v1.Answers, LegacyComments: v1.Comments,
	})
}
