package dashboard

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/deploy/metrics"
	"github.com/trustpulse/trustpulse/query"
	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

//go:embed web
var web embed.FS

// Dashboard serves the pages. Create it with New and add its routes to the
// query service with query.Server.Handle(d.Routes).
type Dashboard struct {
	q     *query.Server
	key   []byte
	log   *slog.Logger
	now   func() time.Time
	pages map[string]*template.Template
	css   []byte
}

// New returns the dashboard over a query service. key signs sessions and
// CSRF tokens: at least 32 random bytes, the same on every replica.
func New(q *query.Server, key []byte, log *slog.Logger) (*Dashboard, error) {
	if len(key) < 32 {
		return nil, errors.New("dashboard: the session key needs at least 32 bytes")
	}
	d := &Dashboard{q: q, key: key, log: log.With("component", "dashboard"), now: time.Now, pages: map[string]*template.Template{}}
	funcs := template.FuncMap{
		// prepend puts a row before others, as the overall row of a table.
		"prepend": func(first participationRow, rest []participationRow) []participationRow {
			return append([]participationRow{first}, rest...)
		},
		// pair passes a caption and rows to a partial template.
		"pair": func(first string, second any) struct {
			First  string
			Second any
		} {
			return struct {
				First  string
				Second any
			}{first, second}
		},
	}
	for _, name := range []string{"login", "overview", "explore", "comments", "replylink", "plans", "team", "signin", "error"} {
		// Every page may include the plan panel (web/planpanel.html).
		t, err := template.New(name).Funcs(funcs).ParseFS(web, "web/layout.html", "web/planpanel.html", "web/"+name+".html")
		if err != nil {
			return nil, err
		}
		d.pages[name] = t
	}
	css, err := web.ReadFile("web/dashboard.css")
	if err != nil {
		return nil, err
	}
	d.css = css
	return d, nil
}

// Routes adds the dashboard's routes under /dashboard.
func (d *Dashboard) Routes(r fiber.Router) {
	g := r.Group("/dashboard", metrics.Label("dashboard"), pageHeaders, d.limitFailures)
	g.Get("/assets/dashboard.css", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/css; charset=utf-8")
		c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
		return c.Send(d.css)
	})
	g.Get("/login", d.loginPageHandler)
	g.Post("/login", d.loginHandler)
	// A manager's emailed single-use link: the link is the credential,
	// opening it uses nothing, the page's button does (signin.go).
	g.Get("/signin/:token", d.limitSignIns, d.signInPageHandler)
	g.Post("/signin/:token", d.limitSignIns, d.signInLinkHandler)
	g.Post("/logout", d.signedIn(d.logoutHandler))
	g.Get("/", d.signedIn(d.overviewHandler))
	g.Get("/team", d.signedIn(d.teamHandler))
	g.Get("/explore", d.signedIn(d.exploreHandler))
	g.Get("/export/:table", d.signedIn(d.exportHandler))
	g.Get("/comments", d.signedIn(d.commentsHandler))
	g.Post("/comments/:comment/replies", d.signedIn(d.replyHandler))
	g.Get("/plans", d.signedIn(d.plansHandler))
	g.Post("/plans", d.signedIn(d.createPlanHandler))
	g.Post("/plans/:plan", d.signedIn(d.updatePlanHandler))
	g.Post("/plans/:plan/complete", d.signedIn(d.completePlanHandler))
	// The holder's reply link: no sign-in, the capability is the credential.
	r.Get("/r/:caps", metrics.Label("reply_link"), replyLinkHeaders, d.limitLinks, d.replyLinkHandler)
	r.Post("/r/:caps", metrics.Label("reply_link"), replyLinkHeaders, d.limitLinks, d.answerHandler)
}

// pageHeaders keep pages out of shared caches and forbid everything they
// do not need: no script runs on them at all.
func pageHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("Referrer-Policy", "same-origin")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	return c.Next()
}

// limitFailures counts failed sign-ins (401) against the client's budget
// of failures, the same query.Server.Limiter as the API's wrong tokens. A
// client past it gets, for every dashboard request until the budget
// refills, 429 with Retry-After and a page saying when to try again.
func (d *Dashboard) limitFailures(c *fiber.Ctx) error {
	return d.limited(c, d.q.Limiter.Failures(c, httpproblem.Unauthorized))
}

// limited turns the limiter's refusal into the page that says when to
// try again. The budget is one per client for wrong tokens and for
// sign-in links that do not exist, so the page names both.
func (d *Dashboard) limited(c *fiber.Ctx, err error) error {
	var e *schemas.Error
	if errors.As(err, &e) && e.Code == "rate_limited" {
		return d.errorPage(c, schemas.Errorf(http.StatusTooManyRequests, "rate_limited",
			"Too many sign-ins that did not work (tokens that are not valid, or sign-in links that do not exist) came from your network. Please wait %s seconds, then try again.", c.GetRespHeader(fiber.HeaderRetryAfter)))
	}
	return err
}

// viewer is who a page is for.
type viewer struct {
	s session
	p *query.Principal
}

// signedIn runs h for a signed-in person with a current session of an
// unrevoked token; anyone else goes to the sign-in page.
func (d *Dashboard) signedIn(h func(*fiber.Ctx, viewer) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		s, ok := d.decode(c.Cookies(sessionCookie))
		if !ok {
			return c.Redirect("/dashboard/login", http.StatusSeeOther)
		}
		ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
		defer cancel()
		active, err := d.q.TokenActive(ctx, s.TokenID)
		if err != nil {
			return d.errorPage(c, err)
		}
		if !active {
			clearCookie(c, sessionCookie)
			return c.Redirect("/dashboard/login?revoked=1", http.StatusSeeOther)
		}
		p, err := d.q.WithReach(ctx, &query.Principal{Org: s.Org, TokenID: s.TokenID, Role: s.Role, PersonID: s.PersonID})
		if err != nil {
			return d.errorPage(c, err)
		}
		return h(c, viewer{s: s, p: p})
	}
}

// render writes a page.
func (d *Dashboard) render(c *fiber.Ctx, status int, page string, v any) error {
	var buf bytes.Buffer
	if err := d.pages[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).Send(buf.Bytes())
}

// errorView is a page that explains a refusal.
type errorView struct {
	Title, Message string
	Nav            *navView
}

// errUnavailable is the page's refusal while ClickHouse or NATS is down.
var errUnavailable = schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "The results cannot be reached right now; please try again in a minute.")

// errorPage turns an error into a clear page: the guard's and the request
// checks' messages as they are (they reveal no count), anything else as a
// generic message, logged.
func (d *Dashboard) errorPage(c *fiber.Ctx, err error) error {
	var appErr *schemas.Error
	switch {
	case errors.As(err, &appErr):
	case httpproblem.Unavailable(err):
		d.log.Warn("dashboard page: dependency unavailable", "path", c.Path(), "err", err)
		appErr = errUnavailable
	default:
		d.log.Error("dashboard page failed", "path", c.Path(), "err", err)
		appErr = schemas.Errorf(http.StatusInternalServerError, "internal", "Something went wrong on our side; please try again in a minute.")
	}
	title := map[int]string{400: "That request did not work", 403: "Not available to your role", 404: "Not found", 410: "This link no longer works", 422: "That did not work", 409: "Not available yet", 429: "Too many attempts", 503: "Please try again shortly"}[appErr.Status]
	if title == "" {
		title = "Something went wrong"
	}
	return d.render(c, appErr.Status, "error", errorView{Title: title, Message: appErr.Detail})
}

// navView is the page header's navigation and sign-out form.
type navView struct {
	Org, Role, CSRF, Current string
}

func (d *Dashboard) nav(v viewer, current string) *navView {
	return &navView{Org: v.s.Org, Role: string(v.s.Role), CSRF: d.csrfFor(v.s), Current: current}
}

// loginView is the sign-in page.
type loginView struct {
	CSRF, Problem string
	Nav           *navView
}

func (d *Dashboard) loginPageHandler(c *fiber.Ctx) error {
	nonce := randomID()
	setCookie(c, loginCookie, nonce, d.now().Add(time.Hour), fiber.CookieSameSiteStrictMode)
	v := loginView{CSRF: d.sign("login|" + nonce)}
	if c.Query("revoked") != "" {
		v.Problem = "Your token was revoked; sign in with a current one."
	}
	return d.render(c, http.StatusOK, "login", v)
}

// loginHandler exchanges an API token for a session.
func (d *Dashboard) loginHandler(c *fiber.Ctx) error {
	again := func(status int, problem string) error {
		nonce := randomID()
		setCookie(c, loginCookie, nonce, d.now().Add(time.Hour), fiber.CookieSameSiteStrictMode)
		return d.render(c, status, "login", loginView{CSRF: d.sign("login|" + nonce), Problem: problem})
	}
	nonce := c.Cookies(loginCookie)
	if !sameOrigin(c) || nonce == "" || !d.verify("login|"+nonce, c.FormValue("csrf")) {
		return again(http.StatusForbidden, "The sign-in form expired or came from another site; please sign in again.")
	}
	token := strings.TrimSpace(c.FormValue("token"))
	ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
	defer cancel()
	p, err := d.q.Authenticate(ctx, token)
	if err != nil {
		return d.errorPage(c, err)
	}
	if p == nil {
		return again(http.StatusUnauthorized, "That token is not valid: check that you pasted all of it (it starts with tp_), or ask an admin of your organisation for a new one.")
	}
	s := session{Org: p.Org, TokenID: p.TokenID, Role: p.Role, PersonID: p.PersonID, Expires: d.now().Add(SessionTTL), ID: randomID()}
	setCookie(c, sessionCookie, d.encode(s), s.Expires, fiber.CookieSameSiteLaxMode)
	clearCookie(c, loginCookie)
	d.log.Info("signed in", "org", p.Org, "role", p.Role)
	return c.Redirect("/dashboard", http.StatusSeeOther)
}

func (d *Dashboard) logoutHandler(c *fiber.Ctx, v viewer) error {
	if !sameOrigin(c) || !d.verify("csrf|"+v.s.ID, c.FormValue("csrf")) {
		return d.errorPage(c, schemas.Errorf(http.StatusForbidden, "csrf", "The form expired or came from another site; nothing was done."))
	}
	clearCookie(c, sessionCookie)
	return c.Redirect("/dashboard/login", http.StatusSeeOther)
}
