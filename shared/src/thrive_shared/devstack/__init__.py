"""The local stack: real Apache Kafka (KRaft) and PostgreSQL for development and tests.

    from thrive_shared.devstack import ensure_up
    ep = ensure_up()          # starts what is not running yet; idempotent
    ep.kafka_bootstrap        # "127.0.0.1:19092"
    ep.database_url           # "postgresql://thrive:thrive@127.0.0.1:15432/thrive"

CLI: `uv run python -m thrive_shared.devstack up|down|status|env|logs`.
KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL select external servers instead.
"""

from thrive_shared.devstack.config import StackConfig
from thrive_shared.devstack.errors import PrerequisiteError, StackError
from thrive_shared.devstack.stack import (
    CANONICAL_TOPICS,
    ComponentStatus,
    Endpoints,
    down,
    endpoints,
    ensure_up,
    status,
)

__all__ = [
    "CANONICAL_TOPICS",
    "ComponentStatus",
    "Endpoints",
    "PrerequisiteError",
    "StackConfig",
    "StackError",
    "down",
    "endpoints",
    "ensure_up",
    "status",
]
