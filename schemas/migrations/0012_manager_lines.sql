-- The reporting line (issue 14): every table holding a cohort carries the
-- stored cohort's managers (person ids, top of the tree first; the line a
-- person's answer counts for, possibly cut to its top by generalisation)
-- and manager (the person id whose direct-reports group it counts in, the
-- line's last element, or ""). The people projection gets each person's
-- current manager, by person id, so the tree is queryable. Never an
-- employee id, email or name.
--
-- Rows written before this migration have an empty line: they count for
-- the organisation, departments and teams as before, and for no manager.
ALTER TABLE invitations ADD COLUMN managers Array(String);
ALTER TABLE invitations ADD COLUMN manager String;
ALTER TABLE answers ADD COLUMN managers Array(String);
ALTER TABLE answers ADD COLUMN manager String;
ALTER TABLE comments ADD COLUMN managers Array(String);
ALTER TABLE comments ADD COLUMN manager String;
ALTER TABLE roster_events ADD COLUMN manager_person_id String;
