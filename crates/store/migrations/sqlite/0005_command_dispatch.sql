-- Commands are submitted by one in-process worker (one server per SQLite file): it reads the
-- pending ones in ID order and keeps in memory those it is submitting, so leases go.
DROP INDEX commands_due;
ALTER TABLE commands DROP COLUMN lease_until;
CREATE INDEX commands_pending ON commands (id) WHERE status = 'pending';
