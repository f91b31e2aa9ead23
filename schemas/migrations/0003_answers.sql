-- One row per answered question of a ResponseSubmitted event. response_id is
-- the event id: a random UUID that names the response and nothing else. The
-- rows carry the cohort snapshot and the day, never a person or a token.
--
-- No PARTITION BY, on purpose: one projector batch is one INSERT block, and a
-- block that lands in one partition is written as one part, all or nothing.
CREATE TABLE IF NOT EXISTS answers (
    org           String,
    wave_id       String,
    survey_id     String,
    question_id   String,
    dimension     String,
    value         UInt8,
    response_id   UUID,
    department    String,
    team          String,
    location      String,
    tenure_band   String,
    response_date Date,
    seq           UInt64
) ENGINE = MergeTree
ORDER BY (org, wave_id, question_id, response_id);
