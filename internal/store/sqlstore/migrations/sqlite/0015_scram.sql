-- SCRAM-SHA-256 credentials of the user's current password (RFC 5802,
-- RFC 7677), in RFC 5803's text form
-- "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"; '' until
-- the password is set or next verified. Changing the password clears it.
ALTER TABLE "user" ADD COLUMN scram_sha256 TEXT NOT NULL DEFAULT '';
