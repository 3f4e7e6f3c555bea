-- A number may have an alias by which linked-device gateways' clients name their "instance"
-- (Wawp's instance_id): `wagroups numbers update DIGITS --instance-id ID`.
ALTER TABLE numbers ADD COLUMN instance_id TEXT;
CREATE UNIQUE INDEX numbers_instance_id ON numbers (instance_id) WHERE instance_id IS NOT NULL;
