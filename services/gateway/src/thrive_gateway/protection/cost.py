"""Query cost limit: a graphql-core validation rule (strawberry's wheel has none).

Cost of a field = its weight × the product of the list sizes above it; a list's size is
its `first` argument (literal, variable, or default), else `default_list_size`.
Fragments are expanded (cycles are already rejected by NoFragmentCycles).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
)


def create_cost_rule(
    *,
    max_cost: int,
    variables: Mapping[str, Any] | None,
    default_list_size: int = 20,
    max_list_size: int = 100,
    weights: Mapping[str, int] | None = None,
) -> type[ValidationRule]:
    """A validation rule rejecting operations that cost more than `max_cost`."""
    field_weights = dict(weights or {})
    values = dict(variables or {})

    class QueryCostRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            schema = context.schema
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                root = schema.get_root_type(definition.operation)
                if root is None:
                    continue
                cost = _selection_cost(
                    definition.selection_set, root, 1, fragments, schema, set(), 0
                )
                if cost > max_cost:
                    name = definition.name.value if definition.name else "anonymous"
                    context.report_error(
                        GraphQLError(
                            f"Operation {name} is too expensive: cost {cost} exceeds {max_cost}.",
                            definition,
                            extensions={"code": "QUERY_TOO_COSTLY", "cost": cost},
                        )
                    )

    def _list_size(node: FieldNode) -> int:
        for argument in node.arguments or ():
            if argument.name.value not in ("first", "last", "limit"):
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return max(0, min(int(value.value), max_list_size))
            if isinstance(value, VariableNode):
                given = values.get(value.name.value)
                if isinstance(given, int):
                    return max(0, min(given, max_list_size))
                return max_list_size
        return default_list_size

    def _is_list(type_: GraphQLOutputType) -> bool:
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        return isinstance(type_, GraphQLList)

    def _selection_cost(
        selection_set: SelectionSetNode,
        parent: Any,
        multiplier: int,
        fragments: dict[str, FragmentDefinitionNode],
        schema: GraphQLSchema,
        seen: set[str],
        depth: int,
    ) -> int:
        if depth > 64:
            # Depth is limited by its own rule; this only guards the recursion.
            return 1_000_000_000
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                if name.startswith("__"):
                    total += multiplier
                    continue
                fields = getattr(parent, "fields", None)
                field_def = fields.get(name) if fields else None
                if field_def is None:
                    continue  # FieldsOnCorrectTypeRule reports it
                weight = field_weights.get(f"{parent.name}.{name}", 1)
                total += weight * multiplier
                if selection.selection_set is None:
                    continue
                child_type = get_named_type(field_def.type)
                named = _connection_size(selection, field_def.type, child_type, parent)
                total += _selection_cost(
                    selection.selection_set,
                    child_type,
                    multiplier * named,
                    fragments,
                    schema,
                    seen,
                    depth + 1,
                )
            elif isinstance(selection, InlineFragmentNode):
                target = parent
                if selection.type_condition is not None:
                    target = schema.get_type(selection.type_condition.name.value) or parent
                total += _selection_cost(
                    selection.selection_set, target, multiplier, fragments, schema, seen, depth + 1
                )
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is None or selection.name.value in seen:
                    continue
                target = schema.get_type(fragment.type_condition.name.value) or parent
                total += _selection_cost(
                    fragment.selection_set,
                    target,
                    multiplier,
                    fragments,
                    schema,
                    seen | {selection.name.value},
                    depth + 1,
                )
        return total

    def _connection_size(node: FieldNode, type_: GraphQLOutputType, named: Any, parent: Any) -> int:
        if getattr(parent, "name", "").endswith("Connection"):
            return 1  # edges/nodes: the connection's `first` already counted them
        if _is_list(type_):
            return _list_size(node)
        # A Relay connection: its edges/nodes lists are as long as `first`.
        if isinstance(named, GraphQLObjectType) and named.name.endswith("Connection"):
            return _list_size(node)
        return 1

    return QueryCostRule
