-- Action plans (schemas/plans.go): one row per ActionPlanned ('planned'),
-- ActionUpdated ('updated') and ActionCompleted ('completed', with the
-- plan's drivers and commitments empty). A team is a manager's direct
-- reports, named by the manager's person id. Plans are not anonymous: each
-- row names its author's token, role and token name, and a manager's
-- person id. at is the event's
-- time, to the second. Written once per event by the projector's
-- high-water marks (seq, proj_part), like every table. The current plan
-- of each team and wave is the latest row of its plan_id (argMax by seq).
CREATE TABLE IF NOT EXISTS action_plans (
    org           String,
    plan_id       String,
    wave_id       String,
    manager       String,
    kind          String,
    focus_drivers Array(String),
    commitments   Array(String),
    token_id      String,
    role          String,
    author_name   String,
    author_person String,
    at            DateTime,
    seq           UInt64,
    proj_part     UInt16
) ENGINE = MergeTree
ORDER BY (org, manager, wave_id, seq);
