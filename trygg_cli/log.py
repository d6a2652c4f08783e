"""``trygg log``: verify the supervision log's chain and its signed checkpoints, make a signing key, sign the head
now, and show one client's entries (which is itself logged)."""

from __future__ import annotations

import asyncio
import getpass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from alarm_receiver.db import migrate as migrate_receiver
from gateway.db import migrate as migrate_gateway
from trygg import audit
from trygg.audit import anchor
from trygg.db import Migrator, engine_scope, session_factory, transaction
from trygg.settings import get_settings

log_app = typer.Typer(
    help="The supervision log (hash-chained, append-only, anchored by signed checkpoints).", no_args_is_help=True
)


def _stores(db: str) -> list[tuple[str, str, Migrator]]:
    s = get_settings()
    stores = {
        "gateway": (s.gateway_database_url, migrate_gateway),
        "receiver": (s.receiver_database_url, migrate_receiver),
    }
    return [(name, *stores[name]) for name in (stores if db == "both" else [db])]


def _anchor_keys() -> dict[str, Ed25519PublicKey]:
    s = get_settings()
    texts = list(s.audit_public_keys)
    if not texts and s.audit_signing_key_file is not None:
        texts = [anchor.public_key_text(anchor.load_signing_key(s.audit_signing_key_file).public_key())]
    return anchor.trusted_keys(texts)


@log_app.command()
def verify(db: Annotated[Literal["gateway", "receiver", "both"], typer.Option(help="which database")] = "both") -> None:
    """Check the chain and, when TRYGG_AUDIT_CHECKPOINT_FILE is set, the signed checkpoints outside the database;
    exit 1 naming what was altered, removed, reordered, truncated, wiped or rewritten."""
    s = get_settings()
    path = s.audit_checkpoint_file
    try:
        keys = _anchor_keys() if path is not None else {}
        lines = anchor.read(path) if path is not None and path.exists() else []
    except (anchor.AnchorError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None

    async def run() -> bool:
        ok = True
        for name, url, migrate in _stores(db):
            async with transaction(url, migrate) as session:
                result = await audit.verify(session)
                problems = await anchor.verify(session, name, lines, keys) if path is not None else []
                head, _ = await anchor.chain_head(session)
            if path is not None and head > 0 and not any(not isinstance(c, str) and c.db == name for _, c in lines):
                problems.append(f"no checkpoint of the {name} log in {path}, though it has {head} entries")
            if not result.ok:
                ok = False
                typer.echo(f"{name}: BROKEN at entry {result.first_bad_id}: {result.reason}", err=True)
            for problem in problems:
                ok = False
                typer.echo(f"{name}: ANCHOR: {problem}", err=True)
            if result.ok and not problems:
                how = f"anchored by {path}" if path is not None else "NOT anchored (set TRYGG_AUDIT_CHECKPOINT_FILE)"
                typer.echo(f"{name}: ok, {result.entries} entries, {how}")
        return ok

    if not asyncio.run(run()):
        raise typer.Exit(1)


@log_app.command()
def keygen(
    out: Annotated[Path, typer.Option(help="where the private key goes (mode 0600; never overwritten)")],
) -> None:
    """Make an Ed25519 signing key for the log's checkpoints; prints the public key for TRYGG_AUDIT_PUBLIC_KEYS."""
    try:
        public = anchor.generate_key(out)
    except anchor.AnchorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {out}")
    typer.echo(f"public key: {public}")


@log_app.command()
def checkpoint(
    db: Annotated[Literal["gateway", "receiver", "both"], typer.Option(help="which database")] = "both",
) -> None:
    """Sign the log's head now and append it to TRYGG_AUDIT_CHECKPOINT_FILE (the services do so on their own)."""
    s = get_settings()
    if s.audit_signing_key_file is None or s.audit_checkpoint_file is None:
        typer.echo("error: set TRYGG_AUDIT_SIGNING_KEY_FILE and TRYGG_AUDIT_CHECKPOINT_FILE", err=True)
        raise typer.Exit(2)
    key_file, out = s.audit_signing_key_file, s.audit_checkpoint_file

    async def run() -> None:
        for name, url, migrate in _stores(db):
            async with engine_scope(url) as engine:
                await migrate(engine)
                signed = await anchor.Checkpointer(session_factory(engine), name, key_file, out, 1).checkpoint()
            if signed is not None:
                typer.echo(f"{name}: signed entry {signed.last_id}")

    asyncio.run(run())


@log_app.command()
def client(
    client_id: str,
    since: Annotated[str | None, typer.Option(help="ISO time, e.g. 2026-01-10T00:00+01:00")] = None,
    db: Annotated[Literal["gateway", "receiver", "both"], typer.Option()] = "both",
) -> None:
    """The client's own extract (loggkontroll): who looked at them or their record, when, why, for how long, and
    everything else logged about them. The gateway's log holds camera looks and consents, the receiver's the
    client record's views and the alarms."""
    start = datetime.fromisoformat(since) if since else None

    async def run() -> None:
        for name, url, migrate in _stores(db):
            async with transaction(url, migrate) as session:
                entries = await audit.read_client_log(session, client_id, actor=f"cli:{getpass.getuser()}", since=start)
            for e in entries:
                typer.echo(
                    f"{e.at.isoformat(timespec='seconds')}  {name[:2]}#{e.id}  {e.actor:<16} {e.action:<24} "
                    f"{e.subject}{_why(e.action, e.details or {})}"
                )

    asyncio.run(run())


def _why(action: str, d: dict[str, object]) -> str:
    """What an entry adds to its line: a look's length, a record view's reason and alarm, an outcome."""
    if action == "checkin.look_ended":
        return f" {d.get('duration_s')} s, ended: {d.get('reason')}"
    if action.startswith("client.") and d.get("reason"):
        alarm = f" alarm {d['alarm']}" if d.get("alarm") else ""
        fields = d.get("fields") or d.get("protected")
        shown = f" saw {', '.join(map(str, fields))}" if isinstance(fields, list) and fields else ""
        return f" why: {d.get('reason')}{alarm} ({d.get('role')}){shown}"
    if d.get("outcome") or d.get("reason") or d.get("text"):
        return f" {d.get('outcome') or d.get('reason') or d.get('text')}"
    return ""
