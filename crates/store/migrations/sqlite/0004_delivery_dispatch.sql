-- Deliveries are scheduled by one in-process dispatcher (one server per SQLite file): it reads
-- the open deliveries of each endpoint in queue order and records outcomes in batches, so the
-- claim indexes and leases go.
DROP INDEX deliveries_due;
DROP INDEX deliveries_chain;
ALTER TABLE deliveries DROP COLUMN lease_until;
CREATE INDEX deliveries_open ON deliveries (endpoint_id, id) WHERE status IN ('pending', 'failed');
