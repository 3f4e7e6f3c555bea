-- Deployment settings: the value sealed with the secret key, by which a wrong or lost key is
-- caught at start.
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- A number's reference at its provider (Meta's phone number ID): Meta's webhooks name the
-- number by it.
ALTER TABLE numbers ADD COLUMN provider_ref TEXT;
CREATE UNIQUE INDEX numbers_provider_ref ON numbers (provider, provider_ref) WHERE provider_ref IS NOT NULL;

-- How the provider last found the number: ok, credentials_invalid, not_eligible, or
-- rate_limited until a time.
ALTER TABLE numbers ADD COLUMN health TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE numbers ADD COLUMN health_until INTEGER;
ALTER TABLE numbers ADD COLUMN health_detail TEXT;
