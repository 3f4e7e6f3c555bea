-- The provider inbox: every provider report, by its deduplication key. Applied reports keep
-- only their key (as before); held ones (not correlatable yet) keep their payload and their
-- place in line until they apply; dead ones (never applicable) are kept, with why.
ALTER TABLE provider_inbox RENAME TO provider_inbox_v1;
CREATE TABLE provider_inbox (
    number_id        INTEGER NOT NULL,
    dedup_key        TEXT NOT NULL,
    status           TEXT NOT NULL,          -- applied | held | dead
    received_at      INTEGER NOT NULL,
    applied_at       INTEGER,
    correlation      TEXT,                   -- the group as the provider names it (held, dead)
    report           TEXT,                   -- the report, JSON (held, dead)
    held_seq         INTEGER,                -- order among held reports
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    error            TEXT,
    PRIMARY KEY (number_id, dedup_key)
) WITHOUT ROWID;
INSERT INTO provider_inbox (number_id, dedup_key, status, received_at, applied_at)
    SELECT number_id, dedup_key, 'applied', applied_at, applied_at FROM provider_inbox_v1;
DROP TABLE provider_inbox_v1;
CREATE INDEX provider_inbox_held ON provider_inbox (number_id, correlation, held_seq) WHERE status = 'held';
CREATE INDEX provider_inbox_held_order ON provider_inbox (held_seq) WHERE status = 'held';
CREATE INDEX provider_inbox_dead ON provider_inbox (received_at) WHERE status = 'dead';
