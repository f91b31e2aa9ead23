package projector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/trustpulse/trustpulse/schemas"
)

// errHook marks a failure injected by Hook.
var errHook = errors.New("projector: injected fault")

func (p *Projector) hook(s Stage) error {
	if p.Hook == nil {
		return nil
	}
	if err := p.Hook(s); err != nil {
		return fmt.Errorf("%w at %s: %w", errHook, s, err)
	}
	return nil
}

// batchTimeout bounds the ClickHouse work of one batch.
const batchTimeout = 2 * time.Minute

// delivered is one fetched message, decoded.
type delivered struct {
	seq uint64
	env schemas.Envelope
}

// step fetches one batch and applies it. It returns how many messages the
// batch held.
func (w *worker) step(ctx context.Context) (int, error) {
	batch, err := w.cons.Fetch(w.p.cfg.BatchSize, jetstream.FetchMaxWait(w.p.cfg.BatchWait))
	if err != nil {
		return 0, fmt.Errorf("projector: fetch: %w", err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		return 0, fmt.Errorf("projector: fetch: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	// A batch that cannot be written in this time is abandoned and redone.
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	if err := w.apply(ctx, msgs); err != nil {
		return len(msgs), err
	}
	return len(msgs), nil
}

// apply writes one batch and then acks it. It is the one place that decides
// to ack: only after every row and the checkpoint are written. On any error
// nothing is acked and the caller resumes from the checkpoint.
func (w *worker) apply(ctx context.Context, msgs []jetstream.Msg) error {
	start := time.Now()
	evs := make([]delivered, 0, len(msgs))
	var last jetstream.Msg
	var lastSeq uint64
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("projector: message metadata: %w", err)
		}
		seq := md.Sequence.Stream
		if seq > lastSeq {
			last, lastSeq = m, seq
		}
		if seq <= w.checkpoint {
			continue // redelivered, already projected
		}
		env, err := schemas.DecodeEnvelope(m.Data())
		if err != nil {
			// A newer writer, or a corrupt message: stop here, loudly,
			// rather than skip data. Upgrade the projector to go on.
			return fmt.Errorf("projector: stream_seq %d subject %s: %w", seq, m.Subject(), err)
		}
		evs = append(evs, delivered{seq: seq, env: env})
	}
	slices.SortFunc(evs, func(a, b delivered) int { return cmpU64(a.seq, b.seq) })
	if err := w.p.hook(StageFetched); err != nil {
		return err
	}
	evs, err := w.dropDuplicates(ctx, evs)
	if err != nil {
		return err
	}
	rows, err := buildRows(evs, w.partOf)
	if err != nil {
		return err
	}
	written := make(map[string]int, len(rowTables))
	for _, t := range rowTables {
		written[t] = w.newRows(t, rows[t])
		if err := w.insert(ctx, t, rows[t]); err != nil {
			return err
		}
		if err := w.p.hook(StageInserted + Stage(t)); err != nil {
			return err
		}
	}
	if lastSeq > w.checkpoint {
		if err := w.writeCheckpoint(ctx, lastSeq); err != nil {
			return err
		}
	}
	if w.p.Hook != nil {
		if err := w.p.Hook(StageCheckpointed); errors.Is(err, ErrDropAck) {
			return nil
		} else if err != nil {
			return fmt.Errorf("%w at %s: %w", errHook, StageCheckpointed, err)
		}
	}
	// AckAll: acking the highest sequence acks the whole batch. A lost ack
	// only means a redelivery, which the checkpoint skips.
	if err := last.Ack(); err != nil {
		w.log.Warn("ack failed; batch will be redelivered and skipped", "stream_seq", lastSeq, "err", err)
	}
	if m := w.p.cfg.Metrics; m != nil {
		m.Batch(w.part, len(evs), written, time.Since(start))
	}
	return w.p.hook(StageAcked)
}

// dropDuplicates removes events already projected from an earlier stream
// sequence (the same event published twice) and repeats within the batch.
// An event found with its own sequence is kept: that is this batch being
// redone after a crash, and the high-water marks decide what is missing.
func (w *worker) dropDuplicates(ctx context.Context, evs []delivered) ([]delivered, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	seen := map[string]uint64{}
	for start := 0; start < len(evs); start += lookupChunk {
		chunk := evs[start:min(start+lookupChunk, len(evs))]
		ids := make([]any, 0, len(chunk))
		for _, e := range chunk {
			ids = append(ids, e.env.ID.String())
		}
		if err := w.lookupProjected(ctx, ids, seen); err != nil {
			return nil, err
		}
	}
	out := evs[:0]
	for _, e := range evs {
		id := e.env.ID.String()
		if first, ok := seen[id]; ok && first != e.seq {
			w.log.Debug("skipping duplicate event", "event_id", id, "stream_seq", e.seq, "first_seq", first)
			continue
		}
		seen[id] = e.seq
		out = append(out, e)
	}
	return out, nil
}

// lookupChunk bounds the ids of one lookup query, keeping it far below
// ClickHouse's max_query_size (256 KiB).
const lookupChunk = 1000

// lookupProjected adds to seen the first stream sequence of every id in ids
// that projected_events holds.
func (w *worker) lookupProjected(ctx context.Context, ids []any, seen map[string]uint64) error {
	rows, err := w.p.ch.Query(w.p.readCtx(ctx), sqlLookupProjected, clickhouse.GroupSet{Value: ids})
	if err != nil {
		return fmt.Errorf("projector: look up projected events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var seq uint64
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		seen[id] = seq
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("projector: look up projected events: %w", err)
	}
	return nil
}

// insert writes a table's rows of this batch in one INSERT, leaving out rows
// at or below the table's high-water mark (already written before a crash;
// on a cluster, the mark of the row's organisation).
func (w *worker) insert(ctx context.Context, table string, rs []row) error {
	b, err := w.p.ch.PrepareBatch(w.p.insertCtx(ctx), insertSQL[table])
	if err != nil {
		return fmt.Errorf("projector: prepare insert into %s: %w", table, err)
	}
	defer b.Abort()
	var top uint64
	for _, r := range rs {
		if r.seq <= w.mark(table, r) {
			continue
		}
		if err := b.Append(r.values...); err != nil {
			return fmt.Errorf("projector: row for %s at stream_seq %d: %w", table, r.seq, err)
		}
		top = max(top, r.seq)
	}
	if top == 0 {
		return nil
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("projector: insert into %s up to stream_seq %d: %w", table, top, err)
	}
	w.hwm[table] = top
	if orgs := w.orgHWM[table]; orgs != nil {
		for _, r := range rs {
			orgs[orgOf(r)] = max(orgs[orgOf(r)], r.seq)
		}
	}
	return nil
}

// mark is the high-water mark a row of table is held against: the
// table's, or on a cluster its organisation's.
func (w *worker) mark(table string, r row) uint64 {
	if orgs := w.orgHWM[table]; orgs != nil {
		return orgs[orgOf(r)]
	}
	return w.hwm[table]
}

// newRows counts the rows insert writes of rs: those above their mark.
func (w *worker) newRows(table string, rs []row) int {
	n := 0
	for _, r := range rs {
		if r.seq > w.mark(table, r) {
			n++
		}
	}
	return n
}

func (w *worker) writeCheckpoint(ctx context.Context, seq uint64) error {
	if err := writeCheckpoint(w.p.insertCtx(ctx), w.p.ch, w.name, seq); err != nil {
		return err
	}
	w.checkpoint = seq
	return nil
}

// writeCheckpoint records seq as consumer's checkpoint.
func writeCheckpoint(ctx context.Context, ch driver.Conn, consumer string, seq uint64) error {
	b, err := ch.PrepareBatch(ctx, "INSERT INTO projector_checkpoint (consumer, seq, updated_at)")
	if err != nil {
		return fmt.Errorf("projector: checkpoint of %s: %w", consumer, err)
	}
	defer b.Abort()
	if err := b.Append(consumer, seq, time.Now().UTC()); err != nil {
		return err
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("projector: checkpoint %d of %s: %w", seq, consumer, err)
	}
	return nil
}

// partOf is the proj_part of an organisation's rows: the worker's partition,
// or for a replay's whole-stream pass the partition the organisation's
// events are stored in.
func (w *worker) partOf(org string) uint16 {
	if w.part >= 0 {
		return uint16(w.part)
	}
	return uint16(schemas.PartitionOf(org, w.p.cfg.Partitions))
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
