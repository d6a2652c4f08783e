"""Technicians' device API: registry, health with filters, remote configuration, installation tests.

Thin routes over the fleet feature (``gateway/fleet/feature.py``), the registry and the core's installation-test
window; refusals are domain errors (``gateway/errors.py``).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import select

from devices import DeviceType
from devices.types import TECHNICAL_ALARM_TYPES
from gateway.api.deps import ApiUser, PortDep, SessionDep, feature, require_roles
from gateway.errors import Conflict, NotFound
from gateway.fleet.feature import FleetFeature
from gateway.fleet.supervision import DeviceState
from gateway.models import Device, InstallTest, StoredAlarm
from gateway.registry import RegistryError, add_device, retire_device
from trygg.errors import responses

Technician = Annotated[ApiUser, Depends(require_roles("technician"))]
HealthReader = Annotated[ApiUser, Depends(require_roles("technician", "operator"))]
Fleet = Annotated[FleetFeature, Depends(feature(FleetFeature))]
TECHNICAL_TYPES = sorted(t.value for t in TECHNICAL_ALARM_TYPES)  # the contract's list (devices/types.py)


class Network(StrEnum):
    ETHERNET = "ethernet"
    WIFI = "wifi"
    LTE = "lte"
    NR5G = "5g"
    G3 = "3g"
    G2 = "2g"


class SupervisionClass(StrEnum):
    ALARM = "alarm"
    CAMERA = "camera"


class HealthFilter(StrEnum):
    OFFLINE = "offline"
    LOW_BATTERY = "low_battery"
    MAINS_LOST = "mains_lost"
    AT_RISK_NETWORK = "at_risk_network"
    STALE_FIRMWARE = "stale_firmware"


class DeviceIn(BaseModel):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    type: DeviceType
    client_ref: Annotated[str, StringConstraints(max_length=128)] | None = None
    location: Annotated[str, StringConstraints(max_length=500)] | None = None
    installed_on: date | None = None
    firmware_version: Annotated[str, StringConstraints(max_length=64)] | None = None
    network: Network | None = None
    supervision_class: SupervisionClass | None = None
    area: Annotated[str, StringConstraints(max_length=64)] | None = None


class ConfigIn(BaseModel):
    heartbeat_interval_s: Annotated[int, Field(ge=60, le=86400)]
    extra: dict[str, Any] = Field(default_factory=dict)


class InstallTestIn(BaseModel):
    window_s: Annotated[float, Field(ge=1, le=3600)] | None = None


class HealthOut(BaseModel):
    status: str
    last_seen: datetime | None
    status_since: datetime | None
    battery_pct: int | None
    has_mains: bool | None  # false: battery-only (no mains to lose); null: the device has not said
    mains: bool | None
    signal_dbm: int | None
    network: str | None
    firmware: str | None
    config_version: int | None
    heartbeat_interval_s: float
    open_offline_alarm: str | None
    flaps: int
    flags: list[str]


class DeviceOut(BaseModel):
    id: str
    type: str
    client_ref: str | None
    location: str | None
    installed_on: date | None
    firmware_version: str | None
    network: str | None
    supervision_class: str
    area: str | None
    registered_at: datetime
    retired_at: datetime | None
    health: HealthOut | None


class ConfigOut(BaseModel):
    version: int
    heartbeat_interval_s: int
    extra: dict[str, Any]
    changed_by: str
    changed_at: datetime
    applied_at: datetime | None


class InstallTestOut(BaseModel):
    id: int
    device_id: str
    started_by: str
    started_at: datetime
    deadline: datetime
    state: str
    alarm_id: str | None
    stored_at: datetime | None
    finished_at: datetime | None
    end_to_end_ms: float | None
    detail: str | None
    detail_code: str | None = None


class TechnicalAlarmOut(BaseModel):
    alarm_id: str
    type: str
    stored_at: datetime


class DeviceDetailOut(DeviceOut):
    config: ConfigOut | None
    open_technical_alarms: list[TechnicalAlarmOut]
    install_tests: list[InstallTestOut]


def flags_of(fleet: FleetFeature, device: Device, st: DeviceState | None) -> list[str]:
    s = fleet.settings
    flags: list[str] = []
    if st is not None:
        if st.status == "offline":
            flags.append("offline")
        if st.battery_pct is not None and st.battery_pct < s.low_battery_pct:
            flags.append("low_battery")
        if st.mains is False and st.has_mains is not False:  # a battery-only device has no mains to lose
            flags.append("mains_lost")
    network = (st.network if st else None) or device.network
    if network in s.at_risk_networks:
        flags.append("at_risk_network")
    firmware = (st.firmware if st else None) or device.firmware_version
    current = s.current_firmware.get(device.type)
    if current is not None and firmware is not None and firmware != current:
        flags.append("stale_firmware")
    return flags


def device_out(fleet: FleetFeature, device: Device) -> dict[str, Any]:
    st = fleet.supervisor.states.get(device.id)
    health = None
    if st is not None:
        fleet.supervisor.sync_times([st])
        health = HealthOut(
            status=st.status,
            last_seen=st.last_seen,
            status_since=st.status_since,
            battery_pct=st.battery_pct,
            has_mains=st.has_mains,
            mains=st.mains,
            signal_dbm=st.signal_dbm,
            network=st.network,
            firmware=st.firmware,
            config_version=st.config_version,
            heartbeat_interval_s=st.interval_s,
            open_offline_alarm=st.open_alarm_id,
            flaps=st.flaps,
            flags=flags_of(fleet, device, st),
        )
    return {
        "id": device.id,
        "type": device.type,
        "client_ref": device.client_ref,
        "location": device.location,
        "installed_on": device.installed_on,
        "firmware_version": device.firmware_version,
        "network": device.network,
        "supervision_class": device.supervision_class,
        "area": device.area,
        "registered_at": device.registered_at,
        "retired_at": device.retired_at,
        "health": health,
    }


# 503: the receiver, which checks every token, cannot be reached (auth.check_unavailable)
router = APIRouter(prefix="/devices", tags=["devices"], responses=responses(401, 403, 404, 409, 422, 503))


async def _device(session: SessionDep, device_id: str) -> Device:
    device = await session.get(Device, device_id)
    if device is None:
        raise NotFound("device.not_found", f"no device {device_id!r}", device_id=device_id)
    return device


def _active(device: Device) -> None:
    if device.retired_at is not None:
        raise Conflict("device.retired", f"device {device.id!r} is retired", device_id=device.id)


@router.get("", response_model=list[DeviceOut])
async def list_devices(
    session: SessionDep,
    user: HealthReader,
    fleet: Fleet,
    flag: Annotated[list[HealthFilter] | None, Query(description="only devices with all these flags")] = None,
    include_retired: bool = False,
    limit: Annotated[int, Query(ge=1, le=50000)] = 5000,
) -> list[dict[str, Any]]:
    stmt = select(Device).where(~Device.id.startswith("area-")).order_by(Device.id)
    if not include_retired:
        stmt = stmt.where(Device.retired_at.is_(None))
    wanted = {f.value for f in flag or []}
    out = []
    for device in (await session.scalars(stmt)).all():
        row = device_out(fleet, device)
        flags = set(row["health"].flags if row["health"] else flags_of(fleet, device, None))
        if wanted <= flags:
            out.append(row)
        if len(out) >= limit:
            break
    return out


@router.post("", response_model=DeviceOut, status_code=201)
async def register(body: DeviceIn, session: SessionDep, user: Technician, fleet: Fleet) -> dict[str, Any]:
    try:
        device = await add_device(session, body.id, body.type, client_ref=body.client_ref, location=body.location)
    except RegistryError as exc:
        raise Conflict("device.already_registered", str(exc), device_id=body.id) from None
    device.installed_on = body.installed_on
    device.firmware_version = body.firmware_version
    device.network = body.network.value if body.network else None
    device.supervision_class = (
        body.supervision_class.value if body.supervision_class else ("camera" if body.type == "camera" else "alarm")
    )
    device.area = body.area
    await session.commit()
    return device_out(fleet, device)


@router.get("/{device_id}", response_model=DeviceDetailOut)
async def detail(device_id: str, session: SessionDep, user: HealthReader, fleet: Fleet) -> dict[str, Any]:
    device = await _device(session, device_id)
    open_alarms = (
        await session.scalars(
            select(StoredAlarm)
            .where(
                StoredAlarm.device_id == device_id,
                StoredAlarm.type.in_(TECHNICAL_TYPES),
                StoredAlarm.resolved_at.is_(None),
                StoredAlarm.cancelled_at.is_(None),
            )
            .order_by(StoredAlarm.stored_at.desc())
            .limit(20)
        )
    ).all()
    tests = (
        await session.scalars(
            select(InstallTest).where(InstallTest.device_id == device_id).order_by(InstallTest.id.desc()).limit(10)
        )
    ).all()
    config = fleet.configs.get(device_id)
    return device_out(fleet, device) | {
        "config": ConfigOut.model_validate(config, from_attributes=True) if config else None,
        "open_technical_alarms": [
            TechnicalAlarmOut(alarm_id=a.alarm_id, type=a.type, stored_at=a.stored_at) for a in open_alarms
        ],
        "install_tests": [InstallTestOut.model_validate(t, from_attributes=True) for t in tests],
    }


@router.post("/{device_id}/retire", response_model=DeviceOut)
async def retire(device_id: str, session: SessionDep, user: Technician, fleet: Fleet) -> dict[str, Any]:
    await _device(session, device_id)
    device = await retire_device(session, device_id)
    await session.commit()
    fleet.forget(device_id)
    return device_out(fleet, device)


@router.put("/{device_id}/config", response_model=ConfigOut)
async def configure(device_id: str, body: ConfigIn, session: SessionDep, user: Technician, fleet: Fleet) -> ConfigOut:
    _active(await _device(session, device_id))
    await session.close()
    row = await fleet.set_config(device_id, body.heartbeat_interval_s, body.extra, user.username)
    return ConfigOut.model_validate(row, from_attributes=True)


@router.post("/{device_id}/install-test", response_model=InstallTestOut, status_code=201)
async def install_test(
    device_id: str, body: InstallTestIn, session: SessionDep, user: Technician, port: PortDep
) -> InstallTest:
    _active(await _device(session, device_id))
    await session.close()
    window = body.window_s or port.settings.install_test_window_s
    return await port.install_tests.start(device_id, user.username, window)


@router.get("/{device_id}/install-tests", response_model=list[InstallTestOut])
async def install_tests(device_id: str, session: SessionDep, user: HealthReader) -> list[InstallTest]:
    await _device(session, device_id)
    rows = await session.scalars(
        select(InstallTest).where(InstallTest.device_id == device_id).order_by(InstallTest.id.desc()).limit(50)
    )
    return list(rows.all())
