"""Which documents may be answered from the response cache, and to whom.

A document is cacheable when it is a query (or, for event sharing, a subscription) and
every field it selects (fragments included) is in one of the allow-lists below: fields whose
value is the same for every employee (`SHARED`), or fields about the caller that are the
same for every request of that one person (`PERSONAL`, keyed by the person). Anything else -
private thanks lists, someone's follows or mutes, ranks that hide opted-out people, operator
fields, introspection - makes the whole document uncacheable, so it always runs through the
resolvers and their checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from graphql import (
    BREAK,
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    visit,
)

# Root fields whose result is the same for every employee (given their arguments).
SHARED_ROOTS = frozenset({"Query.feed", "Query.leaderboard"})
# Root fields about the caller: cached per person, never served to anyone else.
PERSONAL_ROOTS = frozenset({"Query.me"})
# Subscriptions whose events are the same for every subscriber of a channel (each was
# authorised when it subscribed): an event is executed once per document and variables.
SHARED_SUBSCRIPTIONS = frozenset(
    {"Subscription.celebrations", "Subscription.feed", "Subscription.leaderboardChanged"}
)

# Nested fields that do not depend on who asks. Thanks.message is only readable by anyone
# because `feed` holds public thanks only; no private thanks can reach these types through
# the roots above. Person.thanksReceived/thanksGiven (filtered by viewer), follows/mutes
# (the person only) and rank (hidden when opted out, except to themselves) are left out.
NESTED = frozenset(
    {
        "FeedItemConnection.edges",
        "FeedItemConnection.pageInfo",
        "FeedItemConnection.nodes",
        "FeedItemEdge.cursor",
        "FeedItemEdge.node",
        "PageInfo.hasNextPage",
        "PageInfo.endCursor",
        "Thanks.id",
        "Thanks.themes",
        "Thanks.visibility",
        "Thanks.givenAt",
        "Thanks.message",
        "Thanks.giver",
        "Thanks.helper",
        "Milestone.id",
        "Milestone.ruleId",
        "Milestone.level",
        "Milestone.size",
        "Milestone.title",
        "Milestone.themes",
        "Milestone.reachedAt",
        "Milestone.person",
        "Person.id",
        "Person.name",
        "Person.team",
        "Person.timezone",
        "Person.counts",
        "Person.milestones",
        "PersonCounts.thanksReceived",
        "PersonCounts.thanksGiven",
        "PersonCounts.asks",
        "PersonCounts.offers",
        "PersonCounts.peopleHelped",
        "PersonCounts.teamsHelped",
        "PersonCounts.streakWeeks",
        "Leaderboard.metric",
        "Leaderboard.window",
        "Leaderboard.scope",
        "Leaderboard.scopeId",
        "Leaderboard.period",
        "Leaderboard.standings",
        "Standing.rank",
        "Standing.score",
        "Standing.person",
        "Celebration.id",
        "Celebration.kind",
        "Celebration.title",
        "Celebration.about",
        "Celebration.themes",
        "Celebration.team",
        "Celebration.deliveredAt",
        "Celebration.recipient",
    }
)


class Sharing(Enum):
    """Who may be served a cached response of a document."""

    NONE = "none"  # never cached
    CLASS = "class"  # anyone of the same viewer class (employee / admin)
    PERSON = "person"  # only the same person


@dataclass(frozen=True, slots=True)
class Verdict:
    """The cacheability of one document, and its operation name for metrics."""

    sharing: Sharing
    operation: str
    subscription: bool = False


NOT_CACHEABLE = Verdict(Sharing.NONE, "anonymous")


def judge(schema: GraphQLSchema, document: DocumentNode) -> Verdict:
    """How a response to `document` may be shared (see the module docstring)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation == OperationType.MUTATION:
        # Several operations: which one runs depends on operationName; keep it simple.
        return NOT_CACHEABLE
    roots = (
        SHARED_SUBSCRIPTIONS
        if operations[0].operation == OperationType.SUBSCRIPTION
        else (SHARED_ROOTS)
    )
    name = operations[0].name.value if operations[0].name else "anonymous"
    type_info = TypeInfo(schema)
    state = {"ok": True, "personal": False}

    class Check(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> object:
            field = node.name.value
            if field == "__typename":
                return None
            parent = type_info.get_parent_type()
            coordinate = f"{parent.name}.{field}" if parent is not None else ""
            if coordinate in PERSONAL_ROOTS:
                state["personal"] = True
            elif coordinate not in roots and coordinate not in NESTED:
                state["ok"] = False
                return BREAK
            return None

    visit(document, TypeInfoVisitor(type_info, Check()))
    if not state["ok"]:
        return Verdict(Sharing.NONE, name)
    subscription = operations[0].operation == OperationType.SUBSCRIPTION
    return Verdict(Sharing.PERSON if state["personal"] else Sharing.CLASS, name, subscription)
