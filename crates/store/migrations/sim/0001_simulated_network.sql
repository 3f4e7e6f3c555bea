-- The simulated WhatsApp network, in a database file of its own.
CREATE TABLE sim_groups (
    jid                TEXT PRIMARY KEY,
    waba_number        TEXT NOT NULL,
    profile            TEXT NOT NULL,
    create_key         TEXT NOT NULL UNIQUE,
    subject            TEXT NOT NULL,
    description        TEXT NOT NULL,
    approval_required  INTEGER NOT NULL,
    invite_code        TEXT NOT NULL UNIQUE,
    created_at         INTEGER NOT NULL,
    announcement_only  INTEGER NOT NULL DEFAULT 0,
    locked             INTEGER NOT NULL DEFAULT 0,
    deleted            INTEGER NOT NULL DEFAULT 0,
    suspended          INTEGER NOT NULL DEFAULT 0
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

-- Simulated WhatsApp users and their privacy settings (absent: on WhatsApp, anyone may add).
CREATE TABLE sim_users (
    phone        TEXT PRIMARY KEY,
    on_whatsapp  INTEGER NOT NULL DEFAULT 1,
    add_privacy  TEXT NOT NULL DEFAULT 'everyone',
    -- JSON array of business numbers that have this user as a contact
    contact_of   TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;

-- Reports to the gateway. AUTOINCREMENT: IDs are deduplication keys at the gateway and must
-- never be reused.
CREATE TABLE sim_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    waba_number  TEXT NOT NULL,
    report       TEXT NOT NULL
);

-- The network's identity: qualifies report IDs into deduplication keys, so that a new
-- database (the old one deleted) cannot reuse the keys of reports the gateway applied.
CREATE TABLE sim_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) WITHOUT ROWID;
