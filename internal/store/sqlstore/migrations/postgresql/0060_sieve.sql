-- Sieve scripts (RFC 5804 ManageSieve, RFC 5228 at delivery). Each user
-- has several named scripts, at most one active (the partial unique
-- index); they live in the database so that every node runs and serves
-- the same ones, and go with their user.

CREATE TABLE sieve_script (
    user_email TEXT NOT NULL REFERENCES "user"(email) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    script     BYTEA NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_email, name)
);
CREATE UNIQUE INDEX sieve_script_active ON sieve_script(user_email) WHERE active;
