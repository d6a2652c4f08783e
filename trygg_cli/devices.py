"""``trygg devices``: the device registry (technicians); the logic is ``gateway.registry``."""

from __future__ import annotations

from typing import Annotated

import typer

from devices import DeviceType
from gateway.registry import RegistryError, add_device, list_devices, retire_device
from trygg_cli.common import fail, gateway_store, run, settings

devices_app = typer.Typer(help="The device registry (technicians).", no_args_is_help=True)


@devices_app.command("add")
def devices_add(
    device_id: str,
    type: Annotated[DeviceType, typer.Option("--type", help="device type")],
    client_ref: Annotated[str | None, typer.Option(help="the client's reference")] = None,
    location: Annotated[str | None, typer.Option(help="address or location text")] = None,
) -> None:
    """Register a device so the gateway accepts its messages."""
    s = settings()

    async def go() -> None:
        async with gateway_store(s) as session:
            await add_device(session, device_id, type, client_ref=client_ref, location=location)

    try:
        run(go())
    except RegistryError as exc:
        raise fail(f"error: {exc}") from None
    typer.echo(f"registered {device_id} ({type.value})")


@devices_app.command("add-fleet")
def devices_add_fleet(
    count: Annotated[int, typer.Option(help="how many simulated devices")] = 5,
    prefix: Annotated[str, typer.Option(help="id prefix, as given to `trygg sim run`")] = "sim",
) -> None:
    """Register the ids that `trygg sim run --count N --prefix P` uses (already registered ones are kept)."""
    from firmware_sim.fleet import device_ids

    s = settings()

    async def go() -> None:
        async with gateway_store(s) as session:
            for device_id, device_type in device_ids(count, prefix):
                await add_device(session, device_id, device_type, exist_ok=True)

    run(go())
    typer.echo(f"registered {count} simulated devices with prefix {prefix!r}")


@devices_app.command("list")
def devices_list(all: Annotated[bool, typer.Option("--all", help="include retired devices")] = False) -> None:
    """List registered devices."""
    s = settings()

    async def go() -> None:
        async with gateway_store(s) as session:
            for d in await list_devices(session, include_retired=all):
                retired = f" retired {d.retired_at:%Y-%m-%d}" if d.retired_at else ""
                typer.echo(f"{d.id}\t{d.type}\t{d.client_ref or '-'}\t{d.location or '-'}{retired}")

    run(go())


@devices_app.command("retire")
def devices_retire(device_id: str) -> None:
    """Retire a device: the gateway refuses its messages from now on."""
    s = settings()

    async def go() -> None:
        async with gateway_store(s) as session:
            await retire_device(session, device_id)

    try:
        run(go())
    except RegistryError as exc:
        raise fail(f"error: {exc}") from None
    typer.echo(f"retired {device_id}")
