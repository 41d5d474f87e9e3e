-- Distinct people helped, moved out of the hot standings rows.
-- depends: 0001_leaderboard_standings

-- One row per (helper, scope, giver): the local days (company timezone, date ordinals) on
-- which the giver thanked the helper. Every window is a union of days, so whether a thanks
-- is the first from that giver in its week/month/quarter/year/all time is decided from
-- this small array, and `standing.d` becomes a plain integer increment. Most pairs hold a
-- single day; the array never grows with how many people a helper helped (the old
-- per-standing `givers` arrays did, and were rewritten on every event).
CREATE TABLE IF NOT EXISTS helped (
    helper text    NOT NULL,
    scope  text    NOT NULL,
    giver  bigint  NOT NULL,   -- keyed 64-bit hash of the person helped
    days   int[]   NOT NULL,
    PRIMARY KEY (helper, scope, giver)
) WITH (fillfactor = 90);

-- The distinct givers now live in `helped`; standing rows hold counters only, so every
-- update is a narrow HOT update. Existing deployments rebuild (`thrive-leaderboard
-- rebuild --swap`) to fill `helped` from the topics: the old arrays carry no days.
ALTER TABLE standing DROP COLUMN IF EXISTS givers;
ALTER TABLE standing SET (fillfactor = 80);
