"""The schema extensions that protect the gateway, configured from settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial

from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from thrive_gateway.protection.cost import create_cost_rule
from thrive_gateway.protection.persisted import PersistedQueries
from thrive_gateway.settings import GatewaySettings

# Relative costs of fields that fan out to a service call per parent item.
FIELD_WEIGHTS: Mapping[str, int] = {
    "Person.thanksReceived": 5,
    "Person.thanksGiven": 5,
    "Person.rank": 5,
    "Person.follows": 3,
    "Person.mutes": 3,
    "Query.leaderboard": 5,
    "Query.feed": 5,
    "Query.asks": 5,
    "Query.inbox": 5,
}


class QueryCostLimiter(SchemaExtension):
    """Adds the cost rule per operation, so `first: $n` is priced with the real $n."""

    def __init__(self, *, max_cost: int, max_list_size: int) -> None:
        self._max_cost = max_cost
        self._max_list_size = max_list_size

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context
        rule = create_cost_rule(
            max_cost=self._max_cost,
            variables=ctx.variables,
            max_list_size=self._max_list_size,
            weights=FIELD_WEIGHTS,
        )
        ctx.validation_rules = (*ctx.validation_rules, rule)
        yield


def should_mask(error: GraphQLError) -> bool:
    """Mask unexpected exceptions; keep GraphQL errors we raise on purpose and syntax errors."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


ExtensionFactory = Callable[[], SchemaExtension]


def protection_extensions(
    settings: GatewaySettings, *, allow_list: Mapping[str, str] | None = None
) -> list[ExtensionFactory]:
    """Depth, tokens, aliases, cost, masking; no introspection in production; persisted queries.

    Factories, not instances: strawberry sets per-operation state on each extension, so a
    shared instance would mix up concurrent requests.
    """
    extensions: list[ExtensionFactory] = []
    if allow_list is not None or settings.persisted_queries_only:
        extensions.append(
            partial(PersistedQueries, dict(allow_list or {}), only=settings.persisted_queries_only)
        )
    extensions += [
        partial(MaxTokensLimiter, max_token_count=settings.max_tokens),
        partial(QueryDepthLimiter, max_depth=settings.max_depth),
        partial(MaxAliasesLimiter, max_alias_count=settings.max_aliases),
        partial(QueryCostLimiter, max_cost=settings.max_cost, max_list_size=settings.max_page_size),
        partial(MaskErrors, should_mask_error=should_mask, error_message="Unexpected error."),
    ]
    if settings.production:
        extensions.append(DisableIntrospection)
    return extensions
