-- The fan-out path writes one ledger row and one inbox row per in-app delivery; every index
-- and trigger on them is paid per delivery. Keep what reads and erasure need, drop the rest.
-- depends: 0001_notifier_core

-- The ledger's identity is UNIQUE (event_id, recipient_kind, recipient, channel); the key
-- derived from it needs no second unique index.
ALTER TABLE delivery DROP CONSTRAINT delivery_idempotency_key_key;
-- Erasure redacts only what is still to be sent (in-app rows keep no payload once written).
DROP INDEX delivery_subject;
-- An inbox row is written only for a newly reserved ledger row, in the same statement:
-- the foreign key's trigger and a second unique index add nothing but cost.
ALTER TABLE inbox_item DROP CONSTRAINT inbox_item_delivery_id_fkey;
ALTER TABLE inbox_item DROP CONSTRAINT inbox_item_delivery_id_key;
-- Unread listing filters the person's index; a separate partial index doubled the writes.
DROP INDEX inbox_item_unread;

-- Budget use as an insert-only log instead of a counter row: concurrent consumers never
-- wait on (or deadlock over) one person's counter; a count of today's rows is the use.
DROP TABLE budget_usage;
CREATE TABLE budget_spend (
    person    text NOT NULL,
    day       date NOT NULL,
    event_id  text NOT NULL,
    PRIMARY KEY (person, day, event_id)
);
