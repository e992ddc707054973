-- Full-text index for IMAP SEARCH BODY and TEXT (issue 14, docs/search.md).
-- Per body, like body_search, and gone with it; a missing row means the
-- body is not yet indexed (SEARCH reads it). doc holds the distinct words
-- of the body's decoded text as the background indexer (internal/fts)
-- made them (array_to_tsvector: no parser or dictionary in between),
-- without positions: a match is only a candidate, confirmed on the text.
-- attachments says whether text attachments were indexed
-- (FULL_TEXT_SEARCH_ATTACHMENTS): with the setting on, a row without
-- them counts as missing and is done again.
CREATE TABLE body_fts (
    body_id     BIGINT PRIMARY KEY REFERENCES body(id) ON DELETE CASCADE,
    text_bytes  BIGINT NOT NULL,
    attachments BOOLEAN NOT NULL,
    doc         tsvector NOT NULL
);
CREATE INDEX body_fts_doc ON body_fts USING gin (doc);

-- Every term ever indexed: SEARCH looks up words a needle may end or sit
-- inside of ("voice" in "invoices"). Terms are never removed; a stale one
-- only widens a candidate set.
CREATE TABLE body_fts_term (term TEXT PRIMARY KEY);

-- Counts the drops of index rows (petrel index rebuild). Otherwise a row
-- only goes with its body, so a reader may remember which messages are
-- indexed for as long as this number stays the same.
CREATE TABLE body_fts_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO body_fts_epoch (id, epoch) VALUES (1, 0);
