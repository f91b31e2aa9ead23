-- A manager's API token is bound to one person of the roster (issue 14):
-- person_id is that person's random id (never an employee id, email or
-- name); '' for the other roles.
ALTER TABLE api_tokens ADD COLUMN person_id String;
