"""Command line: `thrive-gateway serve` and `thrive-gateway export-schema`."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Thrive's GraphQL gateway.", no_args_is_help=True)
SDL_PATH = Path(__file__).resolve().parents[2] / "schema.graphql"


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default from settings)."),
    port: int | None = typer.Option(None, help="Port (default from settings)."),
    in_memory: bool = typer.Option(
        False, help="Serve demo data from memory instead of calling the services."
    ),
) -> None:
    """Run the gateway with uvicorn."""
    import uvicorn
    from thrive_shared.observability import setup_logging, setup_tracing

    from thrive_gateway.app import build_gateway, create_app
    from thrive_gateway.settings import GatewaySettings

    settings = GatewaySettings()
    setup_logging("gateway", level=settings.log_level, json=settings.log_json)
    setup_tracing("thrive-gateway", otlp_endpoint=settings.otel_exporter_otlp_endpoint)
    services = None
    if in_memory:
        from thrive_gateway.auth.dev_issuer import DEMO_USERS
        from thrive_gateway.clients.memory import InMemoryPlatform

        platform = InMemoryPlatform()
        for user in DEMO_USERS:
            platform.add_person(user.id, user.name, user.team)
        services = platform.services()
    if in_memory:
        settings = settings.model_copy(update={"live_consumers": False})
    gateway = build_gateway(settings, services=services)
    uvicorn.run(
        create_app(gateway),
        host=host or settings.host,
        port=port or settings.port,
        ws_max_size=settings.max_body_bytes,
        # Messages are small JSON: compressing each one cost more CPU (a fresh zlib stream
        # per message) than everything else in a 1,000-socket fan-out.
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        lifespan="on",
    )


@app.command("export-schema")
def export_schema(
    output: Path = typer.Option(SDL_PATH, help="Where to write the SDL."),  # noqa: B008
) -> None:
    """Write the GraphQL SDL (as `strawberry export-schema` prints it)."""
    from thrive_gateway.schema import schema

    output.write_text(schema.as_str() + "\n")
    typer.echo(f"wrote {output}")


def main() -> None:
    """Entry point of the `thrive-gateway` script."""
    app()


if __name__ == "__main__":
    main()
