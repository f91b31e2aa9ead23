package ingest_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/ingest"
	"github.com/trustpulse/trustpulse/schemas"
)

// streamMsgs returns a stream's messages on subject, in stream order.
func (e *env) streamMsgs(t *testing.T, streamName, subject string) []jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	stream, err := e.js.Stream(ctx, streamName)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for range info.NumPending {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func eventIDs(t *testing.T, msgs []jetstream.Msg) []string {
	t.Helper()
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		env, err := schemas.DecodeEnvelope(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = env.ID.String()
	}
	return ids
}

// TestMixer submits responses, closes the wave and seals it: every response
// reaches the event stream exactly once, after the close, in an order that
// is not the order of submission, followed by WaveSealed; nothing stays in
// the pending stream; sealing again changes nothing.
func TestMixer(t *testing.T) {
	e := mustEnv(t)
	const n = 30
	for _, tok := range e.invite(t, n) {
		if status, body := e.post(t, "application/json", submitBody(tok, validAnswers())); status != http.StatusAccepted {
			t.Fatalf("%d %s", status, body)
		}
	}
	events := schemas.SubjectFilter(schemas.ResponseSubmittedType)
	if got := len(e.streamMsgs(t, schemas.EventStream, events)); got != 0 {
		t.Fatalf("%d responses on the event stream while the wave is open", got)
	}
	submitted := eventIDs(t, e.streamMsgs(t, schemas.HeldStream("acme", "w1"), schemas.HeldSubject("acme", "w1")))
	if len(submitted) != n {
		t.Fatalf("%d responses held, want %d", len(submitted), n)
	}

	ctx := context.Background()
	if err := e.admin.CloseWave(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	mixer := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now)
	if err := mixer.Seal(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}

	published := e.streamMsgs(t, schemas.EventStream, events)
	got := eventIDs(t, published)
	if slices.Equal(got, submitted) {
		t.Fatal("responses were published in the order they were submitted")
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(submitted))) {
		t.Fatalf("published responses %v are not the submitted ones %v", got, submitted)
	}
	closed := e.streamMsgs(t, schemas.EventStream, schemas.SubjectFilter(schemas.WaveClosedType))
	sealed := e.streamMsgs(t, schemas.EventStream, schemas.SubjectFilter(schemas.WaveSealedType))
	if len(closed) != 1 || len(sealed) != 1 {
		t.Fatalf("%d WaveClosed and %d WaveSealed events, want 1 each", len(closed), len(sealed))
	}
	closedMeta, _ := closed[0].Metadata()
	sealedMeta, _ := sealed[0].Metadata()
	for _, m := range published {
		md, _ := m.Metadata()
		if md.Sequence.Stream < closedMeta.Sequence.Stream || md.Sequence.Stream > sealedMeta.Sequence.Stream {
			t.Fatalf("response at stream sequence %d is not between the close (%d) and the seal (%d)",
				md.Sequence.Stream, closedMeta.Sequence.Stream, sealedMeta.Sequence.Stream)
		}
	}
	if _, err := e.js.Stream(ctx, schemas.HeldStream("acme", "w1")); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the wave's stream of held responses survives the seal: %v", err)
	}
	if w, _ := e.cat.Wave("acme", "w1"); !w.Sealed {
		t.Fatal("catalog does not know the wave is sealed")
	}

	// A second seal (a mixer that crashed before the purge, or a second
	// mixer) publishes nothing new.
	if err := mixer.Seal(ctx, "acme", "w1"); err != nil {
		t.Fatal(err)
	}
	if got := len(e.streamMsgs(t, schemas.EventStream, events)); got != n {
		t.Fatalf("%d responses after a second seal, want %d", got, n)
	}
	if got := len(e.streamMsgs(t, schemas.EventStream, schemas.SubjectFilter(schemas.WaveSealedType))); got != 1 {
		t.Fatalf("%d WaveSealed events after a second seal, want 1", got)
	}
}

// TestMixerClosesOnTime: a wave whose close time has passed is closed and,
// after the grace period, sealed by the mixer on its own.
func TestMixerClosesOnTime(t *testing.T) {
	e := mustEnv(t)
	tok := e.invite(t, 1)[0]
	if status, body := e.post(t, "application/json", submitBody(tok, validAnswers())); status != http.StatusAccepted {
		t.Fatalf("%d %s", status, body)
	}
	mixer := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now)
	mixer.Grace, mixer.Interval = 0, 20*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mixer.Run(ctx) }()
	defer func() { cancel(); <-done }()

	e.clock.Set(e.opened.Add(25 * time.Hour)) // past closes_at
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if w, _ := e.cat.Wave("acme", "w1"); w.Closed && w.Sealed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the mixer did not close and seal the overdue wave")
		}
	}
	if got := len(e.streamMsgs(t, schemas.EventStream, schemas.SubjectFilter(schemas.ResponseSubmittedType))); got != 1 {
		t.Fatalf("%d responses published, want 1", got)
	}
}

// pendingCount is the number of responses held for w1 (none once its
// stream is deleted).
func (e *env) pendingCount(t *testing.T) int {
	t.Helper()
	stream, err := e.js.Stream(context.Background(), schemas.HeldStream("acme", "w1"))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0 // deleted by a seal since the look-up
	}
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Msgs)
}

// bucketKeys lists a bucket's keys (none: nil).
func (e *env) bucketKeys(t *testing.T, bucket string) []string {
	t.Helper()
	kv, err := e.js.KeyValue(context.Background(), bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(context.Background())
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		if _, gone := e.js.KeyValue(context.Background(), bucket); errors.Is(gone, jetstream.ErrBucketNotFound) {
			return nil // deleted by a seal while its keys were read
		}
		t.Fatal(err)
	}
	return keys
}

// TestSealCrashAtEveryStep crashes a seal after each of its steps, then
// lets another mixer run as a restart would: the wave ends sealed, every
// response published once, and nothing of the wave is left in the pending
// stream, the ledger (no invitation, no "used" slot), the invitee bucket
// or the live counts (issue 11, finding 2: a crash between WaveSealed and
// the purge left held responses and the invitee map in place for good).
func TestSealCrashAtEveryStep(t *testing.T) {
	steps := []ingest.SealStep{ingest.SealPublishing, ingest.SealPublished, ingest.SealMarked,
		ingest.SealPurgedPending, ingest.SealForgotLedger, ingest.SealForgotInvitees, ingest.SealForgotLive}
	for _, step := range steps {
		t.Run(string(step), func(t *testing.T) {
			e := mustEnv(t)
			ctx := context.Background()
			const n = 12
			for _, tok := range e.invite(t, n) {
				if status, body := e.post(t, "application/json", submitBody(tok, validAnswers())); status != http.StatusAccepted {
					t.Fatalf("%d %s", status, body)
				}
			}
			submitted := eventIDs(t, e.streamMsgs(t, schemas.HeldStream("acme", "w1"), schemas.HeldSubject("acme", "w1")))
			invitees, err := e.ledger.Invitees(ctx, "acme", "w1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := invitees.Put(ctx, "e.E0001", []byte("slot")); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(10 * time.Second); len(e.bucketKeys(t, schemas.WaveLiveBucket("acme", "w1"))) == 0; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no live counts written")
				}
			}
			if err := e.admin.CloseWave(ctx, "acme", "w1"); err != nil {
				t.Fatal(err)
			}
			crash := errors.New("crash")
			first := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now)
			first.Hook = func(_, _ string, s ingest.SealStep) error {
				if s == step {
					return crash
				}
				return nil
			}
			if err := first.Seal(ctx, "acme", "w1"); !errors.Is(err, crash) {
				t.Fatalf("seal crashed at %s: %v", step, err)
			}
			// The restart: a new mixer's rounds finish the seal.
			restart := ingest.NewMixer(e.js, e.cat, testenv.Logger(t), e.clock.Now)
			restart.Grace, restart.Interval = 0, 20*time.Millisecond
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = restart.Run(runCtx) }()
			defer func() { stop(); <-done }()
			events := schemas.SubjectFilter(schemas.ResponseSubmittedType)
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				w, _ := e.cat.Wave("acme", "w1")
				left := e.pendingCount(t) +
					len(e.bucketKeys(t, schemas.InvitationBucket)) + len(e.bucketKeys(t, schemas.WaveLedgerBucket("acme", "w1"))) +
					len(e.bucketKeys(t, schemas.WaveInviteeBucket("acme", "w1"))) + len(e.bucketKeys(t, schemas.WaveLiveBucket("acme", "w1")))
				if w.Sealed && left == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after a crash at %s and a restart: sealed %v, pending %d, ledger %v, invitees %v, live %v", step, w.Sealed,
						e.pendingCount(t), e.bucketKeys(t, schemas.InvitationBucket),
						e.bucketKeys(t, schemas.WaveInviteeBucket("acme", "w1")), e.bucketKeys(t, schemas.WaveLiveBucket("acme", "w1")))
				}
			}
			got := eventIDs(t, e.streamMsgs(t, schemas.EventStream, events))
			if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(submitted))) {
				t.Fatalf("published %d responses %v, want the %d submitted once each", len(got), got, n)
			}
			if got := len(e.streamMsgs(t, schemas.EventStream, schemas.SubjectFilter(schemas.WaveSealedType))); got != 1 {
				t.Fatalf("%d WaveSealed events, want 1", got)
			}
		})
	}
}
