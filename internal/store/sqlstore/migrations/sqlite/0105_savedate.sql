-- RFC 8514 SAVEDATE: when the message was saved into its mailbox
-- (delivery, APPEND, COPY, MOVE, import). Messages saved before this
-- column came have none (FETCH SAVEDATE NIL, RFC 8514 4.1).

ALTER TABLE message ADD COLUMN save_date TIMESTAMP;
