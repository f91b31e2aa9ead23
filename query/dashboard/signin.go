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

// A manager's emailed single-use sign-in link, /dashboard/signin/<token>
// (query.Notifier sends them). Mail security scanners and link previews
// fetch every link of a mail before its reader does, so opening the link
// uses nothing: the GET checks it and shows a page with one button, and
// only the button's POST, from that page, spends the link and signs in.
// No log line carries the path, which holds the link. The page keeps the
// dashboard's Referrer-Policy (same-origin): with no-referrer, browsers
// that send no Sec-Fetch-Site would post the form with "Origin: null",
// which sameOrigin refuses; same-origin sends the address to trustpulse
// alone, which has it anyway.

// signInCookie binds the page's form to the browser that opened it, as
// loginCookie binds the sign-in form.
const signInCookie = "tp_signin"

// signInView is the page of a sign-in link.
type signInView struct {
	CSRF, Expires string
	Nav           *navView
}

// signInPageHandler checks the link without using it and asks the manager
// to press the button. A used or expired link is a 410 page, an unknown or
// malformed one a 404 page, as for the POST.
func (d *Dashboard) signInPageHandler(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	si, err := d.q.CheckSignIn(ctx, c.Params("token"))
	if err != nil {
		return d.signInError(c, err)
	}
	nonce := randomID()
	setCookie(c, signInCookie, nonce, d.now().Add(time.Hour), fiber.CookieSameSiteStrictMode)
	return d.render(c, http.StatusOK, "signin", signInView{
		CSRF:    d.sign("signin|" + nonce),
		Expires: si.ExpiresAt.UTC().Format("Monday 2 January 2006, 15:04 UTC"),
	})
}

// signInLinkHandler redeems the link (a compare-and-set: of two uses one
// wins) and signs the manager in as their roster person, as the sign-in
// with a token does, then sends them to their team's page. A POST from
// another site, or not from the link's page, is a 403 page and uses
// nothing; a used or expired link is a 410 page, an unknown or malformed
// one a 404 page.
func (d *Dashboard) signInLinkHandler(c *fiber.Ctx) error {
	nonce := c.Cookies(signInCookie)
	if !sameOrigin(c) || nonce == "" || !d.verify("signin|"+nonce, c.FormValue("csrf")) {
		return d.render(c, http.StatusForbidden, "error", errorView{Title: "Not signed in",
			Message: "This sign-in did not come from the page of your link (it came from another site, or the page expired), so your link was not used. Open the link from your email again and press Sign in."})
	}
	token := c.Params("token")
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	si, err := d.q.RedeemSignIn(ctx, token)
	if err != nil {
		return d.signInError(c, err)
	}
	s := session{Org: si.Org, TokenID: query.SignInSessionID(token), Role: schemas.RoleManager, PersonID: si.PersonID,
		Expires: d.now().Add(SessionTTL), ID: randomID()}
	setCookie(c, sessionCookie, d.encode(s), s.Expires, fiber.CookieSameSiteLaxMode)
	clearCookie(c, signInCookie)
	d.log.Info("signed in with a link", "org", si.Org, "wave", si.WaveID, "role", schemas.RoleManager)
	return c.Redirect("/dashboard/team", http.StatusSeeOther)
}

// signInError is the page of a refused or failed look-up. Unlike
// errorPage it never logs the path (query.Server logged the failure).
func (d *Dashboard) signInError(c *fiber.Ctx, err error) error {
	var appErr *schemas.Error
	if errors.As(err, &appErr) {
		return d.errorPage(c, appErr)
	}
	return d.errorPage(c, errUnavailable)
}

// limitSignIns spends the client's failure budget on every sign-in link
// that finds nothing (404), as the survey and reply links do.
func (d *Dashboard) limitSignIns(c *fiber.Ctx) error {
	return d.limited(c, d.q.Limiter.Failures(c, httpproblem.NotFound))
}
