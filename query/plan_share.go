package query

import (
	"context"
	"fmt"
)

// The leadership overview's macro view of action plans: how many teams
// (managers with at least one current direct report in the roster) have a
// current plan: one made from a wave's results, or one still open. It counts teams and plans, never respondents or
// answers: plans are not anonymous and hold no answers.

const sqlPlanShare = `SELECT uniqExact(manager),
    uniqExactIf(manager, manager IN (
        SELECT manager FROM action_plans WHERE org = ? GROUP BY plan_id, manager, wave_id
        HAVING wave_id = ? OR argMax(kind, seq) != 'completed'))
FROM (
    SELECT person_id,
        argMaxIf(manager_person_id, seq, kind != 'EmployeeLeft') AS manager,
        maxIf(seq, kind = 'EmployeeLeft') > maxIf(seq, kind != 'EmployeeLeft') AS gone
    FROM roster_events WHERE org = ? GROUP BY person_id
) WHERE gone = 0 AND manager != ''`

// PlanShare is how many teams there are and how many have a current plan.
type PlanShare struct {
	WaveID    string `json:"wave_id"`
	Teams     int    `json:"teams"`
	WithPlans int    `json:"with_plans"`
}

// PlanShare counts the organisation's teams and those with a plan made
// from the wave's results (open or completed) or a plan still open.
func (s *Server) PlanShare(ctx context.Context, org, waveID string) (PlanShare, error) {
	var teams, with uint64
	if err := s.store.ch.QueryRow(ctx, sqlPlanShare, org, waveID, org).Scan(&teams, &with); err != nil {
		return PlanShare{}, fmt.Errorf("query: plan share: %w", err)
	}
	return PlanShare{WaveID: waveID, Teams: int(teams), WithPlans: int(with)}, nil
}
