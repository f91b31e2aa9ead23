package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// generalisingRoster: six of Sales East in Berlin who started together,
// the only Sales person in Remote, and four engineers, all of one team.
const generalisingRoster = "" +
	"s1,s1@example.com,S One,Sales,East,Berlin,,2026-06-01\n" +
	"s2,s2@example.com,S Two,Sales,East,Berlin,,2026-06-01\n" +
	"s3,s3@example.com,S Three,Sales,East,Berlin,,2026-06-01\n" +
	"s4,s4@example.com,S Four,Sales,East,Berlin,,2026-06-01\n" +
	"s5,s5@example.com,S Five,Sales,East,Berlin,,2026-06-01\n" +
	"s6,s6@example.com,S Six,Sales,East,Berlin,,2026-06-01\n" +
	"r1,r1@example.com,R One,Sales,East,Remote,,2026-06-01\n" +
	"e1,e1@example.com,E One,Eng,core,Berlin,,2019-01-01\n" +
	"e2,e2@example.com,E Two,Eng,core,Berlin,,2025-01-01\n" +
	"e3,e3@example.com,E Three,Eng,core,Lisbon,,2023-01-01\n" +
	"e4,e4@example.com,E Four,Eng,core,Berlin,,2026-01-01\n"

// queuedLinks reads the survey links queued in the outbox, by address.
func queuedLinks(t *testing.T, e *env) map[string]string {
	t.Helper()
	ctx := context.Background()
	outbox, err := e.js.Stream(ctx, schemas.OutboxStream)
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{}
	for seq := uint64(1); ; seq++ {
		m, err := outbox.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return links
		}
		if err != nil {
			t.Fatal(err)
		}
		var l schemas.Letter
		if err := json.Unmarshal(m.Data, &l); err != nil {
			t.Fatal(err)
		}
		links[l.To] = l.Link
	}
}

// atLeastK fails unless every cohort in counts has k or more.
func atLeastK(t *testing.T, where string, counts map[schemas.CohortKey]int, k int) {
	t.Helper()
	if len(counts) == 0 {
		t.Fatalf("%s: no cohorts", where)
	}
	for c, n := range counts {
		if n < k {
			t.Errorf("%s: cohort %+v is held by %d, fewer than k=%d", where, c, n, k)
		}
	}
}

// TestInviteRosterGeneralisesCohorts: inviting the roster stores cohorts
// that at least k invitees share, read back through a NATS client from
// everything that holds them — the InvitationIssued events, the wave's
// ledger (per slot, reminder links included) and invitee bucket — and from
// the response the mixer releases: the only Sales person in Remote is
// stored with the engineers under the fully generalised cohort, so the
// released response cannot be told from theirs. A late joiner of a cohort
// of their own joins the generalised cohort; an audience smaller than k is
// not invited at all.
func TestInviteRosterGeneralisesCohorts(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	admin := ingest.NewAdmin(e.js, e.ledger, e.cat, e.clock.Now) // generalising, as serve runs it
	admin.PublicURL = e.url
	if _, err := admin.ImportRoster(ctx, "acme", mustRoster(t, generalisingRoster), nil); err != nil {
		t.Fatal(err)
	}
	const k = schemas.DefaultThreshold
	res, err := admin.InviteRoster(ctx, "acme", "w1", ingest.Audience{})
	if err != nil || res.Invited != 11 || res.HeldBack != 0 || res.Generalised != 5 {
		t.Fatalf("InviteRoster = %+v, %v; want 11 invited, 5 of them generalised", res, err)
	}
	top := schemas.Cohort{Department: schemas.OtherDepartments, Team: schemas.OtherTeams, Location: schemas.OtherLocations, TenureBand: schemas.AnyTenure}
	sales := schemas.Cohort{Department: "Sales", Team: "East", Location: "Berlin", TenureBand: ingest.TenureBand(mustDate(t, "2026-06-01"), e.clock.Now())}

	issued := map[schemas.CohortKey]int{}
	for _, data := range e.read(t, schemas.EventStream, schemas.SubjectFilter(schemas.InvitationIssuedType)) {
		inv := decodePayload[schemas.InvitationIssued](t, data, schemas.InvitationIssuedType)
		issued[inv.Cohort.Key()]++
	}
	if issued[top.Key()] != 5 || issued[sales.Key()] != 6 || len(issued) != 2 {
		t.Fatalf("InvitationIssued cohorts %v; want 6 of %+v and 5 of %+v", issued, sales, top)
	}
	atLeastK(t, "InvitationIssued events", issued, k)

	// Remind everyone but r1, who answers first: the reminder links keep
	// their slot's stored cohort.
	r1 := queuedLinks(t, e)["r1@example.com"]
	if status, body := e.post(t, "application/json", submitBody(r1[strings.LastIndex(r1, "/")+1:], validAnswers())); status != http.StatusAccepted {
		t.Fatalf("r1 answers: %d %s", status, body)
	}
	if n, err := admin.Remind(ctx, "acme", "w1"); err != nil || n != 10 {
		t.Fatalf("Remind = %d, %v; want the 10 who have not answered", n, err)
	}
	perSlot, links := ledgerSlots(t, e, "w1")
	if links != 21 {
		t.Fatalf("%d links in the ledger, want 11 invitations and 10 reminders", links)
	}
	slotCohorts := map[schemas.CohortKey]int{}
	for _, c := range perSlot {
		slotCohorts[c.Key()]++
	}
	atLeastK(t, "ledger slots", slotCohorts, k)
	inviteesKV, err := e.js.KeyValue(ctx, schemas.WaveInviteeBucket("acme", "w1"))
	if err != nil {
		t.Fatal(err)
	}
	inviteeCohorts := map[schemas.CohortKey]int{}
	for key, val := range bucketEntries(t, inviteesKV) {
		if !strings.HasPrefix(key, "e.") {
			continue
		}
		var rec struct {
			Cohort schemas.Cohort `json:"cohort"`
		}
		if err := json.Unmarshal(val, &rec); err != nil {
			t.Fatalf("invitee entry %s: %v", key, err)
		}
		inviteeCohorts[rec.Cohort.Key()]++
	}
	atLeastK(t, "invitee bucket", inviteeCohorts, k)

	// A late joiner, alone in a cohort no one else has, joins the fully
	// generalised cohort.
	late := generalisingRoster + "x1,x1@example.com,X One,Ops,night,Paris,,2026-11-01\n"
	if _, err := admin.ImportRoster(ctx, "acme", mustRoster(t, late), nil); err != nil {
		t.Fatal(err)
	}
	if res, err = admin.InviteRoster(ctx, "acme", "w1", ingest.Audience{}); err != nil || res.Invited != 1 || res.Generalised != 1 {
		t.Fatalf("late joiner: %+v, %v; want invited under the generalised cohort", res, err)
	}
	issued[top.Key()]++
	// A wave whose audience is smaller than k invites nobody.
	if err := admin.OpenWave(ctx, "acme", schemas.WaveOpened{WaveID: "w2", SurveyID: "pulse",
		OpensAt: e.opened.Add(-time.Minute), ClosesAt: e.opened.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	res, err = admin.InviteRoster(ctx, "acme", "w2", ingest.Audience{Department: "Eng"})
	if !errors.Is(err, ingest.ErrAudienceTooSmall) || res.Invited != 0 || res.HeldBack != 4 {
		t.Fatalf("an audience of 4 with k=5: %+v, %v; want all held back", res, err)
	}

	if err := admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	if err := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now).Seal(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	released := e.read(t, schemas.EventStream, schemas.SubjectFilter(schemas.ResponseSubmittedType))
	if len(released) != 1 {
		t.Fatalf("%d responses released, want r1's", len(released))
	}
	if got := decodePayload[schemas.ResponseSubmitted](t, released[0], schemas.ResponseSubmittedType).Cohort; !got.Equal(top) || issued[got.Key()] < k {
		t.Fatalf("r1's response released with cohort %+v (%d invitees), want %+v", got, issued[got.Key()], top)
	}
}

func bucketEntries(t *testing.T, kv jetstream.KeyValue) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, key := range keys {
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		out[key] = e.Value()
	}
	return out
}

func decodePayload[T any](t *testing.T, data []byte, typ schemas.EventType) T {
	t.Helper()
	env, err := schemas.DecodeEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	v, err := schemas.DecodePayload[T](env, typ)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustDate(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse(schemas.DateLayout, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestReleaseAfterInvitationsCutShort: a round of invitations cut short
// (a crash after two of five in a cohort of their own) and never retried
// leaves a stored cohort that only two invitations hold. Their responses
// are released under a cohort that k or more invitations hold.
func TestReleaseAfterInvitationsCutShort(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	admin := ingest.NewAdmin(e.js, e.ledger, e.cat, e.clock.Now)
	big := schemas.Cohort{Department: "Eng", Team: "core", Location: "Berlin", TenureBand: "2-5y"}
	small := schemas.Cohort{Department: "Legal", Team: "contracts", Location: "Paris", TenureBand: "<1y"}
	if _, err := admin.IssueInvitations(ctx, "acme", "w1", []schemas.Cohort{big, big, big, big, big, big}); err != nil {
		t.Fatal(err)
	}
	admin.IssueHook = func(n int) error {
		if n == 2 {
			return errors.New("crash")
		}
		return nil
	}
	tokens, err := admin.IssueInvitations(ctx, "acme", "w1", []schemas.Cohort{small, small, small, small, small})
	if err == nil || len(tokens) != 2 {
		t.Fatalf("cut short: %d tokens, %v", len(tokens), err)
	}
	for _, tok := range tokens {
		if status, body := e.post(t, "application/json", submitBody(tok, validAnswers())); status != http.StatusAccepted {
			t.Fatalf("submit: %d %s", status, body)
		}
	}
	if err := admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	if err := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now).Seal(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	released := e.read(t, schemas.EventStream, schemas.SubjectFilter(schemas.ResponseSubmittedType))
	if len(released) != 2 {
		t.Fatalf("%d responses released, want 2", len(released))
	}
	// The two of Legal and the six of Eng: Legal's two are short of k at
	// every level, so the smallest group (Eng's six) joins them in the
	// fully generalised cohort.
	top := schemas.GeneraliseLadder[len(schemas.GeneraliseLadder)-1](small)
	for _, data := range released {
		if got := decodePayload[schemas.ResponseSubmitted](t, data, schemas.ResponseSubmittedType).Cohort; !got.Equal(top) {
			t.Fatalf("released under %+v, want %+v", got, top)
		}
	}
}

// TestInvitationRoundRetriedAfterCrash: a round cut short after its first
// invitation (Ana, alone of Sales in Remote, is placed with the four of
// Sales APAC under "Sales, other teams, ...") and then retried: the retry
// counts what the ledger holds, so the four join Ana's cohort and every
// stored cohort ends with k invitations. Nothing of a round's progress
// lives outside the ledger, so an error here leaves what a kill -9 would
// (red team, 2026-12-02: with a tally kept beside the ledger, a kill -9
// left Ana's cohort at one invitation for good).
func TestInvitationRoundRetriedAfterCrash(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	admin := ingest.NewAdmin(e.js, e.ledger, e.cat, e.clock.Now)
	admin.PublicURL = e.url
	roster := "a001,a@example.com,Ana,Sales,emea,Remote,,2024-01-01\n"
	for i := range 4 {
		roster += fmt.Sprintf("z%03d,z%d@example.com,Z %d,Sales,apac,Berlin,,2024-01-01\n", i, i, i)
	}
	for i := range 6 {
		roster += fmt.Sprintf("x%03d,x%d@example.com,X %d,Eng,core,Berlin,,2020-01-01\n", i, i, i)
	}
	if _, err := admin.ImportRoster(ctx, "acme", mustRoster(t, roster), nil); err != nil {
		t.Fatal(err)
	}
	admin.IssueHook = func(n int) error { return errors.New("crash") }
	if res, err := admin.InviteRoster(ctx, "acme", "w1", ingest.Audience{}); err == nil || res.Invited != 1 {
		t.Fatalf("cut short: %+v, %v", res, err)
	}
	admin.IssueHook = nil
	if res, err := admin.InviteRoster(ctx, "acme", "w1", ingest.Audience{}); err != nil || res.Invited != 10 {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	perSlot, _ := ledgerSlots(t, e, "w1")
	counts := map[schemas.CohortKey]int{}
	for _, c := range perSlot {
		counts[c.Key()]++
	}
	if len(perSlot) != 11 {
		t.Fatalf("%d slots, want 11", len(perSlot))
	}
	atLeastK(t, "ledger after the retry", counts, schemas.DefaultThreshold)
}

// ledgerSlots reads a wave's ledger with a NATS client: each response
// slot's stored cohort, checked to be the same on every link of the slot
// (an invitation's and its reminders'), and how many links there are.
func ledgerSlots(t *testing.T, e *env, wave string) (map[string]schemas.Cohort, int) {
	t.Helper()
	kv, err := e.js.KeyValue(context.Background(), schemas.WaveLedgerBucket("acme", wave))
	if err != nil {
		t.Fatal(err)
	}
	perSlot := map[string]schemas.Cohort{}
	links := 0
	for key, val := range bucketEntries(t, kv) {
		if strings.HasPrefix(key, "slot.") || strings.HasPrefix(key, "test.") {
			continue
		}
		var inv schemas.Invitation
		if err := json.Unmarshal(val, &inv); err != nil {
			t.Fatalf("ledger entry %s: %v", key, err)
		}
		if prev, ok := perSlot[inv.Slot]; ok && !prev.Equal(inv.Cohort) {
			t.Fatalf("slot %s has links with cohorts %+v and %+v", inv.Slot, prev, inv.Cohort)
		}
		perSlot[inv.Slot] = inv.Cohort
		links++
	}
	return perSlot, links
}
