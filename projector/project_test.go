package projector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/deploy/localch"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/schemas"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestProjectExactlyOnceUnderCrashes crashes projectors at random points of
// random batches — after the fetch, after each table's insert, after the
// checkpoint, after the ack — with duplicates on the stream, and checks that
// the tables still hold every event exactly once.
func TestProjectExactlyOnceUnderCrashes(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run("seed"+string(rune('0'+seed)), func(t *testing.T) {
			_, _, js := testenv.NATS(t)
			ch, _ := testenv.ClickHouse(t)
			rng := rand.New(rand.NewPCG(seed, 42))
			pub := &publisher{t: t, js: js, rng: rng, truth: newTruth()}
			pub.setup()
			pub.responses(300)
			pub.duplicates(60)

			seen := map[projector.Stage]int{}
			hook := func(s projector.Stage) error {
				seen[s]++
				if rng.IntN(9) == 0 {
					return errInjected
				}
				return nil
			}
			cfg := projector.Config{BatchSize: 23, BatchWait: 50 * time.Millisecond}
			faults := catchUp(t, js, ch, cfg, hook)
			if faults < 5 {
				t.Fatalf("only %d faults injected; the test did not exercise crashes (stages %v)", faults, stagesSeen(seen))
			}
			checkTables(t, ch, pub.truth)

			// More traffic after the crashes, and a clean run.
			pub.responses(50)
			pub.duplicates(20)
			catchUp(t, js, ch, cfg, nil)
			checkTables(t, ch, pub.truth)
			t.Logf("%d crashes at stages %v", faults, stagesSeen(seen))
		})
	}
}

// TestProjectRedelivery loses the ack of a batch: JetStream delivers it again
// once the ack wait expires, and the projector skips it.
func TestProjectRedelivery(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ch, _ := testenv.ClickHouse(t)
	pub := &publisher{t: t, js: js, rng: rand.New(rand.NewPCG(7, 7)), truth: newTruth()}
	pub.setup()
	pub.responses(40)
	dropped := false
	hook := func(s projector.Stage) error {
		if s == projector.StageCheckpointed && !dropped {
			dropped = true
			// The ack wait expires before the next batch's ack (which,
			// AckAll, would ack this one too): the server delivers this
			// batch again, to the next fetch.
			time.Sleep(2 * time.Second)
			return projector.ErrDropAck
		}
		return nil
	}
	cfg := projector.Config{BatchSize: 10, BatchWait: 50 * time.Millisecond, AckWait: time.Second}
	catchUp(t, js, ch, cfg, hook)
	cons, err := js.Consumer(context.Background(), schemas.EventStream, schemas.ProjectorConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered == 0 && info.Delivered.Consumer <= info.Delivered.Stream {
		t.Fatalf("nothing was redelivered (consumer info %+v); the test did not exercise redelivery", info)
	}
	checkTables(t, ch, pub.truth)
}

// TestProjectDeliveryGap: a message the consumer delivered but the
// projector never read (here another client's fetch takes it; in life, a
// fetch that ended on the client before the server) must not be covered by
// the next batch's AckAll and lost. The worker sees the consumer sequence
// skip, resumes from its checkpoint, and projects it.
func TestProjectDeliveryGap(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ch, _ := testenv.ClickHouse(t)
	pub := &publisher{t: t, js: js, rng: rand.New(rand.NewPCG(5, 5)), truth: newTruth()}
	pub.setup()
	pub.responses(10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	stolen := make(chan uint64, 1)
	tried := false
	hook := func(s projector.Stage) error {
		if s != projector.StageAcked || tried {
			return nil
		}
		tried = true
		// Every fetch the projector has asked for has expired on the
		// server by now (BatchWait is 50ms), so the thief's request is
		// the one the next message goes to.
		time.Sleep(time.Second)
		cons, err := js.Consumer(ctx, schemas.EventStream, schemas.ProjectorConsumer)
		if err != nil {
			return err
		}
		thief, err := cons.Fetch(1, jetstream.FetchMaxWait(20*time.Second))
		if err != nil {
			return err
		}
		pub.responses(10)
		for m := range thief.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			stolen <- md.Sequence.Stream // not acked: pending with the thief
			return nil
		}
		return fmt.Errorf("the thief got nothing: %v", thief.Error())
	}
	p := projector.New(js, ch, projector.Config{BatchSize: 1000, BatchWait: 50 * time.Millisecond, AckWait: time.Hour}, quietLog())
	p.Hook = hook
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	var seq uint64
	select {
	case seq = <-stolen:
	case err := <-done:
		t.Fatalf("projector stopped before the theft: %v", err)
	}
	stream, err := js.Stream(ctx, schemas.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	last := stream.CachedInfo().State.LastSeq
	for {
		var cp uint64
		if err := ch.QueryRow(ctx, "SELECT max(seq) FROM projector_checkpoint WHERE consumer = ?", schemas.ProjectorConsumer).Scan(&cp); err != nil {
			t.Fatal(err)
		}
		if cp >= last {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("projector stopped at checkpoint %d of %d: %v", cp, last, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("stream_seq %d was taken by another fetch", seq)
	checkTables(t, ch, pub.truth)
}

// TestReplay rebuilds the projections from the start of the stream.
func TestReplay(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ch, _ := testenv.ClickHouse(t)
	pub := &publisher{t: t, js: js, rng: rand.New(rand.NewPCG(9, 9)), truth: newTruth()}
	pub.setup()
	pub.responses(120)
	pub.duplicates(30)
	cfg := projector.Config{BatchSize: 50, BatchWait: 50 * time.Millisecond}
	catchUp(t, js, ch, cfg, nil)
	checkTables(t, ch, pub.truth)

	p := projector.New(js, ch, cfg, quietLog())
	var progress []uint64
	p.Progress = func(done, last uint64) { progress = append(progress, done) }
	if err := p.Rebuild(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(progress) == 0 {
		t.Error("replay reported no progress")
	}
	checkTables(t, ch, pub.truth)
}

// TestProjectorLease: a second projector refuses to run beside the first.
func TestProjectorLease(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ch, _ := testenv.ClickHouse(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := projector.New(js, ch, projector.Config{}, quietLog())
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	kv, err := js.KeyValue(ctx, schemas.LockBucket)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := kv.Get(ctx, schemas.ProjectorConsumer); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first projector never took the lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
	second := projector.New(js, ch, projector.Config{}, quietLog())
	if err := second.Rebuild(ctx); !errors.Is(err, projector.ErrLeaseHeld) {
		t.Fatalf("replay beside a running projector: %v, want ErrLeaseHeld", err)
	}
	if err := second.Run(ctx); !errors.Is(err, projector.ErrLeaseHeld) {
		t.Fatalf("second projector: %v, want ErrLeaseHeld", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("first projector: %v", err)
	}
}

// TestProjectUnknownEvent: an event of a type this build does not know
// stops the projector at that event, loudly, instead of skipping it.
func TestProjectUnknownEvent(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ch, _ := testenv.ClickHouse(t)
	pub := &publisher{t: t, js: js, rng: rand.New(rand.NewPCG(3, 3)), truth: newTruth()}
	pub.setup()
	pub.responses(5)
	future := []byte(`{"id":"6f1c7a5e-0d7e-4b7c-9a51-2c1b9d1d0e01","type":"EmployeeTeleported","version":1,"org":"acme",` +
		`"time":"2026-01-01T00:00:00Z","payload":{}}`)
	ack, err := js.Publish(context.Background(), schemas.SubjectPrefix+".acme.EmployeeTeleported", future)
	if err != nil {
		t.Fatal(err)
	}
	pub.responses(5) // after the unknown event: must wait behind it

	p := projector.New(js, ch, projector.Config{BatchSize: 3, BatchWait: 20 * time.Millisecond}, quietLog())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.CatchUp(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("catch up past an unknown event: %v, want it stuck until the deadline", err)
	}
	var cp uint64
	if err := ch.QueryRow(context.Background(), "SELECT max(seq) FROM projector_checkpoint").Scan(&cp); err != nil {
		t.Fatal(err)
	}
	if cp >= ack.Sequence {
		t.Fatalf("checkpoint %d passed the unknown event at %d", cp, ack.Sequence)
	}
	var answered uint64
	if err := ch.QueryRow(context.Background(), "SELECT uniqExact(response_id) FROM answers").Scan(&answered); err != nil {
		t.Fatal(err)
	}
	if answered > 5 {
		t.Fatalf("%d responses projected; those after the unknown event must wait", answered)
	}
}

// TestProjectLegacyComments replays a version 1 ResponseSubmitted, which
// carried its comments inside the response, beside a CommentSubmitted: both
// comments are projected, the old one with seq 0 and the new one with its
// own event's seq, so no comment row shares a seq with any answers row.
func TestProjectLegacyComments(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ch, _ := testenv.ClickHouse(t)
	pub := &publisher{t: t, js: js, rng: rand.New(rand.NewPCG(3, 3)), truth: newTruth()}
	pub.setup()
	c := schemas.Cohort{Department: "Sales", Team: "T", Location: "L", TenureBand: "1-2y"}
	v1 := schemas.Envelope{ID: uuid.New(), Type: schemas.ResponseSubmittedType, Version: 1, OrgID: "acme", Time: time.Now().UTC(),
		Payload: json.RawMessage(`{"survey_id":"s1","wave_id":"w1","date":"2026-11-02","cohort":{"department":"Sales","team":"T","location":"L","tenure_band":"1-2y"},` +
			`"answers":[{"question_id":"t1","dimension":"trust","value":4}],"comments":[{"question_id":"c1","text":"old words"}]}`)}
	oldSeq := pub.publish(v1, v1.ID.String())
	pub.event(schemas.CommentSubmittedType, schemas.CommentSubmitted{SurveyID: "s1", WaveID: "w1", QuestionID: "c1", Text: "new words", Cohort: c, Date: "2026-11-02"})
	catchUp(t, js, ch, projector.Config{BatchSize: 100, BatchWait: 50 * time.Millisecond}, nil)

	got := map[string]uint64{}
	rows, err := ch.Query(context.Background(), "SELECT text, seq FROM comments")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var text string
		var seq uint64
		if err := rows.Scan(&text, &seq); err != nil {
			t.Fatal(err)
		}
		got[text] = seq
	}
	if len(got) != 2 || got["old words"] != 0 || got["new words"] <= oldSeq {
		t.Fatalf("comments (text → seq) %v: want the old one at 0 and the new one after %d", got, oldSeq)
	}
	var answerSeq uint64
	if err := ch.QueryRow(context.Background(), "SELECT min(seq) FROM answers").Scan(&answerSeq); err != nil {
		t.Fatal(err)
	}
	if answerSeq != oldSeq {
		t.Fatalf("old answers at seq %d, want %d", answerSeq, oldSeq)
	}
}

// TestReplaySurvivesRestart: a replay's emptied tables stay empty of the
// old rows after ClickHouse restarts. On 18.16 a TRUNCATE left parts that
// merges had replaced on disk, and the next start loaded them again (red
// team, 2026-12-02: every projection three times over after a replay and a
// restart). The test runs its own server, makes merged-away parts (small
// batches, then OPTIMIZE), replays, restarts the server on the same
// directory and checks the tables against the truth.
func TestReplaySurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := localch.Start(ctx, dir, localch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	cfgCH := deploy.ClickHouseConfig{Addr: srv.Addr, Database: "replay_restart", User: "default"}
	ch, err := deploy.OpenClickHouse(ctx, cfgCH)
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.Migrate(ctx, ch, quietLog()); err != nil {
		t.Fatal(err)
	}
	_, _, js := testenv.NATS(t)
	pub := &publisher{t: t, js: js, rng: rand.New(rand.NewPCG(4, 4)), truth: newTruth()}
	pub.setup()
	pub.responses(200)
	cfg := projector.Config{BatchSize: 20, BatchWait: 20 * time.Millisecond}
	catchUp(t, js, ch, cfg, nil)
	for _, table := range []string{"answers", "invitations", "projected_events"} {
		if err := ch.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err != nil {
			t.Fatal(err)
		}
	}
	var outdated uint64
	if err := ch.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = 'replay_restart' AND table = 'answers' AND NOT active").Scan(&outdated); err != nil {
		t.Fatal(err)
	}
	if outdated == 0 {
		t.Fatal("no merged-away parts of answers on disk: the test would prove nothing")
	}
	if err := projector.New(js, ch, cfg, quietLog()).Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	checkTables(t, ch, pub.truth)

	ch.Close()
	opts := srv.Options()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if srv, err = localch.Start(ctx, dir, opts); err != nil {
		t.Fatal(err)
	}
	if ch, err = deploy.OpenClickHouse(ctx, cfgCH); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	checkTables(t, ch, pub.truth)
}
