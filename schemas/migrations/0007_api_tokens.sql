-- API tokens, from TokenIssued and TokenRevoked: the SHA-256 of each token,
-- its organisation and role. A token is usable while no revocation of its id
-- exists.
CREATE TABLE IF NOT EXISTS api_tokens (
    org      String,
    token_id String,
    hash     String,
    role     String,
    name     String,
    seq      UInt64
) ENGINE = MergeTree
ORDER BY hash;

CREATE TABLE IF NOT EXISTS api_token_revocations (
    org      String,
    token_id String,
    seq      UInt64
) ENGINE = MergeTree
ORDER BY token_id;
