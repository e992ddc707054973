-- Outbound delivery state (internal/queue). A worker leases the entries it
-- sends (lease_owner, lease_until) so that no other worker or node sends
-- them at the same time; an expired lease (a crashed worker) makes the
-- entry due again. The last failure is kept in parts for the DSN
-- (RFC 3464 Status, Remote-MTA, Diagnostic-Code), and delay_notified
-- makes the delay notice go out once.

ALTER TABLE queue ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN lease_until TIMESTAMP;
ALTER TABLE queue ADD COLUMN last_attempt TIMESTAMP;
ALTER TABLE queue ADD COLUMN last_code INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue ADD COLUMN last_status TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN last_remote TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN delay_notified BOOLEAN NOT NULL DEFAULT 0;

-- Lease renewal finds a worker's entries without a scan.
CREATE INDEX queue_lease_owner ON queue(lease_owner) WHERE lease_owner <> '';
