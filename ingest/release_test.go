package ingest_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// mustSubmit submits n responses to w1 and returns their event ids in the
// order the held stream keeps them, with their held stream sequences.
func (e *env) mustSubmit(t *testing.T, n int) ([]string, []uint64) {
	t.Helper()
	for _, tok := range e.invite(t, n) {
		if status, body := e.post(t, "application/json", submitBody(tok, validAnswers())); status != http.StatusAccepted {
			t.Fatalf("%d %s", status, body)
		}
	}
	held := e.streamMsgs(t, schemas.HeldStream("acme", "w1"), schemas.HeldSubject("acme", "w1"))
	if len(held) != n {
		t.Fatalf("%d responses held, want %d", len(held), n)
	}
	seqs := make([]uint64, len(held))
	for i, m := range held {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = md.Sequence.Stream
	}
	return eventIDs(t, held), seqs
}

// released returns the event ids of the responses in the event stream,
// failing on any that is there more than once.
func (e *env) released(t *testing.T) []string {
	t.Helper()
	ids := eventIDs(t, e.streamMsgs(t, schemas.EventStream, schemas.SubjectFilter(schemas.ResponseSubmittedType)))
	sorted := slices.Sorted(slices.Values(ids))
	if d := len(sorted) - len(slices.Compact(slices.Clone(sorted))); d > 0 {
		t.Fatalf("%d responses published more than once", d)
	}
	return sorted
}

// runMixerUntilSealed runs a mixer's rounds, as a restarted ingest would,
// until w1 is sealed and its held stream gone.
func (e *env) runMixerUntilSealed(t *testing.T) {
	t.Helper()
	m := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now)
	m.Grace, m.Interval = 0, 20*time.Millisecond
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	defer func() { stop(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if w, _ := e.cat.Wave("acme", "w1"); w.Sealed && e.pendingCount(t) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the mixer's rounds did not seal w1")
		}
	}
}

// TestSealSkipsGaps: a held stream with a message deleted from its middle
// (and its first) seals the rest, each once.
func TestSealSkipsGaps(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	ids, seqs := e.mustSubmit(t, 12)
	held, err := e.js.Stream(ctx, schemas.HeldStream("acme", "w1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 5} {
		if err := held.DeleteMsg(ctx, seqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	want := slices.Sorted(slices.Values(slices.Delete(slices.Clone(ids), 5, 6)[1:]))
	if err := e.admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	if err := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now).Seal(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	if got := e.released(t); !slices.Equal(got, want) {
		t.Fatalf("released %v, want the %d not deleted %v", got, len(want), want)
	}
}

// TestSealPublishFailsHalfWay: the event stream refuses the second half of
// a wave's responses (its message limit reached), so the seal stops with
// an error; once the stream takes messages again the next mixer round
// finishes the seal, and the event stream holds every response exactly
// once.
func TestSealPublishFailsHalfWay(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	const n = 40
	ids, _ := e.mustSubmit(t, n)
	if err := e.admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	events, err := e.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	limited := info.Config
	limited.MaxMsgs = int64(info.State.Msgs) + n/2
	if _, err := e.js.UpdateStream(ctx, limited); err != nil {
		t.Fatal(err)
	}
	if err := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now).Seal(ctx, "acme", "w1"); err == nil {
		t.Fatal("a seal whose publishes were refused succeeded")
	}
	if got := len(e.released(t)); got == 0 || got >= n {
		t.Fatalf("%d of %d responses published before the limit, want some, not all", got, n)
	}
	if w, _ := e.cat.Wave("acme", "w1"); w.Sealed {
		t.Fatal("a wave half released is marked sealed")
	}
	limited.MaxMsgs = -1
	if _, err := e.js.UpdateStream(ctx, limited); err != nil {
		t.Fatal(err)
	}
	e.runMixerUntilSealed(t)
	if got, want := e.released(t), slices.Sorted(slices.Values(ids)); !slices.Equal(got, want) {
		t.Fatalf("released %d responses %v, want the %d submitted once each", len(got), got, n)
	}
	if got := len(e.streamMsgs(t, schemas.EventStream, schemas.SubjectFilter(schemas.WaveSealedType))); got != 1 {
		t.Fatalf("%d WaveSealed events, want 1", got)
	}
}

// TestSealLegacyPending: a wave whose responses are held partly in the
// shared pending stream (from before waves had streams of their own) and
// partly in its own stream releases both, each once, and purges the
// pending subject.
func TestSealLegacyPending(t *testing.T) {
	e := mustEnv(t)
	ctx := context.Background()
	ids, _ := e.mustSubmit(t, 5)
	for range 3 {
		env, err := schemas.NewEnvelope(schemas.ResponseSubmittedType, "acme", e.clock.Now(), schemas.ResponseSubmitted{
			SurveyID: "pulse", WaveID: "w1", Date: e.clock.Now().Format(schemas.DateLayout), Cohort: testCohort,
			Answers: []schemas.Answer{{QuestionID: "trust-1", Dimension: schemas.Trust, Value: 3}}})
		if err != nil {
			t.Fatal(err)
		}
		data, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.Publish(ctx, schemas.PendingSubject("acme", "w1"), data, jetstream.WithMsgID(env.ID.String())); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, env.ID.String())
	}
	if err := e.admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	if err := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now).Seal(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	if got, want := e.released(t), slices.Sorted(slices.Values(ids)); !slices.Equal(got, want) {
		t.Fatalf("released %v, want %v", got, want)
	}
	if left := len(e.streamMsgs(t, schemas.PendingStream, schemas.PendingSubject("acme", "w1"))); left != 0 {
		t.Fatalf("%d responses left in the pending stream", left)
	}
}
