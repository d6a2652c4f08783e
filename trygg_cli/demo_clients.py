"""The demo's client register (issue 10): a handful of clients in the made-up town of Ekby, with call lists, patrol
areas, the fleet's devices linked to them, one key safe and one digital lock (a simulated one), and the grant keys
the receiver and the gateway need for unlocks. Everything here is invented."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from alarm_receiver.clients import repository, routing
from alarm_receiver.clients.schemas import ClientIn, ContactIn
from alarm_receiver.db import migrate as migrate_receiver
from devices import DeviceType
from gateway.db import migrate as migrate_gateway
from gateway.models import Device
from gateway.registry import add_device
from trygg.audit.anchor import generate_key, load_signing_key, public_key_text
from trygg.db import engine_scope, session_factory
from trygg.settings import Settings

DEMO_LOCK = "sim-lock-001"
AREAS = (("ekby-norr", "Ekby norra"), ("ekby-syd", "Ekby södra"))


def _client(ref: str, name: str, street: str, area: str, lat: float, lon: float, **more: Any) -> ClientIn:
    defaults: dict[str, Any] = {"language": "sv", "care_unit": f"Hemtjänst {area.split('-')[1].capitalize()}"}
    return ClientIn(
        ref=ref, name=name, street=street, postcode="123 45", town="Ekby", area=area, lat=lat, lon=lon,
        **{**defaults, **more},
    )  # fmt: skip


def demo_clients(camera_client: str) -> list[ClientIn]:
    return [
        _client(
            camera_client,
            "Astrid Lindqvist",
            "Björkvägen 12",
            "ekby-norr",
            59.3301,
            18.0602,
            floor="2",
            entrance="Port B",
            door_code="1942",
            hard_of_hearing=True,
            practical_notes="Katt (Måns). Syrgas i sovrummet: ingen öppen låga.",
            health_notes="Hjärtsvikt, vätskedrivande. Rullator.",
            key_safe_location="Nyckelgömma till vänster om ytterdörren",
            key_safe_code="4711",
            contacts=[
                ContactIn(name="Karin Lindqvist", relation="dotter", phone="070-123 45 67", has_key=True),
                ContactIn(name="Per Ek", relation="granne", phone="08-555 121 21", call_at_night=False),
            ],
        ),
        _client(
            "demo-client-2",
            "Bengt Nilsson",
            "Ekgatan 3",
            "ekby-norr",
            59.3320,
            18.0655,
            floor="4",
            entrance="Hiss A",
            door_code="2210",
            speech_impaired=True,
            practical_notes="Hund (snäll). Röker på balkongen.",
            health_notes="Parkinson. Tal svårt på natten.",
            contacts=[ContactIn(name="Lena Nilsson", relation="hustru", phone="070-987 65 43", has_key=True)],
        ),  # the digital lock is his
        _client(
            "demo-client-3",
            "Signe Håkansson",
            "Lindgatan 4",
            "ekby-syd",
            59.3250,
            18.0701,
            key_number="S-14",
            language="fi",
            interpreter=True,
            health_notes="Demens, lätt. Diabetes typ 2.",
            contacts=[ContactIn(name="Mikko Håkansson", relation="son", phone="073-111 22 33")],
        ),
        _client(
            "demo-client-4",
            "Gösta Berg",
            "Aspvägen 9",
            "ekby-syd",
            59.3233,
            18.0644,
            key_number="S-22",
            practical_notes="Bor med hustrun Ingrid.",
            contacts=[ContactIn(name="Ingrid Berg", relation="hustru", phone="070-444 55 66", has_key=True)],
        ),
        _client(
            "demo-client-5",
            "Märta Sjöberg",
            "Storgatan 1",
            "ekby-norr",
            59.3290,
            18.0588,
            floor="1",
            key_number="N-03",
            health_notes="KOL.",
            contacts=[ContactIn(name="Anders Sjöberg", relation="son", phone="072-777 88 99", call_at_night=False)],
        ),
    ]


def grant_keys(settings: Settings) -> dict[str, object]:
    """The unlock grant keys in the data dir (docs/clients.md, "Digital locks"), unless the settings name some."""
    if settings.lock_grant_signing_key_file is not None:
        return {}
    key = settings.data_dir / "lock-grant-signing.pem"
    if not key.exists():
        generate_key(key)
    public = public_key_text(load_signing_key(key).public_key())
    return {"lock_grant_signing_key_file": key, "lock_grant_public_keys": [public]}


async def seed(
    settings: Settings,
    fleet: Sequence[tuple[str, object]],
    camera: str,
    camera_client: str,
    owned: Mapping[str, str] | None = None,
) -> None:
    """Areas, clients and links in the receiver; the lock (and each device's client_ref) in the gateway.
    ``owned``: devices with a given client (the voice base unit and its pendant), besides the fleet's."""
    clients = demo_clients(camera_client)
    owner = {device_id: clients[i % len(clients)].ref for i, (device_id, _) in enumerate(fleet)}
    owner[camera] = camera_client
    owner.update(owned or {})
    async with engine_scope(settings.gateway_database_url) as engine:
        await migrate_gateway(engine)
        async with session_factory(engine).begin() as session:
            await add_device(session, DEMO_LOCK, DeviceType.LOCK, client_ref="demo-client-2", exist_ok=True)
            for device_id, ref in owner.items():
                device = await session.get(Device, device_id)
                if device is not None:
                    device.client_ref = ref
    async with engine_scope(settings.receiver_database_url) as engine:
        await migrate_receiver(engine)
        async with session_factory(engine).begin() as session:
            for code, name in AREAS:
                await routing.put_area(session, code, name)
            ids: dict[str, int] = {}
            for data in clients:
                known = await repository.by_ref(session, data.ref)
                client = (
                    await repository.replace_client(session, known.id, data)
                    if known is not None
                    else await repository.create_client(session, data)
                )
                ids[data.ref] = client.id
            for device_id, ref in owner.items():
                kind = "camera" if device_id == camera else "device"
                await repository.link_device(session, ids[ref], device_id, kind)
            await repository.link_device(session, ids["demo-client-2"], DEMO_LOCK, "lock")
