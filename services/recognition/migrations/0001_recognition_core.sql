-- Recognition's own tables: the people mirror, asks, offers, thanks, progress, milestones.
-- depends: 0000_thrive_shared_inbox_outbox

-- Mirror of the HR directory (directory.person.v1). Personal data lives here and is
-- removed on erasure; everywhere else a person is an id (or an erasure pseudonym).
CREATE TABLE people (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    email       text        NOT NULL,
    team        text        NOT NULL,
    manager     text,
    timezone    text        NOT NULL DEFAULT 'UTC',
    locale      text        NOT NULL DEFAULT 'en',
    active      boolean     NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX people_team ON people (team);
CREATE INDEX people_manager ON people (manager) WHERE manager IS NOT NULL;

CREATE TABLE asks (
    id                 text        PRIMARY KEY,
    asker              text        NOT NULL,
    asker_team         text,
    title              text        NOT NULL,
    details            text        NOT NULL DEFAULT '',
    themes             text[]      NOT NULL DEFAULT '{}',
    size               text        NOT NULL CHECK (size IN ('quick', 'chat', 'session')),
    status             text        NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'accepted', 'resolved', 'withdrawn', 'expired')),
    accepted_offer_id  text,
    accepted_helper    text,
    created_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    closed_at          timestamptz
);
CREATE INDEX asks_open ON asks (created_at DESC, id DESC) WHERE status = 'open';
CREATE INDEX asks_due ON asks (expires_at) WHERE status = 'open';
CREATE INDEX asks_asker ON asks (asker);
CREATE INDEX asks_themes ON asks USING gin (themes);

CREATE TABLE offers (
    id           text        PRIMARY KEY,
    helper       text        NOT NULL,
    ask_id       text        REFERENCES asks (id),
    themes       text[]      NOT NULL DEFAULT '{}',
    message      text        NOT NULL DEFAULT '',
    origin       text        NOT NULL DEFAULT 'thrive',
    external_id  text,
    created_at   timestamptz NOT NULL,
    -- Another system's event becomes at most one offer, whatever the redelivery.
    UNIQUE (origin, external_id)
);
CREATE INDEX offers_helper ON offers (helper);
CREATE INDEX offers_ask ON offers (ask_id) WHERE ask_id IS NOT NULL;

CREATE TABLE thanks (
    id           text        PRIMARY KEY,
    giver        text        NOT NULL,
    helper       text        NOT NULL,
    giver_team   text,
    helper_team  text,
    message      text        NOT NULL DEFAULT '',
    themes       text[]      NOT NULL DEFAULT '{}',
    ask_id       text,
    offer_id     text,
    visibility   text        NOT NULL CHECK (visibility IN ('public', 'private')),
    discounted   boolean     NOT NULL DEFAULT false,
    origin       text        NOT NULL DEFAULT 'thrive',
    external_id  text,
    given_at     timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (giver <> helper),
    UNIQUE (origin, external_id)
);
-- Allowances and rings read a giver's recent thanks; profiles read both directions.
CREATE INDEX thanks_giver ON thanks (giver, given_at DESC, id DESC);
CREATE INDEX thanks_helper ON thanks (helper, given_at DESC, id DESC);
CREATE INDEX thanks_public ON thanks (given_at DESC, id DESC) WHERE visibility = 'public';
CREATE INDEX thanks_themes ON thanks USING gin (themes);

-- Running totals per person: the inputs of the milestone rules. Updated under the
-- person's advisory lock, so concurrent thanks see each other's effects in order.
CREATE TABLE progress (
    person           text        PRIMARY KEY,
    thanks_received  integer     NOT NULL DEFAULT 0,
    thanks_given     integer     NOT NULL DEFAULT 0,
    asks             integer     NOT NULL DEFAULT 0,
    offers           integer     NOT NULL DEFAULT 0,
    people_helped    integer     NOT NULL DEFAULT 0,
    teams_helped     integer     NOT NULL DEFAULT 0,
    streak_weeks     integer     NOT NULL DEFAULT 0,
    longest_streak   integer     NOT NULL DEFAULT 0,
    last_help_week   date,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Distinct people and other teams a person has helped.
CREATE TABLE helped_people (
    helper  text NOT NULL,
    giver   text NOT NULL,
    PRIMARY KEY (helper, giver)
);
CREATE INDEX helped_people_giver ON helped_people (giver);

CREATE TABLE helped_teams (
    helper  text NOT NULL,
    team    text NOT NULL,
    PRIMARY KEY (helper, team)
);

-- Weeks (Monday, in the helper's timezone) in which a person helped someone.
CREATE TABLE help_weeks (
    person  text NOT NULL,
    week    date NOT NULL,
    PRIMARY KEY (person, week)
);

CREATE TABLE theme_progress (
    person  text    NOT NULL,
    theme   text    NOT NULL,
    count   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (person, theme)
);

-- Each (person, rule, scope, level) is reached once: the unique key makes concurrent or
-- redelivered evaluations insert it at most once (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE milestones (
    id          text        PRIMARY KEY,
    person      text        NOT NULL,
    team        text,
    rule_id     text        NOT NULL,
    scope       text        NOT NULL DEFAULT '',
    level       integer     NOT NULL CHECK (level >= 1),
    size        text        NOT NULL CHECK (size IN ('small', 'large')),
    title       text        NOT NULL,
    themes      text[]      NOT NULL DEFAULT '{}',
    reached_at  timestamptz NOT NULL,
    UNIQUE (person, rule_id, scope, level)
);
CREATE INDEX milestones_recent ON milestones (reached_at DESC, id DESC);
CREATE INDEX milestones_team ON milestones (team, reached_at DESC, id DESC);
CREATE INDEX milestones_themes ON milestones USING gin (themes);
