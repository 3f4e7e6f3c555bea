-- A number carries its provider's configuration (a JSON object the provider reads: Meta's
-- phone number ID, its credentials sealed by the provider…); the simulated network needs none.
ALTER TABLE numbers ADD COLUMN provider_config TEXT NOT NULL DEFAULT '{}';
