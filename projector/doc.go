// Package projector turns the event stream into ClickHouse tables.
//
// A durable JetStream pull consumer reads the event stream in order.
// Messages are fetched in batches bounded by size and time; each batch is
// decoded (project.go), turned into rows (rows.go) and written with at
// most one INSERT per table (none for a table the batch has no rows for;
// the tables in parallel), then a checkpoint, then one ack. While one batch is
// written, the next is fetched, decoded, deduplicated and built into rows
// (the prefetch in project.go, which says why that stays exactly once);
// nothing of it is written until the batch ahead is complete.
//
// Exactly-once effect, without insert deduplication in ClickHouse:
//
//   - The checkpoint table holds the last stream sequence whose effects are
//     complete; on start and after any failure the consumer is positioned
//     right after it, and everything at or before it is skipped.
//   - Every row carries its stream sequence. A table's high-water mark,
//     max(seq), tells which rows of a half-written batch already landed, so a
//     batch cut short after some of its inserts redoes only the rest.
//   - projected_events records every event id. An event published twice
//     (beyond JetStream's duplicate window, or with another Nats-Msg-Id) is
//     skipped the second time. Only the ids a worker's Bloom filter of
//     projected_events may hold are looked up there; the filter never
//     misses an id that can be a duplicate's earlier copy (seen.go says
//     why).
//   - Batches are applied strictly in stream order by a single projector,
//     which a lease in a key-value bucket enforces (lease.go).
//   - No delivery is passed over. An AckAll acks every message below it,
//     so a message the consumer delivered but the worker never read would
//     be acked unprojected. Each fetched message's consumer sequence must
//     follow the last one read; a gap (ErrDeliveryGap) resumes from the
//     checkpoint, where the consumer, holding those messages pending, is
//     repositioned (TestProjectDeliveryGap).
//
// # Partitions
//
// With --projector-partitions N > 1 the stream stores every event under
// trustpulse.part.<p>.<org>.<type>, p = partition(N, org) computed by
// JetStream (schemas/partitions.go), and the protocol above runs once per
// partition: partition p has its own durable consumer filtered on
// trustpulse.part.<p>.>, its own lease and its own checkpoint (all named
// projector-clickhouse-p<p>), and every row it writes carries proj_part = p.
// Why that is still exactly once, and keeps each organisation's order:
//
//   - Sequences within a partition increase. Stream sequences are global and
//     assigned in storage order; a filtered consumer delivers the matching
//     messages in that order, and one worker (its lease) applies them batch
//     after batch. So partition p's events, read through its consumer, are a
//     strictly increasing sequence, exactly the situation of the unpartitioned
//     protocol with gaps (other partitions' sequences) that it never sees.
//   - An organisation's events are all in one partition (the hash is of the
//     organisation id alone), so they are applied in stream order: a
//     ReplacingMergeTree keeps the latest version, and a wave's seal lands
//     after its responses. The query service gates a wave on its own
//     partition's checkpoint (query/cache.go), which covers every earlier
//     event of the organisation.
//   - The checkpoint of p is the last sequence of p whose effects are
//     complete. Resuming after it skips exactly p's completed events; other
//     partitions' progress is not involved.
//   - The high-water mark of a table for p is max(seq) over the rows with
//     proj_part = p. Only p's worker writes those rows, in increasing
//     sequence, one INSERT block per table and batch (a block is written all
//     or nothing), so the rows present for p are exactly those of p's events
//     up to the mark: skipping rows at or below it and writing the rest redoes
//     a cut-short batch without loss or duplicate. A mark over all rows would
//     not be sound: another partition's later rows would raise it above rows
//     of p never written, which would then be skipped (the partition test
//     shows this failing).
//   - Event ids are global; a duplicate event has the same organisation and
//     so the same partition, and projected_events is looked up by id alone.
//
// With N = 1 there is no mapping, the consumer, lease and checkpoint keep the
// name projector-clickhouse, and every row is proj_part 0 (the column's
// default for rows from before partitions), so existing stores go on as they
// were.
//
// Changing N: the stream's partition count is fixed when it is created;
// a process started with another count refuses to start. `trustpulse replay
// --projector-partitions N` changes it (Rebuild): holding every partition's
// lease, it changes the stream's mapping (new events go to the new
// partitions), empties the tables and projects the whole stream again in one
// pass in stream order, tagging each row with its organisation's new
// partition, then sets every partition's checkpoint to where the pass ended.
// Events stored under the old mapping all lie at or below that point and are
// never read through a partition filter again. A pass cut short leaves its
// own checkpoint above the partitions' (there are none after the emptying):
// partition workers then refuse to start (ErrReplayUnfinished) until a
// replay finishes, since events under the old mapping past the pass would
// otherwise be read by no one.
//
// Materialised-view aggregates are not used: they would count a retried
// insert twice. Aggregation happens at query time over deduplicated rows.
package projector
