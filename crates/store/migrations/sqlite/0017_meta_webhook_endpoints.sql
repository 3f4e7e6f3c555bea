-- Endpoints of format `meta` receive Meta's webhooks: their `secret` is the app secret that
-- signs them (X-Hub-Signature-256), and they keep the verify token of Meta's subscription
-- handshake, sealed with the deployment's key like the secret.
ALTER TABLE webhook_endpoints ADD COLUMN verify_token TEXT;
