package projector_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/schemas"
)

var questions = []schemas.Question{
	{ID: "t1", Text: "Trust", Dimension: schemas.Trust},
	{ID: "e1", Text: "Empowerment", Dimension: schemas.Empowerment},
	{ID: "m1", Text: "Motivation", Dimension: schemas.Motivation, Optional: true},
	{ID: "nps", Text: "eNPS", Dimension: schemas.ENPS},
}

// truth is what the test sent, aggregated independently of the projector.
type truth struct {
	responses map[string]bool // distinct response event ids
	count     map[string]int  // answers per question
	sum       map[string]int  // sum of values per question
	invited   int             // InvitationIssued events
	comments  int             // CommentSubmitted events
	plans     int             // ActionPlanned, ActionUpdated and ActionCompleted events
}

func newTruth() *truth {
	return &truth{responses: map[string]bool{}, count: map[string]int{}, sum: map[string]int{}}
}

// publisher publishes events the way ingest does (event id as Nats-Msg-Id)
// and can also republish them, with the same or a fresh message id.
type publisher struct {
	t     *testing.T
	js    jetstream.JetStream
	rng   *rand.Rand
	truth *truth
	sent  []schemas.Envelope
	// org publishes as this organisation ("acme" when empty).
	org string
	// seqs records the stream sequence of every publish that was stored.
	seqs map[uint64]schemas.Envelope
}

func (p *publisher) publish(env schemas.Envelope, msgID string) uint64 {
	p.t.Helper()
	data, err := env.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := p.js.PublishMsg(ctx, &nats.Msg{Subject: schemas.Subject(env.OrgID, env.Type), Data: data}, jetstream.WithMsgID(msgID))
	if err != nil {
		p.t.Fatalf("publish: %v", err)
	}
	if !ack.Duplicate && p.seqs != nil {
		p.seqs[ack.Sequence] = env
	}
	return ack.Sequence
}

func (p *publisher) event(typ schemas.EventType, payload any) schemas.Envelope {
	p.t.Helper()
	org := p.org
	if org == "" {
		org = "acme"
	}
	env, err := schemas.NewEnvelope(typ, org, time.Now(), payload)
	if err != nil {
		p.t.Fatal(err)
	}
	p.publish(env, env.ID.String())
	p.sent = append(p.sent, env)
	return env
}

// setup publishes the survey and opens wave w1.
func (p *publisher) setup() {
	p.event(schemas.SurveyPublishedType, schemas.SurveyPublished{SurveyID: "s1", Title: "S", Questions: questions})
	now := time.Now().UTC().Truncate(time.Second)
	p.event(schemas.WaveOpenedType, schemas.WaveOpened{WaveID: "w1", SurveyID: "s1", OpensAt: now, ClosesAt: now.Add(time.Hour)})
}

var departments = []string{"Engineering", "Sales", "Legal"}

// responses publishes n random responses (and an invitation for each).
func (p *publisher) responses(n int) {
	for range n {
		c := schemas.Cohort{Department: departments[p.rng.IntN(len(departments))], Team: "T", Location: "L", TenureBand: "1-2y"}
		p.event(schemas.InvitationIssuedType, schemas.InvitationIssued{WaveID: "w1", Cohort: c})
		p.truth.invited++
		var answers []schemas.Answer
		for _, q := range questions {
			if q.Optional && p.rng.IntN(3) == 0 {
				continue
			}
			lo, hi := q.Dimension.Range()
			answers = append(answers, schemas.Answer{QuestionID: q.ID, Dimension: q.Dimension, Value: lo + p.rng.IntN(hi-lo+1)})
		}
		env := p.event(schemas.ResponseSubmittedType, schemas.ResponseSubmitted{
			SurveyID: "s1", WaveID: "w1", Date: time.Now().UTC().Format(schemas.DateLayout), Cohort: c, Answers: answers,
		})
		p.truth.responses[env.ID.String()] = true
		if p.rng.IntN(3) == 0 {
			p.event(schemas.CommentSubmittedType, schemas.CommentSubmitted{
				SurveyID: "s1", WaveID: "w1", QuestionID: "c1", Text: fmt.Sprintf("comment %d", len(p.sent)), Cohort: c,
				Date: time.Now().UTC().Format(schemas.DateLayout),
			})
			p.truth.comments++
		}
		if p.rng.IntN(4) == 0 {
			p.plan()
		}
		for _, a := range answers {
			p.truth.count[a.QuestionID]++
			p.truth.sum[a.QuestionID] += a.Value
		}
	}
}

// plan publishes an action plan's events: planned, sometimes updated,
// sometimes completed.
func (p *publisher) plan() {
	id, mgr := fmt.Sprintf("%s-p%d-%d", p.org, len(p.sent), p.rng.Uint64()), "7f1c2a9e-0b3d-4c55-9a61-2d8e4f6b1c01"
	author := schemas.PlanAuthor{TokenID: "t1", Role: schemas.RoleAnalyst, Name: "people ops"}
	p.event(schemas.ActionPlannedType, schemas.ActionPlanned{PlanID: id, WaveID: "w1", Manager: mgr,
		FocusDrivers: []string{"support"}, Commitments: []string{"Weekly one-to-ones"}, Author: author})
	p.truth.plans++
	if p.rng.IntN(2) == 0 {
		p.event(schemas.ActionUpdatedType, schemas.ActionUpdated{PlanID: id, WaveID: "w1", Manager: mgr,
			FocusDrivers: []string{"support", "growth"}, Commitments: []string{"Weekly one-to-ones", "A growth plan each"}, Author: author})
		p.truth.plans++
	}
	if p.rng.IntN(2) == 0 {
		p.event(schemas.ActionCompletedType, schemas.ActionCompleted{PlanID: id, WaveID: "w1", Manager: mgr, Author: author})
		p.truth.plans++
	}
}

// duplicates republishes k already-sent events: half with their own message
// id (JetStream drops them), half with a fresh one (they reach the stream
// and the projector must skip them).
func (p *publisher) duplicates(k int) {
	for i := range k {
		env := p.sent[p.rng.IntN(len(p.sent))]
		id := env.ID.String()
		if i%2 == 1 {
			id = fmt.Sprintf("retry-%d-%s", i, id)
		}
		p.publish(env, id)
	}
}

// checkTables compares the projected tables with the truth.
func checkTables(t *testing.T, ch driver.Conn, tr *truth) {
	t.Helper()
	ctx := context.Background()
	rows, err := ch.Query(ctx, "SELECT question_id, count(), sum(value), uniqExact(response_id) FROM answers GROUP BY question_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string][2]int{}
	for rows.Next() {
		var q string
		var c, s, u uint64
		if err := rows.Scan(&q, &c, &s, &u); err != nil {
			t.Fatal(err)
		}
		if c != u {
			t.Errorf("question %s: %d answer rows for %d responses: an answer was counted twice", q, c, u)
		}
		got[q] = [2]int{int(c), int(s)}
	}
	for _, q := range questions {
		if want := [2]int{tr.count[q.ID], tr.sum[q.ID]}; got[q.ID] != want {
			t.Errorf("question %s: (count, sum) = %v, want %v", q.ID, got[q.ID], want)
		}
	}
	var responses, invited, events uint64
	if err := ch.QueryRow(ctx, "SELECT uniqExact(response_id) FROM answers").Scan(&responses); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueryRow(ctx, "SELECT count() FROM invitations").Scan(&invited); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueryRow(ctx, "SELECT count() FROM projected_events").Scan(&events); err != nil {
		t.Fatal(err)
	}
	if int(responses) != len(tr.responses) || int(invited) != tr.invited {
		t.Errorf("responses %d invitations %d, want %d and %d", responses, invited, len(tr.responses), tr.invited)
	}
	var comments, joined uint64
	if err := ch.QueryRow(ctx, "SELECT count() FROM comments").Scan(&comments); err != nil {
		t.Fatal(err)
	}
	if int(comments) != tr.comments {
		t.Errorf("comments %d, want %d", comments, tr.comments)
	}
	if err := ch.QueryRow(ctx, "SELECT count() FROM comments WHERE seq IN (SELECT seq FROM answers)").Scan(&joined); err != nil {
		t.Fatal(err)
	}
	if joined != 0 {
		t.Errorf("%d comments share a seq with answers", joined)
	}
	var plans, planEvents uint64
	if err := ch.QueryRow(ctx, "SELECT count(), uniqExact(plan_id, kind) FROM action_plans").Scan(&plans, &planEvents); err != nil {
		t.Fatal(err)
	}
	if int(plans) != tr.plans || plans != planEvents {
		t.Errorf("action_plans holds %d rows (%d distinct plan events), want %d", plans, planEvents, tr.plans)
	}
	var distinct uint64
	if err := ch.QueryRow(ctx, "SELECT uniqExact(event_id) FROM projected_events").Scan(&distinct); err != nil {
		t.Fatal(err)
	}
	if events != distinct {
		t.Errorf("projected_events holds %d rows for %d events", events, distinct)
	}
}

// catchUp runs fresh projectors until one catches up without a fault. Each
// fault ends its projector as a crash would; the next one starts from what
// ClickHouse and JetStream hold.
func catchUp(t *testing.T, js jetstream.JetStream, ch driver.Conn, cfg projector.Config, hook func(projector.Stage) error) (faults int) {
	t.Helper()
	return catchUpChecking(t, js, ch, cfg, hook, func() {})
}

// catchUpChecking is catchUp, calling afterFault after every injected
// fault, before the next projector starts: the states between crashes.
func catchUpChecking(t *testing.T, js jetstream.JetStream, ch driver.Conn, cfg projector.Config, hook func(projector.Stage) error, afterFault func()) (faults int) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		if attempt > 500 {
			t.Fatal("projector never caught up")
		}
		p := projector.New(js, ch, cfg, quietLog())
		p.Hook = hook
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := p.CatchUp(ctx)
		cancel()
		if err == nil {
			return faults
		}
		if !errors.Is(err, errInjected) {
			t.Fatalf("catch up: %v", err)
		}
		faults++
		afterFault()
	}
}

var errInjected = errors.New("injected crash")

func stagesSeen(m map[projector.Stage]int) []string {
	var out []string
	for s, n := range m {
		out = append(out, fmt.Sprintf("%s=%d", s, n))
	}
	sort.Strings(out)
	return out
}
