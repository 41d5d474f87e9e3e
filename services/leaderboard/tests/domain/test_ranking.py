import random

import pytest
from thrive_leaderboard.domain.ranking import RankIndex


def lines(idx, n=100):
    return [(r.person, r.rank, r.score) for r in idx.top(n)]


def test_equal_scores_share_a_rank_and_list_by_person_id():
    idx = RankIndex({"carol": 5, "bob": 7, "alice": 5, "dave": 3})
    assert lines(idx) == [("bob", 1, 7), ("alice", 2, 5), ("carol", 2, 5), ("dave", 4, 3)]
    assert idx.rank("carol").rank == 2
    assert idx.rank("dave").rank == 4


def test_listing_does_not_depend_on_arrival_order():
    people = {f"p{i}": i % 4 for i in range(1, 50)}
    a = RankIndex()
    b = RankIndex()
    for p, s in people.items():
        a.set(p, s)
    for p, s in reversed(list(people.items())):
        b.set(p, s + 10)
        b.set(p, s)
    assert lines(a) == lines(b)


def test_updates_move_people_and_discard_removes_them():
    idx = RankIndex({"a": 1, "b": 2, "c": 3})
    idx.set("a", 10)
    assert [r.person for r in idx.top(3)] == ["a", "c", "b"]
    idx.discard("c")
    assert idx.rank("c") is None
    assert idx.rank("b").rank == 2
    assert len(idx) == 2


def test_cursor_pages_cover_the_board_once():
    idx = RankIndex({f"p{i:02d}": i // 3 for i in range(30)})
    seen = []
    page = idx.top(7)
    while page:
        seen += [r.person for r in page]
        last = page[-1]
        page = idx.after(last.score, last.person, 7)
    assert seen == [r.person for r in idx.top(100)]
    assert len(set(seen)) == 30


def test_around_shows_two_above_and_two_below():
    idx = RankIndex({"a": 50, "b": 40, "c": 30, "d": 20, "e": 10, "f": 5})
    assert [r.person for r in idx.around("c")] == ["a", "b", "c", "d", "e"]
    assert [r.person for r in idx.around("a")] == ["a", "b", "c"]
    assert [(r.person, r.rank) for r in idx.around("f")] == [("d", 4), ("e", 5), ("f", 6)]
    assert idx.around("nobody") == []


def test_ranks_match_counting_higher_scores_on_random_boards():
    rng = random.Random(7)
    scores = {f"p{i}": rng.randrange(20) for i in range(500)}
    idx = RankIndex(scores)
    for _ in range(300):
        p = f"p{rng.randrange(500)}"
        scores[p] = rng.randrange(20)
        idx.set(p, scores[p])
    for p, s in scores.items():
        assert idx.rank(p).rank == 1 + sum(1 for v in scores.values() if v > s)
    listed = idx.top(1000)
    assert [r.person for r in listed] == sorted(scores, key=lambda p: (-scores[p], p))


def _naive(scores):
    order = sorted(scores, key=lambda p: (-scores[p], p))
    return [(p, 1 + sum(1 for v in scores.values() if v > scores[p]), scores[p]) for p in order]


@pytest.mark.parametrize("small_order", [2048, 3])
def test_every_read_matches_sorting_the_board_through_growth_and_removals(monkeypatch, small_order):
    # Scores beyond the tree's first size (it doubles) and beyond its largest size (it
    # then counts by score >> shift and adds the exact buckets sharing the tie slot);
    # listed ties as plain lists, and (small_order=3) as SortedLists past 3 people.
    from thrive_leaderboard.domain import ranking

    monkeypatch.setattr(ranking, "_SMALL_ORDER", small_order)
    rng = random.Random(11)
    for top in (4, 900, 5_000, 1 << 23, 1 << 27):
        scores = {f"p{i:03d}": rng.randrange(top // 4 + 1) for i in range(40)}
        idx = RankIndex(scores)
        for _ in range(150):
            p = f"p{rng.randrange(60):03d}"
            if rng.random() < 0.15:
                scores.pop(p, None)
                idx.discard(p)
            else:
                scores[p] = rng.randrange(top)
                idx.set(p, scores[p])
        if rng.random() < 0.5:
            idx.top(1000)  # list every tie now: later updates keep their order in step
            for _ in range(60):
                p = f"p{rng.randrange(60):03d}"
                scores[p] = rng.randrange(4) if top == 4 else rng.randrange(top)
                idx.set(p, scores[p])
        want = _naive(scores)
        assert lines(idx, 1000) == want
        assert len(idx) == len(scores)
        for i, (p, rank, score) in enumerate(want):
            assert idx.rank(p) is not None and idx.rank(p).rank == rank
            assert idx.position(p) == i
            assert [r.person for r in idx.around(p)] == [w[0] for w in want[max(0, i - 2) : i + 3]]
            assert [r.person for r in idx.after(score, p, 3)] == [w[0] for w in want[i + 1 : i + 4]]
        for s in (0, 1, top // 2, top * 3):
            assert idx.rank_of_score(s) == 1 + sum(1 for v in scores.values() if v > s)
        assert lines(idx.__class__(scores), 1000) == want  # built at once == kept in step


def test_negative_scores_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        RankIndex({"a": -1})
    with pytest.raises(ValueError, match="non-negative"):
        RankIndex().set("a", -5)


def test_small_steps_like_events_keep_every_read_exact():
    # The apply hot path: people gain one event's worth (300-400) at a time, so most moves
    # stay inside a block of slots or cross into the next one; ranks, listing and the
    # rank a score would have stay those of sorting the board.
    rng = random.Random(5)
    scores = {f"p{i:04d}": rng.choice((300, 400, 600, 700, 1000)) for i in range(3000)}
    idx = RankIndex(scores)
    idx.top(20)  # the top buckets are listed, as on a live board
    for step in range(6000):
        p = f"p{rng.randrange(3200):04d}"
        scores[p] = scores.get(p, 0) + rng.choice((300, 400))
        idx.set(p, scores[p])
        if step % 1500 == 0:
            assert lines(idx, 50) == _naive(scores)[:50]
    want = _naive(scores)
    assert lines(idx, 5000) == want
    for p, rank, score in want[::97]:
        assert idx.rank(p).rank == rank
        assert idx.rank_of_score(score - 1) == 1 + sum(1 for v in scores.values() if v >= score)


@pytest.mark.parametrize("top", [1000, 1 << 27])
def test_at_least_gives_the_scores_of_the_people_asked_for_at_or_above_a_floor(top):
    rng = random.Random(3)
    scores = {f"p{i:04d}": rng.randrange(1, top) for i in range(2000)}
    idx = RankIndex(scores)
    asked_few = {f"p{rng.randrange(2500):04d}" for _ in range(40)}
    asked_many = {f"p{rng.randrange(2500):04d}" for _ in range(1500)}
    # A high floor (few people that high: the buckets are walked from the top) and low
    # ones (most people: the people asked for are looked up one by one), and 0.
    for floor in (sorted(scores.values())[-30], top // 2, 1, 0):
        for asked in (asked_few, asked_many):
            want = {p: scores[p] for p in asked if p in scores and scores[p] >= floor}
            assert idx.at_least(asked, floor) == want
