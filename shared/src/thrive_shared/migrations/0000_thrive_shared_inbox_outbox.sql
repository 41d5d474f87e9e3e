-- Shared plumbing tables, created in each service's own schema (search_path).
-- depends:

-- Inbox: one row per (consumer, source, event id) already applied. Written in the
-- same transaction as the effect, so a redelivered event has no second effect.
CREATE TABLE IF NOT EXISTS inbox (
    consumer    text        NOT NULL,
    source      text        NOT NULL,
    event_id    text        NOT NULL,
    topic       text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, source, event_id)
);
CREATE INDEX IF NOT EXISTS inbox_applied_at ON inbox (applied_at);

-- Transactional outbox: written in the business transaction, relayed to Kafka in
-- id order (so in order per key) by the relay, then deleted.
CREATE TABLE IF NOT EXISTS outbox (
    id          bigserial   PRIMARY KEY,
    topic       text        NOT NULL,
    key         text        NOT NULL,
    event_id    text        NOT NULL,
    event_type  text        NOT NULL,
    payload     bytea       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
