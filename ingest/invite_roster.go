package ingest

import (
	"context"
	"encoding/json"
	"errors"
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

// OwnCohort is the own cohort of the roster's person id (an employee id,
// a key of people as Admin.People returns them) at now, before
// generalisation: their department, team, location, tenure band, and
// reporting line as the roster has it now (their managers' person ids, top
// first), which counts them for their managers' groups.
func OwnCohort(people map[string]schemas.Person, id string, now time.Time) (schemas.Cohort, error) {
	p := people[id]
	start, err := time.Parse(schemas.DateLayout, p.StartDate)
	if err != nil {
		return schemas.Cohort{}, fmt.Errorf("roster entry with a bad start date: %w", err)
	}
	return schemas.Cohort{Department: p.Department, Team: p.Team, Location: p.Location, TenureBand: TenureBand(start, now)}.
		WithLine(reportingLine(people, id)), nil
}

// ErrAudienceTooSmall is InviteRoster's error when nobody of the audience
// could be invited: too few people for the wave's threshold.
var ErrAudienceTooSmall = errors.New("invite: the audience is too small")

// Invited says what InviteRoster did.
type Invited struct {
	// Invited is how many people were invited.
	Invited int
	// HeldBack is how many of the audience were not invited because no
	// cohort of the wave could include them with enough others (fewer than
	// the wave's threshold would share their stored cohort). Inviting the
	// wave again, once more people are invited, tries them again.
	HeldBack int
	// Generalised is how many of those invited have a stored cohort coarser
	// than their own (schemas.GeneraliseLadder).
	Generalised int
}

// InviteRoster issues one single-use link per person of the audience for an
// open wave and queues an email with it. The invitation ledger keeps only
// the link's hash and the person's stored cohort — their own, with their
// reporting line (the person ids of their managers, top first, and their
// direct manager), generalised until at least the wave's threshold of
// invitees share it (generalise);
// the invitee bucket keeps which response slot is whose until the wave is
// sealed (for reminders); the email, with the link, waits in the outbox
// until it is sent. People invited before are skipped.
func (a *Admin) InviteRoster(ctx context.Context, org, waveID string, aud Audience) (res Invited, err error) {
	if a.PublicURL == "" {
		return Invited{}, fmt.Errorf("invite: no public URL for survey links")
	}
	w, ok := a.catalog.Wave(org, waveID)
	if !ok {
		return Invited{}, fmt.Errorf("wave %q of %s not found", waveID, org)
	}
	if w.Closed || !a.now().Before(w.ClosesAt) {
		return Invited{}, fmt.Errorf("wave %q of %s is closed; invitations are only issued for open waves", waveID, org)
	}
	people, err := a.People(ctx, org)
	if err != nil {
		return Invited{}, err
	}
	invitees, err := a.ledger.Invitees(ctx, org, waveID)
	if err != nil {
		return Invited{}, fmt.Errorf("invite: invitee bucket: %w", err)
	}
	matched := 0
	var ids []string
	for id, p := range people {
		if !includes(aud, p) {
			continue
		}
		matched++
		if _, err := invitees.Get(ctx, inviteeKey(id)); err == nil || invitedBefore(ctx, a.js, org, waveID, id) {
			continue // invited already: inviting again is a no-op
		}
		ids = append(ids, id)
	}
	if matched == 0 {
		return Invited{}, fmt.Errorf("no one in the roster of %s matches the audience", org)
	}
	sort.Strings(ids)
	now := a.now()
	own := make([]schemas.Cohort, len(ids))
	for i, id := range ids {
		if own[i], err = OwnCohort(people, id, now); err != nil {
			return Invited{}, err
		}
	}
	stored, placed, err := a.placeCohorts(ctx, w, own)
	if err != nil {
		return Invited{}, err
	}
	plans := &teamPlans{js: a.js, org: org, found: map[string]*schemas.LetterPlan{}}
	for i, id := range ids {
		if !placed[i] {
			res.HeldBack++
			continue
		}
		p, cohort := people[id], stored[i]
		plan, err := plans.of(ctx, p.ManagerPersonID)
		if err != nil {
			return res, err
		}
		tok, slot, err := a.ledger.Issue(ctx, schemas.Invitation{Org: org, WaveID: waveID, Cohort: cohort, ExpiresAt: w.ClosesAt, PlanTeam: p.ManagerPersonID})
		if err != nil {
			return res, err
		}
		rec, _ := json.Marshal(invitee{Slot: slot, Cohort: cohort})
		if _, err := invitees.Put(ctx, inviteeKey(id), rec); err != nil {
			return res, fmt.Errorf("invite: store invitee: %w", err)
		}
		if err := a.publishAndWait(ctx, schemas.InvitationIssuedType, org, schemas.InvitationIssued{WaveID: waveID, Cohort: cohort}); err != nil {
			return res, err
		}
		if err := enqueue(ctx, a.js, schemas.Letter{Org: org, FromName: a.catalog.Org(org).SenderName, WaveID: waveID, Kind: "invitation", To: p.Email, Name: p.Name,
			Link: a.PublicURL + "/s/" + tok, ClosesAt: w.ClosesAt, Plan: plan}); err != nil {
			return res, err
		}
		res.Invited++
		if !cohort.Equal(own[i]) {
			res.Generalised++
		}
		if a.IssueHook != nil {
			if err := a.IssueHook(res.Invited); err != nil {
				return res, err
			}
		}
	}
	if res.Invited == 0 && res.HeldBack > 0 {
		return res, fmt.Errorf("%w: none of the %d people could be invited to wave %s, as fewer than its threshold of %d invitees would share their cohort; invite a larger audience",
			ErrAudienceTooSmall, res.HeldBack, waveID, w.Threshold)
	}
	return res, nil
}

// invitee is an invitee's entry in a wave's own invitee bucket: their slot
// and stored cohort, for reminders. Entries written before stored cohorts
// hold the slot alone.
type invitee struct {
	Slot   string         `json:"slot"`
	Cohort schemas.Cohort `json:"cohort"`
}

// parseInvitee reads an invitee entry; ok is false for an old entry that
// holds a slot alone.
func parseInvitee(val []byte) (inv invitee, ok bool) {
	if len(val) > 0 && val[0] == '{' && json.Unmarshal(val, &inv) == nil {
		return inv, true
	}
	return invitee{Slot: string(val)}, false
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
	for key, val := range slots {
		entry, stored := parseInvitee(val)
		used, err := a.ledger.SlotUsed(ctx, org, waveID, entry.Slot)
		if err != nil {
			return reminded, err
		}
		p, ok := people[strings.TrimPrefix(key, inviteeKey(""))]
		if used || !ok || p.LeftOn != "" {
			continue
		}
		cohort := entry.Cohort
		if !stored {
			// Invited before stored cohorts: as it was then.
			start, _ := time.Parse(schemas.DateLayout, p.StartDate)
			cohort = schemas.Cohort{Department: p.Department, Team: p.Team, Location: p.Location, TenureBand: TenureBand(start, now)}
		}
		tok, err := a.ledger.IssueForSlot(ctx, schemas.Invitation{Org: org, WaveID: waveID, Cohort: cohort, ExpiresAt: w.ClosesAt, Slot: entry.Slot, PlanTeam: p.ManagerPersonID})
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

// readBucketIdle is how long readBucket waits for the next entry before it
// gives up: a bucket of any size is read, but a stalled one is an error.
const readBucketIdle = 30 * time.Second

// readBucket reads the current entries of a bucket under a key filter. It
// has no deadline of its own on the whole read (a wave's ledger holds an
// entry per link and slot), only readBucketIdle between entries.
func readBucket(ctx context.Context, kv jetstream.KeyValue, filter string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := eachEntry(ctx, kv, filter, func(key string, val []byte) { out[key] = val })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachEntry calls f with every current entry of a bucket matching filter,
// one at a time, keeping none: for a bucket too large to hold in memory
// (the shared invitation index holds every open link of every wave).
func eachEntry(ctx context.Context, kv jetstream.KeyValue, filter string, f func(key string, val []byte)) error {
	w, err := kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer w.Stop()
	idle := time.NewTimer(readBucketIdle)
	defer idle.Stop()
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return nil
			}
			f(e.Key(), e.Value())
			idle.Reset(readBucketIdle)
		case <-idle.C:
			return fmt.Errorf("ingest: reading bucket %s: no entry for %s", kv.Bucket(), readBucketIdle)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
