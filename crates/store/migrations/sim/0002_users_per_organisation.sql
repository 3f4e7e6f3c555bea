-- Simulated users are configured per organisation (the scope): one organisation's sandbox
-- never sees or changes another's users. Rows from before keep the empty scope, which every
-- organisation falls back to until it configures the user itself.
CREATE TABLE sim_users_scoped (
    scope        TEXT NOT NULL DEFAULT '',
    phone        TEXT NOT NULL,
    on_whatsapp  INTEGER NOT NULL DEFAULT 1,
    add_privacy  TEXT NOT NULL DEFAULT 'everyone',
    -- JSON array of business numbers that have this user as a contact
    contact_of   TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (scope, phone)
) WITHOUT ROWID;
INSERT INTO sim_users_scoped (scope, phone, on_whatsapp, add_privacy, contact_of)
    SELECT '', phone, on_whatsapp, add_privacy, contact_of FROM sim_users;
DROP TABLE sim_users;
ALTER TABLE sim_users_scoped RENAME TO sim_users;
