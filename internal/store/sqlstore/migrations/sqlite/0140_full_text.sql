-- Full-text index for IMAP SEARCH BODY and TEXT (issue 14, docs/search.md).
-- Per body, like body_search, and gone with it. The background indexer
-- (internal/fts) writes the distinct words of a body's decoded text as
-- space-separated terms: the ascii tokenizer then keeps each term whole
-- (every byte over 127 is a word byte to it), so the index holds exactly
-- the terms Go made. Contentless (the text is not kept) and detail=none
-- (no positions: a match is only a candidate, confirmed on the text).
CREATE VIRTUAL TABLE body_fts USING fts5(doc, content='', contentless_delete=1, detail=none, tokenize='ascii');

-- A row here means the body is indexed; a missing row means not yet
-- (SEARCH reads such bodies). text_bytes is the text's length, for
-- petrel index status. attachments says whether text attachments were
-- indexed (FULL_TEXT_SEARCH_ATTACHMENTS): with the setting on, a row
-- without them counts as missing and is done again.
CREATE TABLE body_fts_done (
    body_id     INTEGER PRIMARY KEY REFERENCES body(id) ON DELETE CASCADE,
    text_bytes  INTEGER NOT NULL,
    attachments BOOLEAN NOT NULL
);

-- Every term ever indexed: SEARCH looks up words a needle may end or sit
-- inside of ("voice" in "invoices"). Terms are never removed; a stale one
-- only widens a candidate set.
CREATE TABLE body_fts_term (term TEXT PRIMARY KEY) WITHOUT ROWID;

CREATE TRIGGER body_fts_gone AFTER DELETE ON body BEGIN
    DELETE FROM body_fts WHERE rowid = OLD.id;
    DELETE FROM body_fts_done WHERE body_id = OLD.id;
END;

-- Counts the drops of index rows (petrel index rebuild). Otherwise a row
-- only goes with its body, so a reader may remember which messages are
-- indexed for as long as this number stays the same.
CREATE TABLE body_fts_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO body_fts_epoch (id, epoch) VALUES (1, 0);
