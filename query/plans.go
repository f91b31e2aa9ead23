package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/trustpulse/trustpulse/schemas"
)

// Action plans (schemas/plans.go). A team is a manager's direct reports
// (the manager= filter); its plan for a released wave names up to three of
// the survey's drivers to work on and the team's commitments. Plans are
// kept current in the plan bucket (PlanStore, compare-and-set) and their
// events are published to the event stream; a refused request publishes
// nothing and changes nothing. The list shows, for every focus driver, the
// team's score in the plan's wave and in the next released wave, each
// decided by the guard like any other result.

const sqlTokenName = `SELECT name FROM api_tokens WHERE org = ? AND token_id = ? LIMIT 1`

// SetPlans gives the service the plan bucket. Without one, plans are
// refused with 503.
func (s *Server) SetPlans(p PlanStore) { s.plans = p }

// mayPlan says whether p may read and write the plans of manager's team:
// analysts and admins any team, a manager only their own.
func mayPlan(p *Principal, manager string) error {
	switch {
	case p == nil:
		return errUnauthenticated
	case p.Role == schemas.RoleAnalyst || p.Role == schemas.RoleAdmin:
		return nil
	case p.Role == schemas.RoleManager && p.PersonID != "" && p.PersonID == manager:
		return nil
	case p.Role == schemas.RoleManager:
		return schemas.Errorf(http.StatusForbidden, "forbidden", "a manager plans for their own team only")
	}
	return schemas.Errorf(http.StatusForbidden, "forbidden", "the %s role does not write action plans; a team's manager or people-ops (analysts and admins) do", p.Role)
}

var (
	errPlansUnavailable = schemas.Errorf(http.StatusServiceUnavailable, "unavailable", "plans cannot be stored right now; nothing was saved, please try again in a minute")
	errPlanNotFound     = schemas.Errorf(http.StatusNotFound, "plan_not_found", "no plan with that id")
)

// PlanInput is what a create or update asks for.
type PlanInput struct {
	WaveID       string   `json:"wave_id"`
	Manager      string   `json:"manager"`
	FocusDrivers []string `json:"focus_drivers"`
	Commitments  []string `json:"commitments"`
}

// waveDrivers returns a released wave and the drivers of its survey, in
// name order.
func (s *Server) waveDrivers(ctx context.Context, org, waveID string) (WaveInfo, []string, error) {
	w, err := s.ReleasedWave(ctx, org, waveID)
	if err != nil {
		return w, nil, err
	}
	qn, err := s.store.Questions(ctx, org, []string{w.SurveyID})
	if err != nil {
		return w, nil, err
	}
	var ds []string
	for d := range qn.Drivers {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return w, ds, nil
}

// author names p for a plan event, with its token's name.
func (s *Server) author(ctx context.Context, p *Principal) (schemas.PlanAuthor, error) {
	a := schemas.PlanAuthor{TokenID: p.TokenID, Role: p.Role, PersonID: p.PersonID}
	err := s.store.ch.QueryRow(ctx, sqlTokenName, p.Org, p.TokenID).Scan(&a.Name)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("query: token name: %w", err)
	}
	return a, nil
}

// planContent cleans a plan's focus drivers (drivers of wave's survey) and
// commitments (schemas.CleanPlan) and names its author, p.
func (s *Server) planContent(ctx context.Context, p *Principal, wave string, in PlanInput) (focus, commitments []string, a schemas.PlanAuthor, err error) {
	_, drivers, err := s.waveDrivers(ctx, p.Org, wave)
	if err != nil {
		return nil, nil, a, err
	}
	if focus, commitments, err = schemas.CleanPlan(in.FocusDrivers, in.Commitments, drivers); err != nil {
		return nil, nil, a, err
	}
	a, err = s.author(ctx, p)
	return focus, commitments, a, err
}

// CreatePlan records a team's plan for a released wave. 400 for a
// malformed manager id, 403 when p may not plan for the team, 404/409/503
// for a wave that is not released, 422 for focus drivers or commitments
// CleanPlan refuses, 409 plan_exists when the team has a plan for the
// wave, 503 when it cannot be stored. Nothing is stored or published
// unless it returns nil.
func (s *Server) CreatePlan(ctx context.Context, p *Principal, in PlanInput) (schemas.Plan, error) {
	if !schemas.ValidPersonID(in.Manager) {
		return schemas.Plan{}, schemas.Errorf(http.StatusBadRequest, "invalid_manager", "manager must be a person id (a lower-case UUID)")
	}
	if err := mayPlan(p, in.Manager); err != nil {
		return schemas.Plan{}, err
	}
	if s.plans == nil {
		return schemas.Plan{}, errPlansUnavailable
	}
	focus, commitments, a, err := s.planContent(ctx, p, in.WaveID, in)
	if err != nil {
		return schemas.Plan{}, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	plan := schemas.Plan{PlanID: uuid.NewString(), Org: p.Org, WaveID: in.WaveID, Manager: in.Manager,
		FocusDrivers: focus, Commitments: commitments, Status: schemas.PlanOpen, CreatedAt: now, UpdatedAt: now, Author: a}
	env, err := schemas.NewEnvelope(schemas.ActionPlannedType, p.Org, now, schemas.ActionPlanned{
		PlanID: plan.PlanID, WaveID: plan.WaveID, Manager: plan.Manager, FocusDrivers: focus, Commitments: commitments, Author: a})
	if err != nil {
		return schemas.Plan{}, err
	}
	rev, err := s.plans.Create(ctx, plan)
	if errors.Is(err, ErrPlanExists) {
		return schemas.Plan{}, schemas.Errorf(http.StatusConflict, "plan_exists", "the team already has a plan for wave %s; update it instead", in.WaveID)
	}
	if err != nil {
		s.log.Error("plan not stored", "org", p.Org, "wave", in.WaveID, "err", err)
		return schemas.Plan{}, errPlansUnavailable
	}
	if err := s.publishPlan(ctx, env); err != nil {
		if derr := s.plans.Delete(context.WithoutCancel(ctx), plan, rev); derr != nil {
			s.log.Error("plan stored but its event not published, and not undone", "org", p.Org, "event_id", env.ID, "err", derr)
		}
		return schemas.Plan{}, err
	}
	return plan, nil
}

// openPlan reads the plan id for a change by p: 404 for none (or one of a
// team p may not see, which looks the same), 409 plan_completed when it
// is completed.
func (s *Server) openPlan(ctx context.Context, p *Principal, planID string) (StoredPlan, error) {
	if s.plans == nil {
		return StoredPlan{}, errPlansUnavailable
	}
	if _, err := uuid.Parse(planID); err != nil {
		return StoredPlan{}, errPlanNotFound
	}
	sp, ok, err := s.plans.ByID(ctx, p.Org, planID)
	if err != nil {
		s.log.Error("plans not read", "org", p.Org, "err", err)
		return StoredPlan{}, errPlansUnavailable
	}
	if !ok {
		return StoredPlan{}, errPlanNotFound
	}
	if err := mayPlan(p, sp.Manager); err != nil {
		return StoredPlan{}, err
	}
	if sp.Status != schemas.PlanOpen {
		return StoredPlan{}, schemas.Errorf(http.StatusConflict, "plan_completed", "the plan is completed and can no longer change")
	}
	return sp, nil
}

// UpdatePlan replaces an open plan's focus drivers and commitments (the
// input's wave and manager, when given, must be the plan's). Errors as
// CreatePlan's, and 404 plan_not_found, 409 plan_completed or
// plan_changed (someone else changed it meanwhile).
func (s *Server) UpdatePlan(ctx context.Context, p *Principal, planID string, in PlanInput) (schemas.Plan, error) {
	sp, err := s.openPlan(ctx, p, planID)
	if err != nil {
		return schemas.Plan{}, err
	}
	if (in.WaveID != "" && in.WaveID != sp.WaveID) || (in.Manager != "" && in.Manager != sp.Manager) {
		return schemas.Plan{}, schemas.Errorf(http.StatusUnprocessableEntity, "invalid_plan", "a plan's wave and team cannot change")
	}
	focus, commitments, a, err := s.planContent(ctx, p, sp.WaveID, in)
	if err != nil {
		return schemas.Plan{}, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	plan := sp.Plan
	plan.FocusDrivers, plan.Commitments, plan.UpdatedAt, plan.Author = focus, commitments, now, a
	env, err := schemas.NewEnvelope(schemas.ActionUpdatedType, p.Org, now, schemas.ActionUpdated{
		PlanID: plan.PlanID, WaveID: plan.WaveID, Manager: plan.Manager, FocusDrivers: focus, Commitments: commitments, Author: a})
	if err != nil {
		return schemas.Plan{}, err
	}
	return plan, s.replacePlan(ctx, sp, plan, env)
}

// CompletePlan completes an open plan. Errors as UpdatePlan's.
func (s *Server) CompletePlan(ctx context.Context, p *Principal, planID string) (schemas.Plan, error) {
	sp, err := s.openPlan(ctx, p, planID)
	if err != nil {
		return schemas.Plan{}, err
	}
	a, err := s.author(ctx, p)
	if err != nil {
		return schemas.Plan{}, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	plan := sp.Plan
	plan.Status, plan.UpdatedAt, plan.CompletedAt, plan.Author = schemas.PlanCompleted, now, &now, a
	env, err := schemas.NewEnvelope(schemas.ActionCompletedType, p.Org, now, schemas.ActionCompleted{
		PlanID: plan.PlanID, WaveID: plan.WaveID, Manager: plan.Manager, Author: a})
	if err != nil {
		return schemas.Plan{}, err
	}
	return plan, s.replacePlan(ctx, sp, plan, env)
}

// replacePlan stores plan over sp with compare-and-set, then publishes
// env; a failed publish puts sp back.
func (s *Server) replacePlan(ctx context.Context, sp StoredPlan, plan schemas.Plan, env schemas.Envelope) error {
	rev, err := s.plans.Update(ctx, plan, sp.Revision)
	if errors.Is(err, ErrPlanChanged) {
		return schemas.Errorf(http.StatusConflict, "plan_changed", "the plan was changed by someone else meanwhile; reload it and try again")
	}
	if err != nil {
		s.log.Error("plan not stored", "org", plan.Org, "wave", plan.WaveID, "err", err)
		return errPlansUnavailable
	}
	if err := s.publishPlan(ctx, env); err != nil {
		if _, uerr := s.plans.Update(context.WithoutCancel(ctx), sp.Plan, rev); uerr != nil {
			s.log.Error("plan stored but its event not published, and not undone", "org", plan.Org, "event_id", env.ID, "err", uerr)
		}
		return err
	}
	return nil
}

func (s *Server) publishPlan(ctx context.Context, env schemas.Envelope) error {
	if s.publisher == nil {
		return errPlansUnavailable
	}
	if err := s.publisher.Publish(ctx, env); err != nil {
		s.log.Error("plan event not published", "org", env.OrgID, "event_id", env.ID, "err", err)
		return errPlansUnavailable
	}
	return nil
}

// DriverMove is a focus driver's team score in the plan's wave and in the
// next released wave. A score the guard does not serve is null, with its
// reason.
type DriverMove struct {
	Driver string   `json:"driver"`
	Score  *float64 `json:"score"`
	// Reason says why Score is null: not_enough_responses (the guard
	// does not serve it) or not_asked (the wave's survey has no such
	// driver).
	Reason     string   `json:"reason,omitempty"`
	NextWaveID string   `json:"next_wave_id,omitempty"`
	Next       *float64 `json:"next"`
	// NextReason says why Next is null: no_next_wave, not_enough_responses
	// or not_asked.
	NextReason string `json:"next_reason,omitempty"`
}

// PlanView is one plan of a team's list.
type PlanView struct {
	schemas.Plan
	Drivers []DriverMove `json:"drivers"`
}

// PlanList is the result of GET /v1/orgs/{org}/plans?manager=.
type PlanList struct {
	Org     string     `json:"org"`
	Manager string     `json:"manager"`
	Plans   []PlanView `json:"plans"`
}

// Reasons of a null score.
const (
	ReasonSuppressed = "not_enough_responses"
	ReasonNotAsked   = "not_asked"
	ReasonNoNextWave = "no_next_wave"
)

// TeamPlans lists a team's plans wave after wave (by the waves' opening),
// each focus driver with the team's scores in the plan's wave and the
// next released one, decided by the guard in one decision. 400 for a
// malformed manager id, 403 when p may not see the team's plans.
func (s *Server) TeamPlans(ctx context.Context, p *Principal, manager string) (PlanList, error) {
	if !schemas.ValidPersonID(manager) {
		return PlanList{}, schemas.Errorf(http.StatusBadRequest, "invalid_manager", "manager must be a person id (a lower-case UUID)")
	}
	if err := mayPlan(p, manager); err != nil {
		return PlanList{}, err
	}
	if s.plans == nil {
		return PlanList{}, errPlansUnavailable
	}
	stored, err := s.plans.Team(ctx, p.Org, manager)
	if err != nil {
		s.log.Error("plans not read", "org", p.Org, "err", err)
		return PlanList{}, errPlansUnavailable
	}
	waves, cp, err := s.wavesAndCheckpoint(ctx, p.Org)
	if err != nil {
		return PlanList{}, err
	}
	var rel []WaveInfo
	for _, w := range waves {
		if released(w, cp) {
			rel = append(rel, w)
		}
	}
	sort.SliceStable(rel, func(i, j int) bool { return rel[i].OpensAt.Before(rel[j].OpensAt) })
	pos := map[string]int{}
	for i, w := range rel {
		pos[w.ID] = i
	}
	// The scopes to score: each plan's wave and the next one.
	var scopes []Scope
	at := map[string]int{}
	need := func(i int) {
		if _, ok := at[rel[i].ID]; !ok {
			at[rel[i].ID] = len(scopes)
			scopes = append(scopes, NewScope([]WaveInfo{rel[i]}, []Clause{{Attr: "manager", Values: []string{manager}}}, s.guard.K))
		}
	}
	var plans []StoredPlan
	for _, sp := range stored {
		if i, ok := pos[sp.WaveID]; ok {
			plans = append(plans, sp)
			need(i)
			if i+1 < len(rel) {
				need(i + 1)
			}
		}
	}
	sort.SliceStable(plans, func(i, j int) bool { return pos[plans[i].WaveID] < pos[plans[j].WaveID] })
	results, err := s.ScoresBatch(ctx, p.Org, scopes, "")
	if err != nil {
		return PlanList{}, err
	}
	score := func(waveID, driver string) (*float64, string) {
		for _, d := range results[at[waveID]].Drivers {
			if d.Key == driver {
				if d.Suppressed || d.Mean == nil {
					return nil, ReasonSuppressed
				}
				return d.Mean, ""
			}
		}
		return nil, ReasonNotAsked
	}
	out := PlanList{Org: p.Org, Manager: manager, Plans: []PlanView{}}
	for _, sp := range plans {
		v := PlanView{Plan: sp.Plan, Drivers: []DriverMove{}}
		i := pos[sp.WaveID]
		for _, d := range sp.FocusDrivers {
			m := DriverMove{Driver: d}
			m.Score, m.Reason = score(sp.WaveID, d)
			if i+1 < len(rel) {
				m.NextWaveID = rel[i+1].ID
				m.Next, m.NextReason = score(rel[i+1].ID, d)
			} else {
				m.NextReason = ReasonNoNextWave
			}
			v.Drivers = append(v.Drivers, m)
		}
		out.Plans = append(out.Plans, v)
	}
	return out, nil
}

// WaveDrivers returns the drivers of a released wave's survey, in name
// order: the focus drivers a plan of that wave may pick. Errors as
// ReleasedWave's.
func (s *Server) WaveDrivers(ctx context.Context, org, waveID string) ([]string, error) {
	_, ds, err := s.waveDrivers(ctx, org, waveID)
	return ds, err
}
