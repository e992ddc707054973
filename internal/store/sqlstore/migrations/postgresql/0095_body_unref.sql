-- Expunging a message no longer releases its body inline. Issue 19: an
-- EXPUNGE of 20,000 messages spent most of its time in the per-row
-- trigger that lowered body.refs and deleted the body (two statements a
-- row). Deletes from message now append the body ids to body_unref in
-- one statement-level trigger, and the store's background releaser
-- (sqlstore/bodyrelease.go) applies those decrements later in batches,
-- deleting the bodies whose count reaches zero.
--
-- So body.refs may count messages already gone: the true count is refs
-- minus this body's rows in body_unref. It is never below the true count,
-- so a body is never deleted while a message or queue row uses it. Queue
-- rows still release their body at once (petrel_body_ref).
CREATE TABLE body_unref (
    seq     BIGSERIAL PRIMARY KEY,
    body_id BIGINT NOT NULL
);

CREATE FUNCTION petrel_body_unref() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO body_unref (body_id) SELECT body_id FROM gone;
    RETURN NULL;
END
$$;

-- Transition tables need one event per trigger: inserts keep the row
-- trigger, deletes get their own.
DROP TRIGGER message_body_ref ON message;
CREATE TRIGGER message_body_ref AFTER INSERT ON message
    FOR EACH ROW EXECUTE FUNCTION petrel_body_ref();
CREATE TRIGGER message_body_unref AFTER DELETE ON message
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION petrel_body_unref();
