-- Each endpoint receives its events in a format of its own (rendered when sent; the event is
-- stored once, in the domain's shape). Every endpoint so far receives Standard Webhooks.
ALTER TABLE webhook_endpoints ADD COLUMN format TEXT NOT NULL DEFAULT 'standard';
