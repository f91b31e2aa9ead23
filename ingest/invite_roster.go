package ingest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Audience selects the invitees of a wave from the roster.
type Audience = schemas.Audience

func includes(a Audience, p schemas.Person) bool {
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
// the link's hash and the person's cohort; the invitee bucket keeps which
// response slot is whose until the wave is sealed (for reminders); the email,
// with the link, waits in the outbox until it is sent. People invited before
// are skipped. It returns how many were invited.
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
	invitees, err := a.ledger.Invitees(ctx, org, waveID)
	if err != nil {
		return 0, fmt.Errorf("invite: invitee bucket: %w", err)
	}
	ids := make([]string, 0, len(people))
	for id, p := range people {
		if includes(aud, p) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return 0, fmt.Errorf("no one in the roster of %s matches the audience", org)
	}
	sort.Strings(ids)
	now, invited := a.now(), 0
	for _, id := range ids {
		p := people[id]
		start, err := time.Parse(schemas.DateLayout, p.StartDate)
		if err != nil {
			return 0, fmt.Errorf("roster entry with a bad start date: %w", err)
		}
		cohort := schemas.Cohort{Department: p.Department, Team: p.Team, Location: p.Location, TenureBand: TenureBand(start, now)}
		key := inviteeKey(id)
		if _, err := invitees.Get(ctx, key); err == nil {
			continue // invited already: inviting again is a no-op
		}
		if invitedBefore(ctx, a.js, org, waveID, id) {
			continue
		}
		tok, slot, err := a.ledger.Issue(ctx, schemas.Invitation{Org: org, WaveID: waveID, Cohort: cohort, ExpiresAt: w.ClosesAt})
		if err != nil {
			return 0, err
		}
		if _, err := invitees.Put(ctx, key, []byte(slot)); err != nil {
			return 0, fmt.Errorf("invite: store invitee: %w", err)
		}
		if err := a.publishAndWait(ctx, schemas.InvitationIssuedType, org, schemas.InvitationIssued{WaveID: waveID, Cohort: cohort}); err != nil {
			return 0, err
		}
		if err := enqueue(ctx, a.js, schemas.Letter{Org: org, FromName: a.catalog.Org(org).SenderName, WaveID: waveID, Kind: "invitation", To: p.Email, Name: p.Name,
			Link: a.PublicURL + "/s/" + tok, ClosesAt: w.ClosesAt}); err != nil {
			return 0, err
		}
		invited++
	}
	return invited, nil
}

// Remind emails a new link to every invitee of an open wave who has not
// answered. The new link shares the invitee's response slot, so the old
// and the new link together record one response. Nobody but each invitee
// learns anything: the reminder goes to them alone. It returns how many
// were reminded.
func (a *Admin) Remind(ctx context.Context, org, waveID string) (int, error) {
	w, ok := a.catalog.Wave(org, waveID)
	if !ok {
		return 0, fmt.Errorf("wave %q of %s not found", waveID, org)
	}
	if w.Closed || !a.now().Before(w.ClosesAt) {
		return 0, fmt.Errorf("wave %q of %s is closed; nobody is reminded", waveID, org)
	}
	invitees, err := a.ledger.Invitees(ctx, org, waveID)
	if err != nil {
		return 0, fmt.Errorf("remind: invitee bucket: %w", err)
	}
	slots, err := readBucket(ctx, invitees, inviteeKey("*"))
	if err != nil {
		return 0, err
	}
	// Invitees recorded before waves had buckets of their own.
	if shared, err := a.js.KeyValue(ctx, schemas.InviteeBucket); err == nil {
		old, err := readBucket(ctx, shared, org+"."+waveID+".*")
		if err != nil {
			return 0, err
		}
		for key, slot := range old {
			slots[inviteeKey(key[strings.LastIndexByte(key, '.')+1:])] = slot
		}
	}
	people, err := a.People(ctx, org)
	if err != nil {
		return 0, err
	}
	now, reminded := a.now(), 0
	for key, slot := range slots {
		used, err := a.ledger.SlotUsed(ctx, org, waveID, string(slot))
		if err != nil {
			return reminded, err
		}
		p, ok := people[strings.TrimPrefix(key, inviteeKey(""))]
		if used || !ok || p.LeftOn != "" {
			continue
		}
		start, _ := time.Parse(schemas.DateLayout, p.StartDate)
		cohort := schemas.Cohort{Department: p.Department, Team: p.Team, Location: p.Location, TenureBand: TenureBand(start, now)}
		tok, err := a.ledger.IssueForSlot(ctx, schemas.Invitation{Org: org, WaveID: waveID, Cohort: cohort, ExpiresAt: w.ClosesAt, Slot: string(slot)})
		if err != nil {
			return reminded, err
		}
		if err := enqueue(ctx, a.js, schemas.Letter{Org: org, FromName: a.catalog.Org(org).SenderName, WaveID: waveID, Kind: "reminder", To: p.Email, Name: p.Name,
			Link: a.PublicURL + "/s/" + tok, ClosesAt: w.ClosesAt}); err != nil {
			return reminded, err
		}
		reminded++
	}
	return reminded, nil
}

// inviteeKey is an invitee's key in a wave's own invitee bucket; markers
// (reminders sent, scheduled invitations done) have keys of their own.
func inviteeKey(employeeID string) string { return "e." + employeeID }

// invitedBefore reports whether an employee was invited to the wave before
// waves had buckets of their own (the shared invitee bucket).
func invitedBefore(ctx context.Context, js jetstream.JetStream, org, wave, employeeID string) bool {
	kv, err := js.KeyValue(ctx, schemas.InviteeBucket)
	if err != nil {
		return false
	}
	_, err = kv.Get(ctx, schemas.InviteeKey(org, wave, employeeID))
	return err == nil
}

// readBucket reads the current entries of a bucket under a key filter.
func readBucket(ctx context.Context, kv jetstream.KeyValue, filter string) (map[string][]byte, error) {
	w, err := kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	out := map[string][]byte{}
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return out, nil
			}
			out[e.Key()] = e.Value()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
