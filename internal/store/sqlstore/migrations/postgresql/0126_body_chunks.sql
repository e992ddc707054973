-- Bodies over InlineMax in the database on PostgreSQL (issue 16): a blob
-- file on one node's disk is unreadable from the others. A chunked body
-- has neither data nor blob_name; its bytes are body_chunk rows keyed by
-- their offset, so any chunk size reads back, and a reader fetches one
-- chunk at a time instead of the whole body. Deleting the body (its last
-- reference) deletes the chunks. Plain rows and a foreign key: nothing
-- that CockroachDB or YugabyteDB lack (no large objects).

ALTER TABLE body DROP CONSTRAINT body_check;
ALTER TABLE body ADD CONSTRAINT body_storage CHECK (data IS NULL OR blob_name IS NULL);

CREATE TABLE body_chunk (
    body_id BIGINT NOT NULL REFERENCES body(id) ON DELETE CASCADE,
    off     BIGINT NOT NULL,
    data    BYTEA NOT NULL,
    PRIMARY KEY (body_id, off)
);
