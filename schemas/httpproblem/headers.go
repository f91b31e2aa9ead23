package httpproblem

import "github.com/gofiber/fiber/v2"

// SecurityHeaders is a middleware that gives every response of a JSON API
// the security headers its pages carry: X-Content-Type-Options: nosniff,
// Referrer-Policy: no-referrer (as the survey pages) and Cache-Control:
// no-store, since every answer is a result, or about a survey link, and
// belongs in no cache. They hold for error answers too. A handler or group
// that sets its own (a stylesheet's Cache-Control, the dashboard pages'
// Referrer-Policy) replaces them. Install it right after Recover.
func SecurityHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}
