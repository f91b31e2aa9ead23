-- The reporting threshold of each wave, fixed when it opens (WaveOpened).
-- A wave without a row (opened before thresholds were per organisation) is
-- served under the query service's default.
CREATE TABLE IF NOT EXISTS wave_thresholds (
    org       String,
    wave_id   String,
    threshold UInt8,
    seq       UInt64
) ENGINE = ReplacingMergeTree(seq)
ORDER BY (org, wave_id);

-- Every cell the query API has served, now for results over several waves
-- and with attribute filters: one row per wave the cell covers. waves lists
-- them all (sorted, comma-separated); attr lists the predicate's attributes
-- (sorted, joined by '&') and value their accepted values (a clause's values
-- joined by 0x1F, clauses by 0x1E). derived marks a cell that was not served
-- but follows from served ones by subtraction (a group-by's total minus its
-- shown groups); a cell recorded both ways counts as served. Like served_cells, which it replaces and
-- whose rows it takes over, it is the query service's own record: a replay
-- keeps it.
CREATE TABLE IF NOT EXISTS served_sets (
    org       String,
    wave_id   String,
    waves     String,
    cell_key  String,
    attr      String,
    value     String,
    n         UInt32,
    derived   UInt8,
    served_at DateTime
) ENGINE = ReplacingMergeTree
ORDER BY (org, wave_id, cell_key, waves, attr, value, derived);

-- served_cells recorded derived cells as served; they stay so (the stricter
-- reading). Rows already taken over are skipped, so a rerun adds nothing.
INSERT INTO served_sets (org, wave_id, waves, cell_key, attr, value, n, derived, served_at)
SELECT org, wave_id, wave_id, cell_key, attr, value, n, 0, served_at FROM served_cells
WHERE (org, wave_id, cell_key, attr, value) NOT IN (SELECT org, waves, cell_key, attr, value FROM served_sets);
