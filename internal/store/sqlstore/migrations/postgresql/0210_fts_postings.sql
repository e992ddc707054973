-- The full-text index as posting lists (issue 14, fulltext_pg.go): per
-- term, the ids of the bodies it is in, delta-encoded. A tsvector per
-- body stored every body's words again and with its GIN index came to
-- 2.2 times the text.
--
-- Bodies indexed before are indexed again, in the background: the epoch
-- moves, so SEARCH reads them until then.
DROP INDEX body_fts_doc;
DELETE FROM body_fts;
ALTER TABLE body_fts DROP COLUMN doc;
UPDATE body_fts_epoch SET epoch = epoch + 1 WHERE id = 1;

-- posted counts the bodies written into the lists since the last
-- compaction; against count(body_fts) it says how many ids of deleted
-- bodies the lists still hold.
ALTER TABLE body_fts_epoch ADD COLUMN posted BIGINT NOT NULL DEFAULT 0;

-- A term's vocabulary row holds the head of its list (ids, ending at
-- last_id, where an append goes on from). Terms compare byte by byte
-- (COLLATE "C"), so a prefix is a range of the primary key. fillfactor
-- leaves room on each page for a batch's rewrite of a row (a HOT update).
ALTER TABLE body_fts_term
    ALTER COLUMN term TYPE TEXT COLLATE "C",
    ADD COLUMN last_id BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN ids BYTEA NOT NULL DEFAULT '\x',
    SET (fillfactor = 90);

-- The rest of each list, in rows of about 512 bytes from seq 1 on. Only
-- a term's last row changes; fillfactor leaves room for its new version
-- on its page (at 100,000 messages the table came to 38 MB with 100, 31
-- MB with 85 and 75, for 22.5 MB of rows).
CREATE TABLE body_fts_post (
    term    TEXT COLLATE "C" NOT NULL,
    seq     INTEGER NOT NULL,
    last_id BIGINT NOT NULL,
    ids     BYTEA NOT NULL,
    PRIMARY KEY (term, seq)
) WITH (fillfactor = 85);
