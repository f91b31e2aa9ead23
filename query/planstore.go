package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// PlanStore keeps the current action plans (schemas.PlanBucket), written
// with compare-and-set on each key's revision.
type PlanStore interface {
	// Team returns a team's plans, one per wave, in no order.
	Team(ctx context.Context, org, manager string) ([]StoredPlan, error)
	// Wave returns the plans made from a wave's results, one per team, in
	// no order.
	Wave(ctx context.Context, org, waveID string) ([]StoredPlan, error)
	// ByID finds a plan by its id; ok is false for none.
	ByID(ctx context.Context, org, planID string) (p StoredPlan, ok bool, err error)
	// Create stores a team's first plan of a wave; ErrPlanExists when the
	// team has one.
	Create(ctx context.Context, p schemas.Plan) (revision uint64, err error)
	// Update replaces the plan stored at revision; ErrPlanChanged when it
	// changed since.
	Update(ctx context.Context, p schemas.Plan, revision uint64) (uint64, error)
	// Delete removes the plan stored at revision (a create undone).
	Delete(ctx context.Context, p schemas.Plan, revision uint64) error
}

// StoredPlan is a plan and the revision it was read at.
type StoredPlan struct {
	schemas.Plan
	Revision uint64
}

// Errors of a PlanStore.
var (
	ErrPlanExists  = errors.New("the team has a plan for that wave")
	ErrPlanChanged = errors.New("the plan changed since it was read")
)

// NewPlanStore keeps plans in js's schemas.PlanBucket.
func NewPlanStore(js jetstream.JetStream) PlanStore { return &kvPlans{js: js} }

type kvPlans struct{ js jetstream.JetStream }

func (k *kvPlans) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := k.js.KeyValue(ctx, schemas.PlanBucket)
	if err != nil {
		return nil, fmt.Errorf("query: plan bucket: %w", err)
	}
	return kv, nil
}

// read returns the plans under the keys matching filter.
func (k *kvPlans) read(ctx context.Context, filter string) ([]StoredPlan, error) {
	kv, err := k.bucket(ctx)
	if err != nil {
		return nil, err
	}
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("query: plans: %w", err)
	}
	defer w.Stop()
	var out []StoredPlan
	for e := range w.Updates() {
		if e == nil { // every current value was sent
			return out, nil
		}
		var p schemas.Plan
		if err := json.Unmarshal(e.Value(), &p); err != nil {
			return nil, fmt.Errorf("query: plan %s: %w", e.Key(), err)
		}
		out = append(out, StoredPlan{Plan: p, Revision: e.Revision()})
	}
	return nil, fmt.Errorf("query: plans: %w", ctx.Err())
}

func (k *kvPlans) Team(ctx context.Context, org, manager string) ([]StoredPlan, error) {
	return k.read(ctx, schemas.PlanKeyFilter(org, manager))
}

func (k *kvPlans) Wave(ctx context.Context, org, waveID string) ([]StoredPlan, error) {
	return k.read(ctx, org+".*."+waveID)
}

// ByID reads the organisation's plans: a team has one per wave, so an
// organisation's are few enough to scan.
func (k *kvPlans) ByID(ctx context.Context, org, planID string) (StoredPlan, bool, error) {
	all, err := k.read(ctx, org+".>")
	if err != nil {
		return StoredPlan{}, false, err
	}
	for _, p := range all {
		if p.PlanID == planID {
			return p, true, nil
		}
	}
	return StoredPlan{}, false, nil
}

func (k *kvPlans) Create(ctx context.Context, p schemas.Plan) (uint64, error) {
	kv, err := k.bucket(ctx)
	if err != nil {
		return 0, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return 0, err
	}
	rev, err := kv.Create(ctx, schemas.PlanKey(p.Org, p.Manager, p.WaveID), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, ErrPlanExists
	}
	return rev, err
}

func (k *kvPlans) Update(ctx context.Context, p schemas.Plan, revision uint64) (uint64, error) {
	kv, err := k.bucket(ctx)
	if err != nil {
		return 0, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return 0, err
	}
	rev, err := kv.Update(ctx, schemas.PlanKey(p.Org, p.Manager, p.WaveID), b, revision)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return 0, ErrPlanChanged
	}
	return rev, err
}

func (k *kvPlans) Delete(ctx context.Context, p schemas.Plan, revision uint64) error {
	kv, err := k.bucket(ctx)
	if err != nil {
		return err
	}
	return kv.Delete(ctx, schemas.PlanKey(p.Org, p.Manager, p.WaveID), jetstream.LastRevision(revision))
}
