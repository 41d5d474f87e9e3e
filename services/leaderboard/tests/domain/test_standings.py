from thrive_leaderboard.domain.periods import Window
from thrive_leaderboard.domain.scoring import Counters, Weights, scorers
from thrive_leaderboard.domain.standings import PeriodStandings, StoredBoard


def board() -> tuple[PeriodStandings, dict[str, str]]:
    teams = {"a": "red", "b": "red", "c": "blue", "d": "blue"}
    b = PeriodStandings(
        StoredBoard("company", Window.MONTH, "2026-03"),
        scorers=scorers(Weights()),
        hidden=lambda _p: False,
        team_of=teams.get,
        counters={p: Counters(n=i + 1) for i, p in enumerate(teams)},
    )
    return b, teams


def one_pass(b: PeriodStandings, teams: dict[str, str]) -> dict[str, list[int]]:
    totals: dict[str, list[int]] = {}
    for person, c in b.counters.items():
        t = totals.setdefault(teams[person], [0, 0, 0, 0, 0])
        for k in range(5):
            t[k] += c[k]
    return totals


def test_someone_removed_and_back_before_their_slice_is_counted_once():
    b, teams = board()
    assert not b.sum_team_slice(1)  # one person summed, three to go
    # "a" is summed last: gone and back (with new counters) before their slice comes.
    b.remove("a")
    b.add("a", 7, 0, 0, 0, 0)
    b.add("c", 6, 0, 0, 0, 0)  # 3 -> 9
    while not b.sum_team_slice(1):
        pass
    assert b.team_totals == one_pass(b, teams) == {"red": [9, 0, 0, 0, 0], "blue": [13, 0, 0, 0, 0]}


def test_totals_follow_commits_and_moves_once_summed():
    b, teams = board()
    assert b.team_totals == one_pass(b, teams)
    b.add("b", -1, 0, 0, 0, 0)  # 2 -> 1
    b.move_team("c", "blue", "red")
    teams["c"] = "red"
    assert b.team_totals == one_pass(b, teams)
