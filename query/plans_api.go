package query

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/trustpulse/trustpulse/schemas"
)

// The action plan endpoints (plans.go): request parsing and status codes.

// planBody decodes a plan's JSON body strictly: one object of PlanInput's
// fields, nothing else.
func planBody(c *fiber.Ctx) (PlanInput, error) {
	var in PlanInput
	if err := onlyParams(c); err != nil {
		return in, err
	}
	if !c.Is("json") {
		return in, schemas.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil || dec.More() {
		return in, schemas.Errorf(http.StatusBadRequest, "invalid_body",
			`the body must be one JSON object {"wave_id": "...", "manager": "<person id>", "focus_drivers": ["..."], "commitments": ["..."]}`)
	}
	return in, nil
}

// createPlanHandler records a team's plan for a released wave: 201 with it.
func (s *Server) createPlanHandler(c *fiber.Ctx) error {
	in, err := planBody(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	plan, err := s.CreatePlan(ctx, principalOf(c), in)
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(plan)
}

// updatePlanHandler replaces an open plan's focus drivers and commitments.
func (s *Server) updatePlanHandler(c *fiber.Ctx) error {
	in, err := planBody(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	plan, err := s.UpdatePlan(ctx, principalOf(c), c.Params("plan"), in)
	if err != nil {
		return err
	}
	return c.JSON(plan)
}

// completePlanHandler completes an open plan. It takes no body.
func (s *Server) completePlanHandler(c *fiber.Ctx) error {
	if err := onlyParams(c); err != nil {
		return err
	}
	if len(bytes.TrimSpace(c.Body())) > 0 {
		return schemas.Errorf(http.StatusBadRequest, "invalid_body", "completing a plan takes no body")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	plan, err := s.CompletePlan(ctx, principalOf(c), c.Params("plan"))
	if err != nil {
		return err
	}
	return c.JSON(plan)
}

// listPlansHandler lists a team's plans: ?manager=<person id>, required.
func (s *Server) listPlansHandler(c *fiber.Ctx) error {
	// The role first: a role without plans learns nothing of the request.
	if err := mayPlan(principalOf(c), c.Query("manager")); err != nil {
		return err
	}
	if err := onlyParams(c, "manager"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 20*time.Second)
	defer cancel()
	res, err := s.TeamPlans(ctx, principalOf(c), c.Query("manager"))
	if err != nil {
		return err
	}
	return c.JSON(res)
}
