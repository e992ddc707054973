-- Web admin (internal/admin/web). Sessions live in the database so that
-- every node sharing it knows them and a sign-out or password change
-- revokes them everywhere; id is the SHA-256 of the cookie's secret, so
-- the table itself signs nobody in. Second factors are RFC 6238 TOTP
-- secrets; last_step makes each code good once, failures/failed_at count
-- wrong codes per user in a window (a lock against guessing). stat_hourly holds the
-- status page's counters (deliveries, rejections, failed logins) per hour.

CREATE TABLE web_session (
    id         TEXT PRIMARY KEY,
    user_email TEXT NOT NULL REFERENCES "user"(email) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    stage      TEXT NOT NULL DEFAULT '',
    remember   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    seen_at    TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX web_session_user ON web_session(user_email);
CREATE INDEX web_session_seen ON web_session(seen_at);

CREATE TABLE user_totp (
    user_email TEXT PRIMARY KEY REFERENCES "user"(email) ON DELETE CASCADE,
    secret     TEXT NOT NULL,
    enabled    BOOLEAN NOT NULL DEFAULT FALSE,
    last_step  BIGINT NOT NULL DEFAULT 0,
    failures   INTEGER NOT NULL DEFAULT 0,
    failed_at  TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE stat_hourly (
    name  TEXT NOT NULL,
    hour  TIMESTAMPTZ NOT NULL,
    n     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (name, hour)
);

-- Paged lists of a domain's users and aliases walk these in address order
-- instead of sorting the whole domain; the admin list reads a small index.
CREATE INDEX user_domain_email ON "user"(domain_name, email);
CREATE INDEX alias_domain_email ON alias(domain_name, email);
CREATE INDEX user_global_admin ON "user"(email) WHERE global_admin;
