-- Mailu's account model (core/admin/mailu/models.py; inventory section 4).
-- Every table carries created_at, updated_at (NULL until the first
-- update) and comment. Timestamps are UTC text "YYYY-MM-DD HH:MM:SS.ffffff",
-- dates "YYYY-MM-DD".

CREATE TABLE config (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    comment    TEXT NOT NULL DEFAULT ''
);

CREATE TABLE domain (
    name            TEXT PRIMARY KEY,
    max_users       INTEGER NOT NULL DEFAULT -1,
    max_aliases     INTEGER NOT NULL DEFAULT -1,
    max_quota_bytes INTEGER NOT NULL DEFAULT 0,
    signup_enabled  BOOLEAN NOT NULL DEFAULT 0,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP,
    comment         TEXT NOT NULL DEFAULT ''
);

CREATE TABLE alternative (
    name        TEXT PRIMARY KEY,
    domain_name TEXT NOT NULL REFERENCES domain(name) ON DELETE CASCADE,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP,
    comment     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alternative_domain_name ON alternative(domain_name);

CREATE TABLE relay (
    name       TEXT PRIMARY KEY,
    smtp       TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    comment    TEXT NOT NULL DEFAULT ''
);

CREATE TABLE "user" (
    email                TEXT PRIMARY KEY,
    localpart            TEXT NOT NULL,
    domain_name          TEXT NOT NULL REFERENCES domain(name) ON DELETE CASCADE,
    password             TEXT NOT NULL DEFAULT '',
    quota_bytes          INTEGER NOT NULL DEFAULT 0,
    quota_bytes_used     INTEGER NOT NULL DEFAULT 0,
    global_admin         BOOLEAN NOT NULL DEFAULT 0,
    enabled              BOOLEAN NOT NULL DEFAULT 1,
    enable_imap          BOOLEAN NOT NULL DEFAULT 1,
    enable_pop           BOOLEAN NOT NULL DEFAULT 1,
    allow_spoofing       BOOLEAN NOT NULL DEFAULT 0,
    forward_enabled      BOOLEAN NOT NULL DEFAULT 0,
    forward_destination  TEXT NOT NULL DEFAULT '',
    forward_keep         BOOLEAN NOT NULL DEFAULT 1,
    reply_enabled        BOOLEAN NOT NULL DEFAULT 0,
    reply_subject        TEXT NOT NULL DEFAULT '',
    reply_body           TEXT NOT NULL DEFAULT '',
    reply_startdate      DATE NOT NULL DEFAULT '1900-01-01',
    reply_enddate        DATE NOT NULL DEFAULT '2999-12-31',
    displayed_name       TEXT NOT NULL DEFAULT '',
    spam_enabled         BOOLEAN NOT NULL DEFAULT 1,
    spam_mark_as_read    BOOLEAN NOT NULL DEFAULT 1,
    spam_threshold       INTEGER NOT NULL DEFAULT 80,
    change_pw_next_login BOOLEAN NOT NULL DEFAULT 0,
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP,
    comment              TEXT NOT NULL DEFAULT ''
);
CREATE INDEX user_domain_name ON "user"(domain_name);

CREATE TABLE alias (
    email       TEXT PRIMARY KEY,
    localpart   TEXT NOT NULL,
    domain_name TEXT NOT NULL REFERENCES domain(name) ON DELETE CASCADE,
    wildcard    BOOLEAN NOT NULL DEFAULT 0,
    destination TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP,
    comment     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alias_domain_name ON alias(domain_name, wildcard);

CREATE TABLE token (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_email TEXT NOT NULL REFERENCES "user"(email) ON DELETE CASCADE,
    password   TEXT NOT NULL,
    ip         TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP,
    comment    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX token_user_email ON token(user_email);

CREATE TABLE manager (
    domain_name TEXT NOT NULL REFERENCES domain(name) ON DELETE CASCADE,
    user_email  TEXT NOT NULL REFERENCES "user"(email) ON DELETE CASCADE,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP,
    comment     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (domain_name, user_email)
);
CREATE INDEX manager_user_email ON manager(user_email);

-- Rows to lock with SELECT ... FOR UPDATE where a check spans tables
-- ('fqdn': a name is at most one of domain, alternative, relay).
CREATE TABLE store_lock (
    name TEXT PRIMARY KEY
);
INSERT INTO store_lock (name) VALUES ('fqdn');
