-- proj_part: the event stream partition (schemas/partitions.go) whose
-- projector worker wrote the row. Stream sequences are global, so each
-- partition's high-water mark in a table is max(seq) over its own rows only
-- (WHERE proj_part = p); rows written before partitions, and every row of an
-- unpartitioned stream, are partition 0.
--
-- ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: schemas.Migrate skips an
-- ADD COLUMN whose column exists already, so a migration cut short is run
-- again safely.
ALTER TABLE surveys ADD COLUMN proj_part UInt16 DEFAULT 0;
ALTER TABLE waves ADD COLUMN proj_part UInt16 DEFAULT 0;
ALTER TABLE wave_thresholds ADD COLUMN proj_part UInt16 DEFAULT 0;
ALTER TABLE wave_closures ADD COLUMN proj_part UInt16 DEFAULT 0;
ALTER TABLE wave_seals ADD COLUMN proj_part UInt16 DEFAULT 0;
ALTER TABLE invitations ADD COLUMN proj_part UInt16 DEFAULT 0;
ALTER TABLE roster_events ADD COLUMN proj_part UInt16 DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN proj_part UInt16 DEFAULT 0;
ALTER TABLE api_token_revocations ADD COLUMN proj_part UInt16 DEFAULT 0;
ALTER TABLE answers ADD COLUMN proj_part UInt16 DEFAULT 0;
ALTER TABLE comments ADD COLUMN proj_part UInt16 DEFAULT 0;
ALTER TABLE projected_events ADD COLUMN proj_part UInt16 DEFAULT 0;
