"""Upcasting: pure functions that lift an event of an older schema version to the next one.

A schema change means a new topic version (`thrive.help.received.v2`) and a new
`SCHEMA_VERSION` on the payload class; events still sitting on the old topic are
lifted on consume, one version at a time, before validation. An upcaster takes the
whole envelope as a JSON dict (so it can use `time` or `subject`) and returns a new
dict; the registry stamps the new `schemaversion` itself::

    @register("thrive.help.received", from_version=1)
    def upcast_v1_v2(event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "data": {**event["data"], "channel": "web"}}

Production upcasters belong in this module, below the default registry, so that they
are registered whenever contracts are imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UpcastError(ValueError):
    """An older event cannot be lifted to the current schema version."""


class Upcasters:
    """Upcasters keyed by (CloudEvents type, version they lift from)."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_type: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: `fn` lifts `event_type` from `from_version` to `from_version + 1`."""

        def decorate(fn: Upcaster) -> Upcaster:
            self.add(event_type, from_version=from_version, fn=fn)
            return fn

        return decorate

    def add(self, event_type: str, *, from_version: int, fn: Upcaster) -> None:
        """Register one step; a second step for the same (type, version) is a bug."""
        if from_version < 1:
            raise ValueError(f"from_version must be >= 1, got {from_version}")
        key = (event_type, from_version)
        if key in self._steps:
            raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
        self._steps[key] = fn

    def steps(self) -> list[tuple[str, int]]:
        """Registered (type, from_version) pairs, sorted; for docs and tests."""
        return sorted(self._steps)

    def upcast(
        self,
        event: dict[str, Any],
        *,
        event_type: str,
        from_version: int,
        to_version: int,
    ) -> dict[str, Any]:
        """Apply the chain of steps from `from_version` up to `to_version`."""
        version = from_version
        while version < to_version:
            step = self._steps.get((event_type, version))
            if step is None:
                raise UpcastError(
                    f"no upcaster from version {version} to {version + 1} of {event_type!r}"
                )
            try:
                lifted = step(event)
            except Exception as exc:  # an upcaster meeting malformed old data
                raise UpcastError(
                    f"upcasting {event_type!r} v{version} to v{version + 1} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(lifted, dict):
                raise UpcastError(
                    f"upcaster for {event_type!r} v{version} returned "
                    f"{type(lifted).__name__}, not a dict"
                )
            version += 1
            event = {**lifted, "schemaversion": version}
        return event


UPCASTERS = Upcasters()
register = UPCASTERS.register

# Production upcasters go here, e.g. @register("thrive.help.received", from_version=1).


@register("thrive.celebration.delivered", from_version=1)
def celebration_delivered_v1_v2(event: dict[str, Any]) -> dict[str, Any]:
    """v1 named one recipient and their team; v2 lists recipients with a team each."""
    data = dict(event["data"])
    if "recipient" in data:
        data["recipients"] = [data.pop("recipient")]
        data["teams"] = [data.pop("team", None)]
    return {**event, "data": data}
