-- Replies to comments (schemas/replies.go).
--
-- comment_id is the comment's handle, the random event id of its
-- CommentSubmitted (empty for comments of version 1 responses, which have
-- none of their own and are not replied to). reply_hash is the hex SHA-256
-- of the comment's reply capability, the only trace of the reply link in
-- any store; it is never served.
ALTER TABLE comments ADD COLUMN comment_id String DEFAULT '';
ALTER TABLE comments ADD COLUMN reply_hash String DEFAULT '';
-- One row per CommentReplied (kind 'reply': people-ops or the responsible
-- manager, named by token, role and, for a manager, person id) and per
-- CommentAnswered (kind 'answer': the comment's writer through the reply
-- link; no author columns are filled). day is the event's day, no finer.
-- Written once per event by the projector's high-water marks (seq,
-- proj_part), like every table.
CREATE TABLE IF NOT EXISTS comment_thread (
    org        String,
    wave_id    String,
    comment_id String,
    entry_id   String,
    kind       String,
    text       String,
    token_id   String,
    role       String,
    person_id  String,
    day        Date,
    seq        UInt64,
    proj_part  UInt16
) ENGINE = MergeTree
ORDER BY (org, comment_id, seq);
