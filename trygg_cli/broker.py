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

from firmware_sim.fleet import device_ids
from gateway.provisioning import (
    ProvisioningError,
    Role,
    ensure_service_account,
    issue_device_credentials,
    new_password,
    reload_broker,
    write_atomic,
    write_broker_auth,
)
from gateway.provisioning import fleet_credentials as fleet_credentials_for
from gateway.registry import add_device
from trygg.mqtt import parse_login_file, render_login_file
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


def _group(value: str | None) -> str | int | None:
    return int(value) if value is not None and value.isdigit() else value


DevicePasswordFile = Annotated[Path, typer.Option(help="password_file of the device listeners")]
ServicePasswordFile = Annotated[Path, typer.Option(help="password_file of the service listener")]
AclFile = Annotated[Path, typer.Option(help="acl_file of every listener")]
Group = Annotated[str | None, typer.Option(help="group (name or gid) that may read the files, e.g. mosquitto")]


@broker_app.command("write-auth")
def write_auth(
    device_password_file: DevicePasswordFile,
    service_password_file: ServicePasswordFile,
    acl_file: AclFile,
    reload_pid: Annotated[int | None, typer.Option(help="Mosquitto's pid: send it SIGHUP to reload")] = None,
    group: Group = None,
) -> None:
    """Write both password files and the ACL from the database (retired devices left out), optionally reload."""
    root = get_settings().topic_root

    async def work(session: AsyncSession) -> None:
        await write_broker_auth(
            session, device_password_file, service_password_file, acl_file, root, group=_group(group)
        )

    _in_transaction(work)
    typer.echo(f"wrote {device_password_file}, {service_password_file} and {acl_file}")
    if reload_pid is not None:
        reload_broker(reload_pid)
        typer.echo(f"asked Mosquitto (pid {reload_pid}) to reload them")


@broker_app.command("provision")
def provision(
    device_password_file: DevicePasswordFile,
    service_password_file: ServicePasswordFile,
    acl_file: AclFile,
    group: Group = None,
    fleet_count: Annotated[int, typer.Option(help="register this many simulated devices (trygg sim run)")] = 0,
    fleet_prefix: Annotated[str, typer.Option(help="their id prefix")] = "sim",
    fleet_credentials: Annotated[
        Path | None, typer.Option(help="write their logins here (device_id:password), for TRYGG_SIM_CREDENTIALS_FILE")
    ] = None,
) -> None:
    """One step for a fresh stack (docker compose): migrate the gateway's database, create the service accounts
    from TRYGG_GATEWAY_MQTT_* and TRYGG_RECEIVER_MQTT_*, optionally register a simulated fleet with its own
    logins (kept across runs while they still match), and write the broker's files."""
    s = get_settings()
    accounts = [
        (s.gateway_mqtt_username, s.gateway_mqtt_password, Role.GATEWAY),
        (s.receiver_mqtt_username, s.receiver_mqtt_password, Role.RECEIVER),
    ]
    known = parse_login_file(fleet_credentials.read_text()) if fleet_credentials and fleet_credentials.exists() else {}

    async def work(session: AsyncSession) -> dict[str, str]:
        for username, password, role in accounts:
            if username and password:
                await ensure_service_account(session, username, role.value, password.get_secret_value())
        fleet = list(device_ids(fleet_count, fleet_prefix))
        for device_id, device_type in fleet:
            await add_device(session, device_id, device_type, exist_ok=True)
        passwords = await fleet_credentials_for(session, [d for d, _ in fleet], known)
        await write_broker_auth(
            session, device_password_file, service_password_file, acl_file, s.topic_root, group=_group(group)
        )
        return passwords

    passwords = _in_transaction(work)  # the gateway's store is migrated first
    if fleet_credentials is not None:
        write_atomic(fleet_credentials, render_login_file(passwords), mode=0o600)
    typer.echo(f"wrote {device_password_file}, {service_password_file} and {acl_file}; {len(passwords)} fleet logins")


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
