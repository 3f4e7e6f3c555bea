-- Idempotency keys (Stripe's semantics): per organisation, the fingerprint of the first
-- request sent with the key and, once answered, its answer, kept until expires_at.
CREATE TABLE idempotency_keys (
    org_id        TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    state         TEXT NOT NULL,           -- in_flight | done
    status        INTEGER,
    content_type  TEXT,
    body          BLOB,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    PRIMARY KEY (org_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
