package projector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
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

// prepared is a fetched batch made ready to write: decoded, sorted, its
// duplicates dropped and its rows built.
type prepared struct {
	msgs    int
	last    jetstream.Msg // the highest sequence's message: its ack acks all
	lastSeq uint64
	// delivered is the consumer sequence of the last message fetched
	// (the one before the batch if it is empty).
	delivered uint64
	evs       []delivered
	rows      map[string][]row
	took      time.Duration // fetch and preparation
	phases    Phases
}

// The batch after the one being written is fetched and prepared meanwhile
// (prefetch), so that decoding and building rows in the projector overlap
// ClickHouse's work on the inserts. Nothing of it is written before the
// batch ahead of it is complete: the writes stay strictly in stream order,
// one batch after the other, exactly as without it. What the overlap
// changes, and why it stays exactly once:
//
//   - Sequences already done are skipped against the batch ahead's last
//     sequence, which is the checkpoint once that batch is complete.
//   - A duplicate of an event of the batch ahead is not yet in
//     projected_events when the look-up runs; the batch ahead's ids and
//     sequences are given to it, so it is dropped all the same. Events of
//     every earlier batch are in projected_events: they were complete
//     before the batch ahead started writing, and so before this look-up.
//   - If the batch ahead fails, the prefetched batch is dropped unwritten,
//     unacked: the worker starts again from the checkpoint (the consumer is
//     repositioned there, since it has messages pending), as after any
//     failure.
//   - Both batches' messages are unacked for a while, so the consumer's
//     MaxAckPending is twice the batch size.
type prefetch struct {
	done   chan struct{}
	cancel context.CancelFunc
	b      prepared
	err    error
}

// step writes one batch: the one prefetched, or one fetched now. Before
// writing it, it starts the prefetch of the next and renews the lease
// (renew), since waiting for the prefetch may have taken a while. It
// returns how many messages the batch held. After an error the caller
// drops the prefetch (runLeased, on every way out of a failed step).
func (w *worker) step(ctx context.Context, renew func(context.Context) error) (int, error) {
	var b prepared
	var err error
	if f := w.next; f != nil {
		w.next = nil
		waited := time.Now()
		<-f.done
		f.cancel()
		b, err = f.b, f.err
		b.phases.Wait = time.Since(waited)
	} else {
		b, err = w.fetchPrepared(ctx, w.checkpoint, w.delivered, nil)
	}
	if err != nil {
		return b.msgs, err
	}
	w.delivered = b.delivered
	if b.msgs == 0 {
		return 0, nil
	}
	w.startPrefetch(ctx, b)
	if err := renew(ctx); err != nil {
		return b.msgs, err
	}
	// A batch that cannot be written in this time is abandoned and redone.
	wctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	if err := w.commit(wctx, b); err != nil {
		return b.msgs, err
	}
	return b.msgs, nil
}

// startPrefetch fetches and prepares the batch after b in the background.
func (w *worker) startPrefetch(ctx context.Context, b prepared) {
	ahead := make(map[string]uint64, len(b.evs))
	for _, e := range b.evs {
		ahead[e.env.ID.String()] = e.seq
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &prefetch{done: make(chan struct{}), cancel: cancel}
	floor := max(w.checkpoint, b.lastSeq)
	go func() {
		defer close(f.done)
		f.b, f.err = w.fetchPrepared(ctx, floor, b.delivered, ahead)
	}()
	w.next = f
}

// dropPrefetch stops a prefetch and waits for it; its messages stay
// unacked. The fetch itself is not cancelled but runs to its end (at most
// BatchWait and a second): a fetch cut short on the client may leave
// messages the server delivered unread (see fetchPrepared).
func (w *worker) dropPrefetch() {
	if f := w.next; f != nil {
		w.next = nil
		f.cancel()
		<-f.done
	}
}

// fetchPrepared fetches one batch and prepares it: messages at or below
// floor are skipped (already projected), after is the consumer sequence
// of the last message fetched before, and ahead holds the ids and
// sequences of the batch being written before it, not yet in
// projected_events.
//
// The wait is the server's (FetchMaxWait): the server ends the request
// and the client reads until it says so. A client-side deadline
// (FetchContext) would stop reading while the server may still deliver;
// what it delivered would be pending unread, the next batch's AckAll would
// ack it, and it would be lost. ErrDeliveryGap catches any such loss.
func (w *worker) fetchPrepared(ctx context.Context, floor, after uint64, ahead map[string]uint64) (prepared, error) {
	start := time.Now()
	batch, err := w.cons.Fetch(w.p.cfg.BatchSize, jetstream.FetchMaxWait(w.p.cfg.BatchWait))
	if err != nil {
		return prepared{}, fmt.Errorf("projector: fetch: %w", err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return prepared{}, fmt.Errorf("projector: fetch: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return prepared{}, err
	}
	if len(msgs) == 0 {
		return prepared{delivered: after}, nil
	}
	fetched := time.Since(start)
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	b, err := w.prepare(ctx, msgs, floor, after, ahead)
	b.took = time.Since(start)
	b.phases.Fetch = fetched
	return b, err
}

// ErrDeliveryGap reports a fetched message whose consumer sequence does
// not follow the last one fetched: messages were delivered that this
// worker never read (a fetch that ended on the client before the server,
// another client on the consumer, a consumer leader that lost state). The
// worker resumes from its checkpoint, which repositions the consumer there
// since those messages are pending, rather than let a later ack cover
// them.
var ErrDeliveryGap = errors.New("projector: messages delivered but not read")

// prepare decodes, sorts and deduplicates a batch and builds its rows.
func (w *worker) prepare(ctx context.Context, msgs []jetstream.Msg, floor, after uint64, ahead map[string]uint64) (prepared, error) {
	b := prepared{msgs: len(msgs), delivered: after, evs: make([]delivered, 0, len(msgs))}
	start := time.Now()
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			return b, fmt.Errorf("projector: message metadata: %w", err)
		}
		if md.Sequence.Consumer != b.delivered+1 {
			return b, fmt.Errorf("%w: consumer sequence %d after %d (stream_seq %d)", ErrDeliveryGap, md.Sequence.Consumer, b.delivered, md.Sequence.Stream)
		}
		b.delivered = md.Sequence.Consumer
		seq := md.Sequence.Stream
		if seq > b.lastSeq {
			b.last, b.lastSeq = m, seq
		}
		if seq <= floor {
			continue // redelivered, already projected
		}
		env, err := schemas.DecodeEnvelope(m.Data())
		if err != nil {
			// A newer writer, or a corrupt message: stop here, loudly,
			// rather than skip data. Upgrade the projector to go on.
			return b, fmt.Errorf("projector: stream_seq %d subject %s: %w", seq, m.Subject(), err)
		}
		b.evs = append(b.evs, delivered{seq: seq, env: env})
	}
	slices.SortFunc(b.evs, func(a, b delivered) int { return cmpU64(a.seq, b.seq) })
	looked := time.Now()
	b.phases.Decode = looked.Sub(start)
	// The rows are built while the ids are looked up (ClickHouse's work),
	// for every event: duplicates are rare. If any is dropped, they are
	// built again from what the look-up kept, so the result is exactly that
	// of building after it.
	all := slices.Clone(b.evs)
	type built struct {
		rows map[string][]row
		err  error
		took time.Duration
	}
	spec := make(chan built, 1)
	go func() {
		began := time.Now()
		rows, err := buildRows(all, w.partOf)
		spec <- built{rows, err, time.Since(began)}
	}()
	evs, err := w.dropDuplicates(ctx, b.evs, ahead)
	b.phases.Lookup = time.Since(looked)
	first := <-spec
	if err != nil {
		return b, err
	}
	b.evs = evs
	b.phases.Build = first.took
	if len(evs) == len(all) {
		b.rows = first.rows
		return b, first.err
	}
	again := time.Now()
	b.rows, err = buildRows(evs, w.partOf)
	b.phases.Build += time.Since(again)
	return b, err
}

// commit writes a prepared batch and then acks it. It is the one place
// that decides to ack: only after every row and the checkpoint are
// written. On any error nothing is acked and the caller resumes from the
// checkpoint.
func (w *worker) commit(ctx context.Context, b prepared) error {
	start := time.Now()
	if err := w.p.hook(StageFetched); err != nil {
		return err
	}
	began := time.Now()
	written, err := w.insertAll(ctx, &b)
	if err != nil {
		return err
	}
	b.phases.Insert = time.Since(began)
	if b.lastSeq > w.checkpoint {
		began := time.Now()
		if err := w.writeCheckpoint(ctx, b.lastSeq); err != nil {
			return err
		}
		b.phases.Checkpoint = time.Since(began)
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
	acked := time.Now()
	if err := b.last.Ack(); err != nil {
		w.log.Warn("ack failed; batch will be redelivered and skipped", "stream_seq", b.lastSeq, "err", err)
	}
	b.phases.Ack = time.Since(acked)
	if m := w.p.cfg.Metrics; m != nil {
		m.Batch(w.part, len(b.evs), written, b.took+time.Since(start), b.phases)
	}
	return w.p.hook(StageAcked)
}

// parallelInserts bounds how many of a batch's tables are written at once.
// A batch holds rows of a few tables (answers, invitations, comments,
// projected_events), and partition workers share the process's
// connection pool.
const parallelInserts = 4

// insertAll writes each table's new rows of the batch (insert), up to
// parallelInserts tables at a time, and returns how many rows each got.
// The marks are raised only once all have landed. Why any order, and any
// mix of tables landed before a failure, stays exactly once:
//
//   - Each table's rows of the batch are one INSERT block, written all or
//     nothing, and each carries its stream sequence; a redo skips the rows
//     at or below the table's mark, which init reads again from ClickHouse
//     after every failure. So whichever tables landed, the redo writes
//     exactly the others' rows.
//   - projected_events is only read by the projector's own look-up, where
//     an id found with its own sequence is the batch being redone and is
//     kept: its rows in the other tables are then written if missing.
//   - Readers see a batch as a whole through the checkpoint, written after
//     every insert (query/scope.go's released); the order between tables
//     within a batch was never a guarantee to them.
//
// The crash test's faults after each table's insert now leave a random mix
// of the batch's tables landed (the others go on), which covers this.
func (w *worker) insertAll(ctx context.Context, b *prepared) (map[string]int, error) {
	written := make(map[string]int, len(rowTables))
	for _, t := range rowTables {
		written[t] = w.newRows(t, b.rows[t])
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // the hook, took and first
		first error
		took  = make(map[string]time.Duration, len(rowTables))
		slots = make(chan struct{}, parallelInserts)
	)
	for _, t := range rowTables {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			began := time.Now()
			err := w.insert(ctx, t, b.rows[t], written[t])
			mu.Lock()
			defer mu.Unlock()
			took[t] = time.Since(began)
			if err == nil {
				err = w.p.hook(StageInserted + Stage(t))
			}
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	b.phases.Tables = took
	if first != nil {
		return nil, first
	}
	w.raiseMarks(*b)
	return written, nil
}

// dropDuplicates removes events already projected from an earlier stream
// sequence (the same event published twice) and repeats within the batch.
// Only ids the worker's filter may hold are looked up (seen.go); the
// batch's ids are then added to it.
// ahead are the events of the batch being written before this one, not
// yet in projected_events. An event found with its own sequence is kept:
// that is this batch being redone after a crash, and the high-water marks
// decide what is missing.
func (w *worker) dropDuplicates(ctx context.Context, evs []delivered, ahead map[string]uint64) ([]delivered, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	ids := make([]string, len(evs))
	hashes := make([]uint64, len(evs))
	var ask []string
	for i, e := range evs {
		ids[i] = e.env.ID.String()
		hashes[i] = idHash(ids[i])
		if w.seen.mayHold(hashes[i]) {
			ask = append(ask, ids[i])
		}
	}
	seen := map[string]uint64{}
	if len(ask) > 0 {
		var err error
		if seen, err = w.lookupProjected(ctx, ask); err != nil {
			return nil, err
		}
	}
	for _, h := range hashes {
		w.seen.add(h)
	}
	for id, seq := range ahead {
		if first, ok := seen[id]; !ok || seq < first {
			seen[id] = seq
		}
	}
	out := evs[:0]
	for i, e := range evs {
		id := ids[i]
		if first, ok := seen[id]; ok && first != e.seq {
			w.log.Debug("skipping duplicate event", "event_id", id, "stream_seq", e.seq, "first_seq", first)
			continue
		}
		seen[id] = e.seq
		out = append(out, e)
	}
	return out, nil
}

// lookupProjected returns the first stream sequence of every id in ids
// (not empty: an empty external table is not sent, and the query would
// not find it) that projected_events holds. The ids go to ClickHouse as
// an external table (native data beside the query, not in its text): one
// query per batch however large, with nothing to parse, where a literal
// list would be bounded by max_query_size and parsed each time; and since
// the ids are random, every query reads most of the table's granules, so
// one query for the batch reads them once.
//
// Each query's external table has a name of its own: clickhouse-go issue
// 1724 reports current ClickHouse answering a query with a previous one's
// external data of the same name. An id answered that the batch does not
// hold fails the batch, loudly, rather than let such a mix-up drop or
// keep the wrong events.
func (w *worker) lookupProjected(ctx context.Context, ids []string) (map[string]uint64, error) {
	name := fmt.Sprintf("batch_ids_%d", lookups.Add(1))
	tbl, err := ext.NewTable(name, ext.Column("event_id", "String"))
	if err != nil {
		return nil, fmt.Errorf("projector: look up projected events: %w", err)
	}
	asked := make(map[string]bool, len(ids))
	for _, id := range ids {
		asked[id] = true
		if err := tbl.Append(id); err != nil {
			return nil, fmt.Errorf("projector: look up projected events: %w", err)
		}
	}
	ctx = clickhouse.Context(w.p.readCtx(ctx), clickhouse.WithExternalTable(tbl))
	rows, err := w.p.ch.Query(ctx, fmt.Sprintf(sqlLookupProjected, name))
	if err != nil {
		return nil, fmt.Errorf("projector: look up projected events: %w", err)
	}
	defer rows.Close()
	seen := make(map[string]uint64, len(ids))
	for rows.Next() {
		var id string
		var seq uint64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, err
		}
		if !asked[id] {
			return nil, fmt.Errorf("projector: look up projected events: ClickHouse answered event %s, which the batch does not hold", id)
		}
		seen[id] = seq
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("projector: look up projected events: %w", err)
	}
	return seen, nil
}

// lookups numbers the look-ups' external tables.
var lookups atomic.Uint64

// insert writes a table's rows of this batch in one INSERT, leaving out rows
// at or below the table's high-water mark (already written before a crash;
// on a cluster, the mark of the row's organisation); n is how many are
// above it (newRows).
//
// A table with no row to write is not sent an INSERT at all: most batches
// hold rows of a few tables only, and each INSERT is a round trip before
// its first row (clickhouse-go's PrepareBatch reads the table's columns).
func (w *worker) insert(ctx context.Context, table string, rs []row, n int) error {
	if n == 0 {
		return nil
	}
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
	if err := b.Send(); err != nil {
		return fmt.Errorf("projector: insert into %s up to stream_seq %d: %w", table, top, err)
	}
	return nil
}

// raiseMarks sets each table's high-water mark (and on a cluster its
// organisations') to the batch's rows, once every insert of the batch has
// landed. After a failure they are read again from ClickHouse (init).
func (w *worker) raiseMarks(b prepared) {
	for _, t := range rowTables {
		rs := b.rows[t]
		if orgs := w.orgHWM[t]; orgs != nil {
			for _, r := range rs {
				orgs[orgOf(r)] = max(orgs[orgOf(r)], r.seq)
			}
			continue
		}
		for _, r := range rs {
			w.hwm[t] = max(w.hwm[t], r.seq)
		}
	}
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
