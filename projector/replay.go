package projector

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// Rebuild empties every projection table and projects the whole stream again
// from its first event, returning once it has caught up with the stream as it
// was at the start. It holds the lease of every partition throughout (those
// of the stream's partition count and of Config.Partitions), so it refuses to
// run (ErrLeaseHeld) while a projector serves, and no projector starts while
// it runs.
//
// If Config.Partitions differs from the stream's count, Rebuild changes the
// stream's subject transform first: events published from then on are
// stored in the new partitions. The replay itself is one pass over the whole
// stream in stream order (its own consumer and checkpoint, base-replay, for
// N > 1), which tags each row with its organisation's partition of the new
// count; at the end every partition's checkpoint is set to the pass's, so the
// partition workers go on with the events after it, all of them stored under
// the new count. Events stored under the old count are never read through a
// partition filter again.
func (p *Projector) Rebuild(ctx context.Context) error {
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	n := p.cfg.Partitions
	stream, err := p.js.Stream(ctx, schemas.EventStream)
	if err != nil {
		return fmt.Errorf("projector: stream: %w", err)
	}
	old, err := schemas.StreamPartitions(stream.CachedInfo().Config)
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	pass := p.newWorker(0)
	if n > 1 {
		pass = &worker{p: p, part: -1, name: replayName(p.cfg.Consumer), log: p.log.With("partition", "all")}
	}
	names := []string{pass.name}
	for _, c := range []int{old, n} {
		for part := range c {
			names = append(names, schemas.PartitionConsumer(p.cfg.Consumer, part, c))
		}
	}
	var leases []*lease
	defer func() {
		for _, l := range leases {
			l.release(context.WithoutCancel(ctx))
		}
	}()
	held := map[string]bool{}
	for _, name := range names {
		if held[name] {
			continue
		}
		l, err := acquireLease(ctx, p.js, name)
		if err != nil {
			return err
		}
		leases, held[name] = append(leases, l), true
	}
	if old != n {
		cfg := stream.CachedInfo().Config
		cfg.SubjectTransform = schemas.StreamConfig(cfg.Replicas, n).SubjectTransform
		if _, err := p.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("projector: re-partition the stream from %d to %d: %w", old, n, err)
		}
		p.log.Warn("event stream re-partitioned; new events are stored in the new partitions", "from", old, "to", n)
	}
	if err := p.deleteConsumers(ctx, stream); err != nil {
		return err
	}
	for _, t := range schemas.ProjectionTables {
		if err := emptyTable(ctx, p.ch, t); err != nil {
			return err
		}
	}
	p.log.Info("projections emptied; replaying the stream from its start", "partitions", n)
	if err := pass.runLeased(ctx, leases, true); err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	for part := range n {
		name := schemas.PartitionConsumer(p.cfg.Consumer, part, n)
		if err := writeCheckpoint(ctx, p.ch, name, pass.checkpoint); err != nil {
			return err
		}
	}
	if err := stream.DeleteConsumer(ctx, pass.name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("projector: delete consumer %s: %w", pass.name, err)
	}
	return nil
}

// deleteConsumers deletes the projector's durable consumers, of every
// partition count: they are recreated at the checkpoints.
func (p *Projector) deleteConsumers(ctx context.Context, stream jetstream.Stream) error {
	lister := stream.ConsumerNames(ctx)
	var names []string
	for name := range lister.Name() {
		if name == p.cfg.Consumer || strings.HasPrefix(name, p.cfg.Consumer+"-") {
			names = append(names, name)
		}
	}
	if err := lister.Err(); err != nil {
		return fmt.Errorf("projector: list consumers: %w", err)
	}
	for _, name := range names {
		if err := stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("projector: delete consumer %s: %w", name, err)
		}
	}
	return nil
}

// emptyTable replaces table by an empty one of the same structure (CREATE
// ... AS, then one RENAME of both, then DROP of the old one), rather than
// TRUNCATE it: on ClickHouse 18.16 TRUNCATE leaves parts that merges had
// already replaced on disk, and the next server start loads them again as
// live data (red team, 2026-12-02: after a replay and a restart every
// projection held its rows three times). A DROP removes the table's
// directory. Each step is safe to redo: a replay cut short anywhere here
// is run again, and a table renamed away but not yet replaced is put back
// first.
func emptyTable(ctx context.Context, ch driver.Conn, table string) error {
	var present uint64
	if err := ch.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", table).Scan(&present); err != nil {
		return fmt.Errorf("projector: empty %s: %w", table, err)
	}
	if present == 0 {
		// Cut short between the two renames of an earlier run (RENAME of
		// several tables is not atomic on 18.16): the new one is the table.
		if err := ch.Exec(ctx, fmt.Sprintf("RENAME TABLE %s TO %s", table+replayNewSuffix, table)); err != nil {
			return fmt.Errorf("projector: empty %s: put back the table: %w", table, err)
		}
	}
	for _, q := range emptyTableSQL(table) {
		if err := ch.Exec(ctx, q); err != nil {
			return fmt.Errorf("projector: empty %s: %w", table, err)
		}
	}
	return nil
}

// The suffixes of the tables emptyTable swaps.
const (
	replayNewSuffix = "__replay_new"
	replayOldSuffix = "__replay_old"
)

// emptyTableSQL is emptyTable's statements, in order.
func emptyTableSQL(table string) []string {
	newT, oldT := table+replayNewSuffix, table+replayOldSuffix
	return []string{
		"DROP TABLE IF EXISTS " + oldT,
		"DROP TABLE IF EXISTS " + newT,
		fmt.Sprintf("CREATE TABLE %s AS %s", newT, table),
		fmt.Sprintf("RENAME TABLE %s TO %s, %s TO %s", table, oldT, newT, table),
		"DROP TABLE " + oldT,
	}
}
