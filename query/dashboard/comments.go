package dashboard

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
)

// The comments page: the comments to one comment question of a released
// wave, organisation-wide or within filters, each with its thread (replies
// and answers back), exactly as query.Server.Comments serves them (the
// guard's comment partition decides). People-ops reply under each comment.

type commentsView struct {
	Nav       *navView
	Form      formView
	Questions []option
	// Wave and Question are the list shown; Hidden its arguments, which
	// each reply form posts back.
	Wave, Question string
	Hidden         []hiddenField
	Result         *query.CommentsResult
	Items          []commentView
	MayReply       bool
	CSRF           string
	Sent           bool
	Problem        string
}

type hiddenField struct{ Name, Value string }

type commentView struct {
	N      int
	ID     string
	Text   string
	Thread []threadView
}

type threadView struct {
	Who, Text, Date string
	Answer          bool
}

// threadViews labels a thread's entries for readers of the comment.
func threadViews(entries []query.ThreadEntry) []threadView {
	out := make([]threadView, 0, len(entries))
	for _, e := range entries {
		who := "People team"
		if e.Role == "manager" {
			who = "Manager"
		}
		if e.Kind == query.KindAnswer {
			who = "The comment's writer"
		}
		out = append(out, threadView{Who: who, Text: e.Text, Date: e.Date, Answer: e.Kind == query.KindAnswer})
	}
	return out
}

// commentsRequest is what the page asks for: one wave, one question, and
// the explorer's filters.
type commentsRequest struct {
	exploreRequest
	question string
}

// parseComments reads the page's arguments (from the query string or a
// posted form): the explorer's wave and filters, no group-by, one wave, and
// a question.
func parseComments(args *fasthttp.Args, v viewer, released []query.WaveInfo) (commentsRequest, error) {
	var rest fasthttp.Args
	var r commentsRequest
	args.VisitAll(func(k, val []byte) {
		switch string(k) {
		case "question":
			r.question = string(val)
		case "sent", "csrf", "text":
		default:
			rest.AddBytesKV(k, val)
		}
	})
	er, err := parseExplore(&rest, v, released)
	r.exploreRequest = er
	if err != nil {
		return r, err
	}
	if r.groupBy != "" || len(r.waves) > 1 {
		return r, schemas.Errorf(http.StatusBadRequest, "invalid_parameter", "comments are listed for one wave, without grouping")
	}
	return r, nil
}

func (r commentsRequest) values() url.Values {
	v := r.query()
	if r.question != "" {
		v.Set("question", r.question)
	}
	return v
}

// listFilter is the filter of the comment list a viewer reads: the
// form's (for a manager, a team in their reach: parseExplore has checked
// it), or, for a manager who chose none, their own team's; a manager
// never reads the organisation-wide list.
func listFilter(v viewer, form []query.Clause) []query.Clause {
	if v.p.Role == schemas.RoleManager && len(form) == 0 {
		return query.TeamFilter(v.p)
	}
	return form
}

// commentsHandler renders the page, with status 200 unless the request is
// refused.
func (d *Dashboard) commentsHandler(c *fiber.Ctx, v viewer) error {
	args := c.Context().QueryArgs()
	ctx, cancel := context.WithTimeout(c.UserContext(), 30*time.Second)
	defer cancel()
	released, err := d.q.ReleasedWaves(ctx, v.s.Org)
	if err != nil {
		return d.errorPage(c, err)
	}
	values, err := d.q.AttributeValues(ctx, v.s.Org)
	if err != nil {
		return d.errorPage(c, err)
	}
	view := commentsView{Nav: d.nav(v, "comments"), MayReply: query.MayReply(v.p), CSRF: d.csrfFor(v.s), Sent: string(args.Peek("sent")) != ""}
	r, perr := parseComments(args, v, released)
	r.filter = listFilter(v, r.filter)
	view.Form = exploreForm(v, released, values, r.exploreRequest)
	if v.p.Role == schemas.RoleManager {
		choices, err := d.reachChoices(ctx, v)
		if err != nil {
			return d.errorPage(c, err)
		}
		view.Form.Scope = scopeSelect(choices, r.filter, false)
	}
	status := http.StatusOK
	switch {
	case perr != nil:
		status, view.Problem = problemOf(perr)
	case len(r.waves) == 0:
		view.Problem = "No wave has released results yet: comments appear once a wave closes."
	default:
		w := r.waves[0]
		view.Wave = w.ID
		qs, err := d.q.CommentQuestions(ctx, v.s.Org, w)
		if err != nil {
			return d.errorPage(c, err)
		}
		if r.question == "" && len(qs) > 0 {
			r.question = qs[0].ID
		}
		for _, q := range qs {
			view.Questions = append(view.Questions, option{Value: q.ID, Label: q.Text, Selected: q.ID == r.question})
		}
		if len(qs) == 0 {
			view.Problem = "The survey of wave " + w.ID + " asks for no comments."
			break
		}
		if !slices.ContainsFunc(qs, func(q query.CommentQuestion) bool { return q.ID == r.question }) {
			status, view.Problem = http.StatusBadRequest, "Choose one of the listed comment questions."
			break
		}
		view.Question = r.question
		res, err := d.q.Comments(ctx, v.s.Org, w.ID, r.question, r.filter)
		if err != nil {
			status, view.Problem = problemOf(err)
			if status >= 500 {
				return d.errorPage(c, err)
			}
			break
		}
		view.Result = &res
		for i, it := range res.Items {
			view.Items = append(view.Items, commentView{N: i + 1, ID: it.ID, Text: it.Text, Thread: threadViews(it.Thread)})
		}
	}
	for name, vals := range r.values() {
		for _, val := range vals {
			view.Hidden = append(view.Hidden, hiddenField{Name: name, Value: val})
		}
	}
	slices.SortFunc(view.Hidden, func(a, b hiddenField) int { return strings.Compare(a.Name, b.Name) })
	return d.render(c, status, "comments", view)
}

// replyHandler posts a reply from the comments page: the form carries the
// list's wave, question and filters, so that the reply is decided against
// the list it was written under. Nothing is published for a refusal; the
// page comes back with the refusal's message.
func (d *Dashboard) replyHandler(c *fiber.Ctx, v viewer) error {
	if !sameOrigin(c) || !d.verify("csrf|"+v.s.ID, c.FormValue("csrf")) {
		return d.errorPage(c, schemas.Errorf(http.StatusForbidden, "csrf", "The form expired or came from another site; nothing was sent."))
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 30*time.Second)
	defer cancel()
	args := c.Request().PostArgs()
	released, err := d.q.ReleasedWaves(ctx, v.s.Org)
	if err != nil {
		return d.errorPage(c, err)
	}
	r, err := parseComments(args, v, released)
	if err == nil && (len(r.waves) != 1 || r.question == "") {
		err = schemas.Errorf(http.StatusBadRequest, "invalid_parameter", "the reply form lost its comment list; open the comments again")
	}
	if err == nil {
		_, err = d.q.Reply(ctx, v.p, c.Params("comment"), string(args.Peek("text")), listFilter(v, r.filter))
	}
	if err != nil {
		status, problem := problemOf(err)
		if status >= 500 {
			return d.errorPage(c, err)
		}
		return d.errorPage(c, schemas.Errorf(status, "reply_refused", "Your reply was not sent: %s", problem))
	}
	q := r.values()
	q.Set("sent", "1")
	return c.Redirect("/dashboard/comments?"+q.Encode()+"#c-"+c.Params("comment"), http.StatusSeeOther)
}
