-- One row per CommentSubmitted event (and per comment of a version 1
-- ResponseSubmitted, with seq 0: see 0010): the words and the cohort
-- snapshot. No response id, so that the words cannot be joined to the
-- response's answers; never a person or a token. The query API serves
-- comments only to groups of at least the comment threshold, in an order
-- that says nothing about when they were given.
CREATE TABLE IF NOT EXISTS comments (
    org         String,
    wave_id     String,
    survey_id   String,
    question_id String,
    text        String,
    department  String,
    team        String,
    location    String,
    tenure_band String,
    seq         UInt64
) ENGINE = MergeTree
ORDER BY (org, wave_id, question_id, cityHash64(text));
