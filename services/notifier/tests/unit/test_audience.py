"""Who hears about what: audiences from follows and offers, and mutes that always win."""

from datetime import UTC, datetime

from thrive_notifier.domain.audience import (
    AudienceFacts,
    audience_query,
    resolve_audience,
)
from thrive_notifier.domain.model import (
    Celebration,
    Kind,
    Mute,
    MuteKind,
    Recipient,
    RecipientKind,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def person(p: str) -> Recipient:
    return Recipient(RecipientKind.PERSON, p)


def milestone(*, large: bool = True, themes: tuple[str, ...] = ("python",)) -> Celebration:
    return Celebration(
        event_id="e1",
        kind=Kind.MILESTONE,
        subject="ana",
        team="blue",
        title="Ten people helped",
        themes=themes,
        large=large,
        occurred_at=NOW,
    )


def thanks(*, private: bool = False) -> Celebration:
    return Celebration(
        event_id="e2",
        kind=Kind.THANKS,
        subject="ana",
        actor="bo",
        themes=("python",),
        title="thanks",
        private=private,
        occurred_at=NOW,
    )


def test_thanks_reaches_only_the_thanked_person_not_the_giver_nor_followers():
    facts = AudienceFacts(person_followers=frozenset({"cy", "bo"}))
    assert resolve_audience(thanks(), facts, {}) == [person("ana")]
    assert audience_query(thanks()).is_empty


def test_large_milestone_reaches_person_team_channel_and_all_kinds_of_followers():
    facts = AudienceFacts(
        person_followers=frozenset({"cy"}),
        team_followers=frozenset({"di"}),
        theme_followers=frozenset({"ed", "ana"}),
    )
    got = resolve_audience(milestone(), facts, {})
    assert got == [
        person("ana"),
        person("cy"),
        person("di"),
        person("ed"),
        Recipient(RecipientKind.TEAM, "blue"),
    ]
    q = audience_query(milestone())
    assert (q.person_followers, q.team_followers, q.theme_followers) == ("ana", "blue", ("python",))


def test_small_milestone_reaches_only_the_person():
    facts = AudienceFacts(person_followers=frozenset({"cy"}))
    assert resolve_audience(milestone(large=False), facts, {}) == [person("ana")]


def test_ask_nudges_only_theme_followers_who_offered_on_those_themes_and_never_the_asker():
    ask = Celebration(
        event_id="e3",
        kind=Kind.ASK,
        subject="ana",
        title="pandas help",
        themes=("python",),
        occurred_at=NOW,
    )
    facts = AudienceFacts(
        theme_followers=frozenset({"cy", "di", "ana"}),
        theme_offerers=frozenset({"di", "ed", "ana"}),
    )
    assert resolve_audience(ask, facts, {}) == [person("di")]


def test_mutes_win_over_follows_for_person_theme_and_kind():
    facts = AudienceFacts(
        person_followers=frozenset({"cy", "di", "ed", "fa"}),
    )
    mutes = {
        "cy": [Mute(MuteKind.PERSON, "ana")],
        "di": [Mute(MuteKind.THEME, "python")],
        "ed": [Mute(MuteKind.KIND, "milestone")],
        "fa": [Mute(MuteKind.THEME, "rust"), Mute(MuteKind.KIND, "ask")],  # not covering
    }
    got = resolve_audience(milestone(), facts, mutes)
    assert person("cy") not in got and person("di") not in got and person("ed") not in got
    assert person("fa") in got


def test_the_thanked_person_who_muted_the_giver_is_not_pinged():
    assert resolve_audience(thanks(), AudienceFacts(), {"ana": [Mute(MuteKind.PERSON, "bo")]}) == []
