-- Tenancy
CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE numbers (
    id                          INTEGER PRIMARY KEY,
    org_id                      TEXT NOT NULL REFERENCES orgs(id),
    waba_number                 TEXT NOT NULL UNIQUE,
    provider                    TEXT NOT NULL,
    profile                     TEXT NOT NULL,
    disabled                    INTEGER NOT NULL DEFAULT 0,
    default_join_approval_mode  TEXT NOT NULL DEFAULT 'auto_approve',
    created_at                  INTEGER NOT NULL
);
CREATE INDEX numbers_org ON numbers (org_id);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    name        TEXT,
    key_hash    TEXT NOT NULL UNIQUE,
    -- JSON array of business numbers the key may use; NULL means all of the organisation's.
    numbers     TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_org ON api_keys (org_id);

-- Groups and their members
CREATE TABLE groups (
    id                  INTEGER PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs(id),
    number_id           INTEGER NOT NULL REFERENCES numbers(id),
    group_id            TEXT NOT NULL,
    status              TEXT NOT NULL,
    subject             TEXT NOT NULL,
    description         TEXT NOT NULL,
    join_approval_mode  TEXT NOT NULL,
    wa_group_id         TEXT,
    invite_link         TEXT,
    participant_count   INTEGER NOT NULL DEFAULT 0,
    last_sequence       INTEGER NOT NULL DEFAULT 0,
    failure_reason      TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (org_id, group_id)
);
CREATE INDEX groups_org_id ON groups (org_id, id);
CREATE INDEX groups_org_status_id ON groups (org_id, status, id);
CREATE INDEX groups_number_id ON groups (number_id, id);
CREATE UNIQUE INDEX groups_wa_group_id ON groups (number_id, wa_group_id) WHERE wa_group_id IS NOT NULL;

CREATE TABLE participants (
    group_id     INTEGER NOT NULL REFERENCES groups(id),
    phone        TEXT NOT NULL,
    role         TEXT NOT NULL,
    state        TEXT NOT NULL,
    is_business  INTEGER NOT NULL DEFAULT 0,
    joined_at    INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (group_id, phone)
) WITHOUT ROWID;

CREATE TABLE join_requests (
    group_id         INTEGER NOT NULL REFERENCES groups(id),
    join_request_id  TEXT NOT NULL,
    phone            TEXT NOT NULL,
    state            TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (group_id, join_request_id)
) WITHOUT ROWID;

-- Work for WhatsApp
CREATE TABLE commands (
    id            INTEGER PRIMARY KEY,
    command_id    TEXT NOT NULL UNIQUE,
    org_id        TEXT NOT NULL,
    number_id     INTEGER NOT NULL REFERENCES numbers(id),
    group_id      INTEGER NOT NULL REFERENCES groups(id),
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    -- pending: to submit; submitted: awaiting the provider's confirmation; done; failed
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    not_before    INTEGER NOT NULL,
    lease_until   INTEGER,
    request_id    TEXT,
    last_error    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX commands_due ON commands (status, not_before) WHERE status = 'pending';
CREATE UNIQUE INDEX commands_request ON commands (number_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX commands_group ON commands (group_id);

-- The group's history
CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    org_id       TEXT NOT NULL,
    group_id     INTEGER NOT NULL REFERENCES groups(id),
    sequence     INTEGER NOT NULL,
    event_type   TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    UNIQUE (group_id, sequence)
);
CREATE INDEX events_org ON events (org_id, id);

-- Provider reports already applied (deduplication)
CREATE TABLE provider_inbox (
    number_id   INTEGER NOT NULL,
    dedup_key   TEXT NOT NULL,
    applied_at  INTEGER NOT NULL,
    PRIMARY KEY (number_id, dedup_key)
) WITHOUT ROWID;

-- The simulated WhatsApp network's own state
CREATE TABLE sim_groups (
    jid                TEXT PRIMARY KEY,
    waba_number        TEXT NOT NULL,
    profile            TEXT NOT NULL,
    create_key         TEXT NOT NULL UNIQUE,
    subject            TEXT NOT NULL,
    description        TEXT NOT NULL,
    approval_required  INTEGER NOT NULL,
    invite_code        TEXT NOT NULL UNIQUE,
    created_at         INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE sim_members (
    jid    TEXT NOT NULL REFERENCES sim_groups(jid),
    phone  TEXT NOT NULL,
    role   TEXT NOT NULL,
    state  TEXT NOT NULL,
    PRIMARY KEY (jid, phone)
) WITHOUT ROWID;

CREATE TABLE sim_join_requests (
    jid         TEXT NOT NULL REFERENCES sim_groups(jid),
    id          TEXT NOT NULL,
    phone       TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (jid, id)
) WITHOUT ROWID;

-- AUTOINCREMENT: IDs are deduplication keys at the gateway and must never be reused.
CREATE TABLE sim_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    waba_number  TEXT NOT NULL,
    report       TEXT NOT NULL
);
