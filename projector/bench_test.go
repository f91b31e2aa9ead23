package projector_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/schemas"
)

// BenchmarkProjectResponses drains a backlog of responses of ten answers
// each (the benchmark harness's shape) from a real JetStream into a real
// ClickHouse; b.N counts responses. The harness (cmd/trustbench) gives
// the published figures; this is for profiles (-cpuprofile).
func BenchmarkProjectResponses(b *testing.B) {
	_, _, js := testenv.NATS(b)
	ch, _ := testenv.ClickHouse(b)
	var qs []schemas.Question
	for i := range 10 {
		qs = append(qs, schemas.Question{ID: fmt.Sprintf("q%d", i), Text: "Q", Dimension: []schemas.Dimension{schemas.Trust, schemas.Empowerment, schemas.Motivation}[i%3]})
	}
	now := time.Now().UTC().Truncate(time.Second)
	var futures []jetstream.PubAckFuture
	// flush waits for the publishes in flight and fails on any refused.
	flush := func() {
		<-js.PublishAsyncComplete()
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		futures = futures[:0]
	}
	pub := func(t schemas.EventType, payload any) {
		env, err := schemas.NewEnvelope(t, "acme", now, payload)
		if err != nil {
			b.Fatal(err)
		}
		data, err := env.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: schemas.Subject("acme", t), Data: data})
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	pub(schemas.SurveyPublishedType, schemas.SurveyPublished{SurveyID: "s1", Title: "S", Questions: qs})
	pub(schemas.WaveOpenedType, schemas.WaveOpened{WaveID: "w1", SurveyID: "s1", OpensAt: now, ClosesAt: now.Add(time.Hour)})
	for i := range b.N {
		c := schemas.Cohort{Department: departments[i%len(departments)], Team: "T", Location: "L", TenureBand: "1-2y"}
		var answers []schemas.Answer
		for j, q := range qs {
			answers = append(answers, schemas.Answer{QuestionID: q.ID, Dimension: q.Dimension, Value: 1 + (i+j)%5})
		}
		pub(schemas.ResponseSubmittedType, schemas.ResponseSubmitted{SurveyID: "s1", WaveID: "w1", Date: now.Format(schemas.DateLayout), Cohort: c, Answers: answers})
		if len(futures) > 4096 {
			flush()
		}
	}
	flush()
	b.ResetTimer()
	p := projector.New(js, ch, projector.Config{}, quietLog())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := p.CatchUp(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(qs))/b.Elapsed().Seconds(), "rows/s")
}
