-- Provider reports about one participant arrive in no set order (Meta's webhooks): the time
-- WhatsApp gave the last join or exit applied, to recognise an older report as stale, and
-- whether an exit reported before its join is still to be announced (with that join).
ALTER TABLE participants ADD COLUMN changed_at INTEGER;
ALTER TABLE participants ADD COLUMN exit_unannounced INTEGER NOT NULL DEFAULT 0;
