-- A command sent to a provider that is not idempotent (Meta's Cloud API) is marked before it
-- is sent; if its answer never came (a crash, a timeout), it is in doubt: not sent again until
-- the provider's own list of groups says whether it was carried out.
ALTER TABLE commands ADD COLUMN sending_at INTEGER;
CREATE INDEX commands_in_doubt ON commands (number_id, sending_at) WHERE status = 'pending' AND sending_at IS NOT NULL;
