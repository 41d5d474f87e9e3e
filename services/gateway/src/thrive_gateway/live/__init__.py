"""Live topics: in-process pub/sub for subscriptions and event-invalidated read models."""

from thrive_gateway.live.cache import TtlCache
from thrive_gateway.live.events import LiveState
from thrive_gateway.live.hub import Hub

__all__ = ["Hub", "LiveState", "TtlCache"]
