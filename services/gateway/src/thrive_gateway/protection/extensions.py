"""The schema extensions that protect the gateway, configured from settings."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, ClassVar

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.schema import validate_document

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


class DocumentCache(SchemaExtension):
    """Parse and validate each distinct document once, not on every request.

    Widgets send the same few documents over and over; parsing and validating them is a
    third of a request's CPU. Validation results depend on the document, the (fixed) rules
    and, through the cost rule, on integer variables, so those form the key. Both caches are
    bounded so unique documents from an attacker only churn them.
    """

    _parsed: ClassVar[OrderedDict[tuple[str, int | None], DocumentNode]] = OrderedDict()
    _validated: ClassVar[OrderedDict[tuple[Any, ...], list[GraphQLError]]] = OrderedDict()
    max_entries: ClassVar[int] = 512

    def __init__(self, *, config_key: tuple[Any, ...] = ()) -> None:
        # Apps with other limits (tests build several) must not share cached verdicts.
        self._config_key = config_key

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        query = ctx.query
        if query is not None and len(query) <= 20_000:
            key = (query, ctx.parse_options.get("max_tokens"))
            document = self._parsed.get(key)
            if document is None:
                document = parse(query, **ctx.parse_options)
                _remember(self._parsed, key, document, self.max_entries)
            ctx.graphql_document = document
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.query is not None and ctx.graphql_document is not None:
            ints = tuple(sorted((k, v) for k, v in (ctx.variables or {}).items() if type(v) is int))
            key = (ctx.query, ints, self._config_key, len(ctx.validation_rules))
            errors = self._validated.get(key)
            if errors is None:
                errors = validate_document(
                    ctx.schema._schema, ctx.graphql_document, ctx.validation_rules
                )
                _remember(self._validated, key, errors, self.max_entries)
            ctx.pre_execution_errors = list(errors)
        yield


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
    cache[key] = value
    if len(cache) > limit:
        cache.popitem(last=False)


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
        partial(
            DocumentCache,
            config_key=(
                settings.max_tokens,
                settings.max_depth,
                settings.max_aliases,
                settings.max_cost,
                settings.max_page_size,
                settings.production,
            ),
        ),
        partial(MaxTokensLimiter, max_token_count=settings.max_tokens),
        partial(QueryDepthLimiter, max_depth=settings.max_depth),
        partial(MaxAliasesLimiter, max_alias_count=settings.max_aliases),
        partial(QueryCostLimiter, max_cost=settings.max_cost, max_list_size=settings.max_page_size),
        partial(MaskErrors, should_mask_error=should_mask, error_message="Unexpected error."),
    ]
    if settings.production:
        extensions.append(DisableIntrospection)
    return extensions
