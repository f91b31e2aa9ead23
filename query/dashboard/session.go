package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// Cookies of the dashboard.
const (
	sessionCookie = "tp_session"
	loginCookie   = "tp_login" // binds the sign-in form's CSRF token
	// SessionTTL is how long a sign-in lasts.
	SessionTTL = 8 * time.Hour
)

// session is a signed-in person: the organisation, the id (never the
// secret) of the API token they signed in with, its role, when the session
// ends, a random id the CSRF token is bound to, and for a manager the
// roster person they are.
type session struct {
	Org      string
	TokenID  string
	Role     schemas.Role
	Expires  time.Time
	ID       string
	PersonID string
}

// sign returns a MAC of msg under the dashboard's key.
func (d *Dashboard) sign(msg string) string {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(msg))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (d *Dashboard) verify(msg, mac string) bool {
	return hmac.Equal([]byte(d.sign(msg)), []byte(mac))
}

func randomID() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// encode serialises a session as payload.mac; ids and roles hold no '|'.
func (d *Dashboard) encode(s session) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(strings.Join([]string{
		s.Org, s.TokenID, string(s.Role), strconv.FormatInt(s.Expires.Unix(), 10), s.ID, s.PersonID}, "|")))
	return payload + "." + d.sign("session|"+payload)
}

// decode returns the session of a cookie value, if it is genuine and
// current.
func (d *Dashboard) decode(v string) (session, bool) {
	payload, mac, ok := strings.Cut(v, ".")
	if !ok || !d.verify("session|"+payload, mac) {
		return session{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return session{}, false
	}
	f := strings.Split(string(raw), "|")
	if len(f) == 5 { // a session signed before sessions carried a person
		f = append(f, "")
	}
	if len(f) != 6 {
		return session{}, false
	}
	exp, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return session{}, false
	}
	s := session{Org: f[0], TokenID: f[1], Role: schemas.Role(f[2]), Expires: time.Unix(exp, 0), ID: f[4], PersonID: f[5]}
	return s, d.now().Before(s.Expires)
}

// setCookie sets an HttpOnly, SameSite cookie on the dashboard's path,
// Secure when the page was served over HTTPS.
func setCookie(c *fiber.Ctx, name, value string, expires time.Time, sameSite string) {
	c.Cookie(&fiber.Cookie{
		Name: name, Value: value, Path: "/dashboard", Expires: expires,
		HTTPOnly: true, Secure: c.Protocol() == "https", SameSite: sameSite,
	})
}

func clearCookie(c *fiber.Ctx, name string) {
	setCookie(c, name, "", time.Unix(1, 0), fiber.CookieSameSiteLaxMode)
}

// csrfFor is the CSRF token of a session's forms.
func (d *Dashboard) csrfFor(s session) string { return d.sign("csrf|" + s.ID) }

// sameOrigin refuses a form posted from another site. Browsers that send
// Sec-Fetch-Site say so directly; others send an Origin on cross-site
// POSTs. The CSRF token is the defence either way; this is a second one.
func sameOrigin(c *fiber.Ctx) bool {
	if site := c.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := c.Get(fiber.HeaderOrigin)
	return origin == "" || origin == c.Protocol()+"://"+c.Hostname()
}
