package query

import (
	"context"
	"fmt"
)

// The leadership overview's macro view of action plans: how many teams
// (managers with at least one current direct report in the roster) have a
// plan for a wave. It counts teams and plans, never respondents or
// answers: plans are not anonymous and hold no answers.

const sqlPlanShare = `SELECT uniqExact(manager),
    uniqExactIf(manager, manager IN (SELECT manager FROM action_plans WHERE org = ? AND wave_id = ?))
FROM (
    SELECT person_id,
        argMaxIf(manager_person_id, seq, kind != 'EmployeeLeft') AS manager,
        maxIf(seq, kind = 'EmployeeLeft') > maxIf(seq, kind != 'EmployeeLeft') AS gone
    FROM roster_events WHERE org = ? GROUP BY person_id
) WHERE gone = 0 AND manager != ''`

// PlanShare is how many teams there are and how many have a plan for a
// wave.
type PlanShare struct {
	WaveID    string `json:"wave_id"`
	Teams     int    `json:"teams"`
	WithPlans int    `json:"with_plans"`
}

// PlanShare counts the organisation's teams and those with a plan
// (open or completed) for the wave.
func (s *Server) PlanShare(ctx context.Context, org, waveID string) (PlanShare, error) {
	var teams, with uint64
	if err := s.store.ch.QueryRow(ctx, sqlPlanShare, org, waveID, org).Scan(&teams, &with); err != nil {
		return PlanShare{}, fmt.Errorf("query: plan share: %w", err)
	}
	return PlanShare{WaveID: waveID, Teams: int(teams), WithPlans: int(with)}, nil
}
