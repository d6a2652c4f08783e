"""``trygg broker ...``: broker logins for devices and services, and the broker's password file and ACL.

The logic is ``gateway.provisioning``. Clear passwords are printed exactly once, when issued; the database keeps
only Mosquitto hashes.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.provisioning import (
    ProvisioningError,
    Role,
    ensure_service_account,
    issue_device_credentials,
    new_password,
    reload_broker,
    write_broker_auth,
)
from trygg.settings import get_settings
from trygg_cli.common import fail, gateway_store

T = TypeVar("T")

broker_app = typer.Typer(
    help="Broker logins (devices, gateway, receiver) and Mosquitto's auth files.", no_args_is_help=True
)


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction on the gateway's database; a refusal becomes exit code 1."""
    s = get_settings()

    async def go() -> T:
        async with gateway_store(s) as session:
            return await work(session)

    try:
        return asyncio.run(go())
    except ProvisioningError as exc:
        raise fail(f"error: {exc}") from None


@broker_app.command("write-auth")
def write_auth(
    password_file: Annotated[Path, typer.Option(help="Mosquitto's password_file")],
    acl_file: Annotated[Path, typer.Option(help="Mosquitto's acl_file")],
    reload_pid: Annotated[int | None, typer.Option(help="Mosquitto's pid: send it SIGHUP to reload")] = None,
    group: Annotated[str | None, typer.Option(help="group that may read the files (e.g. mosquitto)")] = None,
) -> None:
    """Write the password file and ACL from the database (retired devices left out), optionally reload."""
    root = get_settings().topic_root

    async def work(session: AsyncSession) -> None:
        await write_broker_auth(session, password_file, acl_file, root, group=group)

    _in_transaction(work)
    typer.echo(f"wrote {password_file} and {acl_file}")
    if reload_pid is not None:
        reload_broker(reload_pid)
        typer.echo(f"asked Mosquitto (pid {reload_pid}) to reload them")


@broker_app.command("service-account")
def service_account(
    name: str,
    role: Annotated[Role, typer.Option(help="what the account may do")],
    password: Annotated[str | None, typer.Option(help="omit to be asked, or use --generate")] = None,
    generate: Annotated[bool, typer.Option(help="generate a password and print it once")] = False,
) -> None:
    """Create or update the broker account of the gateway or the receiver."""
    if generate and password is not None:
        typer.echo("error: give --password or --generate, not both", err=True)
        raise typer.Exit(2)
    clear = new_password() if generate else (password if password is not None else getpass.getpass("password: "))

    async def work(session: AsyncSession) -> None:
        await ensure_service_account(session, name, role.value, clear)

    _in_transaction(work)
    typer.echo(f"service account {name} ({role.value})" + (f" password: {clear}" if generate else ""))


@broker_app.command("device-credentials")
def device_credentials(device_id: str) -> None:
    """Issue (or rotate) a device's broker password and print it once; then run write-auth."""

    async def work(session: AsyncSession) -> str:
        return await issue_device_credentials(session, device_id)

    password = _in_transaction(work)
    typer.echo(f"username: {device_id}")
    typer.echo(f"password: {password}")
