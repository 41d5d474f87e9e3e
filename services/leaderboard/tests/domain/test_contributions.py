from datetime import UTC, datetime, timedelta

from thrive_leaderboard.domain.contributions import (
    DayAgg,
    PersonKeys,
    Thanks,
    aggregate,
    local_day,
    thanks_deltas,
    thanks_pairs,
    unfold,
)

KEYS = PersonKeys(b"test-key")
AT = datetime(2026, 3, 4, 12, tzinfo=UTC)


def thanks(**kw):
    base = dict(
        helper="h",
        giver="g",
        helper_team="t1",
        giver_team="t2",
        themes=("python",),
        discounted=False,
        at=AT,
    )
    base.update(kw)
    return Thanks(**base)


def test_a_thanks_counts_on_every_window_for_company_and_each_theme():
    deltas = thanks_deltas(thanks(themes=("python", "docs")), tz=UTC, keys=KEYS)
    boards = {(d.scope, d.window.value, d.period) for d in deltas}
    assert len(boards) == 15
    assert ("company", "week", "2026-W10") in boards
    assert ("theme:docs", "quarter", "2026-Q1") in boards
    assert all(d.person == "h" and d.n == 1 and d.x == 1 for d in deltas)


def test_same_team_thanks_is_not_cross_team_and_unknown_team_is_not_either():
    assert all(d.x == 0 for d in thanks_deltas(thanks(giver_team="t1"), tz=UTC, keys=KEYS))
    assert all(d.x == 0 for d in thanks_deltas(thanks(giver_team=None), tz=UTC, keys=KEYS))


def test_aggregate_sums_per_row():
    deltas = [
        *thanks_deltas(thanks(giver="a"), tz=UTC, keys=KEYS),
        *thanks_deltas(thanks(giver="a", discounted=True), tz=UTC, keys=KEYS),
        *thanks_deltas(thanks(giver="b"), tz=UTC, keys=KEYS),
    ]
    rows = aggregate(deltas)
    row = rows[("company", "all_time", "all", "h")]
    assert (row.n, row.nd, row.x, row.d) == (3, 1, 3, 0)


def distinct_increments(batch, known):
    """The domain function on a batch's day rows, its increments read back per board row."""
    from thrive_leaderboard.domain.contributions import distinct_increments as on_days

    rows = {
        (scope, day, helper): DayAgg()
        for (helper, scope, _g), days in batch.items()
        for day in days
    }
    merged = on_days(batch, known, rows)
    return {k: a.d for k, a in unfold(rows).items() if a.d}, merged


def _batch(*ts):
    out = {}
    for t in ts:
        for pair, day in thanks_pairs(t, tz=UTC, keys=KEYS):
            out.setdefault(pair, set()).add(day)
    return out


def test_a_giver_counts_once_per_period_however_often_they_thank():
    incs, merged = distinct_increments(
        _batch(thanks(giver="a"), thanks(giver="a"), thanks(giver="b", themes=())), {}
    )
    assert incs[("company", "week", "2026-W10", "h")] == 2
    assert incs[("theme:python", "all_time", "all", "h")] == 1
    assert merged[("h", "company", KEYS.giver("a"))] == [local_day(AT, UTC)]


def test_a_known_day_adds_nothing_and_a_new_week_counts_only_where_the_period_is_new():
    first = _batch(thanks(giver="a"))
    _incs, known = distinct_increments(first, {})
    assert distinct_increments(first, known) == ({}, {})  # a replay
    # A week later, same month: new in the week, not in the month, quarter, year, all time.
    later = _batch(thanks(giver="a", at=AT + timedelta(days=7)))
    incs, merged = distinct_increments(later, known)
    assert {k[1] for k in incs} == {"week"}
    assert len(merged[("h", "company", KEYS.giver("a"))]) == 2


def test_late_events_count_the_same_as_in_order():
    early, late = thanks(giver="a", at=AT - timedelta(days=40)), thanks(giver="a")
    in_order, known = distinct_increments(_batch(early), {})
    more, _ = distinct_increments(_batch(late), known)
    reversed_first, known_r = distinct_increments(_batch(late), {})
    reversed_more, _ = distinct_increments(_batch(early), known_r)

    def total(*parts):
        out = {}
        for p in parts:
            for k, v in p.items():
                out[k] = out.get(k, 0) + v
        return out

    assert total(in_order, more) == total(reversed_first, reversed_more)
    assert total(in_order, more)[("company", "year", "2026", "h")] == 1


def test_person_hashes_are_keyed_and_stable():
    assert KEYS.giver("a") == PersonKeys(b"test-key").giver("a")
    assert KEYS.giver("a") != PersonKeys(b"other-key").giver("a")
    assert -(2**63) <= KEYS.giver("a") < 2**63
    assert len(KEYS.tombstone("a")) == 16


def test_accumulating_facts_sums_the_same_rows_as_aggregating_their_deltas():
    from thrive_leaderboard.domain.contributions import accumulate, spread, thanks_fact

    many = [
        thanks(giver="a"),
        thanks(giver="a", discounted=True, themes=()),
        thanks(giver="b", themes=("python", "docs", "python"), giver_team="t1"),
        thanks(helper="k", giver="b", at=AT - timedelta(days=40)),
    ]
    facts = [thanks_fact(t, tz=UTC, keys=KEYS) for t in many]
    days: dict = {}
    for f in facts:
        accumulate(days, f)
    assert len(days) == 5  # one row per (scope, day, person): h's company row is shared
    rows = unfold(days)
    expected = aggregate(d for f in facts for d in spread(f))
    assert rows == expected
    assert rows[("theme:python", "year", "2026", "h")].n == 2


def test_a_new_pair_thanked_on_several_days_of_one_batch_counts_once_per_period():
    # Two days of the same week (and month, ...), and one in the next month.
    days = [AT, AT + timedelta(days=1), AT + timedelta(days=31)]
    together, merged = distinct_increments(_batch(*(thanks(giver="a", at=d) for d in days)), {})
    one_by_one: dict = {}
    known: dict = {}
    for d in days:
        incs, more = distinct_increments(_batch(thanks(giver="a", at=d)), known)
        known = {**known, **more}
        for k, v in incs.items():
            one_by_one[k] = one_by_one.get(k, 0) + v
    assert together == one_by_one
    assert together[("company", "week", "2026-W10", "h")] == 1
    assert together[("company", "all_time", "all", "h")] == 1
    assert len(merged[("h", "company", KEYS.giver("a"))]) == 3
