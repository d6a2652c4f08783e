"""``trygg db upgrade``: each service's database onto its own chain (and the supervision log's)."""

from __future__ import annotations

import typer

from alarm_receiver.db import migrate as migrate_receiver
from gateway.db import migrate as migrate_gateway
from trygg.db import engine_scope
from trygg_cli.common import run, settings

db_app = typer.Typer(help="The store's schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring both services' databases to the newest schema."""
    s = settings()

    async def go() -> None:
        for url, migrate in ((s.gateway_database_url, migrate_gateway), (s.receiver_database_url, migrate_receiver)):
            async with engine_scope(url) as engine:
                await migrate(engine)

    run(go())
    typer.echo("schema is up to date")
