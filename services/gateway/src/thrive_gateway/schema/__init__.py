"""The gateway's GraphQL schema."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from thrive_gateway.protection.extensions import protection_extensions
from thrive_gateway.schema.errors import (
    AllowanceExceeded,
    NotAllowed,
    NotFound,
    PairCapExceeded,
    RateLimited,
    ValidationFailed,
)
from thrive_gateway.schema.executor import SharedEventExecutor
from thrive_gateway.schema.mutations import Mutation
from thrive_gateway.schema.queries import Query
from thrive_gateway.schema.subscriptions import Subscription
from thrive_gateway.settings import GatewaySettings

log = logging.getLogger("thrive_gateway.graphql")


class GatewaySchema(strawberry.Schema):
    """Logs unexpected errors with their traceback; refusals meant for the user at debug."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            original = error.original_error
            if original is not None and not isinstance(original, GraphQLError):
                log.error("unexpected error in %s", error.path, exc_info=original)
            else:
                log.debug("GraphQL error: %s", error.message)


def build_schema(
    settings: GatewaySettings | None = None,
    *,
    allow_list: Mapping[str, str] | None = None,
    extra_extensions: Sequence[Callable[[], SchemaExtension]] = (),
) -> strawberry.Schema:
    """The schema with the protection extensions configured from settings."""
    settings = settings or GatewaySettings()
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[
            AllowanceExceeded,
            NotAllowed,
            NotFound,
            PairCapExceeded,
            RateLimited,
            ValidationFailed,
        ],
        extensions=[*extra_extensions, *protection_extensions(settings, allow_list=allow_list)],
        execution_context_class=SharedEventExecutor,
        config=StrawberryConfig(
            disable_field_suggestions=settings.production,
            relay_max_results=settings.max_page_size,
        ),
    )


# For `strawberry export-schema thrive_gateway.schema:schema`.
schema = build_schema(GatewaySettings())
