"""The ``trygg`` command: services, the demo, the simulator, and the technician/admin tools."""

from __future__ import annotations

import asyncio
import getpass
import secrets
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from devices import DeviceType
from trygg.db import transaction
from trygg.logging import configure_logging
from trygg.settings import Settings, get_settings

T = TypeVar("T")

app = typer.Typer(help="Trygg: social alarms and camera check-ins for municipal elderly care.", no_args_is_help=True)
devices_app = typer.Typer(help="The device registry (technicians).", no_args_is_help=True)
user_app = typer.Typer(help="Operator, patrol, technician and admin accounts.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema (Alembic migrations).", no_args_is_help=True)
secrets_app = typer.Typer(help="Random shared secrets (intake token, metrics token, compose's env file).")
app.add_typer(devices_app, name="devices")
app.add_typer(secrets_app, name="secrets")
app.add_typer(user_app, name="user")
app.add_typer(db_app, name="db")


def _sim_app() -> typer.Typer:
    from firmware_sim.cli import app as sim_app

    return sim_app


app.add_typer(_sim_app(), name="sim", help="Simulated devices: a fleet, or one button press.")


def _broker_app() -> typer.Typer:
    from gateway.provisioning_cli import broker_app

    return broker_app


def _checkin_apps() -> tuple[typer.Typer, typer.Typer]:
    from gateway.checkin.cli import consent_app
    from trygg.audit.cli import log_app

    return consent_app, log_app


app.add_typer(_checkin_apps()[0], name="consent", help="Camera check-in consents (case officers).")
app.add_typer(_checkin_apps()[1], name="log", help="The supervision log: verify the chain, a client's entries.")
app.add_typer(_broker_app(), name="broker", help="Device and service credentials, the broker's password file and ACL.")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _settings() -> Settings:
    s = get_settings()
    configure_logging(s.log_level, s.log_json)
    return s


def _refuse_insecure(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(2)


@app.command()
def gateway() -> None:
    """Run the gateway: MQTT intake, durable store, forwarder to the receiver."""
    from gateway.app import create_app
    from trygg.secrets import InsecureSecret
    from trygg.serve import service_server

    s = _settings()
    try:
        app_ = create_app(s)
    except InsecureSecret as exc:
        raise _refuse_insecure(exc) from None
    _run(service_server(app_, s, "gateway").serve())


@app.command()
def receiver() -> None:
    """Run the alarm receiver: the patrol queue, its API and live feed."""
    from alarm_receiver.app import create_app
    from trygg.secrets import InsecureSecret
    from trygg.serve import service_server

    s = _settings()
    try:
        app_ = create_app(s)
    except InsecureSecret as exc:
        raise _refuse_insecure(exc) from None
    _run(service_server(app_, s, "receiver").serve())


@app.command()
def demo(
    devices: Annotated[int, typer.Option(help="simulated devices")] = 6,
    press_every: Annotated[float, typer.Option(help="seconds between simulated presses (0: none)")] = 20.0,
    embedded_broker: Annotated[
        bool, typer.Option(help="use the embedded amqtt broker even when Mosquitto is installed")
    ] = False,
) -> None:
    """Run the whole system on this machine: broker, gateway, receiver and a simulated fleet."""
    from trygg.demo import run_demo

    _run(run_demo(_settings(), devices=devices, press_every_s=press_every, prefer_mosquitto=not embedded_broker))


# --- devices -------------------------------------------------------------------------------------------
@devices_app.command("add")
def devices_add(
    device_id: str,
    type: Annotated[DeviceType, typer.Option("--type", help="device type")],
    client_ref: Annotated[str | None, typer.Option(help="the client's reference")] = None,
    location: Annotated[str | None, typer.Option(help="address or location text")] = None,
) -> None:
    """Register a device so the gateway accepts its messages."""
    from gateway.registry import RegistryError, add_device

    s = _settings()

    async def go() -> None:
        async with transaction(s.gateway_database_url) as session:
            await add_device(session, device_id, type, client_ref=client_ref, location=location)

    try:
        _run(go())
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"registered {device_id} ({type.value})")


@devices_app.command("add-fleet")
def devices_add_fleet(
    count: Annotated[int, typer.Option(help="how many simulated devices")] = 5,
    prefix: Annotated[str, typer.Option(help="id prefix, as given to `trygg sim run`")] = "sim",
) -> None:
    """Register the ids that `trygg sim run --count N --prefix P` uses (already registered ones are kept)."""
    from firmware_sim.fleet import device_ids
    from gateway.registry import add_device

    s = _settings()

    async def go() -> None:
        async with transaction(s.gateway_database_url) as session:
            for device_id, device_type in device_ids(count, prefix):
                await add_device(session, device_id, device_type, exist_ok=True)

    _run(go())
    typer.echo(f"registered {count} simulated devices with prefix {prefix!r}")


@devices_app.command("list")
def devices_list(all: Annotated[bool, typer.Option("--all", help="include retired devices")] = False) -> None:
    """List registered devices."""
    from gateway.registry import list_devices

    s = _settings()

    async def go() -> None:
        async with transaction(s.gateway_database_url) as session:
            for d in await list_devices(session, include_retired=all):
                retired = f" retired {d.retired_at:%Y-%m-%d}" if d.retired_at else ""
                typer.echo(f"{d.id}\t{d.type}\t{d.client_ref or '-'}\t{d.location or '-'}{retired}")

    _run(go())


@devices_app.command("retire")
def devices_retire(device_id: str) -> None:
    """Retire a device: the gateway refuses its messages from now on."""
    from gateway.registry import RegistryError, retire_device

    s = _settings()

    async def go() -> None:
        async with transaction(s.gateway_database_url) as session:
            await retire_device(session, device_id)

    try:
        _run(go())
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"retired {device_id}")


# --- users ---------------------------------------------------------------------------------------------
@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="operator, patrol, technician, case_officer or admin")],
    password: Annotated[str | None, typer.Option(help="omit to be asked, or use --generate")] = None,
    generate: Annotated[bool, typer.Option(help="generate a password and print it")] = False,
    display_name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create a user who can log in to the receiver."""
    from alarm_receiver.auth import AuthError, Role, WeakPassword, create_user

    s = _settings()
    try:
        role_ = Role(role)
    except ValueError:
        typer.echo(f"error: unknown role {role!r}; one of {', '.join(r.value for r in Role)}", err=True)
        raise typer.Exit(2) from None
    if generate:
        password = secrets.token_urlsafe(12)
    elif password is None:
        password = getpass.getpass("password: ")

    async def go(pw: str) -> None:
        async with transaction(s.receiver_database_url) as session:
            await create_user(session, username, pw, role_, display_name, min_length=s.password_min_length)

    try:
        _run(go(password))
    except (AuthError, WeakPassword) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {role_.value} {username}" + (f" with password {password}" if generate else ""))


# --- secrets -------------------------------------------------------------------------------------------
@secrets_app.command("token")
def secrets_token() -> None:
    """Print a random token (for TRYGG_INTAKE_TOKEN or TRYGG_METRICS_TOKEN)."""
    from trygg.secrets import new_token

    typer.echo(new_token())


@secrets_app.command("compose-env")
def secrets_compose_env(
    out: Annotated[Path, typer.Option(help="the env file docker compose reads")] = Path(".env.compose"),
    force: Annotated[bool, typer.Option(help="replace an existing file (new secrets: reset the volumes too)")] = False,
) -> None:
    """Write every secret of the docker-compose stack (random) to OUT, mode 0600."""
    import os

    from trygg.secrets import compose_env

    if out.exists() and not force:
        typer.echo(f"error: {out} exists; keep it, or pass --force to replace it", err=True)
        raise typer.Exit(1)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(compose_env())
    typer.echo(f"wrote {out}: docker compose --env-file {out} up")


# --- database ------------------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring both services' databases to the newest schema."""
    s = _settings()

    async def go() -> None:
        from trygg.db import engine_scope, migrate

        for url in dict.fromkeys([s.gateway_database_url, s.receiver_database_url]):
            async with engine_scope(url) as engine:
                await migrate(engine)

    _run(go())
    typer.echo("schema is up to date")


if __name__ == "__main__":
    app()
