from datetime import UTC, datetime

from thrive_leaderboard.domain.contributions import (
    PersonKeys,
    Thanks,
    aggregate,
    thanks_deltas,
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


def test_aggregate_sums_per_row_and_collects_distinct_givers():
    deltas = [
        *thanks_deltas(thanks(giver="a"), tz=UTC, keys=KEYS),
        *thanks_deltas(thanks(giver="a", discounted=True), tz=UTC, keys=KEYS),
        *thanks_deltas(thanks(giver="b"), tz=UTC, keys=KEYS),
    ]
    rows = aggregate(deltas)
    row = rows[("company", "all_time", "all", "h")]
    assert (row.n, row.nd, row.x) == (3, 1, 3)
    assert row.givers == {KEYS.giver("a"), KEYS.giver("b")}


def test_person_hashes_are_keyed_and_stable():
    assert KEYS.giver("a") == PersonKeys(b"test-key").giver("a")
    assert KEYS.giver("a") != PersonKeys(b"other-key").giver("a")
    assert -(2**63) <= KEYS.giver("a") < 2**63
    assert len(KEYS.tombstone("a")) == 16
