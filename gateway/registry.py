"""The device registry: register, list and retire devices (issue "device fleet" extends it)."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from devices import DeviceType
from devices.topics import DEVICE_ID_RE
from gateway.models import Device
from trygg.db import utcnow


class RegistryError(ValueError):
    pass


async def add_device(
    session: AsyncSession,
    device_id: str,
    device_type: DeviceType,
    *,
    client_ref: str | None = None,
    location: str | None = None,
    exist_ok: bool = False,
) -> Device:
    if not DEVICE_ID_RE.match(device_id):
        raise RegistryError(f"device id {device_id!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
    existing = await session.get(Device, device_id)
    if existing is not None:
        if exist_ok and existing.retired_at is None:
            return existing
        raise RegistryError(f"device {device_id!r} is already registered")
    device = Device(
        id=device_id,
        type=device_type.value,
        client_ref=client_ref,
        location=location,
        supervision_class="camera" if device_type is DeviceType.CAMERA else "alarm",
    )
    session.add(device)
    await session.flush()
    return device


async def list_devices(session: AsyncSession, *, include_retired: bool = False) -> Sequence[Device]:
    stmt = select(Device).order_by(Device.id)
    if not include_retired:
        stmt = stmt.where(Device.retired_at.is_(None))
    return (await session.scalars(stmt)).all()


async def retire_device(session: AsyncSession, device_id: str) -> Device:
    device = await session.get(Device, device_id)
    if device is None:
        raise RegistryError(f"no device {device_id!r}")
    if device.retired_at is None:
        device.retired_at = utcnow()
    return device
