"""Per-request (or per-WebSocket) context handed to every resolver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import strawberry

from thrive_gateway.auth.principal import ANONYMOUS, Principal
from thrive_gateway.clients.api import Services
from thrive_gateway.clients.loaders import Loaders
from thrive_gateway.live.events import LiveState
from thrive_gateway.protection.rate_limit import RateLimiter
from thrive_gateway.settings import GatewaySettings


@dataclass
class GatewayContext:
    """Who is asking, and the gateway's collaborators."""

    services: Services
    live: LiveState
    settings: GatewaySettings
    rate_limiter: RateLimiter
    principal: Principal = ANONYMOUS
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = None
    # Set when the response may be cached: what it is built from (see live.responses).
    cache_tags: set[str] | None = None
    _loaders: Loaders | None = field(default=None, repr=False)

    @property
    def loaders(self) -> Loaders:
        """This operation's DataLoaders (created on first use)."""
        if self._loaders is None:
            self._loaders = Loaders(
                self.services, self.principal, people_cache=self.live.people_cache
            )
        return self._loaders

    def tag(self, tag: str) -> None:
        """Note that this response depends on `tag` (a no-op unless it may be cached)."""
        if self.cache_tags is not None:
            self.cache_tags.add(tag)

    def fresh_loaders(self) -> None:
        """Forget loaded items: a long-lived subscription must not serve stale people."""
        self._loaders = None


Info = strawberry.Info[GatewayContext, None]
