-- Celebrations wait here between the consumer (which only enqueues, in its transaction with
-- the inbox row) and the fan-out worker (which takes a batch, fans it out and deletes it in
-- one transaction): many events share each read and each write.
-- depends: 0002_lighter_write_path

CREATE TABLE fanout_queue (
    id           bigserial   PRIMARY KEY,
    celebration  jsonb       NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT now()
);
