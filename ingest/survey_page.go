package ingest

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// The survey page: server-rendered HTML that works without JavaScript. An
// employee opens /s/{token}, answers and posts the form back to the same
// address; a rejected form comes back with inline errors and the answers
// already given; a recorded one redirects to /s/thanks, which carries no
// token, or, when it carries comments, is answered with the thanks page
// itself, which shows the private reply link once. Every page is sent with no-store, no-referrer and a strict CSP.

//go:embed web/*.html web/*.css
var webFiles embed.FS

var (
	surveyPage  = template.Must(template.ParseFS(webFiles, "web/layout.html", "web/survey.html", "web/plan.html"))
	messagePage = template.Must(template.ParseFS(webFiles, "web/layout.html", "web/message.html"))
	thanksPage  = template.Must(template.ParseFS(webFiles, "web/layout.html", "web/thanks.html", "web/plan.html"))
	surveyCSS   = mustRead("web/survey.css")
)

func mustRead(name string) []byte {
	b, err := webFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

// agreeLabels label the 1–5 agreement scale.
var agreeLabels = []string{"Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree"}

type optionView struct {
	Value   int
	Label   string
	Checked bool
}

type questionView struct {
	Name, FieldID, Text, Hint, Error string
	Optional                         bool
	Options                          []optionView
	// Comment questions take words: Words is what was given, MaxLen the
	// most characters.
	Comment bool
	Words   string
	MaxLen  int
}

type surveyView struct {
	Title     string
	Action    string
	Threshold int
	// CommentThreshold is the smallest group comments are shown to;
	// HasComments says whether the survey asks for any.
	CommentThreshold int
	HasComments      bool
	Problem          string
	Errors           bool
	Questions        []questionView
	// Plan is the open action plan of the invitee's team, if any.
	Plan *schemas.Plan
}

type messageView struct {
	Title, Message, Detail string
}

// thanksView is the thanks page of a response with comments: it shows the
// private reply link, once.
type thanksView struct {
	Title     string
	ReplyLink string
	Comments  int
	// Plan is the open action plan of the respondent's team, if any.
	Plan *schemas.Plan
}

// fieldName is the form field of a question: "a." for a value, "c." for a
// comment's words.
func fieldName(q schemas.Question) string {
	if q.Dimension == schemas.Comment {
		return "c." + q.ID
	}
	return "a." + q.ID
}

// buildSurveyView renders a survey with the given answers checked and the
// given field errors (keyed "answers.<id>") shown inline.
func buildSurveyView(s schemas.SurveyPublished, action string, threshold int, given map[string]int, comments map[string]string, fields []schemas.FieldError) surveyView {
	errs := map[string]string{}
	for _, f := range fields {
		id, ok := strings.CutPrefix(f.Field, "answers.")
		if !ok {
			id = strings.TrimPrefix(f.Field, "comments.")
		}
		errs[id] = f.Detail
	}
	v := surveyView{Title: s.Title, Action: action, Threshold: threshold, CommentThreshold: max(threshold, schemas.CommentThreshold), Errors: len(errs) > 0}
	for _, q := range s.Questions {
		qv := questionView{Name: fieldName(q), FieldID: "q-" + q.ID, Text: q.Text, Optional: !q.Required(), Error: errs[q.ID]}
		if q.Dimension == schemas.Comment {
			qv.Comment, qv.Words, qv.MaxLen = true, comments[q.ID], schemas.MaxCommentLen
			v.HasComments = true
			v.Questions = append(v.Questions, qv)
			continue
		}
		lo, hi := q.Dimension.Range()
		if q.Dimension == schemas.ENPS {
			qv.Hint = "0 = not at all likely, 10 = extremely likely"
		}
		cur, answered := given[q.ID]
		for val := lo; val <= hi; val++ {
			label := strconv.Itoa(val)
			if q.Dimension != schemas.ENPS {
				label = agreeLabels[val-lo]
			}
			qv.Options = append(qv.Options, optionView{Value: val, Label: label, Checked: answered && cur == val})
		}
		if qv.Error == "required" {
			qv.Error = "Please choose an answer."
		}
		v.Questions = append(v.Questions, qv)
	}
	return v
}

// parseAnswerForm reads the answers and comments of a posted form. Values
// that are not whole numbers come back as field errors; empty comments are
// left out.
func parseAnswerForm(c *fiber.Ctx) (map[string]int, map[string]string, []schemas.FieldError) {
	given, comments := map[string]int{}, map[string]string{}
	var bad []schemas.FieldError
	c.Request().PostArgs().VisitAll(func(key, value []byte) {
		if id, ok := strings.CutPrefix(string(key), "c."); ok {
			if strings.TrimSpace(string(value)) != "" {
				comments[id] = string(value)
			}
			return
		}
		id, ok := strings.CutPrefix(string(key), "a.")
		if !ok {
			return
		}
		n, err := strconv.Atoi(string(value))
		if err != nil {
			bad = append(bad, schemas.FieldError{Field: "answers." + truncate(id, 64), Detail: "Please choose one of the options."})
			return
		}
		given[id] = n
	})
	return given, comments, bad
}

func (s *Server) render(c *fiber.Ctx, status int, t *template.Template, v any) error {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}

// pageHeaders keeps the token out of caches and referrers, and forbids
// everything the page does not need.
func pageHeaders(c *fiber.Ctx) error {
	c.Set("Cache-Control", "no-store")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	return c.Next()
}

// messageFor turns a token or availability error into its page.
func messageFor(err error) (int, messageView) {
	var appErr *schemas.Error
	if !errors.As(err, &appErr) {
		appErr = errUnavailable
	}
	switch appErr.Code {
	case "token_unknown", "wave_not_found", "survey_not_found":
		return appErr.Status, messageView{Title: "This survey link is not valid",
			Message: "We could not find a survey for this link.",
			Detail:  "Check that you opened the whole link from your invitation email. If it still does not work, ask your people team for a new one."}
	case "token_used":
		return appErr.Status, messageView{Title: "You have already answered",
			Message: "Each link records one response, and yours is in. Thank you for taking part.",
			Detail:  "Nothing else is needed from you. Your answers cannot be viewed or changed, by you or anyone else."}
	case "token_expired":
		return appErr.Status, messageView{Title: "This survey has closed",
			Message: "The survey for this link is no longer taking answers.",
			Detail:  "Thank you for your interest; you will get a new link for the next pulse."}
	}
	return http.StatusServiceUnavailable, messageView{Title: "Please try again in a minute",
		Message: "We could not open the survey right now. Nothing was saved."}
}

// thresholdOf is the reporting threshold the page promises for a wave.
func (s *Server) thresholdOf(w Wave) int {
	if w.Threshold != 0 {
		return w.Threshold
	}
	return s.threshold
}

// surveyFormHandler shows the survey of a link.
func (s *Server) surveyFormHandler(c *fiber.Ctx) error {
	token := c.Params("token")
	claim, wave, survey, err := s.invitationFor(c.UserContext(), token, s.now(), true)
	if err != nil {
		status, v := messageFor(err)
		return s.render(c, status, messagePage, v)
	}
	v := buildSurveyView(survey, "/s/"+token, s.thresholdOf(wave), nil, nil, nil)
	v.Plan = s.planOf(c.UserContext(), claim)
	return s.render(c, http.StatusOK, surveyPage, v)
}

// submitSurveyFormHandler records a posted survey form.
func (s *Server) submitSurveyFormHandler(c *fiber.Ctx) error {
	token := c.Params("token")
	given, comments, badValues := parseAnswerForm(c)
	var err error
	var caps []string
	// The team's plan, read before the link is used up; shown on the
	// thanks page.
	var plan *schemas.Plan
	if claim, _, _, lerr := s.invitationFor(c.UserContext(), token, s.now(), false); lerr == nil {
		plan = s.planOf(c.UserContext(), claim)
	}
	if len(badValues) > 0 {
		err = &schemas.Error{Status: http.StatusUnprocessableEntity, Code: "invalid_answers", Fields: badValues}
	} else {
		caps, err = s.record(c.UserContext(), token, given, comments)
	}
	s.Metrics.Submission(err)
	if err == nil && (len(caps) > 0 || plan != nil) {
		// The reply link is shown here, in the answer to the post, and
		// nowhere else: no redirect (it would have to carry the link in a
		// URL of ingest's or a cookie); pageHeaders sent no-store and
		// no-referrer. The team's plan too: a redirect would have to name
		// the team in its URL.
		v := thanksView{Title: "Thank you", Comments: len(caps), Plan: plan}
		if len(caps) > 0 {
			v.ReplyLink = s.replyLink(caps)
		}
		return s.render(c, http.StatusOK, thanksPage, v)
	}
	if err == nil {
		return c.Redirect("/s/thanks", http.StatusSeeOther)
	}
	var appErr *schemas.Error
	if errors.As(err, &appErr) && (appErr.Code == "invalid_answers" || appErr.Code == "unavailable") {
		// Show the form again with the answers given, so nothing is lost.
		_, wave, survey, lerr := s.invitationFor(c.UserContext(), token, s.now(), true)
		if lerr != nil {
			status, v := messageFor(lerr)
			return s.render(c, status, messagePage, v)
		}
		v := buildSurveyView(survey, "/s/"+token, s.thresholdOf(wave), given, comments, appErr.Fields)
		v.Problem = "Some answers are missing or invalid"
		if appErr.Code == "unavailable" {
			v.Problem = "We could not save your answers right now. Nothing was saved; please send them again in a minute."
		}
		if appErr.Code == "unavailable" {
			c.Set(fiber.HeaderRetryAfter, "2")
		}
		return s.render(c, appErr.Status, surveyPage, v)
	}
	status, v := messageFor(err)
	return s.render(c, status, messagePage, v)
}

// planOf is the open plan of a link's team, or nil (none, or the plan
// bucket unreadable: the page is shown without it, and the error logged).
func (s *Server) planOf(ctx context.Context, claim *Claim) *schemas.Plan {
	if claim == nil || claim.Invitation.PlanTeam == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	p, err := teamPlan(ctx, s.js, claim.Invitation.Org, claim.Invitation.PlanTeam)
	if err != nil {
		s.log.Warn("team plan not read", "org", claim.Invitation.Org, "err", err)
		return nil
	}
	return p
}

func (s *Server) thanksHandler(c *fiber.Ctx) error {
	return s.render(c, http.StatusOK, messagePage, messageView{Title: "Thank you",
		Message: "Your answers are in.",
		Detail:  "They are stored without your name, email or link, and count only in results of groups large enough to keep them anonymous."})
}

func surveyCSSHandler(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/css; charset=utf-8")
	c.Set("Cache-Control", "public, max-age=3600")
	return c.Send(surveyCSS)
}
