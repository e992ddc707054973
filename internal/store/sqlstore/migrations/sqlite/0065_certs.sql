-- Certificates and ACME state (internal/tlscfg): a key-value tree with
-- "/"-separated keys, so that every node sharing the database serves one
-- certificate and any node answers a challenge. cert_lock holds leases
-- (owner, expiry) that serialise issuance across nodes: a row that is
-- taken over once expired, not an advisory lock, so that distributed
-- PostgreSQL-compatible engines work too.

CREATE TABLE cert_kv (
    key        TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    modified   TIMESTAMP NOT NULL
) WITHOUT ROWID;

CREATE TABLE cert_lock (
    name    TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    expires TIMESTAMP NOT NULL
) WITHOUT ROWID;
