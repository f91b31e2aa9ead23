package dashboard

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// signInLinkHandler redeems a manager's emailed single-use sign-in link
// (query.Notifier sends them) and signs them in as a manager of their
// roster person, as the sign-in with a token does, then sends them to
// their team's page. A used or expired link is a 410 page, an unknown or
// malformed one a 404 page.
func (d *Dashboard) signInLinkHandler(c *fiber.Ctx) error {
	token := c.Params("token")
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	si, err := d.q.RedeemSignIn(ctx, token)
	if err != nil {
		return d.errorPage(c, err)
	}
	s := session{Org: si.Org, TokenID: query.SignInSessionID(token), Role: schemas.RoleManager, PersonID: si.PersonID,
		Expires: d.now().Add(SessionTTL), ID: randomID()}
	setCookie(c, sessionCookie, d.encode(s), s.Expires, fiber.CookieSameSiteLaxMode)
	d.log.Info("signed in with a link", "org", si.Org, "wave", si.WaveID, "role", schemas.RoleManager)
	return c.Redirect("/dashboard/team", http.StatusSeeOther)
}

// limitSignIns spends the client's failure budget on every sign-in link
// that finds nothing (404), as the survey and reply links do.
func (d *Dashboard) limitSignIns(c *fiber.Ctx) error {
	err := d.q.Limiter.Failures(c, httpproblem.NotFound)
	var e *schemas.Error
	if errors.As(err, &e) && e.Code == "rate_limited" {
		return d.errorPage(c, schemas.Errorf(http.StatusTooManyRequests, "rate_limited",
			"Too many sign-in links that do not exist were opened from your network. Please wait %s seconds, then open the link again.", c.GetRespHeader(fiber.HeaderRetryAfter)))
	}
	return err
}
