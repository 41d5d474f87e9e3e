"""Subscription events executed once per channel, not once per socket.

Every subscriber of a channel receives the same event object (the resolvers share one
GraphQL object per live notice, see subscriptions.py). When the subscription document reads
only fields that are the same for every subscriber (`sharing.judge`), the result of executing
it on that object is the same for every socket with the same document and variables: it is
computed once and reused, and strawberry then only wraps and sends it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

import orjson
from graphql import DocumentNode, OperationDefinitionNode, OperationType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from thrive_gateway.schema.sharing import Sharing, judge

MEMO_SIZE = 4_096


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core executor that memoises shareable subscription events."""

    # (id(event), id(operation), variables) -> (event, operation, result). The objects are
    # kept so their ids cannot be reused while the entry lives.
    _events: ClassVar[OrderedDict[tuple[int, int, bytes], tuple[Any, Any, Any]]] = OrderedDict()
    _verdicts: ClassVar[OrderedDict[int, tuple[OperationDefinitionNode, bool]]] = OrderedDict()
    executions = 0
    reuses = 0

    def execute_operation(self, serially: bool | None = None) -> Any:
        operation = self.operation
        if operation.operation is not OperationType.SUBSCRIPTION or not self._shareable():
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
        result = super().execute_operation(serially)
        SharedEventExecutor.executions += 1
        # Only finished, error-free results are shared (an awaitable belongs to one caller).
        if not self.is_awaitable(result) and not getattr(result, "errors", None):
            memo[key] = (event, operation, result)
            if len(memo) > MEMO_SIZE:
                memo.popitem(last=False)
        return result

    def _shareable(self) -> bool:
        operation = self.operation
        verdicts = SharedEventExecutor._verdicts
        found = verdicts.get(id(operation))
        if found is not None and found[0] is operation:
            return found[1]
        document = DocumentNode(definitions=(operation, *self.fragment_definitions.values()))
        shareable = judge(self.schema, document).sharing is Sharing.CLASS
        verdicts[id(operation)] = (operation, shareable)
        if len(verdicts) > 512:
            verdicts.popitem(last=False)
        return shareable
