-- Standings lose their per-person index.
-- depends: 0002_leaderboard_helped_pairs

-- It served only erasure (rare), yet every new standing row (about half of the rows an
-- event writes: a person's first thanks in a week, month, ...) paid an insert into a
-- second 20M-entry B-tree. Erasure now visits the primary key once per stored
-- board-period instead (a loose index scan over (scope, window, period)).
DROP INDEX IF EXISTS standing_person;
