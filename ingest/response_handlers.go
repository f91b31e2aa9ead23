package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// SubmitRequest is the body of POST /v1/responses.
type SubmitRequest struct {
	// Token is the invitation token from the emailed link.
	Token string `json:"token"`
	// Answers maps question id to the chosen value.
	Answers map[string]int `json:"answers"`
	// Comments maps a comment question's id to the words given.
	Comments map[string]string `json:"comments,omitempty"`
}

// DecodeSubmitRequest strictly decodes a submission body: one JSON object,
// no unknown fields, no key twice, nothing after it. It is the decoder of
// outside data that the fuzz target exercises.
func DecodeSubmitRequest(body []byte) (SubmitRequest, error) {
	var req SubmitRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return SubmitRequest{}, fmt.Errorf("body is not a valid submission: %s", jsonErrorText(err))
	}
	if dec.More() {
		return SubmitRequest{}, errors.New("body is not a valid submission: data after the JSON object")
	}
	if dup, ok := duplicateKey(body); ok {
		return SubmitRequest{}, fmt.Errorf("body is not a valid submission: %s", dup)
	}
	if req.Token == "" {
		return SubmitRequest{}, errors.New("token: required")
	}
	if req.Answers == nil {
		return SubmitRequest{}, errors.New("answers: required")
	}
	if len(req.Comments) == 0 {
		req.Comments = nil // "comments": {} is no comments, as leaving it out is
	}
	return req, nil
}

// jsonErrorText describes a decoding error without echoing the input, which
// could contain a token.
func jsonErrorText(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return "the body must be a JSON object"
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated body"
	}
	// DisallowUnknownFields: `json: unknown field "x"` names only the field.
	return err.Error()
}

// validateAnswers checks answers and comments against the survey: known
// questions, values in range, comments in words of at most MaxCommentLen
// characters, required questions present. It returns the answers and the
// non-empty comments in survey order, or a 422 error listing every problem.
func validateAnswers(s schemas.SurveyPublished, given map[string]int, comments map[string]string) ([]schemas.Answer, []schemas.CommentAnswer, error) {
	var fields []schemas.FieldError
	for _, f := range []struct {
		prefix string
		ids    []string
		want   func(schemas.Question) bool
		detail string
	}{
		{"answers.", keysOf(given), func(q schemas.Question) bool { return q.Dimension != schemas.Comment }, "is a comment question: send its words in comments"},
		{"comments.", keysOf(comments), func(q schemas.Question) bool { return q.Dimension == schemas.Comment }, "is not a comment question: send its value in answers"},
	} {
		for _, id := range f.ids {
			q, ok := s.Question(id)
			switch {
			case !ok:
				fields = append(fields, schemas.FieldError{Field: f.prefix + truncate(id, 64), Detail: "unknown question"})
			case !f.want(q):
				fields = append(fields, schemas.FieldError{Field: f.prefix + id, Detail: f.detail})
			}
		}
	}
	answers := make([]schemas.Answer, 0, len(given))
	var words []schemas.CommentAnswer
	for _, q := range s.Questions {
		if q.Dimension == schemas.Comment {
			text := cleanComment(comments[q.ID])
			if utf8.RuneCountInString(text) > schemas.MaxCommentLen {
				fields = append(fields, schemas.FieldError{Field: "comments." + q.ID, Detail: fmt.Sprintf("at most %d characters", schemas.MaxCommentLen)})
			} else if text != "" {
				words = append(words, schemas.CommentAnswer{QuestionID: q.ID, Text: text})
			}
			continue
		}
		v, ok := given[q.ID]
		if !ok {
			if q.Required() {
				fields = append(fields, schemas.FieldError{Field: "answers." + q.ID, Detail: "required"})
			}
			continue
		}
		lo, hi := q.Dimension.Range()
		if v < lo || v > hi {
			fields = append(fields, schemas.FieldError{Field: "answers." + q.ID, Detail: fmt.Sprintf("must be %d to %d", lo, hi)})
			continue
		}
		answers = append(answers, schemas.Answer{QuestionID: q.ID, Dimension: q.Dimension, Value: v})
	}
	if len(fields) == 0 && len(answers) == 0 {
		// Every respondent stands on at least one answer: the anonymity
		// guard counts respondents by their answers, and a response of
		// comments alone would be a respondent it cannot see.
		fields = append(fields, schemas.FieldError{Field: "answers", Detail: "answer at least one question"})
	}
	if len(fields) > 0 {
		return nil, nil, &schemas.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_answers",
			Detail: "some answers are missing or invalid", Fields: fields}
	}
	return answers, words, nil
}

// keysOf returns a map's keys, sorted.
func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// cleanComment trims a comment and drops control characters other than
// line breaks and tabs; invalid UTF-8 becomes U+FFFD.
func cleanComment(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return -1
		}
		return r
	}, strings.ReplaceAll(s, "\r\n", "\n"))
	return strings.TrimSpace(s)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// submitResponseHandler accepts one response for an invitation token:
// validate, claim the token, publish, and release the token again if the
// publish fails. Nothing is published for a rejected request. Each
// submission is counted, accepted or refused by its code.
func (s *Server) submitResponseHandler(c *fiber.Ctx) error {
	err := s.acceptResponse(c)
	s.Metrics.Submission(err)
	return err
}

// acceptResponse is submitResponseHandler's work.
func (s *Server) acceptResponse(c *fiber.Ctx) error {
	if !c.Is("json") {
		return schemas.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
	}
	req, err := DecodeSubmitRequest(c.Body())
	if err != nil {
		return schemas.Errorf(http.StatusBadRequest, "invalid_body", "%s", err.Error())
	}
	caps, err := s.record(c.UserContext(), req.Token, req.Answers, req.Comments)
	if err != nil {
		if err == errBusy || err == errUnavailable {
			c.Set(fiber.HeaderRetryAfter, "2")
		}
		return err
	}
	// The reply link goes to the submitter alone, in this body: no-store,
	// so that no cache keeps it.
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(http.StatusAccepted).JSON(SubmitResult{Status: "recorded", ReplyLink: s.replyLink(caps)})
}

// SubmitResult is the 202 body of POST /v1/responses.
type SubmitResult struct {
	Status string `json:"status"`
	// ReplyLink is the private link to the replies to this response's
	// comments, when it has any: shown once, stored nowhere (only a hash of
	// each of its capabilities is kept, beside its comment), never emailed.
	ReplyLink string `json:"reply_link,omitempty"`
}

// replyLink is the private reply link of a submission's capabilities, or ""
// when it has none.
func (s *Server) replyLink(caps []string) string {
	if len(caps) == 0 {
		return ""
	}
	return s.ReplyBase + schemas.ReplyLinkPath(caps)
}

// invitationFor looks up the usable invitation of a token and the wave and
// survey it is for. Errors are *schemas.Error values ready to answer with.
//
// page says the survey page is being shown: its slot is read even when the
// link is kept (Ledger.Open).
func (s *Server) invitationFor(ctx context.Context, token string, now time.Time, page bool) (*Claim, Wave, schemas.SurveyPublished, error) {
	if !s.js.Conn().IsConnected() {
		// Fail fast rather than queue behind a reconnect: nothing is
		// recorded, and the client may retry.
		return nil, Wave{}, schemas.SurveyPublished{}, errUnavailable
	}
	lookup := s.ledger.Lookup
	if page {
		lookup = s.ledger.Open
	}
	claim, err := lookup(ctx, token, now)
	if err != nil {
		return nil, Wave{}, schemas.SurveyPublished{}, tokenError(err)
	}
	inv := claim.Invitation
	wave, ok := s.catalog.Wave(inv.Org, inv.WaveID)
	if !ok {
		return nil, Wave{}, schemas.SurveyPublished{}, schemas.Errorf(http.StatusNotFound, "wave_not_found", "the survey for this link is not available")
	}
	if !wave.AcceptsAt(now) {
		s.ledger.links.forget(claim.hash)
		return nil, Wave{}, schemas.SurveyPublished{}, tokenError(ErrTokenExpired)
	}
	survey, ok := s.catalog.Survey(inv.Org, wave.SurveyID)
	if !ok {
		return nil, Wave{}, schemas.SurveyPublished{}, schemas.Errorf(http.StatusNotFound, "survey_not_found", "the survey for this link is not available")
	}
	return claim, wave, survey.Asking(wave.QuestionIDs), nil
}

// record validates answers for a token, claims the token, stores the
// response in the pending stream, and releases the token again if that
// fails. Nothing is published for a rejected request. It returns the reply
// capabilities of the response's comments (none without comments), for the
// submitter's eyes only: they are never logged or stored, only their
// hashes. Errors are *schemas.Error values.
func (s *Server) record(ctx context.Context, token string, given map[string]int, comments map[string]string) ([]string, error) {
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		return nil, errBusy
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now := s.now()
	claim, wave, survey, err := s.invitationFor(ctx, token, now, false)
	if err != nil {
		return nil, err
	}
	answers, words, err := validateAnswers(survey, given, comments)
	if err != nil {
		return nil, err
	}
	inv := claim.Invitation
	day := now.UTC().Truncate(24 * time.Hour)
	envs, caps, err := submissionEvents(inv.Org, day, survey.SurveyID, wave.ID, inv.Cohort, answers, words)
	if err != nil {
		return nil, err
	}
	if err := s.ledger.MarkUsed(ctx, claim); err != nil {
		return nil, tokenError(err)
	}
	// The response and its comments wait in the pending stream until the
	// wave closes; the mixer then publishes every held message of the wave
	// together, in one uniformly random order, so that neither their order
	// nor their time on the event stream says when (and so by whom) each was
	// given. That one shuffle of all of them also unlinks a comment from its
	// response: in a uniform permutation the comment's place is independent
	// of its response's, so the mixer needs no separate shuffle of comments.
	//
	// They are stored as one atomic batch (publishBatch), so a 202 means all
	// of them are held, and a failure means none is: the claim is released
	// as before and the employee may submit again.
	var held heldCodec
	if s.Sealer != nil {
		held = s.Sealer.ForWave(inv.Org, wave.ID)
	}
	if err := publishBatch(ctx, s.js, claim.HeldSubject(), envs, held); err != nil {
		s.log.Error("response not stored; releasing invitation", "org", inv.Org, "wave", wave.ID, "err", err)
		if rerr := s.ledger.Release(context.WithoutCancel(ctx), claim); rerr != nil {
			s.log.Error("invitation could not be released", "org", inv.Org, "wave", wave.ID, "err", rerr)
		}
		return nil, errUnavailable
	}
	s.live.add(inv.Org, wave.ID, inv.Cohort.Department)
	return caps, nil
}

// submissionEvents builds the events of one submission: the response, then
// one CommentSubmitted per comment. Each has a random id of its own; the
// comments carry the response's cohort and day and nothing of the response.
// Each comment gets a fresh reply capability, of which its event carries
// only the hash, so that no two comments (of this response or any other)
// share one; the capabilities come back in the order of the comments.
func submissionEvents(org string, day time.Time, surveyID, waveID string, cohort schemas.Cohort, answers []schemas.Answer, words []schemas.CommentAnswer) ([]schemas.Envelope, []string, error) {
	date := day.Format(schemas.DateLayout)
	resp, err := schemas.NewEnvelope(schemas.ResponseSubmittedType, org, day, schemas.ResponseSubmitted{
		SurveyID: surveyID, WaveID: waveID, Date: date, Cohort: cohort, Answers: answers,
	})
	if err != nil {
		return nil, nil, err
	}
	envs := []schemas.Envelope{resp}
	var caps []string
	for _, w := range words {
		capability, err := schemas.NewReplyCapability()
		if err != nil {
			return nil, nil, fmt.Errorf("ingest: reply capability: %w", err)
		}
		env, err := schemas.NewEnvelope(schemas.CommentSubmittedType, org, day, schemas.CommentSubmitted{
			SurveyID: surveyID, WaveID: waveID, QuestionID: w.QuestionID, Text: w.Text, Cohort: cohort, Date: date,
			ReplyHash: schemas.ReplyHash(capability),
		})
		if err != nil {
			return nil, nil, err
		}
		envs, caps = append(envs, env), append(caps, capability)
	}
	return envs, caps, nil
}

// errBusy answers a submission beyond the in-flight bound: nothing was
// recorded and the link still works.
var errBusy = schemas.Errorf(http.StatusServiceUnavailable, "unavailable",
	"too many responses are arriving at once; nothing was saved, please send yours again in a few seconds")

var errUnavailable = schemas.Errorf(http.StatusServiceUnavailable, "unavailable",
	"responses cannot be recorded right now; nothing was saved, please try again in a minute")

// tokenError maps ledger errors to problems. Other errors mean the ledger is
// unreachable: 503, nothing recorded.
func tokenError(err error) error {
	switch {
	case errors.Is(err, ErrTokenUnknown):
		return schemas.Errorf(http.StatusNotFound, "token_unknown", "this survey link is not valid; check that it was copied completely")
	case errors.Is(err, ErrTokenUsed):
		return schemas.Errorf(http.StatusConflict, "token_used", "a response was already recorded with this link; each link records one response")
	case errors.Is(err, ErrTokenExpired):
		return schemas.Errorf(http.StatusGone, "token_expired", "this survey has closed; the link no longer accepts responses")
	}
	return errUnavailable
}
