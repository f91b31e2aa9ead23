package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/examples"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// The benchmark organisation: every figure is computed from data drawn
// from a fixed seed, so two runs see the same data.
const (
	benchOrg    = "bench"
	benchSurvey = "pulse"
)

// benchPerson is one synthetic employee: a cohort and a bias.
type benchPerson struct {
	cohort schemas.Cohort
	bias   float64
}

var (
	benchDepartments = []string{"Engineering", "Product", "Sales", "Customer Success", "Marketing", "Finance", "People", "Operations", "Legal", "Data", "Security", "Design"}
	benchLocations   = []string{"Berlin", "Lisbon", "London", "New York", "Remote"}
	benchTenure      = []string{"<1y", "1-2y", "2-5y", "5y+"}
)

// people draws n employees: twelve departments of uneven size, four to six
// teams each, five locations, four tenure bands.
func people(rng *rand.Rand, n int) []benchPerson {
	out := make([]benchPerson, n)
	for i := range out {
		d := int(math.Min(float64(len(benchDepartments)-1), math.Abs(rng.NormFloat64())*4))
		dept := benchDepartments[d]
		team := fmt.Sprintf("%s %d", dept, 1+rng.IntN(4+d%3))
		out[i] = benchPerson{
			cohort: schemas.Cohort{Department: dept, Team: team, Location: benchLocations[rng.IntN(len(benchLocations))], TenureBand: benchTenure[rng.IntN(len(benchTenure))]},
			bias:   rng.NormFloat64()*0.4 + float64(d%5-2)*0.1,
		}
	}
	return out
}

// survey is the benchmark's survey: the demo's eleven-question pulse.
func survey() (schemas.SurveyPublished, error) {
	return ingest.ParseSurveyFile("leadership-pulse.yaml", examples.LeadershipPulse)
}

// answers draws one response's answers to the scored questions.
func answers(rng *rand.Rand, s schemas.SurveyPublished, bias float64) map[string]int {
	out := map[string]int{}
	for _, q := range s.Questions {
		if q.Dimension == schemas.Comment {
			continue
		}
		lo, hi := q.Dimension.Range()
		mean, sd := 3.6+bias, 0.9
		if q.Dimension == schemas.ENPS {
			mean, sd = 7.2+2*bias, 1.8
		}
		out[q.ID] = min(max(int(math.Round(mean+rng.NormFloat64()*sd)), lo), hi)
	}
	return out
}

// responseEvent is a ResponseSubmitted event as the mixer publishes it.
func responseEvent(s schemas.SurveyPublished, wave string, day time.Time, p benchPerson, a map[string]int) (schemas.Envelope, error) {
	r := schemas.ResponseSubmitted{SurveyID: s.SurveyID, WaveID: wave, Date: day.Format(schemas.DateLayout), Cohort: p.cohort}
	for _, q := range s.Questions {
		if v, ok := a[q.ID]; ok {
			r.Answers = append(r.Answers, schemas.Answer{QuestionID: q.ID, Dimension: q.Dimension, Value: v})
		}
	}
	return schemas.NewEnvelope(schemas.ResponseSubmittedType, benchOrg, day, r)
}

// publisher publishes envelopes asynchronously to the event stream, with a
// window of acks in flight, as fast as JetStream takes them.
type publisher struct {
	js      jetstream.JetStream
	futures []jetstream.PubAckFuture
	last    uint64
}

func (p *publisher) publish(env schemas.Envelope) error {
	data, err := env.Marshal()
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: schemas.Subject(env.OrgID, env.Type), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, env.ID.String())
	f, err := p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(schemas.EventStream))
	if err != nil {
		return err
	}
	p.futures = append(p.futures, f)
	// Half of the client's 4,000 async publishes in flight: at the limit
	// a publish stalls and, after 200 ms, fails.
	if len(p.futures) >= 2000 {
		return p.flush()
	}
	return nil
}

// flush waits for every ack in flight and remembers the last sequence.
func (p *publisher) flush() error {
	for _, f := range p.futures {
		select {
		case ack := <-f.Ok():
			p.last = max(p.last, ack.Sequence)
		case err := <-f.Err():
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("publish: no ack in 30s")
		}
	}
	p.futures = p.futures[:0]
	return nil
}

// waveEvents publishes one closed, sealed wave of the benchmark
// organisation: invitations for everyone, responses from a share of them,
// the close and the seal — what the event stream holds after a real wave.
func waveEvents(ctx context.Context, p *publisher, s schemas.SurveyPublished, staff []benchPerson, wave string, opens time.Time, responded int, seed uint64) (answerRows int, err error) {
	rng := rand.New(rand.NewPCG(seed, 7))
	emit := func(t schemas.EventType, at time.Time, payload any) error {
		env, err := schemas.NewEnvelope(t, benchOrg, at, payload)
		if err != nil {
			return err
		}
		env.ID = uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%s/%s/%d", wave, t, rng.Uint64()))
		return p.publish(env)
	}
	if err := emit(schemas.WaveOpenedType, opens, schemas.WaveOpened{WaveID: wave, SurveyID: s.SurveyID, OpensAt: opens, ClosesAt: opens.AddDate(0, 0, 7), Threshold: 5}); err != nil {
		return 0, err
	}
	for _, person := range staff {
		if err := emit(schemas.InvitationIssuedType, opens, schemas.InvitationIssued{WaveID: wave, Cohort: person.cohort}); err != nil {
			return 0, err
		}
	}
	order := rng.Perm(len(staff))[:responded]
	for _, i := range order {
		day := opens.AddDate(0, 0, rng.IntN(7))
		env, err := responseEvent(s, wave, day, staff[i], answers(rng, s, staff[i].bias))
		if err != nil {
			return 0, err
		}
		answerRows += 10
		if err := p.publish(env); err != nil {
			return 0, err
		}
	}
	closes := opens.AddDate(0, 0, 7)
	if err := emit(schemas.WaveClosedType, closes, schemas.WaveClosed{WaveID: wave}); err != nil {
		return 0, err
	}
	if err := p.flush(); err != nil {
		return 0, err
	}
	if err := emit(schemas.WaveSealedType, closes, schemas.WaveSealed{WaveID: wave}); err != nil {
		return 0, err
	}
	return answerRows, p.flush()
}
