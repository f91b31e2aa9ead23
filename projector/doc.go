// Package projector turns the event stream into ClickHouse tables.
//
// One durable JetStream pull consumer reads the event stream in order.
// Messages are fetched in batches bounded by size and time; each batch is
// decoded (project.go), turned into rows (rows.go) and written with one
// INSERT per table, then a checkpoint, then one ack.
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
//     skipped the second time.
//   - Batches are applied strictly in stream order by a single projector,
//     which a lease in a key-value bucket enforces (lease.go).
//
// Materialised-view aggregates are not used: they would count a retried
// insert twice. Aggregation happens at query time over deduplicated rows.
package projector
