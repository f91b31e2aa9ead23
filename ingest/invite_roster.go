package ingest

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/trustpulse/trustpulse/schemas"
)

// Audience selects the invitees of a wave from the roster: everyone still
// employed, narrowed by any attribute that is set.
type Audience struct {
	Department, Team, Location string
}

func (a Audience) includes(p schemas.Person) bool {
	return p.LeftOn == "" &&
		(a.Department == "" || a.Department == p.Department) &&
		(a.Team == "" || a.Team == p.Team) &&
		(a.Location == "" || a.Location == p.Location)
}

// TenureBand buckets the time since a start date: <1y, 1-2y, 2-5y or 5y+.
func TenureBand(start, now time.Time) string {
	switch years := now.Sub(start).Hours() / (24 * 365.25); {
	case years < 1:
		return "<1y"
	case years < 2:
		return "1-2y"
	case years < 5:
		return "2-5y"
	}
	return "5y+"
}

// InviteRoster issues one single-use link per person of the audience for an
// open wave and queues an email with it. The invitation ledger keeps only
// the link's hash and the person's cohort; the email, with the link, waits
// in the outbox until it is sent. It returns how many were invited.
func (a *Admin) InviteRoster(ctx context.Context, org, waveID string, aud Audience) (int, error) {
	if a.PublicURL == "" {
		return 0, fmt.Errorf("invite: no public URL for survey links")
	}
	w, ok := a.catalog.Wave(org, waveID)
	if !ok {
		return 0, fmt.Errorf("wave %q of %s not found", waveID, org)
	}
	if w.Closed || !a.now().Before(w.ClosesAt) {
		return 0, fmt.Errorf("wave %q of %s is closed; invitations are only issued for open waves", waveID, org)
	}
	people, err := a.People(ctx, org)
	if err != nil {
		return 0, err
	}
	ids := make([]string, 0, len(people))
	for id, p := range people {
		if aud.includes(p) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return 0, fmt.Errorf("no one in the roster of %s matches the audience", org)
	}
	sort.Strings(ids)
	now := a.now()
	for _, id := range ids {
		p := people[id]
		start, err := time.Parse(schemas.DateLayout, p.StartDate)
		if err != nil {
			return 0, fmt.Errorf("roster entry with a bad start date: %w", err)
		}
		cohort := schemas.Cohort{Department: p.Department, Team: p.Team, Location: p.Location, TenureBand: TenureBand(start, now)}
		tok, err := a.ledger.Issue(ctx, schemas.Invitation{Org: org, WaveID: waveID, Cohort: cohort, ExpiresAt: w.ClosesAt})
		if err != nil {
			return 0, err
		}
		if err := a.publishAndWait(ctx, schemas.InvitationIssuedType, org, schemas.InvitationIssued{WaveID: waveID, Cohort: cohort}); err != nil {
			return 0, err
		}
		if err := enqueue(ctx, a.js, schemas.Letter{Org: org, WaveID: waveID, Kind: "invitation", To: p.Email, Name: p.Name,
			Link: a.PublicURL + "/s/" + tok, ClosesAt: w.ClosesAt}); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}
