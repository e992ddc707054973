-- DKIM private keys (internal/msgauth), so that every node sharing the
-- database signs with the same key; DKIM_PATH files are only the import
-- and export format. key_data is the PEM sealed with a key derived from
-- SECRET_KEY (internal/secret), never the PEM itself. version grows on
-- every replacement so that a node's parsed-key cache notices it.

CREATE TABLE dkim_key (
    domain    TEXT NOT NULL,
    selector  TEXT NOT NULL,
    key_data  BYTEA NOT NULL,
    version   BIGINT NOT NULL,
    modified  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (domain, selector)
);
