"""The in-memory directory mirror: who is in which team, and who opted out."""

from __future__ import annotations

from collections.abc import Iterable

from thrive_leaderboard.adapters.repository import PersonRow


class Directory:
    """Teams and opt-outs, mirrored from Postgres at start and kept in step after commits."""

    def __init__(self, rows: Iterable[PersonRow] = ()) -> None:
        self._team: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        self._opted_out: set[str] = set()
        for row in rows:
            self.set_team(row.person, row.team)
            if row.opted_out:
                self._opted_out.add(row.person)

    def __len__(self) -> int:
        return len(self._team)

    def team_of(self, person: str) -> str | None:
        """The person's current team, if the directory told us."""
        return self._team.get(person)

    def members(self, team: str) -> set[str]:
        """Current members of `team` (a live set: copy before awaiting)."""
        return self._members.get(team, set())

    def teams(self) -> list[str]:
        """Every team with at least one member."""
        return list(self._members)

    def set_team(self, person: str, team: str | None) -> str | None:
        """Record the person's team; return the previous one."""
        old = self._team.get(person)
        if old == team:
            return old
        if old is not None:
            members = self._members.get(old)
            if members is not None:
                members.discard(person)
                if not members:
                    del self._members[old]
        if team is None:
            self._team.pop(person, None)
        else:
            self._team[person] = team
            self._members.setdefault(team, set()).add(person)
        return old

    def is_opted_out(self, person: str) -> bool:
        """Whether the person asked to be left out of leaderboards."""
        return person in self._opted_out

    def set_opted_out(self, person: str, opted_out: bool) -> bool:
        """Record the choice; return whether it changed."""
        before = person in self._opted_out
        if opted_out:
            self._opted_out.add(person)
        else:
            self._opted_out.discard(person)
        return before != opted_out

    def remove(self, person: str) -> None:
        """Forget the person (erasure)."""
        self.set_team(person, None)
        self._opted_out.discard(person)
