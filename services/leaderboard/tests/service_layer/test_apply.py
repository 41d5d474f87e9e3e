from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from thrive_leaderboard.adapters.repository import BoardRead
from thrive_leaderboard.domain.contributions import DayAgg, PersonKeys, unfold
from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.scoring import Counters, Metric, Weights, scorers
from thrive_leaderboard.domain.visibility import Snapshot
from thrive_leaderboard.service_layer import apply as apply_module
from thrive_leaderboard.service_layer.apply import Applier
from thrive_leaderboard.service_layer.boards import BoardQuery, Leaderboards
from thrive_leaderboard.service_layer.directory import Directory
from thrive_shared.contracts import HelpReceived, PersonErased, PersonUpserted, make_event

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
KEYS = PersonKeys(b"k")


class FakeRepository:
    """The day-row and helped tables' semantics in memory: sums, day sets, tombstones."""

    def __init__(self):
        self.days = {}
        self.helped = {}
        self.people = {}
        self.erased = set()
        self.locks = []
        self.xid = 0

    @property
    def rows(self):
        """Every board-period row the day rows count towards (as `board_standing`)."""
        return {k: Counters(a.n, a.nd, a.d, a.x, a.m) for k, a in unfold(self.days).items()}

    async def lock_apply(self, conn, *, exclusive):
        self.locks.append(exclusive)
        self.xid += 1
        return self.xid

    async def helped_days(self, conn, pairs):
        return {p: sorted(self.helped[p]) for p in pairs if p in self.helped}

    async def merge_helped(self, conn, pairs, person_keys):
        for pair, days in pairs.items():
            if person_keys[pair[0]] not in self.erased:
                self.helped.setdefault(pair, set()).update(days)

    async def apply(self, conn, rows, person_keys):
        gone = set()
        for key, agg in rows.items():
            if person_keys[key[2]] in self.erased:
                gone.add(key[2])
                continue
            held = self.days.setdefault(key, DayAgg())
            held.n += agg.n
            held.nd += agg.nd
            held.x += agg.x
            held.m += agg.m
            held.d = [a + b for a, b in zip(held.d, agg.d, strict=True)]
        return gone

    async def load(self, key):
        """A board as the real repository reads it, in a snapshot showing every commit."""
        counters = {k[3]: c for k, c in self.rows.items() if k[:3] == key}
        return BoardRead(counters, Snapshot(self.xid + 1, self.xid + 1, frozenset()))

    async def is_erased(self, conn, key):
        return key in self.erased

    async def upsert_person(self, conn, person, team):
        self.people[person] = team

    async def erase(self, conn, person, key):
        self.days = {k: v for k, v in self.days.items() if k[2] != person}
        self.helped = {k: v for k, v in self.helped.items() if k[0] != person}
        self.people.pop(person, None)
        self.erased.add(key)


def thanks(i, helper, giver, **kw):
    data = HelpReceived(
        thanks_id=f"t{i}",
        giver=giver,
        helper=helper,
        given_at=NOW,
        helper_team="red",
        giver_team="blue",
        **kw,
    )
    return make_event(data, source="thrive/recognition", id=f"e{i}")


async def make():
    repo = FakeRepository()
    lb = Leaderboards(
        loader=repo.load,
        directory=Directory(),
        scorers=scorers(Weights()),
        tz=ZoneInfo("UTC"),
        clock=lambda: NOW,
    )
    await lb.preload([Metric.SERVICE, Metric.PEOPLE_HELPED])
    return Applier(repo=repo, keys=KEYS, tz=ZoneInfo("UTC"), boards=lb), lb, repo


async def test_memory_changes_only_after_commit_and_matches_the_store():
    applier, lb, repo = await make()
    events = [
        thanks(1, "ann", "bob"),
        thanks(2, "ann", "bob"),
        thanks(3, "ann", "cat"),
        thanks(4, "dan", "bob", discounted=True),
    ]
    await applier.apply_batch(None, events)
    q = BoardQuery(metric=Metric.PEOPLE_HELPED, window=Window.WEEK)
    assert (await lb.rank(q, "ann")).rank is None  # not committed yet
    await applier.after_commit([(e, None) for e in events])
    ann = await lb.rank(q, "ann")
    assert (ann.rank, ann.score) == (1, 200)
    assert repo.rows[("company", "all_time", "all", "ann")] == Counters(n=3, d=2, x=3)
    service = await lb.rank(BoardQuery(window=Window.WEEK), "dan")
    assert service.score == 25 + 200 + 100  # a discounted thanks, one person, cross-team


async def test_a_batch_that_never_commits_leaves_memory_untouched():
    applier, lb, _ = await make()
    await applier.apply_batch(None, [thanks(1, "ann", "bob")])
    await applier.after_commit([])
    assert (await lb.rank(BoardQuery(window=Window.WEEK), "ann")).rank is None


async def test_erasure_forgets_the_person_and_ignores_their_later_events():
    applier, lb, repo = await make()
    upsert = make_event(
        PersonUpserted(person="ann", name="Ann", email="a@x.io", team="red"), source="hr"
    )
    first = thanks(1, "ann", "bob")
    erase = make_event(PersonErased(person="ann"), source="hr")
    late = thanks(2, "ann", "cat")
    other = thanks(3, "cat", "ann")
    batch = [upsert, first, erase, late, other]
    await applier.apply_batch(None, batch)
    await applier.after_commit([(e, None) for e in batch])
    q = BoardQuery(window=Window.WEEK)
    assert (await lb.rank(q, "ann")).rank is None
    assert not any(k[3] == "ann" for k in repo.rows)
    # cat's thanks from ann still counts for cat: others' counts are untouched.
    assert (await lb.rank(q, "cat")).rank == 1
    assert lb.directory.team_of("ann") is None


async def test_self_thanks_and_erased_helpers_score_nothing():
    applier, _, repo = await make()
    await applier.apply_batch(None, [thanks(1, "ann", "ann"), thanks(2, None, "bob")])
    assert repo.rows == {}


async def test_an_applier_without_boards_keeps_nothing_for_memory():
    # A rebuild replays millions of events: their committed rows must not pile up.
    _applier, _lb, repo = await make()
    rebuild = Applier(repo=repo, keys=KEYS, tz=ZoneInfo("UTC"), boards=None)
    events = [thanks(1, "ann", "bob"), thanks(2, "ann", "cat")]
    await rebuild.apply_batch(None, events)
    assert repo.rows, "the store got the rows"
    assert rebuild.take([(e, None) for e in events]) == [[], []]
    assert not rebuild._pending


async def test_a_batch_with_an_erasure_takes_the_apply_lock_alone():
    applier, _lb, repo = await make()
    await applier.apply_batch(None, [thanks(1, "ann", "bob")])
    erase = make_event(PersonErased(person="dan"), source="hr")
    await applier.apply_batch(None, [thanks(2, "ann", "cat"), erase])
    await applier.handle(None, thanks(3, "cat", "bob"), None)  # the per-event path runs alone
    assert repo.locks == [False, True, True]


async def test_dropping_never_committed_effects_keeps_other_members_batches_in_flight(
    monkeypatch,
):
    monkeypatch.setattr(apply_module, "_MAX_PENDING", 4)
    applier, lb, _repo = await make()
    dead = [thanks(10 + i, "dan", f"g{i}") for i in range(5)]
    for e in dead:  # dead-lettered one by one: never committed
        await applier.apply_batch(None, [e])
    in_flight = [thanks(1, "ann", "bob")]  # another member's batch, not committed yet
    await applier.apply_batch(None, in_flight)
    committed = [thanks(2, "cat", "bob")]
    await applier.apply_batch(None, committed)
    await applier.after_commit([(e, None) for e in committed])  # overflows the bound
    await applier.after_commit([(e, None) for e in in_flight])
    q = BoardQuery(window=Window.WEEK)
    assert (await lb.rank(q, "ann")).rank is not None
    assert (await lb.rank(q, "dan")).rank is None
