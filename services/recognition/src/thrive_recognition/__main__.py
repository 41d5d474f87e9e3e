"""`thrive-recognition serve | migrate | expire-asks`."""

from __future__ import annotations

import asyncio

import typer
from thrive_shared import service
from thrive_shared.db import create_pool

from thrive_recognition.adapters.unit_of_work import SqlUnitOfWork
from thrive_recognition.service_layer import handlers
from thrive_recognition.settings import RecognitionSettings

app = typer.Typer(add_completion=False, help="Thrive recognition service.")


@app.command()
def serve() -> None:
    """Run the HTTP API, the consumers, the outbox relay and the expiry sweep."""
    from thrive_recognition.bootstrap import build_spec

    service.serve(build_spec())


@app.command()
def migrate() -> None:
    """Apply the shared and recognition's migrations to the recognition schema."""
    from thrive_recognition.bootstrap import build_spec

    applied = service.migrate(build_spec())
    typer.echo(f"applied {len(applied)} migration(s)")


@app.command("expire-asks")
def expire_asks(limit: int = typer.Option(5000, help="At most this many asks.")) -> None:
    """Expire open asks past their time once (the running service also sweeps periodically)."""
    settings = RecognitionSettings()
    policies = settings.policies()

    async def run() -> int:
        pool = await create_pool(settings.database_url, schema=settings.db_schema, max_size=2)
        try:
            async with pool.acquire() as conn, conn.transaction():
                uow = SqlUnitOfWork(conn)
                expired = await handlers.expire_asks(uow, policies=policies, limit=limit)
                await uow.flush()
            return len(expired)
        finally:
            await pool.close()

    typer.echo(f"expired {asyncio.run(run())} ask(s)")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
