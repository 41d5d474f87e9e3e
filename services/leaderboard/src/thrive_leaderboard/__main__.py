"""`thrive-leaderboard serve | migrate | rebuild`."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from thrive_shared import service
from thrive_shared.db import create_pool
from thrive_shared.db import migrate as run_migrations

from thrive_leaderboard.adapters.repository import Repository
from thrive_leaderboard.bootstrap import SERVICE, build_spec, make_keys
from thrive_leaderboard.service_layer.apply import Applier
from thrive_leaderboard.service_layer.rebuild import (
    RebuildReport,
    copy_owned_state,
    replay_into,
)
from thrive_leaderboard.service_layer.rollup import horizon, roll_up
from thrive_leaderboard.settings import LeaderboardSettings

cli = typer.Typer(help="Thrive leaderboard service.", no_args_is_help=True)
console = Console(stderr=True)


@cli.command()
def serve() -> None:
    """Run the service (HTTP on THRIVE_LEADERBOARD_PORT, consumers, live updates)."""
    service.serve(build_spec())


@cli.command()
def migrate() -> None:
    """Apply pending migrations to the leaderboard schema."""
    applied = service.migrate(build_spec())
    console.print(f"applied {len(applied)} migration(s)")


@cli.command()
def rebuild(
    schema: str = typer.Option("leaderboard_rebuild", help="Fresh schema to rebuild into."),
    swap: bool = typer.Option(False, help="Put the rebuilt schema in place of the live one."),
    batch: int = typer.Option(5000, min=1, help="Events per transaction."),
) -> None:
    """Rebuild all standings by replaying the topics from the beginning into fresh tables."""
    s = LeaderboardSettings()
    if schema == SERVICE:
        raise typer.BadParameter("rebuild into a fresh schema, not the live one")
    with psycopg.connect(s.database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    run_migrations(s.database_url, schema=schema, migrations_dir=build_spec(s).migrations_dir)
    started = time.perf_counter()
    report = asyncio.run(_rebuild(s, schema=schema, batch=batch))
    console.print(
        f"rebuilt {schema}: {report.applied} events applied, {report.duplicates} duplicates, "
        f"{report.invalid} invalid, in {time.perf_counter() - started:.1f}s"
    )
    if swap:
        stamp = time.strftime("%Y%m%d%H%M%S")
        with psycopg.connect(s.database_url, autocommit=True) as conn, conn.transaction():
            conn.execute(f'ALTER SCHEMA "{SERVICE}" RENAME TO "{SERVICE}_old_{stamp}"')
            conn.execute(f'ALTER SCHEMA "{schema}" RENAME TO "{SERVICE}"')
        console.print(f"swapped: the old schema is {SERVICE}_old_{stamp}; restart the service")


async def _rebuild(s: LeaderboardSettings, *, schema: str, batch: int) -> RebuildReport:
    pool = await create_pool(s.database_url, schema=schema, min_size=1, max_size=2)
    try:
        await copy_owned_state(pool, from_schema=SERVICE)
        applier = Applier(repo=Repository(), keys=make_keys(s), tz=s.tz(), boards=None)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("directory", total=None)

            def on_total(n: int) -> None:
                progress.update(task, total=(progress.tasks[0].total or 0) + n)

            report = await replay_into(
                pool,
                bootstrap_servers=s.kafka_bootstrap_servers,
                topic_groups=[
                    [s.topic_directory_person],
                    [s.topic_help_received, s.topic_milestone_reached],
                ],
                applier=applier,
                consumer_name=s.consumer_name,
                on_total=on_total,
                on_progress=lambda n: progress.update(task, advance=n, description="events"),
                batch=batch,
            )
        # Replayed history is all day rows: roll the old days up as the service would.
        before = horizon(datetime.now(UTC), s.tz(), s.rollup_keep_days)
        await roll_up(pool, Repository(), before=before)
        return report
    finally:
        await pool.close()


def main() -> None:
    """Console entry point."""
    cli()


if __name__ == "__main__":
    main()
