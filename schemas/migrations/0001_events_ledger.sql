-- The projector's bookkeeping, which makes its effect exactly-once on a
-- ClickHouse without insert deduplication (18.16).
--
-- projected_events: every event id projected, with the stream sequence it was
-- projected from. An event published twice (a different sequence, the same
-- id) is recognised here and skipped.
CREATE TABLE IF NOT EXISTS projected_events (
    event_id String,
    seq      UInt64
) ENGINE = MergeTree
ORDER BY event_id;

-- projector_checkpoint: the last stream sequence whose effects are complete
-- in every table. The projector resumes after it.
CREATE TABLE IF NOT EXISTS projector_checkpoint (
    consumer   String,
    seq        UInt64,
    updated_at DateTime
) ENGINE = ReplacingMergeTree(seq)
ORDER BY consumer;
