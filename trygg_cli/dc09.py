"""``trygg dc09``: the DC-09 registry (technicians); the logic is ``gateway.protocols.dc09.accounts``.

A key is never an argument (shell history, ``ps``): ``--generate-key`` makes one and prints it once, for the unit's
configuration; ``--key-file`` reads one (hex) from a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.protocols.dc09.accounts import AccountError, add_account, list_accounts, new_key, remove_account
from trygg_cli.common import fail, gateway_store, run, settings

dc09_app = typer.Typer(
    help="SIA DC-09 accounts: which device a unit's account is, and its AES key.", no_args_is_help=True
)


@dc09_app.command("add")
def dc09_add(
    account: Annotated[str, typer.Argument(help="the unit's account, 3-16 hex digits")],
    device: Annotated[str, typer.Option(help="the registered device it is (trygg devices add)")],
    receiver: Annotated[str | None, typer.Option(help="receiver number (hex); default: any")] = None,
    line: Annotated[str | None, typer.Option(help="line number (hex); default: any")] = None,
    generate_key: Annotated[
        int | None, typer.Option(help="make an AES key of 128, 192 or 256 bits, print it once")
    ] = None,
    key_file: Annotated[Path | None, typer.Option(help="read the AES key (hex) from this file")] = None,
) -> None:
    """Map a DC-09 account (with receiver and line) to a device; encrypted units need a key."""
    s = settings()
    if generate_key is not None and key_file is not None:
        raise fail("error: give --generate-key or --key-file, not both")
    try:
        key = new_key(generate_key) if generate_key is not None else None
        if key_file is not None:
            key = key_file.read_text(encoding="ascii").strip()
    except (AccountError, OSError, UnicodeDecodeError) as exc:
        raise fail(f"error: {exc}") from None

    async def go() -> None:
        async with gateway_store(s) as session:
            await add_account(session, account, device, receiver=receiver, line=line, key=key)

    try:
        run(go())
    except AccountError as exc:
        raise fail(f"error: {exc}") from None
    typer.echo(f"DC-09 account {account.upper()} is device {device}" + (" (encrypted)" if key else ""))
    if generate_key is not None:
        typer.echo(f"AES key (configure it in the unit; it is not shown again): {key}")


@dc09_app.command("list")
def dc09_list(device: Annotated[str | None, typer.Option(help="only this device's accounts")] = None) -> None:
    """List DC-09 accounts: account, receiver, line, device, whether it encrypts (never the key)."""
    s = settings()

    async def go() -> None:
        async with gateway_store(s) as session:
            for row in await list_accounts(session, device):
                crypt = "encrypted" if row.aes_key else "plain"
                typer.echo(f"{row.account}\tR{row.receiver or '*'}\tL{row.line or '*'}\t{row.device_id}\t{crypt}")

    run(go())


@dc09_app.command("remove")
def dc09_remove(
    account: str,
    receiver: Annotated[str | None, typer.Option(help="receiver number as registered")] = None,
    line: Annotated[str | None, typer.Option(help="line number as registered")] = None,
) -> None:
    """Remove a DC-09 account: its frames get DUH from now on."""
    s = settings()

    async def go() -> None:
        async with gateway_store(s) as session:
            await remove_account(session, account, receiver=receiver, line=line)

    try:
        run(go())
    except AccountError as exc:
        raise fail(f"error: {exc}") from None
    typer.echo(f"removed DC-09 account {account.upper()}")
