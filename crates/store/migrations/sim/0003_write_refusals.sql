-- The sandbox can make WhatsApp refuse the next write to a group it would otherwise accept
-- (on the cloud profile the refusal comes later, as Meta's failure webhooks do).
CREATE TABLE sim_write_refusals (
    jid      TEXT PRIMARY KEY,
    code     TEXT NOT NULL,
    message  TEXT NOT NULL
) WITHOUT ROWID;
