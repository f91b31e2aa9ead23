package projector_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestProjectClusterFailedQuorum: on one shard of two replicas, the second
// replica is killed, so the projector's quorum insert (2 of 2) times out
// and 18.16 keeps the part on the first replica, pending and hidden from
// sequentially consistent reads. That projector is stopped; a new one with
// another batch size (so that its blocks differ and deduplication cannot
// save it) starts while the replica is still down and must wait for the
// quorum rather than read a high-water mark without the pending part. The
// replica comes back; every event must then be counted exactly once on both
// replicas. Without the wait at the start (checkQuorums in
// projector/cluster.go) the pending rows are counted twice: the check of
// invitations fails.
func TestProjectClusterFailedQuorum(t *testing.T) {
	c := testenv.ClickHouseCluster(t, 1, 2)
	_, _, js := testenv.NATS(t)
	ctx := context.Background()
	chCfg := deploy.ClickHouseConfig{Addr: c.Node(0, 0).Addr, Database: "tp", User: "default", Cluster: c.Name}
	ch, err := deploy.OpenClickHouse(ctx, chCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := schemas.MigrateCluster(ctx, ch, chCfg.SchemaCluster(), quietLog()); err != nil {
		t.Fatal(err)
	}
	cluster := projector.NewCluster(*chCfg.SchemaCluster(), 2, time.Second)
	pub := &publisher{t: t, js: js, rng: rand.New(rand.NewPCG(5, 6)), truth: newTruth()}
	pub.setup()
	pub.responses(20)
	if faults := catchUp(t, js, ch, projector.Config{BatchSize: 5, BatchWait: 20 * time.Millisecond, Cluster: cluster}, nil); faults != 0 {
		t.Fatalf("%d faults", faults)
	}

	c.Kill(0, 1)
	pub.responses(10)
	first := projector.New(js, ch, projector.Config{BatchSize: 5, BatchWait: 20 * time.Millisecond, Cluster: cluster}, testenv.Logger(t))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- first.Run(runCtx) }()
	waitPending(t, ch, *chCfg.SchemaCluster(), true)
	time.Sleep(1500 * time.Millisecond) // past the quorum timeout: 319, the part stays pending
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var plain, consistent uint64
	if err := ch.QueryRow(ctx, "SELECT count() FROM invitations").Scan(&plain); err != nil {
		t.Fatal(err)
	}
	sc := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"select_sequential_consistency": 1}))
	if err := ch.QueryRow(sc, "SELECT count() FROM invitations").Scan(&consistent); err != nil {
		t.Fatal(err)
	}
	t.Logf("with a quorum pending: %d invitations in a plain read, %d in a sequentially consistent one", plain, consistent)

	second := projector.New(js, ch, projector.Config{BatchSize: 7, BatchWait: 20 * time.Millisecond, Cluster: cluster}, testenv.Logger(t))
	// The race a slow batch would lose: between reading its marks and
	// writing, the quorum is reached and the pending part appears. The
	// hook holds each fetched batch until no quorum is pending; a
	// projector that read its marks while one was pending then writes
	// the pending rows again.
	second.Hook = func(s projector.Stage) error {
		if s != projector.StageFetched {
			return nil
		}
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if p, err := chCfg.SchemaCluster().PendingQuorums(ctx, ch, []string{"invitations", "answers", "comments", "projected_events", "projector_checkpoint"}); err == nil && len(p) == 0 {
				break
			}
		}
		return nil
	}
	runCtx, stop = context.WithCancel(ctx)
	defer stop()
	go func() { done <- second.Run(runCtx) }()
	time.Sleep(2 * time.Second)
	c.Restart(t, 0, 1)
	waitCheckpoint(t, js, ch)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkTables(t, ch, pub.truth)
	for r := range 2 {
		n := c.Conn(t, 0, r)
		var rows, responses uint64
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if err := n.QueryRow(ctx, "SELECT count(), uniqExact(response_id) FROM tp.answers_local WHERE question_id = 't1'").Scan(&rows, &responses); err != nil {
				t.Fatal(err)
			}
			if int(rows) >= len(pub.truth.responses) || time.Now().After(deadline) {
				break
			}
		}
		if int(rows) != len(pub.truth.responses) || int(responses) != len(pub.truth.responses) {
			t.Errorf("replica %d: %d t1 answers of %d responses, want %d of %d", r+1, rows, responses, len(pub.truth.responses), len(pub.truth.responses))
		}
	}
}

func waitPending(t *testing.T, ch driver.Conn, c schemas.Cluster, want bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		p, err := c.PendingQuorums(context.Background(), ch, []string{"surveys", "waves", "invitations", "answers", "comments", "projected_events", "projector_checkpoint"})
		if err != nil {
			t.Fatal(err)
		}
		if (len(p) > 0) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending quorums %v, want pending %v", p, want)
		}
	}
}

// waitCheckpoint waits until the checkpoint reaches the stream's end.
func waitCheckpoint(t *testing.T, js jetstream.JetStream, ch driver.Conn) {
	t.Helper()
	ctx := context.Background()
	stream, err := js.Stream(ctx, schemas.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var cp uint64
		if err := ch.QueryRow(ctx, "SELECT max(seq) FROM projector_checkpoint").Scan(&cp); err == nil && cp >= info.State.LastSeq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("projector did not catch up")
		}
	}
}
