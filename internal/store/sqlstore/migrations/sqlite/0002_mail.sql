-- Mail storage, shaped for IMAP (RFC 3501 UIDs, RFC 7162 CONDSTORE modseqs).
-- A body is stored once however many messages and queue rows use it;
-- body.refs counts them (kept by the triggers below), the last one to go
-- deletes the body, and a deleted body's blob file is listed in blob_trash
-- for removal after commit.

CREATE TABLE mailbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_email    TEXT NOT NULL REFERENCES "user"(email) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    special_use   TEXT NOT NULL DEFAULT '',
    subscribed    BOOLEAN NOT NULL DEFAULT 1,
    uidvalidity   INTEGER NOT NULL,
    uidnext       INTEGER NOT NULL DEFAULT 1,
    highestmodseq INTEGER NOT NULL DEFAULT 1,
    created_at    TIMESTAMP NOT NULL,
    UNIQUE (user_email, name)
);

CREATE TABLE body (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    size      INTEGER NOT NULL,
    data      BLOB,
    blob_name TEXT,
    refs      INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    CHECK ((data IS NULL) <> (blob_name IS NULL))
);

-- Only blob bodies have a name; inline ones stay out of the index.
CREATE UNIQUE INDEX body_blob_name ON body(blob_name) WHERE blob_name IS NOT NULL;

CREATE TABLE message (
    mailbox_id    INTEGER NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    modseq        INTEGER NOT NULL,
    flags         TEXT NOT NULL DEFAULT '',
    internal_date TIMESTAMP NOT NULL,
    size          INTEGER NOT NULL,
    body_id       INTEGER NOT NULL REFERENCES body(id),
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX message_modseq ON message(mailbox_id, modseq);
CREATE INDEX message_body_id ON message(body_id);

CREATE TABLE queue (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT NOT NULL,
    sender       TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    body_id      INTEGER NOT NULL REFERENCES body(id),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt TIMESTAMP NOT NULL,
    last_error   TEXT NOT NULL DEFAULT '',
    held         BOOLEAN NOT NULL DEFAULT 0,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX queue_next_attempt ON queue(next_attempt);
CREATE INDEX queue_body_id ON queue(body_id);

CREATE TABLE blob_trash (
    name TEXT PRIMARY KEY
);

CREATE TRIGGER message_body_ref AFTER INSERT ON message BEGIN
    UPDATE body SET refs = refs + 1 WHERE id = NEW.body_id;
END;
CREATE TRIGGER message_body_unref AFTER DELETE ON message BEGIN
    UPDATE body SET refs = refs - 1 WHERE id = OLD.body_id;
    DELETE FROM body WHERE id = OLD.body_id AND refs <= 0;
END;
CREATE TRIGGER message_body_fixed BEFORE UPDATE OF body_id ON message BEGIN
    SELECT RAISE(ABORT, 'message.body_id is immutable');
END;
CREATE TRIGGER queue_body_ref AFTER INSERT ON queue BEGIN
    UPDATE body SET refs = refs + 1 WHERE id = NEW.body_id;
END;
CREATE TRIGGER queue_body_unref AFTER DELETE ON queue BEGIN
    UPDATE body SET refs = refs - 1 WHERE id = OLD.body_id;
    DELETE FROM body WHERE id = OLD.body_id AND refs <= 0;
END;
CREATE TRIGGER queue_body_fixed BEFORE UPDATE OF body_id ON queue BEGIN
    SELECT RAISE(ABORT, 'queue.body_id is immutable');
END;
CREATE TRIGGER body_blob_trash AFTER DELETE ON body WHEN OLD.blob_name IS NOT NULL BEGIN
    INSERT OR IGNORE INTO blob_trash (name) VALUES (OLD.blob_name);
END;
