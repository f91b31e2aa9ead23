-- Every cell the query API has served: the response set it stands on (wave,
-- key, attribute = value) and its size. The differencing rule checks each new
-- cell against these, so that no two served results of a wave differ by
-- fewer than the threshold of respondents. This is the query service's own
-- record, not a projection: a replay keeps it.
CREATE TABLE IF NOT EXISTS served_cells (
    org       String,
    wave_id   String,
    cell_key  String,
    attr      String,
    value     String,
    n         UInt32,
    served_at DateTime
) ENGINE = ReplacingMergeTree
ORDER BY (org, wave_id, cell_key, attr, value);
