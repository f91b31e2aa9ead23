package dashboard

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// The reply link, /r/<cap1>[.<cap2>...]: the page of whoever holds it. No
// sign-in and no cookie: the capabilities in the path are the only
// credential. It shows each comment of the link with its thread and a form
// to answer back. Nothing is recorded about it being opened; no log line
// carries its path (routes are logged by template); failed look-ups (404)
// spend the client's budget of failures, like wrong tokens at sign-in.

type replyLinkView struct {
	Title    string
	Nav      *navView
	Comments []heldView
	CSRF     string
	Answered bool
	Problem  string
	NotFound bool
}

type heldView struct {
	N                      int
	ID, Wave, Question     string
	Text                   string
	Thread                 []threadView
	Problem                string
	Replied, AnsweredAgain bool
}

// replyLinkHeaders keep the page out of every cache and its address out of
// every referrer.
func replyLinkHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	return c.Next()
}

// limitLinks spends the client's failure budget on every reply link that
// finds nothing (404), as the survey links and the sign-in do.
func (d *Dashboard) limitLinks(c *fiber.Ctx) error {
	err := d.q.Limiter.Failures(c, httpproblem.NotFound)
	var e *schemas.Error
	if errors.As(err, &e) && e.Code == "rate_limited" {
		return d.render(c, http.StatusTooManyRequests, "replylink", replyLinkView{Title: "Too many attempts",
			Problem: "Too many reply links that do not exist were opened from your network. Please wait " + c.GetRespHeader(fiber.HeaderRetryAfter) + " seconds and try again."})
	}
	return err
}

// answerToken is the per-page CSRF token of the answer forms: an expiry
// and a MAC over it and the link's capabilities, so that it works for this
// link alone and for a day.
func (d *Dashboard) answerToken(caps string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + d.sign("answer|"+exp+"|"+capsDigest(caps))
}

func (d *Dashboard) answerTokenValid(caps, token string) bool {
	exp, mac, ok := strings.Cut(token, ".")
	n, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || d.now().After(time.Unix(n, 0)) {
		return false
	}
	return d.verify("answer|"+exp+"|"+capsDigest(caps), mac)
}

// capsDigest keeps the capabilities themselves out of the MAC's input.
func capsDigest(caps string) string {
	sum := sha256.Sum256([]byte("reply-link|" + caps))
	return hex.EncodeToString(sum[:])
}

// notFound is the page of a link that finds nothing: unknown, or a survey
// not yet released, which cannot be told apart.
func (d *Dashboard) notFound(c *fiber.Ctx) error {
	return d.render(c, http.StatusNotFound, "replylink", replyLinkView{Title: "No replies here yet", NotFound: true})
}

// heldComments looks up a link's comments: nil for a malformed or unknown
// link.
func (d *Dashboard) heldComments(ctx context.Context, raw string) ([]string, []query.HeldComment, error) {
	caps, err := schemas.ParseReplyLink(raw)
	if err != nil {
		return nil, nil, nil
	}
	held, err := d.q.HeldComments(ctx, caps)
	if err == nil && len(held) < len(caps) {
		// A link's capabilities come from one response, so they are
		// released together: one unknown among them is a guess riding on
		// a real link, answered (and charged) as an unknown link.
		return nil, nil, nil
	}
	return caps, held, err
}

func (d *Dashboard) replyLinkHandler(c *fiber.Ctx) error {
	return d.replyLinkPage(c, http.StatusOK, "", "")
}

// replyLinkPage renders the link's page; problem, when set, is shown at the
// comment failed.
func (d *Dashboard) replyLinkPage(c *fiber.Ctx, status int, failed, problem string) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	raw := c.Params("caps")
	_, held, err := d.heldComments(ctx, raw)
	if err != nil {
		return d.linkUnavailable(c, err)
	}
	if len(held) == 0 {
		return d.notFound(c)
	}
	v := replyLinkView{Title: "Replies to your comments", CSRF: d.answerToken(raw, d.now().Add(24*time.Hour)), Answered: c.Query("answered") != ""}
	for i, h := range held {
		hv := heldView{N: i + 1, ID: h.ID, Wave: h.WaveID, Question: h.Question, Text: h.Text, Thread: threadViews(h.Thread)}
		for _, e := range h.Thread {
			hv.Replied = hv.Replied || e.Kind == query.KindReply
		}
		if h.ID == failed {
			hv.Problem = problem
		}
		v.Comments = append(v.Comments, hv)
	}
	return d.render(c, status, "replylink", v)
}

// linkUnavailable answers a link whose look-up failed: logged without the
// path, which holds the capabilities.
func (d *Dashboard) linkUnavailable(c *fiber.Ctx, err error) error {
	d.log.Warn("reply link page: look-up failed", "err", err)
	return d.render(c, http.StatusServiceUnavailable, "replylink", replyLinkView{Title: "Please try again shortly",
		Problem: "Your comments cannot be reached right now; please try again in a minute."})
}

// answerHandler records an answer back from the link's page.
func (d *Dashboard) answerHandler(c *fiber.Ctx) error {
	raw := c.Params("caps")
	caps, err := schemas.ParseReplyLink(raw)
	if err != nil {
		return d.notFound(c)
	}
	if !sameOrigin(c) || !d.answerTokenValid(raw, c.FormValue("csrf")) {
		return d.render(c, http.StatusForbidden, "replylink", replyLinkView{Title: "The form expired",
			Problem: "The form expired or came from another site; nothing was sent. Open your reply link again to answer."})
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	comment := c.FormValue("comment")
	_, err = d.q.Answer(ctx, caps, comment, c.FormValue("text"))
	var appErr *schemas.Error
	switch {
	case err == nil:
		return c.Redirect(schemas.ReplyLinkPath(caps)+"?answered=1#c-"+comment, http.StatusSeeOther)
	case errors.As(err, &appErr) && appErr.Status == http.StatusNotFound:
		return d.notFound(c)
	case errors.As(err, &appErr) && appErr.Status < 500:
		return d.replyLinkPage(c, appErr.Status, comment, "Your answer was not sent: "+appErr.Detail+".")
	}
	return d.linkUnavailable(c, err)
}
