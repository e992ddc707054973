-- The full-text index as posting lists (issue 14, fulltext_pg.go): per
-- term, the ids of the bodies it is in, delta-encoded, in rows of up to
-- about 512 bytes. A tsvector per body stored every body's words again
-- and with its GIN index came to 2.2 times the text.
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

-- term is compared byte by byte (COLLATE "C"), so a prefix is a range of
-- the primary key. last_id is the last id of ids, where an append goes on
-- from. fillfactor leaves room on each page for a batch's rewrite of the
-- last row of a term (a HOT update).
CREATE TABLE body_fts_post (
    term    TEXT COLLATE "C" NOT NULL,
    seq     INTEGER NOT NULL,
    last_id BIGINT NOT NULL,
    ids     BYTEA NOT NULL,
    PRIMARY KEY (term, seq)
) WITH (fillfactor = 80);
