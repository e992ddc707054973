-- Fetched accounts (Mailu's fetch table, polled by its fetchmail
-- container; here by internal/fetch). password is sealed with a key
-- derived from SECRET_KEY, never in clear. lease_owner/lease_until keep
-- two nodes sharing the database from polling one account at once.
-- fetch_seen remembers the remote messages already delivered (POP3 UIDL,
-- IMAP folder/UIDVALIDITY/UID), so a restart fetches nothing twice.

CREATE TABLE "fetch" (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_email  TEXT NOT NULL REFERENCES "user"(email) ON DELETE CASCADE,
    protocol    TEXT NOT NULL CHECK (protocol IN ('imap', 'pop3')),
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    tls         BOOLEAN NOT NULL DEFAULT 0,
    username    TEXT NOT NULL,
    password    TEXT NOT NULL,
    keep        BOOLEAN NOT NULL DEFAULT 0,
    scan        BOOLEAN NOT NULL DEFAULT 0,
    folders     TEXT NOT NULL DEFAULT '',
    last_check  TIMESTAMP,
    error       TEXT NOT NULL DEFAULT '',
    lease_owner TEXT NOT NULL DEFAULT '',
    lease_until TIMESTAMP,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP,
    comment     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX fetch_user_email ON "fetch"(user_email);

CREATE TABLE fetch_seen (
    fetch_id BIGINT NOT NULL REFERENCES "fetch"(id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    PRIMARY KEY (fetch_id, key)
) WITHOUT ROWID;
