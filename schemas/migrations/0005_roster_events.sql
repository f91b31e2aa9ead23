-- EmployeeJoined, EmployeeUpdated and EmployeeLeft: the roster over time, by
-- person id (never employee id, email or name), for retention next to
-- engagement.
CREATE TABLE IF NOT EXISTS roster_events (
    org        String,
    person_id  String,
    kind       String,
    department String,
    team       String,
    location   String,
    start_date Date,
    left_on    Date,
    seq        UInt64
) ENGINE = MergeTree
ORDER BY (org, person_id, seq);
