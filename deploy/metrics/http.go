package metrics

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
)

// appKey is the Fiber local that names the app a request is counted under,
// when a group names one of its own (Label).
const appKey = "trustpulse.metrics.app"

// ObserveHTTP is the middleware every Fiber app of trustpulse installs
// first, before Recover: it runs the rest of the chain, lets the app's
// error handler answer an error (so the status is the one sent), and
// observes the request's duration under app (or the app a group's Label
// named), its method, its route template and its status class. The raw
// path is never a label: a survey link's path is its token. A nil Metrics
// only runs the chain.
func (m *Metrics) ObserveHTTP(c *fiber.Ctx, app string) error {
	if m == nil {
		return c.Next()
	}
	start := time.Now()
	if err := c.Next(); err != nil {
		if herr := c.App().ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	if a, ok := c.Locals(appKey).(string); ok {
		app = a
	}
	route := "unknown"
	if r := c.Route(); r != nil && r.Path != "" {
		route = r.Path // the registered template, e.g. /s/:token
	}
	m.httpDuration.WithLabelValues(app, methodLabel(c.Method()), route, statusClass(c.Response().StatusCode())).
		Observe(time.Since(start).Seconds())
	return nil
}

// Label returns a handler that counts the requests of the group it starts
// under app, e.g. the dashboard's pages within the query service's app.
func Label(app string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Locals(appKey, app)
		return c.Next()
	}
}

// methodLabel is one of the standard methods, as a constant string (the
// request's own bytes are reused by fasthttp), or "other".
func methodLabel(m string) string {
	for _, std := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace} {
		if m == std {
			return std
		}
	}
	return "other"
}

// statusClass is 1xx to 5xx.
func statusClass(code int) string {
	switch {
	case code >= 500:
		return "5xx"
	case code >= 400:
		return "4xx"
	case code >= 300:
		return "3xx"
	case code >= 200:
		return "2xx"
	}
	return "1xx"
}
