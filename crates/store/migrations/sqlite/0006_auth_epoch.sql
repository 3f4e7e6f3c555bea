-- API keys and numbers are read on every request and rarely change: the store keeps them in
-- memory and checks this epoch, which every change to them bumps (whichever process makes it,
-- the server or the CLI), before trusting what it holds.
CREATE TABLE auth_epoch (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    epoch  INTEGER NOT NULL
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);

CREATE TRIGGER api_keys_inserted AFTER INSERT ON api_keys BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER api_keys_updated AFTER UPDATE ON api_keys BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER numbers_inserted AFTER INSERT ON numbers BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER numbers_updated AFTER UPDATE ON numbers BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
CREATE TRIGGER numbers_deleted AFTER DELETE ON numbers BEGIN UPDATE auth_epoch SET epoch = epoch + 1; END;
