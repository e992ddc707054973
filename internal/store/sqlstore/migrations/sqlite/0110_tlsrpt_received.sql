-- TLS-RPT aggregate reports other organisations send us (RFC 8460),
-- parsed from mail delivered to TLSRPT_RUA@DOMAIN (internal/tlsrptin) and
-- listed by petrel tlsrpt. One row per policy of a report; the unique
-- key keeps a report sent twice from being counted twice.

CREATE TABLE tlsrpt_received (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at   TIMESTAMP NOT NULL,
    recipient     TEXT NOT NULL,
    organization  TEXT NOT NULL,
    report_id     TEXT NOT NULL,
    contact       TEXT NOT NULL,
    start_at      TIMESTAMP NOT NULL,
    end_at        TIMESTAMP NOT NULL,
    policy_index  INTEGER NOT NULL,
    policy_domain TEXT NOT NULL,
    policy_type   TEXT NOT NULL,
    policy_string TEXT NOT NULL,
    mx_hosts      TEXT NOT NULL,
    success       INTEGER NOT NULL,
    failure       INTEGER NOT NULL,
    details       TEXT NOT NULL,
    UNIQUE (organization, report_id, policy_index)
);
CREATE INDEX tlsrpt_received_domain ON tlsrpt_received(policy_domain, start_at);
