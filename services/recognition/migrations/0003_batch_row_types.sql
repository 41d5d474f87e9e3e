-- Row types for the set-based batch statements: a batch's rows travel as one array of
-- composite values instead of one array per column. asyncpg checks every element of every
-- array it encodes (is it a nested array?) through Python's ABC machinery, about a third of
-- a microsecond per element and some 60 elements per ingested event; a tuple per row skips
-- the check and Postgres unnests one array instead of a dozen.
-- depends: 0002_progress_hot_updates
CREATE TYPE thanks_row AS (
    id           text,
    giver        text,
    helper       text,
    giver_team   text,
    helper_team  text,
    message      text,
    themes       text,  -- joined by ',' (a theme cannot contain one)
    ask_id       text,
    offer_id     text,
    visibility   text,
    discounted   boolean,
    origin       text,
    external_id  text,
    given_at     timestamptz
);
CREATE TYPE progress_row AS (
    person           text,
    thanks_received  integer,
    thanks_given     integer,
    asks             integer,
    offers           integer,
    people_helped    integer,
    teams_helped     integer,
    streak_weeks     integer,
    longest_streak   integer,
    last_help_week   date
);
CREATE TYPE milestone_row AS (
    id          text,
    person      text,
    team        text,
    rule_id     text,
    scope       text,
    level       integer,
    size        text,
    title       text,
    themed      boolean,
    reached_at  timestamptz
);
-- (person, other): a person helped, a team helped.
CREATE TYPE person_text AS (person text, other text);
CREATE TYPE person_week AS (person text, week date);
CREATE TYPE person_theme_count AS (person text, theme text, n integer);
CREATE TYPE pair_since AS (giver text, helper text, since timestamptz);
