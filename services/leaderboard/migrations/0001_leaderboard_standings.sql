-- Leaderboard standings: the durable truth the in-memory rank indexes are rebuilt from.
-- depends: 0000_thrive_shared_inbox_outbox

-- One row per person per stored board-period. `scope` is 'company' or 'theme:<theme>';
-- team boards are derived from company rows and the directory mirror, never stored.
-- `givers` holds keyed 64-bit hashes of the distinct people helped (d = its cardinality).
CREATE TABLE IF NOT EXISTS standing (
    scope    text     NOT NULL,
    "window" text     NOT NULL,
    period   text     NOT NULL,
    person   text     NOT NULL,
    n        integer  NOT NULL DEFAULT 0,
    nd       integer  NOT NULL DEFAULT 0,
    d        integer  NOT NULL DEFAULT 0,
    x        integer  NOT NULL DEFAULT 0,
    m        integer  NOT NULL DEFAULT 0,
    givers   bigint[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (scope, "window", period, person)
) WITH (fillfactor = 85);  -- room for HOT updates: counters change, keys do not

-- Erasure deletes by person across every board.
CREATE INDEX IF NOT EXISTS standing_person ON standing (person);

-- The directory mirror and the opt-out flag (owned here: set through the internal API).
CREATE TABLE IF NOT EXISTS person (
    person     text        PRIMARY KEY,
    team       text,
    opted_out  boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS person_team ON person (team);

-- People erased: a keyed hash, so late or replayed events about them are ignored
-- without keeping their id.
CREATE TABLE IF NOT EXISTS erased (
    person_key bytea       PRIMARY KEY,
    erased_at  timestamptz NOT NULL DEFAULT now()
);
