package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Admin publishes the organisation's admin events: surveys, waves and
// invitations. Every method validates against the catalog first and returns
// once the catalog reflects the change, so a wave just opened takes
// responses at once.
type Admin struct {
	js      jetstream.JetStream
	ledger  *Ledger
	catalog *Catalog
	now     func() time.Time
	// PublicURL is the base of survey links in emails (no trailing slash).
	PublicURL string
	// IssueHook, when set, runs after each invitation IssueInvitations and
	// InviteRoster issue; an error stops the round there, as a crash would.
	// Tests use it to leave a round cut short.
	IssueHook func(issued int) error
	// keepCohorts stores cohorts as given (KeepCohortsForTest).
	keepCohorts bool
}

// NewAdmin returns an Admin.
func NewAdmin(js jetstream.JetStream, ledger *Ledger, catalog *Catalog, now func() time.Time) *Admin {
	return &Admin{js: js, ledger: ledger, catalog: catalog, now: now}
}

func (a *Admin) publishAndWait(ctx context.Context, t schemas.EventType, org string, payload any) error {
	env, err := schemas.NewEnvelope(t, org, a.now(), payload)
	if err != nil {
		return err
	}
	seq, err := publish(ctx, a.js, env)
	if err != nil {
		return err
	}
	switch t {
	case schemas.SurveyPublishedType, schemas.WaveOpenedType, schemas.WaveClosedType, schemas.WaveSealedType,
		schemas.ScheduleSetType, schemas.OrgConfiguredType:
		return a.catalog.WaitFor(ctx, seq)
	}
	return nil // not a catalog event

}

func checkOrg(org string) error {
	if !schemas.ValidID(org) {
		return fmt.Errorf("organisation id %q: want 1-64 of a-z, 0-9, '-', '_'", org)
	}
	return nil
}

// ConfigureOrg changes an organisation's settings; a zero field keeps its
// current value. A new threshold applies to waves opened from then on.
func (a *Admin) ConfigureOrg(ctx context.Context, org string, o schemas.OrgConfigured) error {
	if err := checkOrg(org); err != nil {
		return err
	}
	cur := a.catalog.Org(org)
	if o.SenderName == "" {
		o.SenderName = cur.SenderName
	}
	if o.Threshold == 0 {
		o.Threshold = cur.Threshold
	}
	if o.Threshold != 0 && !schemas.ValidThreshold(o.Threshold) {
		return fmt.Errorf("threshold %d: want %d to %d", o.Threshold, schemas.MinThreshold, schemas.MaxThreshold)
	}
	if len(o.SenderName) > schemas.MaxAttrLen || strings.ContainsAny(o.SenderName, "\r\n<>\"") {
		return fmt.Errorf("sender name: at most %d characters, without line breaks, quotes or angle brackets", schemas.MaxAttrLen)
	}
	return a.publishAndWait(ctx, schemas.OrgConfiguredType, org, o)
}

// Org returns an organisation's settings as waves opened now would get
// them: the threshold defaulted.
func (a *Admin) Org(org string) schemas.OrgConfigured {
	o := a.catalog.Org(org)
	o.Threshold = a.catalog.Threshold(org)
	return o
}

// PublishSurvey publishes (or republishes) a survey definition.
func (a *Admin) PublishSurvey(ctx context.Context, org string, s schemas.SurveyPublished) error {
	if err := checkOrg(org); err != nil {
		return err
	}
	if err := s.Validate(); err != nil {
		return fmt.Errorf("survey %q is invalid:\n%w", s.SurveyID, err)
	}
	return a.publishAndWait(ctx, schemas.SurveyPublishedType, org, s)
}

// OpenWave opens a wave of an existing survey.
func (a *Admin) OpenWave(ctx context.Context, org string, w schemas.WaveOpened) error {
	if err := checkOrg(org); err != nil {
		return err
	}
	if !schemas.ValidID(w.WaveID) {
		return fmt.Errorf("wave id %q: want 1-64 of a-z, 0-9, '-', '_'", w.WaveID)
	}
	if _, ok := a.catalog.Survey(org, w.SurveyID); !ok {
		return fmt.Errorf("survey %q of %s not found; publish it first", w.SurveyID, org)
	}
	if _, ok := a.catalog.Wave(org, w.WaveID); ok {
		return fmt.Errorf("wave %q of %s exists already; waves are never reopened", w.WaveID, org)
	}
	if !w.ClosesAt.After(w.OpensAt) {
		return fmt.Errorf("wave %q: closes_at %s must be after opens_at %s", w.WaveID, w.ClosesAt, w.OpensAt)
	}
	w.OpensAt, w.ClosesAt = w.OpensAt.UTC().Truncate(time.Second), w.ClosesAt.UTC().Truncate(time.Second)
	if w.Threshold == 0 {
		w.Threshold = a.catalog.Threshold(org)
	}
	if !schemas.ValidThreshold(w.Threshold) {
		return fmt.Errorf("wave %q: threshold %d: want %d to %d", w.WaveID, w.Threshold, schemas.MinThreshold, schemas.MaxThreshold)
	}
	return a.publishAndWait(ctx, schemas.WaveOpenedType, org, w)
}

// CloseWave closes an open wave. From then on no response counts, and its
// scores may be released.
func (a *Admin) CloseWave(ctx context.Context, org, waveID string) error {
	w, ok := a.catalog.Wave(org, waveID)
	if !ok {
		return fmt.Errorf("wave %q of %s not found", waveID, org)
	}
	if w.Closed {
		return fmt.Errorf("wave %q of %s is closed already", waveID, org)
	}
	return closeWave(ctx, a.js, a.catalog, org, waveID, a.now())
}

// closeWave publishes a wave's WaveClosed event with an id derived from the
// wave, so that an admin and the mixer closing it at once close it once.
func closeWave(ctx context.Context, js jetstream.JetStream, cat *Catalog, org, waveID string, now time.Time) error {
	env, err := schemas.NewEnvelope(schemas.WaveClosedType, org, now, schemas.WaveClosed{WaveID: waveID})
	if err != nil {
		return err
	}
	env.ID = schemas.CloseEventID(org, waveID)
	seq, err := publish(ctx, js, env)
	if err != nil {
		return err
	}
	return cat.WaitFor(ctx, seq)
}

// IssueInvitations creates one single-use invitation per cohort and returns
// their tokens, in the same order. Each is valid until the wave closes. The
// cohorts stored are generalised until at least the wave's threshold of its
// invitees share each (generalise); when that cannot be done for every one
// of them, nothing is issued. After an error, the tokens issued before it
// are returned: they are valid, and counted as invitees.
func (a *Admin) IssueInvitations(ctx context.Context, org, waveID string, cohorts []schemas.Cohort) (tokens []string, err error) {
	w, ok := a.catalog.Wave(org, waveID)
	if !ok {
		return nil, fmt.Errorf("wave %q of %s not found", waveID, org)
	}
	if w.Closed || !a.now().Before(w.ClosesAt) {
		return nil, fmt.Errorf("wave %q of %s is closed; invitations are only issued for open waves", waveID, org)
	}
	for i, c := range cohorts {
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("invitee %d: %w", i+1, err)
		}
	}
	stored, placed, err := a.placeCohorts(ctx, w, cohorts)
	if err != nil {
		return nil, err
	}
	if short := len(placed) - countTrue(placed); short > 0 {
		return nil, fmt.Errorf("%d of the %d invitees could not be given a cohort that at least %d invitees of wave %s share (its threshold); "+
			"nothing was issued: invite more people of their cohorts together, or a larger audience", short, len(cohorts), w.Threshold, waveID)
	}
	tokens = make([]string, 0, len(cohorts))
	for _, c := range stored {
		tok, _, err := a.ledger.Issue(ctx, schemas.Invitation{Org: org, WaveID: waveID, Cohort: c, ExpiresAt: w.ClosesAt})
		if err != nil {
			return tokens, err
		}
		tokens = append(tokens, tok)
		if err := a.publishAndWait(ctx, schemas.InvitationIssuedType, org, schemas.InvitationIssued{WaveID: waveID, Cohort: c}); err != nil {
			return tokens, err
		}
		if a.IssueHook != nil {
			if err := a.IssueHook(len(tokens)); err != nil {
				return tokens, err
			}
		}
	}
	return tokens, nil
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// KeepCohortsForTest, with keep set, makes the admin store every invitee's
// own cohort, not generalised, and mark the wave's ledger so that the seal
// releases them as they are (keepCohortsKey): the guard's tests plant
// people in cohorts of their own, to show that the guard alone hides them.
// Never call it outside tests.
func (a *Admin) KeepCohortsForTest(keep bool) { a.keepCohorts = keep }
