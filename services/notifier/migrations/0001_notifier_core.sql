-- Notifier: people mirror, attention filters, inbox, digests, and the delivery ledger.
-- depends: 0000_thrive_shared_inbox_outbox

-- Mirror of directory.person.v1: only what delivery needs.
CREATE TABLE person (
    person      text        PRIMARY KEY,
    name        text        NOT NULL,
    email       text,
    team        text,
    timezone    text        NOT NULL DEFAULT 'UTC',
    locale      text        NOT NULL DEFAULT 'en',
    active      boolean     NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX person_team ON person (team);

-- Erased people, by a digest of their id, so a replayed event cannot bring them back.
CREATE TABLE erased_person (
    person_digest bytea      PRIMARY KEY,
    erased_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE preferences (
    person            text        PRIMARY KEY,
    daily_budget      integer     NOT NULL CHECK (daily_budget >= 0),
    quiet_start       time,
    quiet_end         time,
    timezone          text,
    channels          text[]      NOT NULL,
    digest_frequency  text        NOT NULL CHECK (digest_frequency IN ('daily', 'weekly', 'off')),
    digest_hour       smallint    NOT NULL CHECK (digest_hour BETWEEN 0 AND 23),
    webhook_url       text,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE follow (
    person      text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('person', 'team', 'theme')),
    target      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person, kind, target)
);
-- Fan-out reads followers of a target.
CREATE INDEX follow_target ON follow (kind, target, person);

CREATE TABLE mute (
    person      text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('person', 'theme', 'kind')),
    target      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person, kind, target)
);
CREATE INDEX mute_target ON mute (kind, target);

-- Who has offered help on which theme: asks nudge only past helpers.
CREATE TABLE offer_history (
    person          text        NOT NULL,
    theme           text        NOT NULL,
    offers          integer     NOT NULL DEFAULT 1,
    last_offered_at timestamptz NOT NULL,
    PRIMARY KEY (theme, person)
);
CREATE INDEX offer_history_person ON offer_history (person);

-- Asks resolved but not yet thanked get one quiet reminder.
CREATE TABLE ask_followup (
    ask_id      text        PRIMARY KEY,
    asker       text,
    helper      text,
    title       text,
    resolved_at timestamptz,
    thanked_at  timestamptz,
    reminded_at timestamptz
);
CREATE INDEX ask_followup_due ON ask_followup (resolved_at)
    WHERE thanked_at IS NULL AND reminded_at IS NULL AND resolved_at IS NOT NULL;

-- Live notifications per person per local day, against their attention budget.
CREATE TABLE budget_usage (
    person  text    NOT NULL,
    day     date    NOT NULL,
    used    integer NOT NULL,
    daily_limit integer NOT NULL,
    PRIMARY KEY (person, day)
);

-- A team's channel: a chat webhook that large celebrations reach.
CREATE TABLE team_channel (
    team        text        PRIMARY KEY,
    webhook_url text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The delivery ledger: at most one row per (event, recipient, channel).
CREATE TABLE delivery (
    id               bigserial   PRIMARY KEY,
    event_id         text        NOT NULL,
    recipient_kind   text        NOT NULL CHECK (recipient_kind IN ('person', 'team')),
    recipient        text        NOT NULL,
    channel          text        NOT NULL CHECK (channel IN ('in_app', 'email', 'webhook')),
    idempotency_key  text        NOT NULL UNIQUE,
    kind             text        NOT NULL,
    state            text        NOT NULL
        CHECK (state IN ('pending', 'delivered', 'failed', 'parked', 'cancelled')),
    payload          jsonb       NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (event_id, recipient_kind, recipient, channel)
);
-- The worker's claim scans only what still has to go out.
CREATE INDEX delivery_due ON delivery (next_attempt_at)
    WHERE state IN ('pending', 'failed');
CREATE INDEX delivery_parked ON delivery (id) WHERE state = 'parked';
CREATE INDEX delivery_recipient ON delivery (recipient_kind, recipient);
-- Erasure redacts what others were told about the erased person.
CREATE INDEX delivery_subject ON delivery ((payload ->> 'subject'));

-- Every attempt to send, for operators (a retried parked delivery starts counting again).
CREATE TABLE delivery_attempt (
    id           bigserial   PRIMARY KEY,
    delivery_id  bigint      NOT NULL REFERENCES delivery (id) ON DELETE CASCADE,
    attempt      integer     NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    outcome      text        NOT NULL,
    status       integer,
    error        text
);
CREATE INDEX delivery_attempt_delivery ON delivery_attempt (delivery_id, id);

-- The in-app inbox (the shared `inbox` table is the consumers' dedup inbox).
CREATE TABLE inbox_item (
    id           bigserial   PRIMARY KEY,
    person       text        NOT NULL,
    delivery_id  bigint      UNIQUE REFERENCES delivery (id) ON DELETE SET NULL,
    kind         text        NOT NULL,
    about        text        NOT NULL,
    subject      text,
    title        text        NOT NULL,
    body         text        NOT NULL DEFAULT '',
    themes       text[]      NOT NULL DEFAULT '{}',
    payload      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    quiet        boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    read_at      timestamptz
);
CREATE INDEX inbox_item_person ON inbox_item (person, id DESC);
CREATE INDEX inbox_item_unread ON inbox_item (person, id DESC) WHERE read_at IS NULL;
CREATE INDEX inbox_item_subject ON inbox_item (subject);

CREATE TABLE digest (
    id           bigserial   PRIMARY KEY,
    person       text        NOT NULL,
    local_day    date        NOT NULL,
    size         integer     NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX digest_person ON digest (person, local_day DESC);

-- What was deferred (over budget, quiet hours) and waits for the person's digest.
CREATE TABLE digest_item (
    id          bigserial   PRIMARY KEY,
    person      text        NOT NULL,
    event_id    text        NOT NULL,
    kind        text        NOT NULL,
    reason      text        NOT NULL CHECK (reason IN ('budget', 'quiet_hours')),
    subject     text,
    title       text        NOT NULL,
    themes      text[]      NOT NULL DEFAULT '{}',
    payload     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    digest_id   bigint      REFERENCES digest (id) ON DELETE SET NULL,
    UNIQUE (person, event_id)
);
CREATE INDEX digest_item_waiting ON digest_item (person, id) WHERE digest_id IS NULL;
CREATE INDEX digest_item_subject ON digest_item (subject);
