package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
	"github.com/trustpulse/trustpulse/schemas/httpproblem"
)

// projectorReady is the readiness of the process's projector: NATS and
// ClickHouse answer, and the projection lags at most --ready-max-lag events
// behind the event stream. Every failure is a 503: readiness takes the
// process out of service while it catches up, and never restarts it.
func (m *Main) projectorReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if !m.Stack.JS.Conn().IsConnected() {
		return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "NATS does not answer")
	}
	if err := m.Stack.CH.Ping(ctx); err != nil {
		return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "ClickHouse does not answer")
	}
	err := m.Projector.Ready(ctx, uint64(m.Config.ReadyMaxLag))
	var appErr *schemas.Error
	if err == nil || errors.As(err, &appErr) {
		return err
	}
	m.Log.Warn("readiness: projector lag unknown", "err", err)
	return schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "the projector's lag cannot be read from NATS and ClickHouse")
}

// healthApp answers /livez (and its old name /healthz) while the process
// runs, and /readyz with ready's verdict; it serves the projector target,
// which has no API of its own.
func (m *Main) healthApp(ready func(context.Context) error) *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:               "trustpulse-health",
		ErrorHandler:          httpproblem.ErrorHandler(m.Log),
		DisableStartupMessage: true,
		ReadTimeout:           5 * time.Second,
		WriteTimeout:          5 * time.Second,
	})
	app.Use(func(c *fiber.Ctx) error { return m.Metrics.ObserveHTTP(c, "health") },
		httpproblem.Recover(m.Log), httpproblem.SecurityHeaders)
	live := func(c *fiber.Ctx) error { return c.SendString("ok") }
	app.Get("/livez", live)
	app.Get("/healthz", live)
	app.Get("/readyz", func(c *fiber.Ctx) error {
		if err := ready(c.UserContext()); err != nil {
			return err
		}
		return c.SendString("ready")
	})
	app.Use(func(c *fiber.Ctx) error {
		return schemas.Errorf(http.StatusNotFound, "not_found", "no such endpoint")
	})
	return app
}
