"""``trygg clients``: import and export the client register as CSV (docs/clients.md, "Import and export"); the
logic is ``alarm_receiver.clients.csv_io``."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from alarm_receiver.clients import csv_io
from trygg import audit
from trygg_cli.common import fail, receiver_store, run, settings

clients_app = typer.Typer(help="The client register (brukarregister): CSV import and export.", no_args_is_help=True)


@clients_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="the CSV file (UTF-8, comma or semicolon separated)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check every row, write nothing")] = False,
) -> None:
    """Import clients; every bad row is reported (row, column, reason) and a file with one imports nothing."""
    s = settings()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"error: cannot read {file} as UTF-8 text: {type(exc).__name__}") from None

    async def go() -> csv_io.ImportReport:
        async with receiver_store(s) as session:
            report = await csv_io.import_csv(session, text, dry_run=dry_run)
            if report.imported:
                await audit.append(
                    session,
                    actor=f"cli:{getpass.getuser()}",
                    action="client.imported",
                    details={"created": report.created, "updated": report.updated},
                )
            return report

    report = run(go())
    for e in report.errors:
        typer.echo(f"row {e.row}, column {e.column or '-'}: {e.reason}", err=True)
    summary = f"{report.rows} rows: {report.created} new, {report.updated} replaced, {report.devices_linked} devices"
    if report.errors:
        bad = len({e.row for e in report.errors})
        raise fail(f"{summary}; {bad} bad rows: nothing imported", 1)
    typer.echo(f"{summary}; {'checked, nothing written (dry run)' if dry_run else 'imported'}")


@clients_app.command()
def export(file: Annotated[Path, typer.Argument(help="where the CSV goes")]) -> None:
    """Export every record in the import's column set (health notes and codes included: keep the file safe)."""
    s = settings()

    async def go() -> int:
        async with receiver_store(s) as session:
            text, count = await csv_io.export_csv(session)
            await audit.append(
                session, actor=f"cli:{getpass.getuser()}", action="client.exported", details={"count": count}
            )
        file.write_text(text, encoding="utf-8")
        file.chmod(0o600)
        return count

    typer.echo(f"wrote {run(go())} clients to {file}")
