-- Survey definitions and waves, from SurveyPublished, WaveOpened, WaveClosed.
-- Rows are facts keyed by stream sequence; readers take the latest (surveys,
-- waves) or the first (wave_closures) per key, so a replayed row is harmless.
CREATE TABLE IF NOT EXISTS surveys (
    org            String,
    survey_id      String,
    title          String,
    question_ids   Array(String),
    question_texts Array(String),
    dimensions     Array(String),
    drivers        Array(String),
    seq            UInt64
) ENGINE = ReplacingMergeTree(seq)
ORDER BY (org, survey_id);

CREATE TABLE IF NOT EXISTS waves (
    org       String,
    wave_id   String,
    survey_id String,
    opens_at  DateTime,
    closes_at DateTime,
    seq       UInt64
) ENGINE = ReplacingMergeTree(seq)
ORDER BY (org, wave_id);

CREATE TABLE IF NOT EXISTS wave_closures (
    org     String,
    wave_id String,
    seq     UInt64
) ENGINE = MergeTree
ORDER BY (org, wave_id);

-- One row per InvitationIssued: who was invited, as a cohort only.
CREATE TABLE IF NOT EXISTS invitations (
    org         String,
    wave_id     String,
    department  String,
    team        String,
    location    String,
    tenure_band String,
    seq         UInt64
) ENGINE = MergeTree
ORDER BY (org, wave_id);
