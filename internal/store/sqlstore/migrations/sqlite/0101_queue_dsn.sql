-- RFC 3461 DSN parameters kept with each queue entry: RET and ENVID of
-- the transaction, NOTIFY and ORCPT of the recipient. They shape the
-- DSNs the queue sends and are relayed to a next hop that offers DSN.

ALTER TABLE queue ADD COLUMN dsn_ret TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN dsn_envid TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN dsn_notify TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN dsn_orcpt TEXT NOT NULL DEFAULT '';
