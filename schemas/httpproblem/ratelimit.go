package httpproblem

import (
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/time/rate"

	"github.com/trustpulse/trustpulse/schemas"
)

// Limiter holds a token bucket per client: Rate tokens a second, up to
// Burst. Buckets idle for long are dropped, and at most maxClients are
// kept (the oldest go first), so a flood of addresses cannot grow it
// without bound.
type Limiter struct {
	rate  rate.Limit
	burst int
	// header, when set, names the request header that holds the client's
	// address (set by a trusted proxy); otherwise the peer address is used.
	header string

	mu      sync.Mutex
	clients map[string]*client
}

type client struct {
	lim  *rate.Limiter
	seen time.Time
}

// maxClients bounds the buckets a Limiter keeps.
const maxClients = 100_000

// NewLimiter returns a limiter of perSecond tokens a second per client, up
// to burst. header is the trusted proxy's client-address header, or "".
func NewLimiter(perSecond float64, burst int, header string) *Limiter {
	return &Limiter{rate: rate.Limit(perSecond), burst: max(1, burst), header: header, clients: map[string]*client{}}
}

// ClientAddr is the address a request is limited by: the first address of
// the trusted header when one is configured and present, else the peer's.
func (l *Limiter) ClientAddr(c *fiber.Ctx) string {
	if l.header != "" {
		if v := c.Get(l.header); v != "" {
			first, _, _ := strings.Cut(v, ",")
			if ip := net.ParseIP(strings.TrimSpace(first)); ip != nil {
				return ip.String()
			}
		}
	}
	return c.IP()
}

func (l *Limiter) bucket(key string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	cl, ok := l.clients[key]
	if !ok {
		if len(l.clients) >= maxClients {
			l.sweep(now)
		}
		cl = &client{lim: rate.NewLimiter(l.rate, l.burst)}
		l.clients[key] = cl
	}
	cl.seen = now
	return cl.lim
}

// sweep drops buckets that are full again (idle long enough to have
// refilled), and if that is not enough, the oldest half.
func (l *Limiter) sweep(now time.Time) {
	for k, cl := range l.clients {
		if cl.lim.TokensAt(now) >= float64(l.burst) {
			delete(l.clients, k)
		}
	}
	if len(l.clients) < maxClients {
		return
	}
	cut := now
	for _, cl := range l.clients {
		if cl.seen.Before(cut) {
			cut = cl.seen
		}
	}
	mid := cut.Add(now.Sub(cut) / 2)
	for k, cl := range l.clients {
		if cl.seen.Before(mid) {
			delete(l.clients, k)
		}
	}
}

// tooMany answers 429 with Retry-After: the seconds until a token is back.
func (l *Limiter) tooMany(c *fiber.Ctx, lim *rate.Limiter, now time.Time) error {
	wait := 1.0
	if l.rate > 0 {
		wait = math.Max(1, math.Ceil((1-lim.TokensAt(now))/float64(l.rate)))
	}
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(wait)))
	return schemas.Errorf(http.StatusTooManyRequests, "rate_limited", "too many requests from this address; try again in %d seconds", int(wait))
}

// Failures limits failed requests: every request whose answer failed
// says is a failure (a 401 for a wrong token, a 404 for a forged survey
// link) spends a token of its client's bucket, and a client whose bucket is
// empty gets 429 for every request until it refills, so tokens and links
// cannot be guessed at speed. Successful requests spend nothing: many
// people behind one address answering surveys are never slowed. A nil
// limiter limits nothing.
func (l *Limiter) Failures(c *fiber.Ctx, failed func(status int) bool) error {
	if l == nil {
		return c.Next()
	}
	now := time.Now()
	lim := l.bucket(l.ClientAddr(c), now)
	if lim.TokensAt(now) < 1 {
		return l.tooMany(c, lim, now)
	}
	err := c.Next()
	status := c.Response().StatusCode()
	var appErr *schemas.Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &appErr):
		status = appErr.Status
	case errors.As(err, &fe):
		status = fe.Code
	}
	if failed(status) {
		lim.AllowN(now, 1)
	}
	return err
}

// Unauthorized is a failure of authentication.
func Unauthorized(status int) bool { return status == http.StatusUnauthorized }

// NotFound is a link or token that does not exist.
func NotFound(status int) bool { return status == http.StatusNotFound }
