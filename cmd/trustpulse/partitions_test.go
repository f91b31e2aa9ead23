package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/schemas"
)

// TestPartitionedProjectorKilled runs the projection of a stream in 3
// partitions as two `serve --target projector` processes, one for
// partition 0 and one for partitions 1 and 2, kills the first with kill -9
// again and again while it drains a backlog, starting it again each time (it
// waits for its lease to expire), and checks that in the end every event
// was projected exactly once.
func TestPartitionedProjectorKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a killed projector's lease to expire, several times")
	}
	const n = 3
	srv, _, js := testenv.NATSPartitioned(t, n)
	ch, chCfg := testenv.ClickHouse(t)
	dir := t.TempDir()
	projector := func(name, ids string) *serveProc {
		return startServe(t, "--target", "projector", "--nats-url", srv.URL(), "--clickhouse-addr", chCfg.Addr,
			"--clickhouse-database", chCfg.Database, "--data-dir", filepath.Join(dir, name), "--health-addr", freeAddr(t), "--metrics-addr", freeAddr(t),
			"--projector-partitions", strconv.Itoa(n), "--projector-partition-ids", ids, "--batch-size", "25", "--batch-wait", "20ms")
	}

	var mu sync.Mutex
	events := map[string]bool{} // event ids stored in the stream
	answers := 0
	rng := rand.New(rand.NewPCG(3, 4))     // the publisher's
	killRng := rand.New(rand.NewPCG(5, 6)) // when to kill
	publish := func(k int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := range k {
			org := fmt.Sprintf("org%d", i%9)
			env, err := schemas.NewEnvelope(schemas.ResponseSubmittedType, org, time.Now(), schemas.ResponseSubmitted{
				SurveyID: "s1", WaveID: "w1", Date: "2026-11-02", Cohort: schemas.Cohort{Department: "D", Team: "T", Location: "L", TenureBand: "1-2y"},
				Answers: []schemas.Answer{{QuestionID: "q1", Dimension: schemas.Trust, Value: 1 + rng.IntN(5)}, {QuestionID: "q2", Dimension: schemas.Trust, Value: 3}},
			})
			if err != nil {
				return err
			}
			data, _ := env.Marshal()
			if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: schemas.Subject(org, env.Type), Data: data}, jetstream.WithMsgID(env.ID.String())); err != nil {
				return err
			}
			mu.Lock()
			events[env.ID.String()], answers = true, answers+2
			mu.Unlock()
		}
		return nil
	}
	ctx := context.Background()
	checkpoint := func(part int) uint64 {
		var cp uint64
		if err := ch.QueryRow(ctx, "SELECT max(seq) FROM projector_checkpoint WHERE consumer = ?", schemas.PartitionConsumer(schemas.ProjectorConsumer, part, n)).Scan(&cp); err != nil {
			t.Fatal(err)
		}
		return cp
	}
	first := projector("p0-0", "0")
	projector("p12", "1,2")
	midDrain := 0
	for kill := range 3 {
		// A backlog, then partition 0's process killed once it is working
		// on it (after the previous kill it waits for the lease to expire).
		before := checkpoint(0)
		if err := publish(900); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); checkpoint(0) == before; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("partition 0 made no progress after kill %d:\n%s", kill, first.stderr)
			}
		}
		time.Sleep(time.Duration(killRng.IntN(300)) * time.Millisecond)
		if err := first.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-first.done
		stream, err := js.Stream(ctx, schemas.EventStream)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := stream.GetLastMsgForSubject(ctx, schemas.PartitionFilter(0, n)); err == nil && checkpoint(0) < m.Sequence {
			midDrain++
		}
		first = projector(fmt.Sprintf("p0-%d", kill+1), "0")
	}
	if midDrain < 2 {
		t.Fatalf("only %d of 3 kills hit partition 0's projector while it had events left", midDrain)
	}
	t.Logf("%d of 3 kills while partition 0 had events left", midDrain)

	stream, err := js.Stream(ctx, schemas.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		behind := 0
		for part := range n {
			m, err := stream.GetLastMsgForSubject(ctx, schemas.PartitionFilter(part, n))
			if err != nil {
				t.Fatal(err)
			}
			var cp uint64
			if err := ch.QueryRow(ctx, "SELECT max(seq) FROM projector_checkpoint WHERE consumer = ?", schemas.PartitionConsumer(schemas.ProjectorConsumer, part, n)).Scan(&cp); err != nil {
				t.Fatal(err)
			}
			if cp < m.Sequence {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d partitions did not catch up; partition 0's projector:\n%s", behind, first.stderr)
		}
	}
	var rows, responses, projected, distinct uint64
	if err := ch.QueryRow(ctx, "SELECT count(), uniqExact(response_id) FROM answers").Scan(&rows, &responses); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueryRow(ctx, "SELECT count(), uniqExact(event_id) FROM projected_events").Scan(&projected, &distinct); err != nil {
		t.Fatal(err)
	}
	if int(rows) != answers || int(responses) != len(events) || int(projected) != len(events) || distinct != projected {
		t.Fatalf("answers %d rows of %d responses, projected_events %d (%d distinct); want %d rows of %d", rows, responses, projected, distinct, answers, len(events))
	}
	_ = first.cmd.Process.Signal(syscall.SIGTERM)
}
