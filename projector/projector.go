package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Config tunes a Projector. Zero values take the defaults.
type Config struct {
	// BatchSize bounds a batch's messages (default 5000).
	BatchSize int
	// BatchWait bounds how long a batch waits to fill (default 250ms).
	BatchWait time.Duration
	// Replicas of the durable consumer on a JetStream cluster (default 1).
	Replicas int
	// Consumer is the durable consumer's name (default schemas.ProjectorConsumer).
	Consumer string
	// AckWait is how long JetStream waits for a batch's ack before it
	// redelivers (default 2m).
	AckWait time.Duration
	// Partitions is the event stream's partition count (default 1; see
	// partition.go). It must match the stream's.
	Partitions int
	// PartitionIDs are the partitions this projector works on (default
	// all). Each has its own consumer, lease and checkpoint.
	PartitionIDs []int
	// Cluster, when set, makes the reads and inserts safe on a replicated,
	// sharded ClickHouse (see Cluster); nil: one server.
	Cluster *Cluster
	// Metrics, when set, hears of every batch written and acked.
	Metrics Metrics
}

// Metrics records the projector's batches (package deploy/metrics
// implements it).
type Metrics interface {
	// Batch is called after a batch of partition (-1: a replay's single
	// pass) is written, checkpointed and acked, with its events
	// (duplicates left out), the rows written per table and how long
	// writing it took; phases says where the time of preparing and
	// writing it went.
	Batch(partition, events int, rows map[string]int, took time.Duration, phases Phases)
}

// Phases is where one batch's time went. Fetch to Build prepare it; with
// the prefetch they run while the batch ahead is written, so Wait (the
// writer waiting for the batch to be ready) says whether preparing is what
// holds the writes back. Insert, Checkpoint and Ack are the writes, in
// sequence.
type Phases struct {
	Fetch  time.Duration // the fetch from JetStream, its wait included
	Decode time.Duration // envelopes decoded
	Lookup time.Duration // event ids looked up in projected_events
	Build  time.Duration // rows built
	Wait   time.Duration
	// Insert is the time the batch's inserts took together; Tables each
	// table's, which overlap (insertAll writes tables in parallel).
	Insert time.Duration
	Tables map[string]time.Duration
	// Checkpoint is the checkpoint's write; Ack the acknowledgement.
	Checkpoint, Ack time.Duration
}

// Validate checks the partition settings.
func (c Config) Validate() error {
	n := max(c.Partitions, 1)
	if n > schemas.MaxPartitions {
		return fmt.Errorf("projector: %d partitions, at most %d", n, schemas.MaxPartitions)
	}
	seen := map[int]bool{}
	for _, id := range c.PartitionIDs {
		if id < 0 || id >= n {
			return fmt.Errorf("projector: partition id %d out of range: the stream has partitions 0 to %d", id, n-1)
		}
		if seen[id] {
			return fmt.Errorf("projector: partition id %d given twice", id)
		}
		seen[id] = true
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 5000
	}
	if c.BatchWait <= 0 {
		c.BatchWait = 250 * time.Millisecond
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Consumer == "" {
		c.Consumer = schemas.ProjectorConsumer
	}
	if c.AckWait <= 0 {
		c.AckWait = 2 * time.Minute
	}
	if c.Partitions <= 0 {
		c.Partitions = 1
	}
	if len(c.PartitionIDs) == 0 {
		for i := range c.Partitions {
			c.PartitionIDs = append(c.PartitionIDs, i)
		}
	}
}

// Stage names a point of a batch's life; fault-injection hooks run at each.
type Stage string

// The stages, in order. StageInserted is followed by the table name.
const (
	StageFetched      Stage = "fetched"
	StageInserted     Stage = "inserted:"
	StageCheckpointed Stage = "checkpointed"
	StageAcked        Stage = "acked"
)

// ErrDropAck, returned by a Hook at StageCheckpointed, makes the projector
// go on without acking the batch, as if the ack were lost on the wire; the
// batch is then redelivered after the ack wait and must be skipped.
var ErrDropAck = errors.New("projector: drop this ack (fault injection)")

// Projector projects the event stream into ClickHouse: one worker per
// partition it works on. Create it with New; Run it until its context ends.
type Projector struct {
	js  jetstream.JetStream
	ch  driver.Conn
	cfg Config
	log *slog.Logger

	workers []*worker

	// Hook, when set, runs at every stage of every batch; an error it
	// returns aborts the batch there, as a crash would (tests only). The
	// workers of several partitions call it concurrently.
	Hook func(Stage) error
	// StandbyWait is how often a worker of a projector of several
	// partitions whose lease another process holds, or that failed, tries
	// again (default 2s).
	StandbyWait time.Duration
	// Progress, when set, is called after every batch with the worker's
	// checkpoint and the last sequence it is to reach (CatchUp, Rebuild),
	// by each partition's worker.
	Progress func(done, last uint64)
}

// worker projects one partition: its own durable consumer, lease and
// checkpoint (all named by name), and high-water marks over its own rows.
type worker struct {
	p *Projector
	// part is the partition, written as proj_part with every row; -1 is a
	// replay's single pass over the whole stream (replay.go).
	part   int
	name   string
	filter string
	log    *slog.Logger

	stream jetstream.Stream
	cons   jetstream.Consumer
	// checkpoint is the last stream sequence whose effects are complete.
	checkpoint uint64
	// hwm is each table's highest stream sequence, max(seq), over the
	// partition's rows.
	hwm map[string]uint64
	// orgHWM is, on a cluster, each sharded table's max(seq) per
	// organisation, which replaces hwm there (see Cluster). An
	// organisation's events all lie in one partition, so its marks are the
	// partition's too.
	orgHWM map[string]map[string]uint64
	// next is the batch being fetched and prepared while the one before
	// it is written (project.go).
	next *prefetch
	// delivered is the consumer sequence of the last message fetched.
	delivered uint64
	// seen holds every event id that may be in projected_events
	// (seen.go); it is loaded by init.
	seen *seenIDs
}

// New returns a projector reading js into ch.
func New(js jetstream.JetStream, ch driver.Conn, cfg Config, log *slog.Logger) *Projector {
	cfg.setDefaults()
	p := &Projector{js: js, ch: ch, cfg: cfg, log: log.With("component", "projector"), StandbyWait: 2 * time.Second}
	for _, id := range cfg.PartitionIDs {
		p.workers = append(p.workers, p.newWorker(id))
	}
	return p
}

func (p *Projector) newWorker(part int) *worker {
	n := p.cfg.Partitions
	w := &worker{p: p, part: part, name: schemas.PartitionConsumer(p.cfg.Consumer, part, n), filter: schemas.PartitionFilter(part, n), log: p.log}
	if n > 1 {
		w.log = p.log.With("partition", part)
	}
	return w
}

// Run projects batches until ctx ends, when it returns nil after the batches
// in flight are finished or abandoned. Failures (ClickHouse or NATS down)
// are logged and retried with backoff; nothing is acked that was not
// written. A projector of one partition (the default of an unpartitioned
// stream, or one pinned with PartitionIDs) returns ErrLeaseHeld at once if
// another projector holds the partition; one of several partitions runs a
// worker for each, and a worker whose lease is held stands by and takes
// over when it frees; a worker that fails (its lease lost, a fault) starts
// again after StandbyWait.
func (p *Projector) Run(ctx context.Context) error {
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	if err := p.checkStream(ctx); err != nil {
		return err
	}
	if len(p.workers) == 1 {
		return p.workers[0].run(ctx, false)
	}
	return p.each(ctx, func(ctx context.Context, w *worker) error {
		for {
			// A fault (a hook's, in tests) ends the worker as a crash
			// would; it is restarted like after any other failure.
			err := w.run(ctx, false)
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrLeaseHeld) {
				w.log.Debug("standing by: another process holds this partition")
			} else {
				w.log.Warn("partition worker stopped; restarting", "err", err, "retry_in", p.StandbyWait)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(p.StandbyWait):
			}
		}
	})
}

// CatchUp projects each of its partitions until its checkpoint reaches the
// partition's last sequence as it was when CatchUp started, then returns.
// It returns ErrLeaseHeld if another projector holds one of them.
func (p *Projector) CatchUp(ctx context.Context) error {
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	if err := p.checkStream(ctx); err != nil {
		return err
	}
	return p.each(ctx, func(ctx context.Context, w *worker) error { return w.run(ctx, true) })
}

// each runs f for every worker concurrently and returns the first error.
func (p *Projector) each(ctx context.Context, f func(context.Context, *worker) error) error {
	if len(p.workers) == 1 {
		return f(ctx, p.workers[0])
	}
	errs := make(chan error, len(p.workers))
	for _, w := range p.workers {
		go func() { errs <- f(ctx, w) }()
	}
	var first error
	for range p.workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ErrReplayUnfinished: a replay of a partitioned stream was cut short; the
// partitions cannot go on from it.
var ErrReplayUnfinished = errors.New("projector: a replay was cut short")

// replayName names a partitioned replay's pass: its consumer, lease and
// checkpoint.
func replayName(base string) string { return base + "-replay" }

// ErrPartitions: the event stream is split into another number of
// partitions than the projector's Config says.
var ErrPartitions = errors.New("projector: the event stream's partition count differs from the projector's")

// checkStream makes sure the stream is split into cfg.Partitions.
func (p *Projector) checkStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, schemas.LeaseTTL/2)
	defer cancel()
	stream, err := p.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return fmt.Errorf("projector: stream %s: %w", schemas.EventStream, err)
	}
	n, err := schemas.StreamPartitions(stream.CachedInfo().Config)
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	if n != p.cfg.Partitions {
		return fmt.Errorf("%w: the stream has %d, the projector was configured with %d (--projector-partitions)", ErrPartitions, n, p.cfg.Partitions)
	}
	return nil
}

// run holds the worker's lease and projects its partition until ctx ends,
// or with untilCaughtUp until it has reached the partition's last sequence.
func (w *worker) run(ctx context.Context, untilCaughtUp bool) error {
	l, err := acquireLease(ctx, w.p.js, w.name)
	if err != nil {
		return err
	}
	defer l.release(context.WithoutCancel(ctx))
	return w.runLeased(ctx, []*lease{l}, untilCaughtUp)
}

// runLeased projects while it renews the leases ls (a replay holds every
// partition's).
func (w *worker) runLeased(ctx context.Context, ls []*lease, untilCaughtUp bool) error {
	p := w.p
	defer w.dropPrefetch()
	var target uint64
	ready := false
	backoff := newBackoff()
	lastRenew := time.Now()
	renew := func(ctx context.Context) error {
		if time.Since(lastRenew) <= schemas.LeaseTTL/3 {
			return nil
		}
		for _, l := range ls {
			if err := l.renew(ctx); err != nil {
				return err
			}
		}
		lastRenew = time.Now()
		return nil
	}
	for ctx.Err() == nil {
		if err := renew(ctx); err != nil {
			return err
		}
		if !ready {
			if err := w.init(ctx); err != nil {
				w.log.Error("projector not ready; retrying", "err", err, "retry_in", backoff.peek())
				backoff.wait(ctx)
				continue
			}
			ready = true
			if untilCaughtUp {
				last, err := w.lastSeq(ctx)
				if err != nil {
					return err
				}
				target = last
			}
		}
		if untilCaughtUp && w.checkpoint >= target {
			return nil
		}
		n, err := w.step(ctx, renew)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, errHook) || errors.Is(err, errLeaseLost) {
				return err
			}
			w.log.Error("batch failed; will resume from checkpoint", "err", err, "checkpoint", w.checkpoint, "retry_in", backoff.peek())
			w.dropPrefetch()
			ready = false
			backoff.wait(ctx)
			continue
		}
		backoff.reset()
		if n > 0 && p.Progress != nil {
			p.Progress(w.checkpoint, max(target, w.checkpoint))
		}
		if untilCaughtUp && n == 0 {
			// Nothing delivered: the partition may end in deleted messages.
			if last, err := w.lastSeq(ctx); err == nil && last <= w.checkpoint {
				return nil
			}
		}
	}
	if untilCaughtUp {
		return fmt.Errorf("projector: not caught up (checkpoint %d of %d): %w", w.checkpoint, target, ctx.Err())
	}
	return nil
}

// lastSeq is the stream sequence of the partition's last message (the
// stream's for a whole-stream worker), 0 if it has none.
func (w *worker) lastSeq(ctx context.Context) (uint64, error) {
	return lastSeq(ctx, w.p.js, w.filter)
}

// init reads the checkpoint and high-water marks from ClickHouse and makes
// sure the durable consumer delivers in order from right after the
// checkpoint. A consumer with messages pending (a batch abandoned by a
// crash) or delivered past the checkpoint is recreated at the checkpoint:
// otherwise newer messages could overtake the abandoned ones when those are
// redelivered, or wait behind them for the whole ack wait.
func (w *worker) init(ctx context.Context) error {
	p := w.p
	// Well inside the lease's TTL, so that a stuck call (a JetStream
	// failover, say) ends in a retry rather than a lost lease.
	ctx, cancel := context.WithTimeout(ctx, schemas.LeaseTTL/2)
	defer cancel()
	if err := p.checkQuorums(ctx); err != nil {
		return err
	}
	cp, err := readCheckpoint(p.readCtx(ctx), p.ch, w.name)
	if err != nil {
		return err
	}
	if w.part >= 0 && p.cfg.Partitions > 1 {
		pass, err := readCheckpoint(p.readCtx(ctx), p.ch, replayName(p.cfg.Consumer))
		if err != nil {
			return err
		}
		if pass > cp {
			return fmt.Errorf("%w: the replay's pass reached stream_seq %d, partition %d's checkpoint is %d; stop the projectors and run 'trustpulse replay --projector-partitions %d' again", ErrReplayUnfinished, pass, w.part, cp, p.cfg.Partitions)
		}
	}
	hwm, orgHWM := map[string]uint64{}, map[string]map[string]uint64{}
	for _, t := range rowTables {
		if p.byOrg(t) {
			if orgHWM[t], err = p.readOrgHWM(ctx, t); err != nil {
				return err
			}
			continue
		}
		m, err := w.readHWM(ctx, t)
		if err != nil {
			return err
		}
		hwm[t] = m
	}
	seen, err := w.loadSeen(ctx)
	if err != nil {
		return err
	}
	stream, err := p.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return fmt.Errorf("projector: stream %s: %w", schemas.EventStream, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       w.name,
		Description:   "ClickHouse projection; its position is the checkpoint in ClickHouse",
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       p.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 2 * p.cfg.BatchSize, // the batch written and the one prefetched
		Replicas:      p.cfg.Replicas,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   cp + 1,
		FilterSubject: w.filter,
	}
	cons, err := stream.Consumer(ctx, w.name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		cons, err = stream.CreateConsumer(ctx, cfg)
	case err == nil:
		info := cons.CachedInfo()
		// Delivered.Stream is the last delivered message's sequence; with a
		// filter it may be below the checkpoint only if nothing matched.
		if info.NumAckPending > 0 || info.Delivered.Stream != cp || info.Config.FilterSubject != w.filter || info.Config.MaxAckPending != cfg.MaxAckPending {
			w.log.Info("repositioning consumer at checkpoint", "checkpoint", cp,
				"delivered", info.Delivered.Stream, "pending", info.NumAckPending)
			if err = stream.DeleteConsumer(ctx, w.name); err == nil {
				cons, err = stream.CreateConsumer(ctx, cfg)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("projector: consumer %s: %w", w.name, err)
	}
	w.stream, w.cons, w.checkpoint, w.hwm, w.orgHWM, w.seen = stream, cons, cp, hwm, orgHWM, seen
	w.delivered = cons.CachedInfo().Delivered.Consumer
	w.log.Info("projector ready", "checkpoint", cp)
	return nil
}

func readCheckpoint(ctx context.Context, ch driver.Conn, consumer string) (uint64, error) {
	var cp uint64
	row := ch.QueryRow(ctx, sqlCheckpoint, consumer)
	if err := row.Scan(&cp); err != nil {
		return 0, fmt.Errorf("projector: read checkpoint of %s: %w", consumer, err)
	}
	return cp, nil
}

// readHWM is max(seq) of table over the worker's partition (over every row
// for a replay's whole-stream pass).
func (w *worker) readHWM(ctx context.Context, table string) (uint64, error) {
	var m uint64
	var err error
	if w.part < 0 {
		err = w.p.ch.QueryRow(w.p.readCtx(ctx), fmt.Sprintf(sqlHighWaterMarkAll, table)).Scan(&m)
	} else {
		err = w.p.ch.QueryRow(w.p.readCtx(ctx), fmt.Sprintf(sqlHighWaterMark, table), uint16(w.part)).Scan(&m)
	}
	if err != nil {
		return 0, fmt.Errorf("projector: read high-water mark of %s: %w", table, err)
	}
	return m, nil
}

// backoff doubles from 200ms to 10s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff             { return &backoff{d: 200 * time.Millisecond} }
func (b *backoff) reset()              { b.d = 200 * time.Millisecond }
func (b *backoff) peek() time.Duration { return b.d }
func (b *backoff) wait(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(b.d):
	}
	b.d = min(2*b.d, 10*time.Second)
}
