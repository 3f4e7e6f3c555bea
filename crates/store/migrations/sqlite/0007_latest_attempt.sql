-- A delivery's latest attempt is kept on its own row; only earlier attempts (those a retry
-- followed) get rows in delivery_attempts. A delivery that succeeds at once writes one row.
ALTER TABLE deliveries ADD COLUMN last_attempted_at INTEGER;
ALTER TABLE deliveries ADD COLUMN last_status_code INTEGER;
ALTER TABLE deliveries ADD COLUMN last_latency_ms INTEGER;
ALTER TABLE deliveries ADD COLUMN last_error TEXT;
