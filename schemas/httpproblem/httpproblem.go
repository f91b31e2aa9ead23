// Package httpproblem renders errors of trustpulse's Fiber services as RFC
// 9457 problem+json, the one place where an error becomes an HTTP status,
// and holds the middleware every one of those services installs first:
// Recover (a panic becomes a 500 problem) and SecurityHeaders.
package httpproblem

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// ErrorHandler returns a Fiber error handler. A *schemas.Error keeps its
// status and text; a Fiber error (body too large, unknown route) keeps its
// status; an unreachable ClickHouse or NATS (Unavailable) or a timeout is a
// 503 unavailable, any other error a 500 internal: each logged, answered
// with a generic message that reveals nothing internal.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		return Write(c, From(log, c.Route().Path, err))
	}
}

// From maps err to an application error, logging what users do not see.
func From(log *slog.Logger, route string, err error) *schemas.Error {
	var appErr *schemas.Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &appErr):
		return appErr
	case errors.As(err, &fe):
		switch fe.Code {
		case http.StatusRequestEntityTooLarge:
			return schemas.Errorf(fe.Code, "body_too_large", "request body too large")
		case http.StatusNotFound:
			return schemas.Errorf(fe.Code, "not_found", "no such endpoint")
		case http.StatusMethodNotAllowed:
			return schemas.Errorf(fe.Code, "method_not_allowed", "method not allowed here")
		}
		return schemas.Errorf(fe.Code, "bad_request", "%s", fe.Message)
	case Unavailable(err):
		log.Warn("dependency unavailable", "route", route, "err", err)
		return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "a server the service depends on does not answer; try again shortly")
	case errors.Is(err, context.DeadlineExceeded):
		log.Error("request timed out", "route", route, "err", err)
		return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "the request took too long; try again shortly")
	}
	log.Error("internal error", "route", route, "err", err)
	return schemas.Errorf(http.StatusInternalServerError, "internal", "internal error")
}

// Write sends e as problem+json.
func Write(c *fiber.Ctx, e *schemas.Error) error {
	return c.Status(e.Status).JSON(e.Problem(), schemas.ProblemContentType)
}
