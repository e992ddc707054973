-- Outbound TLS policy (internal/tlspolicy). mta_sts_policy caches each
-- recipient domain's MTA-STS policy (RFC 8461 5.1) for every node;
-- tls_result counts TLS sessions per UTC day for the TLS-RPT aggregate
-- report (RFC 8460), and tls_report_sent lets one node send each report.

CREATE TABLE mta_sts_policy (
    domain     TEXT PRIMARY KEY,
    policy_id  TEXT NOT NULL,
    policy     TEXT NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE tls_result (
    day           TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    policy_type   TEXT NOT NULL,
    mx_host       TEXT NOT NULL,
    result_type   TEXT NOT NULL,
    sending_ip    TEXT NOT NULL,
    receiving_ip  TEXT NOT NULL,
    policy_string TEXT NOT NULL,
    detail        TEXT NOT NULL,
    n             BIGINT NOT NULL,
    PRIMARY KEY (day, policy_domain, policy_type, mx_host, result_type, sending_ip, receiving_ip)
);

CREATE TABLE tls_report_sent (
    day           TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    PRIMARY KEY (day, policy_domain)
);
