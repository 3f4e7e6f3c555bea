-- From this version on, webhook_endpoints.secret and previous_secret hold values sealed with
-- the deployment's key (`v1.…`), not `whsec_` plaintext; the server seals older ones at
-- start. No schema change: this migration is recorded so that an older binary, which would
-- sign with the sealed text and send unverifiable webhooks, refuses to run on the database.
SELECT 1;
