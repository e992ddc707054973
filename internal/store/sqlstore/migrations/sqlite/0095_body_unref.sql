-- Expunging a message no longer releases its body inline. Issue 19: an
-- EXPUNGE of 20,000 messages spent most of its second in the per-row
-- trigger that lowered body.refs and deleted the body (its inline data,
-- its body_search row, its blob_trash entry), dirtying a page per body.
-- The trigger now only appends the body id to body_unref, a narrow
-- table, and the store's background releaser (sqlstore/bodyrelease.go)
-- applies those decrements later in batches, deleting the bodies whose
-- count reaches zero.
--
-- So body.refs may count messages already gone: the true count is refs
-- minus this body's rows in body_unref. It is never below the true count,
-- so a body is never deleted while a message or queue row uses it. Queue
-- rows still release their body at once (queue_body_unref).
CREATE TABLE body_unref (
    seq     INTEGER PRIMARY KEY,
    body_id INTEGER NOT NULL
);

DROP TRIGGER message_body_unref;
CREATE TRIGGER message_body_unref AFTER DELETE ON message BEGIN
    INSERT INTO body_unref (body_id) VALUES (OLD.body_id);
END;
