"""``trygg scaip``: the SCAIP unit registry (technicians): which Trygg device a unit's identity is. The logic is
``gateway.protocols.scaip.registry``; docs/protocols-scaip.md."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gateway.protocols.scaip.feature import ScaipFeature
from gateway.protocols.scaip.registry import UnitError, add_unit, list_units, remove_unit
from trygg_cli.common import fail, gateway_store, run, settings

scaip_app = typer.Typer(help="SCAIP units: identities (cid, did, crd) mapped to devices.", no_args_is_help=True)


@scaip_app.command("add")
def scaip_add(
    cid: Annotated[str, typer.Argument(help="the controller id (1-16 digits)")],
    device_id: Annotated[str, typer.Argument(help="the registered Trygg device it is")],
    did: Annotated[str | None, typer.Option(help="one device of the controller (default: the rest)")] = None,
    crd: Annotated[str | None, typer.Option(help="the caller id the unit must send (e.g. sip:...)")] = None,
    mre: Annotated[int, typer.Option(help="voice mode answered: 0 none, 1 duplex, 2 mic only, 3 speaker only")] = 0,
    hbi: Annotated[int | None, typer.Option(help="heartbeat interval code answered (0-4)")] = None,
    mrs_in_200: Annotated[bool, typer.Option(help="answer in the SIP 200 OK instead of a MESSAGE")] = False,
) -> None:
    """Map a SCAIP identity to a device: its alarms are then taken, answered and stored as the device's."""
    s = settings()

    async def go() -> int:
        async with gateway_store(s) as session:
            unit = await add_unit(session, cid, device_id, did=did, crd=crd, mre=mre, hbi=hbi, mrs_in_200=mrs_in_200)
            return unit.id

    try:
        unit_id = run(go())
    except UnitError as exc:
        raise fail(f"error: {exc}") from None
    typer.echo(f"SCAIP unit {unit_id}: cid {cid} did {did or '*'} -> {device_id}")


@scaip_app.command("list")
def scaip_list() -> None:
    """List SCAIP units: id, cid, did, crd, device, mre, hbi, answer in 200 OK."""
    s = settings()

    async def go() -> None:
        async with gateway_store(s) as session:
            for u in await list_units(session):
                typer.echo(
                    f"{u.id}\t{u.cid}\t{u.did or '*'}\t{u.crd or '-'}\t{u.device_id}\tmre={u.mre}\t"
                    f"hbi={'-' if u.hbi is None else u.hbi}\t{'mrs-in-200' if u.mrs_in_200 else 'mrs-message'}"
                )

    run(go())


@scaip_app.command("remove")
def scaip_remove(unit_id: int) -> None:
    """Remove a mapping: that identity's messages are refused (not treated) from now on."""
    s = settings()

    async def go() -> None:
        async with gateway_store(s) as session:
            await remove_unit(session, unit_id)

    try:
        run(go())
    except UnitError as exc:
        raise fail(f"error: {exc}") from None
    typer.echo(f"removed SCAIP unit {unit_id}")


def scaip_banner(gateway_app: Any) -> str:
    """``trygg demo``'s lines about its SCAIP receiver: where it listens, and how to map a unit."""
    try:
        server = gateway_app.state.gateway.feature(ScaipFeature).server
    except LookupError:
        return ""
    return (
        f"    scaip     SIP MESSAGE on {server.host} udp {server.udp_port} tcp {server.tcp_port}"
        " (map a unit first: trygg scaip add CID DEVICE; docs/protocols-scaip.md)\n"
    )
