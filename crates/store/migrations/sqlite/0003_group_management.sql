ALTER TABLE groups ADD COLUMN announcement_only INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;

-- The provider's answer to a command (for creation: the outcome of each participant).
ALTER TABLE commands ADD COLUMN result TEXT;

ALTER TABLE sim_groups ADD COLUMN announcement_only INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sim_groups ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sim_groups ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sim_groups ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;

-- Simulated WhatsApp users and their privacy settings (absent: on WhatsApp, anyone may add).
CREATE TABLE sim_users (
    phone        TEXT PRIMARY KEY,
    on_whatsapp  INTEGER NOT NULL DEFAULT 1,
    add_privacy  TEXT NOT NULL DEFAULT 'everyone',
    -- JSON array of business numbers that have this user as a contact
    contact_of   TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
