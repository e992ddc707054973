-- RFC 8689 REQUIRETLS: the message was submitted with MAIL FROM
-- REQUIRETLS, so every hop must use TLS validated by DANE or MTA-STS (or
-- a verified RELAYHOST) and pass the parameter on; otherwise it is
-- returned to the sender (5.7.30), never sent in clear.

ALTER TABLE queue ADD COLUMN require_tls BOOLEAN NOT NULL DEFAULT false;
