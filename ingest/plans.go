package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// The team sees its plan: the survey page, the thanks page and the
// invitation email show the open action plan (schemas.PlanBucket) of the
// invitee's direct manager, as the people bucket names them when the
// invitation is issued (schemas.Invitation.PlanTeam) — never the stored
// cohort's manager, which generalisation may have cut. A plan is the
// team's, not anyone's answers: showing it reveals nothing about
// responses.

// teamPlan returns the open plan of manager's team, the newest if it has
// several (one per wave), or nil for none (no manager, no open plan, no
// plan bucket).
func teamPlan(ctx context.Context, js jetstream.JetStream, org, manager string) (*schemas.Plan, error) {
	if manager == "" {
		return nil, nil
	}
	kv, err := js.KeyValue(ctx, schemas.PlanBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: plan bucket: %w", err)
	}
	w, err := kv.Watch(ctx, schemas.PlanKeyFilter(org, manager), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("ingest: plans: %w", err)
	}
	defer w.Stop()
	var best *schemas.Plan
	for e := range w.Updates() {
		if e == nil {
			return best, nil
		}
		var p schemas.Plan
		if err := json.Unmarshal(e.Value(), &p); err != nil {
			return nil, fmt.Errorf("ingest: plan %s: %w", e.Key(), err)
		}
		if p.Status == schemas.PlanOpen && (best == nil || p.CreatedAt.After(best.CreatedAt)) {
			best = &p
		}
	}
	return nil, fmt.Errorf("ingest: plans: %w", ctx.Err())
}

// letterPlan is a plan as an email shows it.
func letterPlan(p *schemas.Plan) *schemas.LetterPlan {
	if p == nil {
		return nil
	}
	return &schemas.LetterPlan{WaveID: p.WaveID, FocusDrivers: p.FocusDrivers, Commitments: p.Commitments}
}

// teamPlans looks plans up by manager once per invitation round.
type teamPlans struct {
	js    jetstream.JetStream
	org   string
	found map[string]*schemas.LetterPlan
}

func (t *teamPlans) of(ctx context.Context, manager string) (*schemas.LetterPlan, error) {
	if p, ok := t.found[manager]; ok {
		return p, nil
	}
	p, err := teamPlan(ctx, t.js, t.org, manager)
	if err != nil {
		return nil, err
	}
	t.found[manager] = letterPlan(p)
	return t.found[manager], nil
}
