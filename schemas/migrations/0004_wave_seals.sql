-- WaveSealed: the stream sequence after which no response of the wave counts.
CREATE TABLE IF NOT EXISTS wave_seals (
    org     String,
    wave_id String,
    seq     UInt64
) ENGINE = MergeTree
ORDER BY (org, wave_id);
