-- Writes WhatsApp accepted and confirms later (Meta's Cloud API confirms every write by
-- webhook): pending until their confirmation closes them.
CREATE TABLE operations (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL,
    group_id       INTEGER NOT NULL REFERENCES groups (id),
    number_id      INTEGER NOT NULL,
    request_id     TEXT NOT NULL,
    kind           TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending',
    results        TEXT NOT NULL DEFAULT '[]',
    error_code     TEXT,
    error_message  TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE UNIQUE INDEX operations_request ON operations (number_id, request_id);
CREATE INDEX operations_pending ON operations (created_at) WHERE status = 'pending';
