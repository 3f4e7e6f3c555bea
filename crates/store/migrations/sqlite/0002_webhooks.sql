-- Customer webhook endpoints
CREATE TABLE webhook_endpoints (
    id                     TEXT PRIMARY KEY,
    org_id                 TEXT NOT NULL REFERENCES orgs(id),
    url                    TEXT NOT NULL,
    description            TEXT,
    -- JSON arrays; NULL means all
    event_types            TEXT,
    waba_numbers           TEXT,
    disabled               INTEGER NOT NULL DEFAULT 0,
    disabled_reason        TEXT,
    secret                 TEXT NOT NULL,
    previous_secret        TEXT,
    previous_secret_until  INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    deleted_at             INTEGER
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id) WHERE deleted_at IS NULL;

-- One row per (event, endpoint), written in the event's transaction
CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event_row_id     INTEGER NOT NULL REFERENCES events(id),
    org_id           TEXT NOT NULL,
    group_row_id     INTEGER NOT NULL,
    sequence         INTEGER NOT NULL,
    -- pending | failed (retry scheduled) | succeeded | dead
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_until      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (event_row_id, endpoint_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_chain ON deliveries (endpoint_id, group_row_id, sequence) WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);

CREATE TABLE delivery_attempts (
    id               INTEGER PRIMARY KEY,
    delivery_id      INTEGER NOT NULL REFERENCES deliveries(id),
    attempted_at     INTEGER NOT NULL,
    status_code      INTEGER,
    latency_ms       INTEGER NOT NULL,
    error            TEXT,
    next_attempt_at  INTEGER
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
