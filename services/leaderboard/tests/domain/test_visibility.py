from thrive_leaderboard.domain.visibility import Snapshot


def test_a_snapshot_shows_what_had_committed_when_it_was_taken():
    snap = Snapshot.parse("100:105:101,103")
    assert snap.shows(99)  # settled before the oldest running transaction
    assert snap.shows(100)  # committed before the snapshot: below xmax, not running
    assert not snap.shows(101)  # was still running: its commit came after
    assert snap.shows(102)
    assert not snap.shows(103)
    assert not snap.shows(105)  # had not started
    assert not snap.shows(2_000)


def test_an_idle_database_snapshot_has_no_running_transactions():
    snap = Snapshot.parse("7:7:")
    assert snap.in_progress == frozenset()
    assert snap.shows(6) and not snap.shows(7)
