-- Simulated users are configured per organisation (the scope): one organisation's sandbox
-- never sees or changes another's users. The settings made before, one set for every
-- organisation, cannot be told apart by organisation and are not carried over (showing them
-- to all would show one organisation's settings to the others): unconfigured users are on
-- WhatsApp and anyone may add them, until each organisation configures its own.
DROP TABLE sim_users;
CREATE TABLE sim_users (
    scope        TEXT NOT NULL,
    phone        TEXT NOT NULL,
    on_whatsapp  INTEGER NOT NULL DEFAULT 1,
    add_privacy  TEXT NOT NULL DEFAULT 'everyone',
    -- JSON array of the organisation's business numbers that have this user as a contact
    contact_of   TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (scope, phone)
) WITHOUT ROWID;
