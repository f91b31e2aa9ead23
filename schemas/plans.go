package schemas

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Action plans (issue 14). A team is a manager's direct reports, named by
// the manager's person id. For a released wave, the team's manager (or an
// analyst or admin for them) picks up to MaxFocusDrivers of the survey's
// drivers to work on and writes commitments; the plan is updated while it
// is open and completed once done. Plans are not anonymous: every event
// names its author's token, role and token name.
//
// The current plan of each team and wave is kept in PlanBucket under
// PlanKey, written with compare-and-set, so that a team has one plan per
// wave; the events (ActionPlanned, ActionUpdated, ActionCompleted) are its
// history, projected into action_plans.

// Limits of a plan.
const (
	MaxFocusDrivers  = 3
	MaxCommitments   = 10
	MaxCommitmentLen = 500
)

// PlanBucket holds the current plans: PlanKey → Plan.
const PlanBucket = "trustpulse_plans"

// PlanBucketConfig defines the plan bucket.
func PlanBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      PlanBucket,
		Description: "action plans: org.manager.wave -> the team's current plan of that wave",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// PlanKey is the key of a team's plan for a wave.
func PlanKey(org, manager, wave string) string { return org + "." + manager + "." + wave }

// PlanKeyFilter matches every plan key of a team.
func PlanKeyFilter(org, manager string) string { return org + "." + manager + ".*" }

// Plan statuses.
const (
	PlanOpen      = "open"
	PlanCompleted = "completed"
)

// Plan is a team's current plan for a wave, as PlanBucket keeps it.
type Plan struct {
	PlanID       string     `json:"plan_id"`
	Org          string     `json:"org"`
	WaveID       string     `json:"wave_id"`
	Manager      string     `json:"manager"`
	FocusDrivers []string   `json:"focus_drivers"`
	Commitments  []string   `json:"commitments"`
	Status       string     `json:"status"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	CompletedAt  *time.Time `json:"completed_at,omitempty"`
	// Author is who wrote the plan's last event.
	Author PlanAuthor `json:"author"`
}

// CleanPlan checks and cleans a plan's focus drivers and commitments:
// 1 to MaxFocusDrivers distinct drivers, each one of drivers (the wave's
// survey's); 1 to MaxCommitments commitments of 1 to MaxCommitmentLen
// characters after CleanText. The error is a 422 *Error naming the field.
func CleanPlan(focus, commitments []string, drivers []string) ([]string, []string, error) {
	invalid := func(field, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid_plan", Detail: msg,
			Fields: []FieldError{{Field: field, Detail: msg}}}
	}
	if len(focus) == 0 || len(focus) > MaxFocusDrivers {
		return nil, nil, invalid("focus_drivers", "pick 1 to %d focus drivers", MaxFocusDrivers)
	}
	var fs []string
	for _, d := range focus {
		d = strings.TrimSpace(d)
		if !slices.Contains(drivers, d) {
			return nil, nil, invalid("focus_drivers", "%.60q is not a driver of the wave's survey", d)
		}
		if slices.Contains(fs, d) {
			return nil, nil, invalid("focus_drivers", "%.60q is picked twice", d)
		}
		fs = append(fs, d)
	}
	var cs []string
	for _, c := range commitments {
		c = CleanText(c)
		if c == "" {
			continue
		}
		if n := len([]rune(c)); n > MaxCommitmentLen {
			return nil, nil, invalid("commitments", "a commitment has at most %d characters", MaxCommitmentLen)
		}
		cs = append(cs, c)
	}
	if len(cs) == 0 || len(cs) > MaxCommitments {
		return nil, nil, invalid("commitments", "write 1 to %d commitments", MaxCommitments)
	}
	return fs, cs, nil
}
