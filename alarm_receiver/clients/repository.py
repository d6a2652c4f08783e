"""Reading and writing client records: create, replace, device links (with history), search, the client of an
alarm. No HTTP, no access rules (access.py) here."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from alarm_receiver.clients.models import Client, ClientContact, ClientDevice, LockState
from alarm_receiver.clients.schemas import ClientIn
from trygg.db import utcnow
from trygg.errors import CodedError


class ClientError(CodedError):
    status = 422


class ClientNotFound(ClientError):
    status = 404


class ClientConflict(ClientError):
    status = 409


def phone_digits(phone: str) -> str:
    """A phone number's digits in the national form, for search (``+46 70-123 45 67`` -> ``0701234567``)."""
    digits = re.sub(r"\D", "", phone)
    if phone.strip().startswith("+46"):
        return "0" + digits[2:]
    if digits.startswith("0046"):
        return "0" + digits[4:]
    return digits


async def get_client(session: AsyncSession, client_id: int) -> Client:
    client = await session.scalar(select(Client).where(Client.id == client_id).options(selectinload(Client.contacts)))
    if client is None:
        raise ClientNotFound("client.not_found", f"no client {client_id}", id=client_id)
    return client


async def by_ref(session: AsyncSession, ref: str) -> Client | None:
    return await session.scalar(select(Client).where(Client.ref == ref).options(selectinload(Client.contacts)))


def _apply(client: Client, data: ClientIn) -> None:
    for name, value in data.model_dump(exclude={"contacts"}).items():
        setattr(client, name, value)
    client.contacts = [
        ClientContact(position=i, phone_digits=phone_digits(c.phone), **c.model_dump())
        for i, c in enumerate(data.contacts, start=1)
    ]
    client.updated_at = utcnow()


async def create_client(session: AsyncSession, data: ClientIn) -> Client:
    if await by_ref(session, data.ref) is not None:
        raise ClientConflict("client.ref_taken", f"a client with reference {data.ref} exists", ref=data.ref)
    client = Client(contacts=[])
    _apply(client, data)
    session.add(client)
    await session.flush()
    return client


async def replace_client(session: AsyncSession, client_id: int, data: ClientIn) -> Client:
    client = await get_client(session, client_id)
    if data.ref != client.ref and await by_ref(session, data.ref) is not None:
        raise ClientConflict("client.ref_taken", f"a client with reference {data.ref} exists", ref=data.ref)
    _apply(client, data)
    await session.flush()
    return client


async def devices_of(session: AsyncSession, client_id: int, *, history: bool = False) -> list[ClientDevice]:
    stmt = select(ClientDevice).where(ClientDevice.client_id == client_id)
    if not history:
        stmt = stmt.where(ClientDevice.unlinked_at.is_(None))
    return list((await session.scalars(stmt.order_by(ClientDevice.linked_at, ClientDevice.id))).all())


async def link_device(session: AsyncSession, client_id: int, device_id: str, kind: str) -> ClientDevice:
    """The device belongs to this client from now on; a link it had to another client ends now (its alarms so far
    stay with that client)."""
    await get_client(session, client_id)
    now = utcnow()
    current = await session.scalars(
        select(ClientDevice).where(ClientDevice.device_id == device_id, ClientDevice.unlinked_at.is_(None))
    )
    for link in current:
        if link.client_id == client_id and link.kind == kind:
            return link
        link.unlinked_at = now
    link = ClientDevice(client_id=client_id, device_id=device_id, kind=kind, linked_at=now)
    session.add(link)
    await session.flush()
    return link


async def unlink_device(session: AsyncSession, client_id: int, device_id: str) -> None:
    links = list(
        await session.scalars(
            select(ClientDevice).where(
                ClientDevice.client_id == client_id,
                ClientDevice.device_id == device_id,
                ClientDevice.unlinked_at.is_(None),
            )
        )
    )
    if not links:
        raise ClientNotFound("client.device_not_linked", f"{device_id} is not linked", device_id=device_id)
    for link in links:
        link.unlinked_at = utcnow()
    await session.flush()


async def client_for_device(session: AsyncSession, device_id: str, client_ref: object = None) -> Client | None:
    """The client a device belongs to now: its open link, else the client whose reference the gateway's registry
    gave the alarm (``details.client_ref``)."""
    client = await session.scalar(
        select(Client)
        .join(ClientDevice, ClientDevice.client_id == Client.id)
        .where(ClientDevice.device_id == device_id, ClientDevice.unlinked_at.is_(None))
        .limit(1)
    )
    if client is None and isinstance(client_ref, str) and client_ref:
        client = await session.scalar(select(Client).where(Client.ref == client_ref))
    return client


async def clients_for_devices(
    session: AsyncSession, wanted: Iterable[tuple[str, str | None]]
) -> dict[tuple[str, str | None], Client | None]:
    """:func:`client_for_device` for many (device_id, client_ref) pairs at once (an intake batch): two statements
    for the whole batch instead of one or two per alarm; the same answer for each pair."""
    pairs = set(wanted)
    devices = {device_id for device_id, _ in pairs}
    linked: dict[str, Client] = {}
    if devices:
        rows = await session.execute(
            select(ClientDevice.device_id, Client)
            .join(Client, ClientDevice.client_id == Client.id)
            .where(ClientDevice.device_id.in_(devices), ClientDevice.unlinked_at.is_(None))
        )
        for device_id, client in rows:
            linked.setdefault(device_id, client)
    refs = {ref for device_id, ref in pairs if device_id not in linked and ref}
    by_ref: dict[str, Client] = {}
    if refs:
        by_ref = {c.ref: c for c in await session.scalars(select(Client).where(Client.ref.in_(refs)))}
    return {(device_id, ref): linked.get(device_id) or (by_ref.get(ref) if ref else None) for device_id, ref in pairs}


async def lock_states(session: AsyncSession, client_id: int) -> list[LockState]:
    locks = select(ClientDevice.device_id).where(
        ClientDevice.client_id == client_id, ClientDevice.kind == "lock", ClientDevice.unlinked_at.is_(None)
    )
    return list((await session.scalars(select(LockState).where(LockState.device_id.in_(locks)))).all())


async def search(session: AsyncSession, q: str, limit: int = 50) -> Sequence[Client]:
    """By name, address (street, postcode, town), reference, device id (linked now or before) or phone number of
    the client's call list. Case-insensitive, any part of the text."""
    q = q.strip()
    stmt = select(Client)
    if q:
        like = f"%{q.lower()}%"
        conds = [
            func.lower(Client.name).like(like),
            func.lower(Client.street).like(like),
            func.lower(Client.town).like(like),
            func.lower(Client.postcode).like(like),
            func.lower(Client.ref).like(like),
            Client.id.in_(select(ClientDevice.client_id).where(func.lower(ClientDevice.device_id).like(like))),
        ]
        digits = phone_digits(q)
        if len(digits) >= 3:
            conds.append(
                Client.id.in_(select(ClientContact.client_id).where(ClientContact.phone_digits.like(f"%{digits}%")))
            )
            conds.append(func.replace(Client.postcode, " ", "").like(f"%{digits}%"))
        stmt = stmt.where(or_(*conds))
    return (await session.scalars(stmt.order_by(Client.name, Client.id).limit(limit))).all()


async def active_devices(session: AsyncSession, client_ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in client_ids}
    rows = await session.execute(
        select(ClientDevice.client_id, ClientDevice.device_id)
        .where(ClientDevice.client_id.in_(client_ids), ClientDevice.unlinked_at.is_(None))
        .order_by(ClientDevice.id)
    )
    for client_id, device_id in rows:
        out[client_id].append(device_id)
    return out


async def active_device_kinds(session: AsyncSession, client_ids: Sequence[int]) -> dict[str, str]:
    """device id -> kind (device, camera, lock) of the open links of these clients."""
    rows = await session.execute(
        select(ClientDevice.device_id, ClientDevice.kind).where(
            ClientDevice.client_id.in_(client_ids), ClientDevice.unlinked_at.is_(None)
        )
    )
    return {device_id: kind for device_id, kind in rows}
