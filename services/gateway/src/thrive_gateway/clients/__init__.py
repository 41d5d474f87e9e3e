"""Clients for the services' internal APIs, and per-request DataLoaders over them."""

from thrive_gateway.clients.api import (
    BoardQuery,
    LeaderboardApi,
    NotifierApi,
    RecognitionApi,
    Services,
)
from thrive_gateway.clients.errors import ServiceError, ServiceUnavailable

__all__ = [
    "BoardQuery",
    "LeaderboardApi",
    "NotifierApi",
    "RecognitionApi",
    "ServiceError",
    "ServiceUnavailable",
    "Services",
]
