"""Need-to-know: what each role may see of a client record, and the supervision-log entry of every view.

- **case officer** (and admin): manages records, sees all of them (every view logged, reason ``manage``);
- **operator**: the record without the protected fields; the protected fields (health notes, door code, key-safe
  code) only while handling an open alarm of that client (``alarm``), logged with that alarm;
- **patrol**: the record only for a client of an open alarm assigned to it, the protected fields likewise;
- **technician**: address, area and devices, never a name, health notes or codes.

What is logged (``client.viewed``, ``client.protected_viewed``): who, when, which alarm, which fields, the role and
the reason: never a field's value. ``trygg log client REF`` and ``GET /api/v1/clients/{id}/log`` list them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from alarm_receiver import queue
from alarm_receiver.clients import repository
from alarm_receiver.clients.models import PROTECTED_FIELDS, Client
from alarm_receiver.clients.schemas import ClientView, ContactOut, DeviceLinkOut, LockStateOut, ProtectedView
from alarm_receiver.models import QueueAlarm, User
from trygg import audit
from trygg.errors import CodedError

MANAGERS = ("case_officer", "admin")
TECH_FIELDS = ("street", "postcode", "town", "floor", "entrance", "lat", "lon", "area")
BASE_FIELDS = (
    "name",
    *TECH_FIELDS,
    "language",
    "hard_of_hearing",
    "speech_impaired",
    "interpreter",
    "practical_notes",
    "care_unit",
    "key_safe_location",
    "key_number",
)


class AccessRefused(CodedError):
    status = 403


class NoAlarmOfClient(CodedError):
    status = 404


async def _alarm_for(session: AsyncSession, user: User, client: Client, alarm_pk: int | None) -> QueueAlarm:
    """The open alarm of this client that the user handles (operator) or was assigned (patrol); refused otherwise."""
    if alarm_pk is None:
        raise AccessRefused(
            "client.needs_open_alarm", "only while handling an open alarm of this client", role=user.role
        )
    try:
        alarm = await queue.get_alarm(session, alarm_pk)
    except queue.NotFound:
        alarm = None
    if (
        alarm is None
        or alarm.client_id != client.id
        or alarm.state not in queue.OPEN_STATES
        or (user.role == "patrol" and alarm.assigned_to != user.username)
    ):
        raise NoAlarmOfClient(
            "client.alarm_not_open",
            f"alarm {alarm_pk} is not an open alarm of this client that you handle",
            alarm=alarm_pk,
        )
    return alarm


async def _log(
    session: AsyncSession, user: User, action: str, client: Client, alarm: QueueAlarm | None, **details: Any
) -> None:
    await audit.append(
        session,
        actor=user.username,
        action=action,
        client_ref=client.ref,
        subject=f"alarm:{alarm.device_id}/{alarm.alarm_id}" if alarm is not None else f"client-{client.ref}"[:128],
        details={"role": user.role, "alarm": alarm.id if alarm is not None else None, **details},
    )


async def view_record(session: AsyncSession, user: User, client_id: int, alarm_pk: int | None = None) -> ClientView:
    """The record as the user's role may see it, after logging the view."""
    client = await repository.get_client(session, client_id)
    alarm: QueueAlarm | None = None
    if user.role in MANAGERS:
        fields: tuple[str, ...] = (*BASE_FIELDS, *PROTECTED_FIELDS)
        reason = "manage"
    elif user.role == "operator":
        fields, reason = BASE_FIELDS, "operator"
        if alarm_pk is not None:
            alarm = await _alarm_for(session, user, client, alarm_pk)
            reason = "alarm"
    elif user.role == "patrol":
        alarm = await _alarm_for(session, user, client, alarm_pk)
        fields, reason = BASE_FIELDS, "alarm"
    elif user.role == "technician":
        fields, reason = TECH_FIELDS, "technician"
    else:
        raise AccessRefused("auth.forbidden", f"role {user.role!r} may not see client records", role=user.role)
    values: dict[str, Any] = {name: getattr(client, name) for name in fields}
    if user.role != "technician":
        values["has_key_safe"] = bool(client.key_safe_location or client.key_safe_code)
        values["contacts"] = [ContactOut.model_validate(c) for c in client.contacts]
    values["devices"] = [DeviceLinkOut.model_validate(d) for d in await repository.devices_of(session, client.id)]
    values["locks"] = [LockStateOut.model_validate(s) for s in await repository.lock_states(session, client.id)]
    shown = [f for f in fields if f in PROTECTED_FIELDS]
    await _log(session, user, "client.viewed", client, alarm, reason=reason, protected=shown or None)
    return ClientView(id=client.id, ref=client.ref, **values)


async def view_protected(session: AsyncSession, user: User, client_id: int, alarm_pk: int | None) -> ProtectedView:
    """Health notes and the door and key-safe codes, under the rule above; every view logged with its alarm."""
    client = await repository.get_client(session, client_id)
    alarm: QueueAlarm | None = None
    if user.role in MANAGERS:
        reason = "manage"
    elif user.role in ("operator", "patrol"):
        alarm = await _alarm_for(session, user, client, alarm_pk)
        reason = "alarm"
    else:
        raise AccessRefused(
            "client.protected_refused", f"role {user.role!r} never sees health notes or codes", role=user.role
        )
    await _log(session, user, "client.protected_viewed", client, alarm, reason=reason, fields=list(PROTECTED_FIELDS))
    return ProtectedView(
        client_id=client.id,
        alarm_id=alarm.id if alarm is not None else None,
        health_notes=client.health_notes,
        door_code=client.door_code,
        key_safe_code=client.key_safe_code,
    )


async def log_change(session: AsyncSession, user: User, client: Client, action: str, **details: Any) -> None:
    """A change to a record (created, replaced, a device linked or moved), logged without its values."""
    await _log(session, user, action, client, None, **details)


async def check_timeline(session: AsyncSession, user: User, client_id: int, alarm_pk: int | None) -> Client:
    """The client's history is for case officers, and for operators while handling an open alarm of the client."""
    client = await repository.get_client(session, client_id)
    if user.role in MANAGERS:
        return client
    if user.role != "operator":
        raise AccessRefused("auth.forbidden", f"role {user.role!r} may not see a client's history", role=user.role)
    alarm = await _alarm_for(session, user, client, alarm_pk)
    await _log(session, user, "client.history_viewed", client, alarm, reason="alarm")
    return client
