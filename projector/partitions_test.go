package projector_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/deploy"
	"github.com/trustpulse/trustpulse/deploy/testenv"
	"github.com/trustpulse/trustpulse/projector"
	"github.com/trustpulse/trustpulse/schemas"
)

// orgsCovering returns k organisation ids for each of n partitions.
func orgsCovering(n, k int) []string {
	per := map[int]int{}
	var out []string
	for i := 0; len(out) < n*k; i++ {
		org := fmt.Sprintf("org%d", i)
		if p := schemas.PartitionOf(org, n); per[p] < k {
			per[p]++
			out = append(out, org)
		}
	}
	return out
}

// orgPublishers returns a publisher per organisation, all counting into one
// truth and one record of stored sequences.
func orgPublishers(t *testing.T, js jetstream.JetStream, orgs []string, seed uint64) []*publisher {
	tr, seqs := newTruth(), map[uint64]schemas.Envelope{}
	var out []*publisher
	for i, org := range orgs {
		out = append(out, &publisher{t: t, js: js, rng: rand.New(rand.NewPCG(seed, uint64(i))), truth: tr, org: org, seqs: seqs})
	}
	return out
}

// republishSurvey publishes version v of every organisation's survey s1: the
// projection must end with the last version of each, per organisation.
func republishSurvey(pubs []*publisher, v int) {
	for _, p := range pubs {
		p.event(schemas.SurveyPublishedType, schemas.SurveyPublished{SurveyID: "s1", Title: fmt.Sprintf("%s v%d", p.org, v), Questions: questions})
	}
}

// TestPartitionOfMatchesServer checks that schemas.PartitionOf computes the
// partition JetStream's own partition(N,1) stores an organisation under.
func TestPartitionOfMatchesServer(t *testing.T) {
	_, _, js := testenv.NATSPartitioned(t, 3)
	ctx := context.Background()
	stream, err := js.Stream(ctx, schemas.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		org := fmt.Sprintf("org-%d_x", i)
		ack, err := js.Publish(ctx, schemas.Subject(org, schemas.OrgConfiguredType), []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%s.%d.%s.%s", schemas.PartitionPrefix, schemas.PartitionOf(org, 3), org, schemas.OrgConfiguredType)
		if m.Subject != want {
			t.Fatalf("stored as %s, want %s", m.Subject, want)
		}
	}
}

// TestPartitionsExactlyOnceUnderCrashes runs one projector per partition of
// three, with several organisations in each, and crashes partition 0's at
// random stages of random batches, again and again, while the other two run
// and new events and duplicates arrive. After each crash partition 0's
// checkpoint must cover exactly its events up to it (what the query
// service's release of a wave relies on); at the end every event's rows must
// be there exactly once, each organisation's survey at its last version.
func TestPartitionsExactlyOnceUnderCrashes(t *testing.T) {
	const n = 3
	_, _, js := testenv.NATSPartitioned(t, n)
	ch, _ := testenv.ClickHouse(t)
	orgs := orgsCovering(n, 2)
	pubs := orgPublishers(t, js, orgs, 5)
	for _, p := range pubs {
		p.setup()
		p.responses(40)
		p.duplicates(8)
	}
	republishSurvey(pubs, 2)

	cfg := func(part int) projector.Config {
		return projector.Config{BatchSize: 17, BatchWait: 30 * time.Millisecond, Partitions: n, PartitionIDs: []int{part}}
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	others := map[int]*projector.Projector{}
	for _, part := range []int{1, 2} {
		p := projector.New(js, ch, cfg(part), quietLog())
		others[part] = p
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				t.Errorf("partition %d: %v", part, err)
			}
		})
	}
	defer func() { stop(); wg.Wait() }()

	rng := rand.New(rand.NewPCG(9, 9))
	seen := map[projector.Stage]int{}
	hook := func(s projector.Stage) error {
		seen[s]++
		if rng.IntN(7) == 0 {
			return errInjected
		}
		return nil
	}
	faults := 0
	for round := range 3 {
		faults += crashLoop(t, js, ch, cfg(0), hook, pubs[0].seqs, n)
		for _, p := range pubs {
			p.responses(15)
			p.duplicates(4)
		}
		republishSurvey(pubs, 3+round)
	}
	if faults < 10 {
		t.Fatalf("only %d crashes of partition 0's projector (stages %v)", faults, stagesSeen(seen))
	}
	catchUp(t, js, ch, cfg(0), nil)
	waitDrained(t, others[1])
	stop()
	wg.Wait()

	checkTables(t, ch, pubs[0].truth)
	checkPartitions(t, ch, orgs, n, 5)
	t.Logf("%d crashes of partition 0 at stages %v", faults, stagesSeen(seen))
}

// crashLoop runs partition 0's projector with hook until it catches up
// without a fault, and after every crash checks that its checkpoint covers
// exactly its events up to it.
func crashLoop(t *testing.T, js jetstream.JetStream, ch driver.Conn, cfg projector.Config, hook func(projector.Stage) error, seqs map[uint64]schemas.Envelope, n int) (faults int) {
	t.Helper()
	return catchUpChecking(t, js, ch, cfg, hook, func() { checkPrefix(t, ch, seqs, 0, n) })
}

// checkPrefix checks that projected_events holds, for partition part, every
// event of that partition stored at or below its checkpoint (its first
// copy) and none above.
func checkPrefix(t *testing.T, ch driver.Conn, seqs map[uint64]schemas.Envelope, part, n int) {
	t.Helper()
	ctx := context.Background()
	var cp uint64
	if err := ch.QueryRow(ctx, "SELECT max(seq) FROM projector_checkpoint WHERE consumer = ?", schemas.PartitionConsumer(schemas.ProjectorConsumer, part, n)).Scan(&cp); err != nil {
		t.Fatal(err)
	}
	first := map[string]bool{}
	want := 0
	for seq := uint64(1); seq <= cp; seq++ {
		env, ok := seqs[seq]
		if !ok || schemas.PartitionOf(env.OrgID, n) != part || first[env.ID.String()] {
			continue
		}
		first[env.ID.String()] = true
		want++
	}
	var got uint64
	if err := ch.QueryRow(ctx, "SELECT count() FROM projected_events WHERE proj_part = ? AND seq <= ?", uint16(part), cp).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if int(got) != want {
		t.Fatalf("partition %d at checkpoint %d: %d events projected, want %d", part, cp, got, want)
	}
}

// waitDrained waits until every partition's lag is 0.
func waitDrained(t *testing.T, p *projector.Projector) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		lags, err := p.Lags(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var sum uint64
		for _, l := range lags {
			sum += l
		}
		if sum == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions did not drain: lags %v", lags)
		}
	}
}

// checkPartitions checks what is particular to partitions: every row carries
// its organisation's partition, and each organisation's survey ends at its
// last version (its events were applied in order).
func checkPartitions(t *testing.T, ch driver.Conn, orgs []string, n, lastVersion int) {
	t.Helper()
	ctx := context.Background()
	for _, table := range []string{"answers", "invitations", "surveys", "waves"} {
		rows, err := ch.Query(ctx, "SELECT org, proj_part, count() FROM "+table+" GROUP BY org, proj_part")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var org string
			var part uint16
			var c uint64
			if err := rows.Scan(&org, &part, &c); err != nil {
				t.Fatal(err)
			}
			if int(part) != schemas.PartitionOf(org, n) {
				t.Errorf("%s: %d rows of %s in partition %d, want %d", table, c, org, part, schemas.PartitionOf(org, n))
			}
		}
		rows.Close()
	}
	for _, org := range orgs {
		var title string
		if err := ch.QueryRow(ctx, "SELECT title FROM surveys FINAL WHERE org = ? AND survey_id = 's1'", org).Scan(&title); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s v%d", org, lastVersion); title != want {
			t.Errorf("%s: survey title %q, want %q", org, title, want)
		}
	}
}

// TestPartitionCountMismatch: a process started with another partition
// count than the stream's refuses, saying how to change it.
func TestPartitionCountMismatch(t *testing.T) {
	_, _, js := testenv.NATSPartitioned(t, 3)
	ch, _ := testenv.ClickHouse(t)
	err := deploy.EnsureStreams(context.Background(), js, 1, 2)
	if !errors.Is(err, deploy.ErrPartitionMismatch) || !strings.Contains(err.Error(), "trustpulse replay --projector-partitions 2") {
		t.Fatalf("EnsureStreams with 2 on a stream of 3: %v", err)
	}
	p := projector.New(js, ch, projector.Config{Partitions: 2}, quietLog())
	if err := p.Run(context.Background()); !errors.Is(err, projector.ErrPartitions) {
		t.Fatalf("Run with 2 on a stream of 3: %v, want ErrPartitions", err)
	}
	bad := projector.New(js, ch, projector.Config{Partitions: 3, PartitionIDs: []int{3}}, quietLog())
	if err := bad.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("Run pinned to partition 3 of 3: %v", err)
	}
}

// TestReplayRepartitions replays an unpartitioned store into 3 partitions,
// as an existing installation scales out, then back into 1, with new events
// after each change.
func TestReplayRepartitions(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ch, _ := testenv.ClickHouse(t)
	orgs := orgsCovering(3, 1)
	pubs := orgPublishers(t, js, orgs, 21)
	for _, p := range pubs {
		p.setup()
		p.responses(20)
		p.duplicates(4)
	}
	cfg := projector.Config{BatchSize: 29, BatchWait: 30 * time.Millisecond}
	catchUp(t, js, ch, cfg, nil)
	checkTables(t, ch, pubs[0].truth)

	for step, n := range []int{3, 1} {
		cfg.Partitions = n
		if err := projector.New(js, ch, cfg, quietLog()).Rebuild(context.Background()); err != nil {
			t.Fatalf("replay into %d partitions: %v", n, err)
		}
		checkTables(t, ch, pubs[0].truth)
		if err := deploy.EnsureStreams(context.Background(), js, 1, n); err != nil {
			t.Fatalf("after the replay into %d: %v", n, err)
		}
		for _, p := range pubs {
			p.responses(10)
			p.duplicates(2)
		}
		republishSurvey(pubs, step+2)
		catchUp(t, js, ch, cfg, nil)
		checkTables(t, ch, pubs[0].truth)
		checkPartitions(t, ch, orgs, n, step+2)
		lag, err := projector.New(js, ch, cfg, quietLog()).Lag(context.Background())
		if err != nil || lag != 0 {
			t.Fatalf("after catching up in %d partitions: lag %d, %v", n, lag, err)
		}
	}
}

// TestMigrationRerun: the partition migration, cut short and run again,
// succeeds (18.16 has no ADD COLUMN IF NOT EXISTS).
func TestMigrationRerun(t *testing.T) {
	ch, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := ch.Exec(ctx, "ALTER TABLE schema_migrations DELETE WHERE version = 11"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var c uint64
		if err := ch.QueryRow(ctx, "SELECT count() FROM schema_migrations WHERE version = 11").Scan(&c); err != nil {
			t.Fatal(err)
		}
		if c == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mutation did not finish")
		}
	}
	if err := schemas.Migrate(ctx, ch, quietLog()); err != nil {
		t.Fatalf("migration 0011 run again: %v", err)
	}
}

// TestReplayCutShort: a replay into 3 partitions crashed in its pass
// leaves the partitions refusing to start (events under the old mapping
// past the pass would be read by no one); a replay run again finishes and
// the tables hold the truth.
func TestReplayCutShort(t *testing.T) {
	_, _, js := testenv.NATS(t)
	ch, _ := testenv.ClickHouse(t)
	pubs := orgPublishers(t, js, orgsCovering(3, 1), 31)
	for _, p := range pubs {
		p.setup()
		p.responses(30)
	}
	cfg := projector.Config{BatchSize: 20, BatchWait: 30 * time.Millisecond, Partitions: 3}
	r := projector.New(js, ch, cfg, quietLog())
	batches := 0
	r.Hook = func(s projector.Stage) error {
		if s == projector.StageAcked {
			if batches++; batches == 3 {
				return errInjected
			}
		}
		return nil
	}
	if err := r.Rebuild(context.Background()); !errors.Is(err, errInjected) {
		t.Fatalf("replay with a crash in its pass: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := projector.New(js, ch, cfg, quietLog()).CatchUp(ctx)
	cancel()
	if err == nil {
		t.Fatal("partitions caught up after a replay cut short")
	}
	var events uint64
	if err := ch.QueryRow(context.Background(), "SELECT count() FROM projected_events").Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != 3*20 {
		t.Fatalf("%d events projected after the cut-short pass, want its 3 batches' 60 and no more", events)
	}
	if err := projector.New(js, ch, cfg, quietLog()).Rebuild(context.Background()); err != nil {
		t.Fatalf("replay again: %v", err)
	}
	catchUp(t, js, ch, cfg, nil)
	checkTables(t, ch, pubs[0].truth)
}

// TestReadyOwnPartitions: a projector is ready when its own partitions are
// caught up, whatever another process's partition lags; one working on the
// lagging partition (or on all) is not (red team, 2026-12-02: one dead
// partition made every projector process unready).
func TestReadyOwnPartitions(t *testing.T) {
	_, _, js := testenv.NATSPartitioned(t, 3)
	ch, _ := testenv.ClickHouse(t)
	orgs := orgsCovering(3, 1)
	for _, p := range orgPublishers(t, js, orgs, 5) {
		p.setup()
		p.responses(10)
	}
	base := projector.Config{BatchSize: 50, BatchWait: 30 * time.Millisecond, Partitions: 3}
	for _, part := range []int{0, 1} {
		cfg := base
		cfg.PartitionIDs = []int{part}
		catchUp(t, js, ch, cfg, nil)
	}
	ctx := context.Background()
	for _, c := range []struct {
		ids   []int
		ready bool
	}{{[]int{0}, true}, {[]int{0, 1}, true}, {[]int{2}, false}, {nil, false}} {
		cfg := base
		cfg.PartitionIDs = c.ids
		err := projector.New(js, ch, cfg, quietLog()).Ready(ctx, 0)
		if (err == nil) != c.ready {
			t.Errorf("partitions %v: Ready = %v, want ready %v", c.ids, err, c.ready)
		}
		if err != nil && !strings.Contains(err.Error(), "partition 2 is") {
			t.Errorf("partitions %v: %v, want partition 2 named", c.ids, err)
		}
	}
}
