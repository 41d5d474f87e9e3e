"""Subscription events executed once per channel, not once per socket.

Every subscriber of a channel receives the same event object (the resolvers share one
GraphQL object per live notice, see subscriptions.py). When the subscription document reads
only fields that are the same for every subscriber (`sharing.judge`), the result of executing
it on that object is the same for every socket with the same document and variables: it is
computed once and reused, and strawberry then only wraps and sends it. A document that only
projects plain attributes (`subscription { celebrations { id title deliveredAt } }`) is not
even run through graphql-core's field machinery: its Projection reads and serializes them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    is_leaf_type,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from thrive_gateway.schema.sharing import Sharing, judge

MEMO_SIZE = 4_096


@dataclass(frozen=True, slots=True)
class _Leaf:
    key: str
    attr: str | None  # None: __typename
    serialize: Callable[[Any], Any]
    is_list: bool
    nullable: bool


@dataclass(frozen=True, slots=True)
class Projection:
    """A subscription that selects plain attributes of the event object, and nothing else."""

    root_key: str
    typename: str
    leaves: tuple[_Leaf, ...]

    def data(self, event: Any) -> dict[str, Any] | None:
        """The response data, or None when a value needs the full executor (e.g. a null)."""
        out: dict[str, Any] = {}
        for leaf in self.leaves:
            if leaf.attr is None:
                out[leaf.key] = self.typename
                continue
            value = getattr(event, leaf.attr)
            if value is None:
                if not leaf.nullable:
                    return None  # the executor reports the error properly
                out[leaf.key] = None
            elif leaf.is_list:
                if any(v is None for v in value):
                    return None
                out[leaf.key] = [leaf.serialize(v) for v in value]
            else:
                out[leaf.key] = leaf.serialize(value)
        return {self.root_key: out}


def projection_of(schema: GraphQLSchema, operation: OperationDefinitionNode) -> Projection | None:
    """A Projection for `subscription { field { scalar fields } }` documents, else None.

    Only fields strawberry itself resolves as plain attributes (no resolver, no permission, no
    extension) qualify; anything else (nested objects, arguments on leaves, directives,
    fragments, unions) is executed by graphql-core as usual.
    """
    subscription = schema.subscription_type
    selections = operation.selection_set.selections
    if subscription is None or operation.directives or len(selections) != 1:
        return None
    root = selections[0]
    if not isinstance(root, FieldNode) or root.directives or root.selection_set is None:
        return None
    root_def = subscription.fields.get(root.name.value)
    if root_def is None:
        return None
    object_type = root_def.type
    if isinstance(object_type, GraphQLNonNull):
        object_type = object_type.of_type
    if not isinstance(object_type, GraphQLObjectType):
        return None
    leaves: list[_Leaf] = []
    for selection in root.selection_set.selections:
        if (
            not isinstance(selection, FieldNode)
            or selection.directives
            or selection.arguments
            or selection.selection_set is not None
        ):
            return None
        key = selection.alias.value if selection.alias else selection.name.value
        if selection.name.value == "__typename":
            leaves.append(_Leaf(key, None, str, is_list=False, nullable=False))
            continue
        field = object_type.fields.get(selection.name.value)
        definition = (field.extensions or {}).get("strawberry-definition") if field else None
        if field is None or definition is None or not getattr(field.resolve, "_is_default", False):
            return None
        gql_type, nullable, is_list = field.type, True, False
        if isinstance(gql_type, GraphQLNonNull):
            gql_type, nullable = gql_type.of_type, False
        if isinstance(gql_type, GraphQLList):
            item = gql_type.of_type
            if not isinstance(item, GraphQLNonNull):
                return None
            gql_type, is_list = item.of_type, True
        if not is_leaf_type(gql_type):
            return None
        leaves.append(
            _Leaf(
                key, definition.python_name, gql_type.serialize, is_list=is_list, nullable=nullable
            )
        )
    root_key = root.alias.value if root.alias else root.name.value
    return Projection(root_key=root_key, typename=object_type.name, leaves=tuple(leaves))


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core executor that memoises shareable subscription events."""

    # (id(event), id(operation), variables) -> (event, operation, result). The objects are
    # kept so their ids cannot be reused while the entry lives.
    _events: ClassVar[OrderedDict[tuple[int, int, bytes], tuple[Any, Any, Any]]] = OrderedDict()
    _verdicts: ClassVar[
        OrderedDict[int, tuple[OperationDefinitionNode, bool, Projection | None]]
    ] = OrderedDict()
    executions = 0
    reuses = 0

    def execute_operation(self, serially: bool | None = None) -> Any:
        operation = self.operation
        if operation.operation is not OperationType.SUBSCRIPTION:
            return super().execute_operation(serially)
        shareable, projection = self._plan()
        if not shareable:
            return super().execute_operation(serially)
        try:
            coerced = getattr(self.variable_values, "coerced", self.variable_values)
            variables = orjson.dumps(coerced, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return super().execute_operation(serially)
        event = self.root_value
        key = (id(event), id(operation), variables)
        memo = SharedEventExecutor._events
        found = memo.get(key)
        if found is not None and found[0] is event and found[1] is operation:
            SharedEventExecutor.reuses += 1
            return found[2]
        data = projection.data(event) if projection is not None else None
        if data is not None:
            result: Any = ExecutionResult(data=data)
        else:
            result = super().execute_operation(serially)
        SharedEventExecutor.executions += 1
        # Only finished, error-free results are shared (an awaitable belongs to one caller).
        if not self.is_awaitable(result) and not getattr(result, "errors", None):
            memo[key] = (event, operation, result)
            if len(memo) > MEMO_SIZE:
                memo.popitem(last=False)
        return result

    def _plan(self) -> tuple[bool, Projection | None]:
        """(shareable, projection) of this subscription document, computed once."""
        operation = self.operation
        verdicts = SharedEventExecutor._verdicts
        found = verdicts.get(id(operation))
        if found is not None and found[0] is operation:
            return found[1], found[2]
        document = DocumentNode(definitions=(operation, *self.fragment_definitions.values()))
        shareable = judge(self.schema, document).sharing is Sharing.CLASS
        projection = projection_of(self.schema, operation) if shareable else None
        verdicts[id(operation)] = (operation, shareable, projection)
        if len(verdicts) > 512:
            verdicts.popitem(last=False)
        return shareable, projection
