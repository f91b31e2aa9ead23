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
	// Cluster, when set, makes the reads and inserts safe on a replicated,
	// sharded ClickHouse (see Cluster); nil: one server.
	Cluster *Cluster
	// Metrics, when set, hears of every batch written and acked.
	Metrics Metrics
}

// Metrics records the projector's batches (package metrics implements it
// per partition).
type Metrics interface {
	// Batch is called after a batch is written, checkpointed and acked,
	// with its events (duplicates left out), the rows written per table
	// and how long writing it took.
	Batch(events int, rows map[string]int, took time.Duration)
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

// Projector projects the event stream into ClickHouse. Create it with New;
// Run it until its context ends.
type Projector struct {
	js  jetstream.JetStream
	ch  driver.Conn
	cfg Config
	log *slog.Logger

	stream jetstream.Stream
	cons   jetstream.Consumer
	// checkpoint is the last stream sequence whose effects are complete.
	checkpoint uint64
	// hwm is each table's highest stream sequence, max(seq).
	hwm map[string]uint64
	// orgHWM is, on a cluster, each sharded table's max(seq) per
	// organisation, which replaces hwm there (see Cluster).
	orgHWM map[string]map[string]uint64

	// Hook, when set, runs at every stage of every batch; an error it
	// returns aborts the batch there, as a crash would (tests only).
	Hook func(Stage) error
	// Progress, when set, is called after every batch with the checkpoint
	// and the stream's last sequence.
	Progress func(done, last uint64)
}

// New returns a projector reading js into ch.
func New(js jetstream.JetStream, ch driver.Conn, cfg Config, log *slog.Logger) *Projector {
	cfg.setDefaults()
	return &Projector{js: js, ch: ch, cfg: cfg, log: log.With("component", "projector")}
}

// Run projects batches until ctx ends, when it returns nil after the batch in
// flight is finished or abandoned. Failures (ClickHouse or NATS down) are
// logged and retried with backoff; nothing is acked that was not written.
// It returns ErrLeaseHeld at once if another projector runs.
func (p *Projector) Run(ctx context.Context) error {
	l, err := acquireLease(ctx, p.js, p.cfg.Consumer)
	if err != nil {
		return err
	}
	defer l.release(context.WithoutCancel(ctx))
	return p.runLeased(ctx, l, false)
}

// CatchUp projects until the checkpoint reaches the stream's last sequence
// as it was when CatchUp started, then returns. It is the core of a replay.
func (p *Projector) CatchUp(ctx context.Context) error {
	l, err := acquireLease(ctx, p.js, p.cfg.Consumer)
	if err != nil {
		return err
	}
	defer l.release(context.WithoutCancel(ctx))
	return p.runLeased(ctx, l, true)
}

func (p *Projector) runLeased(ctx context.Context, l *lease, untilCaughtUp bool) error {
	var target uint64
	ready := false
	backoff := newBackoff()
	lastRenew := time.Now()
	for ctx.Err() == nil {
		if time.Since(lastRenew) > schemas.LeaseTTL/3 {
			if err := l.renew(ctx); err != nil {
				return err
			}
			lastRenew = time.Now()
		}
		if !ready {
			if err := p.init(ctx); err != nil {
				p.log.Error("projector not ready; retrying", "err", err, "retry_in", backoff.peek())
				backoff.wait(ctx)
				continue
			}
			ready = true
			if untilCaughtUp {
				info, err := p.stream.Info(ctx)
				if err != nil {
					return fmt.Errorf("projector: stream info: %w", err)
				}
				target = info.State.LastSeq
			}
		}
		if untilCaughtUp && p.checkpoint >= target {
			return nil
		}
		n, err := p.step(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, errHook) {
				return err
			}
			p.log.Error("batch failed; will resume from checkpoint", "err", err, "checkpoint", p.checkpoint, "retry_in", backoff.peek())
			ready = false
			backoff.wait(ctx)
			continue
		}
		backoff.reset()
		if n > 0 && p.Progress != nil {
			p.Progress(p.checkpoint, max(target, p.checkpoint))
		}
		if untilCaughtUp && n == 0 {
			// Nothing delivered: the stream may end in deleted messages.
			if info, err := p.stream.Info(ctx); err == nil && info.State.LastSeq <= p.checkpoint {
				return nil
			}
		}
	}
	if untilCaughtUp {
		return fmt.Errorf("projector: not caught up (checkpoint %d of %d): %w", p.checkpoint, target, ctx.Err())
	}
	return nil
}

// init reads the checkpoint and high-water marks from ClickHouse and makes
// sure the durable consumer delivers in order from right after the
// checkpoint. A consumer with messages pending (a batch abandoned by a
// crash) or delivered past the checkpoint is recreated at the checkpoint:
// otherwise newer messages could overtake the abandoned ones when those are
// redelivered, or wait behind them for the whole ack wait.
func (p *Projector) init(ctx context.Context) error {
	// Well inside the lease's TTL, so that a stuck call (a JetStream
	// failover, say) ends in a retry rather than a lost lease.
	ctx, cancel := context.WithTimeout(ctx, schemas.LeaseTTL/2)
	defer cancel()
	if err := p.checkQuorums(ctx); err != nil {
		return err
	}
	cp, err := p.readCheckpoint(ctx)
	if err != nil {
		return err
	}
	hwm, orgHWM := map[string]uint64{}, map[string]map[string]uint64{}
	for _, t := range rowTables {
		if p.byOrg(t) {
			if orgHWM[t], err = p.readOrgHWM(ctx, t); err != nil {
				return err
			}
			continue
		}
		m, err := p.readHWM(ctx, t)
		if err != nil {
			return err
		}
		hwm[t] = m
	}
	stream, err := p.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return fmt.Errorf("projector: stream %s: %w", schemas.EventStream, err)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       p.cfg.Consumer,
		Description:   "ClickHouse projection; its position is the checkpoint in ClickHouse",
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       p.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: p.cfg.BatchSize,
		Replicas:      p.cfg.Replicas,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   cp + 1,
	}
	cons, err := stream.Consumer(ctx, p.cfg.Consumer)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		cons, err = stream.CreateConsumer(ctx, cfg)
	case err == nil:
		info := cons.CachedInfo()
		if info.NumAckPending > 0 || info.Delivered.Stream != cp {
			p.log.Info("repositioning consumer at checkpoint", "checkpoint", cp,
				"delivered", info.Delivered.Stream, "pending", info.NumAckPending)
			if err = stream.DeleteConsumer(ctx, p.cfg.Consumer); err == nil {
				cons, err = stream.CreateConsumer(ctx, cfg)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("projector: consumer %s: %w", p.cfg.Consumer, err)
	}
	p.stream, p.cons, p.checkpoint, p.hwm, p.orgHWM = stream, cons, cp, hwm, orgHWM
	p.log.Info("projector ready", "checkpoint", cp)
	return nil
}

func (p *Projector) readCheckpoint(ctx context.Context) (uint64, error) {
	var cp uint64
	row := p.ch.QueryRow(p.readCtx(ctx), sqlCheckpoint, p.cfg.Consumer)
	if err := row.Scan(&cp); err != nil {
		return 0, fmt.Errorf("projector: read checkpoint: %w", err)
	}
	return cp, nil
}

func (p *Projector) readHWM(ctx context.Context, table string) (uint64, error) {
	var m uint64
	if err := p.ch.QueryRow(p.readCtx(ctx), fmt.Sprintf(sqlHighWaterMark, table)).Scan(&m); err != nil {
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
