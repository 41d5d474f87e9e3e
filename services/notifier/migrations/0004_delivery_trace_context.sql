-- The W3C trace context of the event a delivery comes from, kept with what is still to be
-- sent (webhook, email): the send, whenever it happens, continues the user action's trace.
-- In-app rows are delivered as they are written and keep none (NULL costs nothing).
-- depends: 0003_fanout_queue

ALTER TABLE delivery ADD COLUMN traceparent text, ADD COLUMN tracestate text;
