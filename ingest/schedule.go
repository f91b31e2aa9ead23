package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/trustpulse/trustpulse/schemas"
)

// SetSchedule publishes (or replaces) a pulse schedule.
func (a *Admin) SetSchedule(ctx context.Context, org string, s schemas.ScheduleSet) error {
	if err := checkOrg(org); err != nil {
		return err
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("schedule %q is invalid:\n%w", s.ScheduleID, err)
	}
	if _, ok := a.catalog.Survey(org, s.SurveyID); !ok {
		return fmt.Errorf("survey %q of %s not found; publish it first", s.SurveyID, org)
	}
	s.FirstOpensAt = s.FirstOpensAt.UTC().Truncate(time.Second)
	return a.publishAndWait(ctx, schemas.ScheduleSetType, org, s)
}

// scheduleNamespace derives the ids of the waves a schedule opens.
var scheduleNamespace = uuid.MustParse("9b6a3c1e-4f7d-4c55-8d0e-2a1b3c4d5e6f")

// ScheduledWaveID is the id of pulse k (0, 1, 2 ...) of a schedule.
func ScheduledWaveID(schedule string, k int) string { return fmt.Sprintf("%s-%03d", schedule, k+1) }

// openDue opens the current pulse of a schedule if it is due and not open
// yet, and invites its audience. The wave's WaveOpened event has an id
// derived from the schedule and pulse, so two mixers open it once.
func (m *Mixer) openDue(ctx context.Context, sc Schedule, now time.Time) error {
	if now.Before(sc.FirstOpensAt) {
		return nil
	}
	period := time.Duration(sc.EveryWeeks) * 7 * 24 * time.Hour
	k := int(now.Sub(sc.FirstOpensAt) / period)
	waveID := ScheduledWaveID(sc.ScheduleID, k)
	if w, ok := m.catalog.Wave(sc.Org, waveID); ok {
		if w.Closed {
			return nil
		}
		return m.inviteScheduled(ctx, sc, waveID) // finishes an invitation cut short
	}
	opens := sc.FirstOpensAt.Add(time.Duration(k) * period)
	closes := opens.AddDate(0, 0, sc.OpenDays)
	if !now.Before(closes) {
		return nil // this pulse's time has passed; the next one will open
	}
	survey, ok := m.catalog.Survey(sc.Org, sc.SurveyID)
	if !ok {
		return fmt.Errorf("schedule %s: survey %s not found", sc.ScheduleID, sc.SurveyID)
	}
	env, err := schemas.NewEnvelope(schemas.WaveOpenedType, sc.Org, now, schemas.WaveOpened{
		WaveID: waveID, SurveyID: sc.SurveyID, OpensAt: opens, ClosesAt: closes, ReminderDays: sc.ReminderDays,
		QuestionIDs: schemas.RotatedQuestions(survey, sc.DriversPerPulse, k), ScheduleID: sc.ScheduleID,
		Threshold: m.catalog.Threshold(sc.Org),
	})
	if err != nil {
		return err
	}
	env.ID = uuid.NewSHA1(scheduleNamespace, []byte(sc.Org+"/"+waveID))
	seq, err := publish(ctx, m.js, env)
	if err != nil {
		return err
	}
	if err := m.catalog.WaitFor(ctx, seq); err != nil {
		return err
	}
	m.log.Info("scheduled wave opened", "org", sc.Org, "wave", waveID, "schedule", sc.ScheduleID)
	return m.inviteScheduled(ctx, sc, waveID)
}

// inviteScheduled invites a scheduled wave's audience once: a marker in the
// invitee bucket (forgotten at the seal with the rest) records that it is
// done, and InviteRoster skips anyone invited already, so a round cut short
// is finished by the next.
func (m *Mixer) inviteScheduled(ctx context.Context, sc Schedule, waveID string) error {
	if m.Invite == nil {
		return nil
	}
	kv, err := m.invitees(ctx, sc.Org, waveID)
	if err != nil {
		return err
	}
	marker := "invited.all"
	if _, err := kv.Get(ctx, marker); err == nil {
		return nil
	}
	n, err := m.Invite(ctx, sc.Org, waveID, sc.Audience)
	if errors.Is(err, ErrAudienceTooSmall) {
		// Not worth a retry every round: an admin can invite the wave by
		// hand once more people are on the roster.
		m.log.Warn("scheduled wave not invited", "org", sc.Org, "wave", waveID, "schedule", sc.ScheduleID, "err", err)
		err = nil
	}
	if err != nil {
		return fmt.Errorf("schedule %s: invite %s: %w", sc.ScheduleID, waveID, err)
	}
	if _, err := kv.Put(ctx, marker, []byte("done")); err != nil {
		return err
	}
	m.log.Info("scheduled wave invited", "org", sc.Org, "wave", waveID, "invited", n.Invited, "generalised", n.Generalised, "held_back", n.HeldBack)
	return nil
}
