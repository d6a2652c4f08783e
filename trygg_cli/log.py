"""``trygg log``: verify the supervision log's chain, and show one client's entries (which is itself logged)."""

from __future__ import annotations

import asyncio
import getpass
from datetime import datetime
from typing import Annotated, Literal

import typer

from alarm_receiver.db import migrate as migrate_receiver
from gateway.db import migrate as migrate_gateway
from trygg import audit
from trygg.db import Migrator, transaction
from trygg.settings import get_settings

log_app = typer.Typer(help="The supervision log (hash-chained, append-only).", no_args_is_help=True)


def _stores(db: str) -> list[tuple[str, str, Migrator]]:
    s = get_settings()
    stores = {
        "gateway": (s.gateway_database_url, migrate_gateway),
        "receiver": (s.receiver_database_url, migrate_receiver),
    }
    return [(name, *stores[name]) for name in (stores if db == "both" else [db])]


@log_app.command()
def verify(db: Annotated[Literal["gateway", "receiver", "both"], typer.Option(help="which database")] = "both") -> None:
    """Check the chain; exit 1 and name the first bad entry when anything was altered, removed or reordered."""

    async def run() -> bool:
        ok = True
        for name, url, migrate in _stores(db):
            async with transaction(url, migrate) as session:
                result = await audit.verify(session)
            if result.ok:
                typer.echo(f"{name}: ok, {result.entries} entries")
            else:
                ok = False
                typer.echo(f"{name}: BROKEN at entry {result.first_bad_id}: {result.reason}", err=True)
        return ok

    if not asyncio.run(run()):
        raise typer.Exit(1)


@log_app.command()
def client(
    client_id: str,
    since: Annotated[str | None, typer.Option(help="ISO time, e.g. 2026-01-10T00:00+01:00")] = None,
    db: Annotated[Literal["gateway", "receiver"], typer.Option()] = "gateway",
) -> None:
    """Who looked at a client, when, for how long, and everything else logged about them."""
    start = datetime.fromisoformat(since) if since else None

    async def run() -> None:
        (_, url, migrate) = _stores(db)[0]
        async with transaction(url, migrate) as session:
            for e in await audit.read_client_log(session, client_id, actor=f"cli:{getpass.getuser()}", since=start):
                d = e.details or {}
                extra = ""
                if e.action == "checkin.look_ended":
                    extra = f" {d.get('duration_s')} s, ended: {d.get('reason')}"
                elif d.get("outcome") or d.get("reason") or d.get("text"):
                    extra = f" {d.get('outcome') or d.get('reason') or d.get('text')}"
                typer.echo(
                    f"{e.at.isoformat(timespec='seconds')}  #{e.id}  {e.actor:<16} {e.action:<24} {e.subject}{extra}"
                )

    asyncio.run(run())
