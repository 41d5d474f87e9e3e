-- A stand-in business table for the plumbing tests: one row per applied effect,
-- deliberately without a unique constraint so a second effect would show.
CREATE TABLE effects (
    event_id   text        NOT NULL,
    person     text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
