-- Applies write one narrow row per (scope, company-local day, person) instead of one per
-- stored board-period.
-- depends: 0003_leaderboard_no_person_index

-- An event used to upsert a `standing` row for each of its five windows (week, month,
-- quarter, year, all time) per scope: ~6.6 random rows of a 20M-row table per event.
-- Now it adds to one row per scope for its day. A board is its `standing` rows plus the
-- day rows inside its period; `dw`..`da` are the distinct-people-helped increments of
-- each window (the `helped` pairs put a window's +1 on the day of the thanks that was
-- the pair's first in that period, a day inside it). Days older than the roll-up horizon
-- are added into `standing` and deleted here (the service does it hourly), so this table
-- holds a few recent days and stays in memory.
CREATE TABLE IF NOT EXISTS standing_day (
    scope  text    NOT NULL,
    day    integer NOT NULL,   -- company-local calendar day, a date ordinal (0001-01-01 = 1)
    person text    NOT NULL,
    n      integer NOT NULL DEFAULT 0,
    nd     integer NOT NULL DEFAULT 0,
    x      integer NOT NULL DEFAULT 0,
    m      integer NOT NULL DEFAULT 0,
    dw     integer NOT NULL DEFAULT 0,
    dm     integer NOT NULL DEFAULT 0,
    dq     integer NOT NULL DEFAULT 0,
    dy     integer NOT NULL DEFAULT 0,
    da     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, day, person)
) WITH (fillfactor = 80);

-- The (window, period, distinct increment) rows a day row counts towards: the same period
-- keys as the service's `periods_of_day` (ISO weeks, calendar months, quarters, years).
CREATE OR REPLACE FUNCTION standing_day_periods(
    day integer, dw integer, dm integer, dq integer, dy integer, da integer
) RETURNS TABLE ("window" text, period text, d integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT w.*
    FROM (SELECT date '0001-01-01' + (day - 1) AS dt) s,
    LATERAL (VALUES
        ('week', to_char(s.dt, 'IYYY-"W"IW'), dw),
        ('month', to_char(s.dt, 'YYYY-MM'), dm),
        ('quarter', to_char(s.dt, 'YYYY-"Q"Q'), dq),
        ('year', to_char(s.dt, 'YYYY'), dy),
        ('all_time', 'all', da)
    ) AS w("window", period, d)
$$;

-- Every board-period as the queries see it: rolled-up rows plus day rows, summed. Used to
-- compare schemas (rebuild == incremental) and by tests; the service reads the two
-- tables separately (a board's day rows are few).
CREATE OR REPLACE VIEW board_standing AS
SELECT scope, "window", period, person,
       sum(n)::integer AS n, sum(nd)::integer AS nd, sum(d)::integer AS d,
       sum(x)::integer AS x, sum(m)::integer AS m
FROM (
    SELECT scope, "window", period, person, n, nd, d, x, m FROM standing
    UNION ALL
    SELECT s.scope, p."window", p.period, s.person, s.n, s.nd, p.d, s.x, s.m
    FROM standing_day s,
         LATERAL standing_day_periods(s.day, s.dw, s.dm, s.dq, s.dy, s.da) p
) u
GROUP BY scope, "window", period, person;
