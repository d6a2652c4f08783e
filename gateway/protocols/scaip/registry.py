"""The SCAIP unit registry: add, list, change and remove the mapping of a unit's identity to a Trygg device, and
find the device a request comes from. Used by the receiver (:func:`find_unit`), the technicians' API
(``api.py``) and ``trygg scaip``; plain functions on a session, the caller commits."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import Device
from gateway.protocols.scaip.models import ScaipUnit

CID_RE = re.compile(r"^[0-9]{1,16}$")
DID_RE = re.compile(r"^[^\x00-\x1f]{1,8}$")


class UnitError(ValueError):
    """A refused registry change; ``code`` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def add_unit(
    session: AsyncSession,
    cid: str,
    device_id: str,
    *,
    did: str | None = None,
    crd: str | None = None,
    mre: int = 0,
    hbi: int | None = None,
    mrs_in_200: bool = False,
) -> ScaipUnit:
    if not CID_RE.match(cid):
        raise UnitError("scaip.bad_cid", "cid must be 1-16 digits")
    if did is not None and not DID_RE.match(did):
        raise UnitError("scaip.bad_did", "did must be 1-8 characters")
    if crd is not None and not 0 < len(crd) <= 256:
        raise UnitError("scaip.bad_crd", "crd must be 1-256 characters")
    if not 0 <= mre <= 3:
        raise UnitError("scaip.bad_mre", "mre must be 0-3")
    if hbi is not None and not 0 <= hbi <= 4:
        raise UnitError("scaip.bad_hbi", "hbi must be 0-4")
    device = await session.get(Device, device_id)
    if device is None or device.retired_at is not None:
        raise UnitError("scaip.unknown_device", f"no registered device {device_id!r}")
    existing = await session.scalar(
        select(ScaipUnit).where(ScaipUnit.cid == cid, ScaipUnit.did.is_(None) if did is None else ScaipUnit.did == did)
    )
    if existing is not None:
        raise UnitError("scaip.unit_exists", "that SCAIP identity is already mapped")
    unit = ScaipUnit(cid=cid, did=did, crd=crd, device_id=device_id, mre=mre, hbi=hbi, mrs_in_200=mrs_in_200)
    session.add(unit)
    await session.flush()
    return unit


async def list_units(session: AsyncSession) -> Sequence[ScaipUnit]:
    return (await session.scalars(select(ScaipUnit).order_by(ScaipUnit.cid, ScaipUnit.did))).all()


async def remove_unit(session: AsyncSession, unit_id: int) -> ScaipUnit:
    unit = await session.get(ScaipUnit, unit_id)
    if unit is None:
        raise UnitError("scaip.no_unit", f"no SCAIP unit {unit_id}")
    await session.delete(unit)
    return unit


async def units_of(session: AsyncSession, cid: str) -> list[ScaipUnit]:
    """Every entry of one controller."""
    return list((await session.scalars(select(ScaipUnit).where(ScaipUnit.cid == cid))).all())


def pick(units: Sequence[ScaipUnit], did: str | None, crd: str | None) -> ScaipUnit | None:
    """The entry a request's identity maps to among its controller's: the device ``did``'s own first, then the
    controller's (no ``did``); None when there is none, or when its ``crd`` is set and the request's differs."""
    candidates = [u for u in units if u.did is not None and u.did == did] + [u for u in units if u.did is None]
    for unit in candidates:
        if unit.crd is None or unit.crd == crd:
            return unit
    return None


async def find_unit(session: AsyncSession, cid: str, did: str | None, crd: str | None) -> ScaipUnit | None:
    return pick(await units_of(session, cid), did, crd)


async def controller_devices(session: AsyncSession, cid: str) -> list[str]:
    """Every Trygg device a controller's identities map to (a reset may come from another of its devices)."""
    return list((await session.scalars(select(ScaipUnit.device_id).where(ScaipUnit.cid == cid))).all())
