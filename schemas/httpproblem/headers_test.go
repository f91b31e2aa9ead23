package httpproblem_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// TestSecurityHeaders: results, errors and panics carry the headers; a
// handler's own Cache-Control replaces no-store.
func TestSecurityHeaders(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app := fiber.New(fiber.Config{ErrorHandler: httpproblem.ErrorHandler(log)})
	app.Use(httpproblem.Recover(log), httpproblem.SecurityHeaders)
	app.Get("/result", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"n": 5}) })
	app.Get("/refused", func(c *fiber.Ctx) error { return schemas.Errorf(409, "wave_open", "open") })
	app.Get("/panic", func(c *fiber.Ctx) error { panic("boom") })
	app.Get("/style.css", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
		return c.SendString("body{}")
	})
	for path, want := range map[string]struct {
		status       int
		cacheControl string
	}{
		"/result":    {200, "no-store"},
		"/refused":   {409, "no-store"},
		"/panic":     {500, "no-store"},
		"/nowhere":   {404, "no-store"},
		"/style.css": {200, "public, max-age=3600"},
	} {
		resp, err := app.Test(httptest.NewRequest("GET", path, nil))
		if err != nil {
			t.Fatal(err)
		}
		h := resp.Header
		if resp.StatusCode != want.status || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != want.cacheControl {
			t.Errorf("GET %s: %d %v, want %d with nosniff, no-referrer, Cache-Control %q", path, resp.StatusCode, h, want.status, want.cacheControl)
		}
	}
}
