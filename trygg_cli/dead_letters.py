"""``trygg dead-letters``: the gateway's dead letters on the command line (technicians); the logic is
``gateway.dead_letters``."""

from __future__ import annotations

from typing import Annotated

import typer

from gateway import dead_letters
from trygg.settings import get_settings
from trygg_cli.common import gateway_store, run

dead_letters_app = typer.Typer(help="Device messages the gateway could not handle.", no_args_is_help=True)


@dead_letters_app.command("list")
def list_letters(
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 50,
    device: Annotated[str | None, typer.Option(help="only this device's")] = None,
) -> None:
    """One line each: id, received (UTC), device, kind, code, size in bytes, reason. Payloads are not printed
    (they may hold personal text): read them through the API, where each read is logged."""
    s = get_settings()

    async def go() -> list[str]:
        async with gateway_store(s) as session:
            rows = await dead_letters.newest(session, limit, device)
        return [
            f"{r.id}\t{r.received_at:%Y-%m-%dT%H:%M:%SZ}\t{r.device_id or '-'}\t{r.kind or '-'}\t{r.code}\t{r.size}\t"
            f"{r.error}"
            for r in rows
        ]

    lines = run(go())
    for line in lines:
        typer.echo(line)
    if not lines:
        typer.echo("no dead letters")
