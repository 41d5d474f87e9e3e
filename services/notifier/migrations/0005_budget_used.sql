-- Budget use as counters: counting a person's budget_spend rows of the day grew with the
-- budget (the bench's 100,000 budgets: ~80 rows per person-day, 785k rows, most of the
-- large fan-out's statement). budget_spend stays, as the record that makes a redelivered
-- event spend nothing twice (ON CONFLICT DO NOTHING); each statement that inserts into it
-- adds the rows it really inserted to one counter row per (person, day, writer) in the same
-- statement, and the use is the sum of the person-day's counters. The writer is the Postgres
-- backend (pg_backend_pid()): a backend runs one transaction at a time, so no two
-- transactions ever update the same counter row (the consumer and the fan-out lanes neither
-- wait on nor deadlock over one person's use), and a person-day holds at most one row per
-- backend that granted them a ping that day, whatever the budget.
-- depends: 0004_delivery_trace_context

CREATE TABLE budget_used (
    person  text    NOT NULL,
    day     date    NOT NULL,
    writer  integer NOT NULL,
    n       integer NOT NULL,
    PRIMARY KEY (person, day, writer)
);
-- The log so far, as writer 0 (no backend has pid 0).
INSERT INTO budget_used (person, day, writer, n)
SELECT person, day, 0, count(*) FROM budget_spend GROUP BY person, day;
