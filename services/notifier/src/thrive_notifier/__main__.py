"""`thrive-notifier serve | deliver | migrate | parked list | parked retry | send-digests`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import typer
from thrive_shared import service
from thrive_shared.db import create_pool

from thrive_notifier.adapters.postgres import PostgresUnitOfWork
from thrive_notifier.service_layer.delivery import list_parked, retry_parked
from thrive_notifier.service_layer.schedule import send_digests, send_reminders
from thrive_notifier.settings import NotifierSettings

T = TypeVar("T")
app = typer.Typer(add_completion=False, help="Thrive notifier service.")
parked_app = typer.Typer(add_completion=False, help="Deliveries that gave up: list and retry.")
app.add_typer(parked_app, name="parked")


def _with_uow(work: Callable[[PostgresUnitOfWork], Awaitable[T]]) -> T:
    settings = NotifierSettings()

    async def run() -> T:
        pool = await create_pool(
            settings.database_url, schema=settings.schema_name, min_size=1, max_size=2
        )
        try:
            return await work(PostgresUnitOfWork(pool, defaults=settings.default_preferences()))
        finally:
            await pool.close()

    return asyncio.run(run())


@app.command()
def serve() -> None:
    """Run the HTTP API, the consumers, the delivery worker, the scheduler and the relay."""
    from thrive_notifier.bootstrap import build_spec

    service.serve(build_spec())


@app.command()
def deliver() -> None:
    """Run delivery workers only: `serve` starts these itself (delivery_processes)."""
    from thrive_notifier.entrypoints.delivery_process import main as deliver_main

    deliver_main()


@app.command()
def migrate() -> None:
    """Apply the shared and the notifier's migrations to the notifier schema."""
    from thrive_notifier.bootstrap import build_spec

    applied = service.migrate(build_spec())
    typer.echo(f"applied {len(applied)} migration(s)")


@parked_app.command("list")
def parked_list(limit: int = typer.Option(100, help="At most this many.")) -> None:
    """Parked deliveries, oldest first: id, channel, recipient, attempts, last error."""
    rows = _with_uow(lambda uow: list_parked(uow, limit=limit))
    if not rows:
        typer.echo("no parked deliveries")
        return
    typer.echo("id\tchannel\trecipient\tkind\tattempts\tcreated_at\tlast_error")
    for r in rows:
        typer.echo(
            f"{r.id}\t{r.channel}\t{r.recipient_kind}:{r.recipient}\t{r.kind}\t{r.attempts}\t"
            f"{r.created_at.isoformat(timespec='seconds')}\t{r.last_error or ''}"
        )


@parked_app.command("retry")
def parked_retry(
    ids: list[int] = typer.Argument(None, help="Delivery ids; none with --all."),  # noqa: B008
    all_: bool = typer.Option(False, "--all", help="Retry every parked delivery."),
) -> None:
    """Put parked deliveries back in line with a fresh attempt budget."""
    if not ids and not all_:
        raise typer.BadParameter("name delivery ids, or pass --all")
    n = _with_uow(lambda uow: retry_parked(uow, None if all_ else ids, now=datetime.now(UTC)))
    typer.echo(f"requeued {n} delivery(ies)")


@app.command("send-digests")
def send_digests_cmd(
    force: bool = typer.Option(False, help="Send every waiting digest now, ignoring schedules."),
) -> None:
    """Assemble and deliver due digests (and due unthanked-help reminders) once."""
    settings = NotifierSettings()

    async def work(uow: PostgresUnitOfWork) -> tuple[int, int]:
        digests = await send_digests(uow, clock=lambda: datetime.now(UTC), force=force)
        reminders = await send_reminders(
            uow,
            clock=lambda: datetime.now(UTC),
            after=timedelta(days=settings.reminder_after_days),
        )
        return digests.sent, sum(reminders.delivered.values())

    sent, reminded = _with_uow(work)
    typer.echo(f"sent {sent} digest(s), {reminded} reminder(s)")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
