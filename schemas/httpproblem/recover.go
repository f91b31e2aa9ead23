package httpproblem

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// RequestIDHeader carries the id of a request that failed with a panic, the
// one its log line names.
const RequestIDHeader = "X-Request-Id"

// Recover returns a middleware that turns a panic in any later handler into
// a 500 problem+json "internal" that names a fresh request id (in the
// detail and the X-Request-Id header), and logs one line with that id, the
// route pattern, the panic and the stack. The line never holds the body
// or the path (a survey link's path is its token). Install it first, so it
// covers every other middleware and route: app.Use(httpproblem.Recover(log)).
func Recover(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) (err error) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			id := rand.Text()
			log.Error("panic serving a request", "request_id", id, "method", c.Method(), "route", c.Route().Path,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.Set(RequestIDHeader, id)
			c.Response().Header.Del(fiber.HeaderContentDisposition)
			err = schemas.Errorf(http.StatusInternalServerError, "internal", "internal error; the request id is %s", id)
		}()
		return c.Next()
	}
}
