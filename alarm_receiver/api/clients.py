"""Client register routes (docs/clients.md): search, the record under the need-to-know rules, the protected
fields, the case officer's edits and device links, the registry defects, the client's own log extract.
Logic lives in ``alarm_receiver.clients``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from alarm_receiver import auth, metrics, queue
from alarm_receiver.api.deps import CurrentUser, SessionDep, require_roles
from alarm_receiver.clients import access, csv_io, repository, timeline
from alarm_receiver.clients.schemas import (
    ClientIn,
    ClientSummary,
    ClientView,
    DeviceLinkIn,
    DeviceLinkOut,
    LogEntryOut,
    ProtectedView,
)
from alarm_receiver.models import QueueAlarm, User
from alarm_receiver.schemas import AlarmOut
from trygg import audit
from trygg.errors import ApiError, responses
from trygg.http import DbId

router = APIRouter(prefix="/clients", tags=["clients"], responses=responses(401, 403, 404, 409, 422))

Manager = Annotated[User, Depends(require_roles(auth.Role.CASE_OFFICER))]
Searcher = Annotated[User, Depends(require_roles(auth.Role.OPERATOR, auth.Role.TECHNICIAN, auth.Role.CASE_OFFICER))]
Technician = Annotated[User, Depends(require_roles(auth.Role.TECHNICIAN, auth.Role.OPERATOR))]
AlarmQuery = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="the open alarm the view is for")]


@router.get("", response_model=list[ClientSummary])
async def search(
    session: SessionDep,
    user: Searcher,
    q: Annotated[str, Query(max_length=100, description="name, address, device id or phone number")] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ClientSummary]:
    """Technicians get no names (address and devices only)."""
    found = await repository.search(session, q, limit)
    devices = await repository.active_devices(session, [c.id for c in found])
    await audit.append(
        session,
        actor=user.username,
        action="client.searched",
        details={"role": user.role, "hits": len(found)},
    )
    await session.commit()
    return [
        ClientSummary(
            id=c.id,
            ref=c.ref,
            name=None if user.role == "technician" else c.name,
            address=c.short_address,
            area=c.area,
            devices=devices[c.id],
        )
        for c in found
    ]


@router.post("", response_model=ClientView, status_code=201)
async def create(body: ClientIn, session: SessionDep, user: Manager) -> ClientView:
    client = await repository.create_client(session, body)
    await access.log_change(session, user, client, "client.created")
    view = await access.view_record(session, user, client.id)
    await session.commit()
    return view


MAX_CSV_BYTES = 5 * 1024 * 1024


class RowErrorOut(BaseModel):
    row: int
    column: str
    reason: str


class ImportReportOut(BaseModel):
    rows: int
    created: int
    updated: int
    devices_linked: int
    imported: bool
    errors: list[RowErrorOut]


@router.post("/import", response_model=ImportReportOut)
async def import_csv(request: Request, session: SessionDep, user: Manager, dry_run: bool = False) -> ImportReportOut:
    """The body is the CSV file (docs/clients.md, "Import and export"). Every bad row is reported as (row, column,
    reason); a file with any bad row imports nothing (422 ``client.import_bad_rows`` with the same report)."""
    raw = await request.body()
    if len(raw) > MAX_CSV_BYTES:
        raise ApiError(422, "client.import_too_large", "the file is larger than 5 MiB", max_bytes=MAX_CSV_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(422, "client.import_not_utf8", "the file is not UTF-8 text") from None
    report = await csv_io.import_csv(session, text, dry_run=dry_run)
    out = ImportReportOut(
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        devices_linked=report.devices_linked,
        imported=report.imported,
        errors=[RowErrorOut(row=e.row, column=e.column, reason=e.reason) for e in report.errors],
    )
    if report.errors and not dry_run:
        await session.rollback()
        raise ApiError(
            422,
            "client.import_bad_rows",
            f"{len({e.row for e in report.errors})} bad rows: nothing imported",
            **out.model_dump(),
        )
    if report.imported:
        await audit.append(
            session,
            actor=user.username,
            action="client.imported",
            details={"role": user.role, "created": report.created, "updated": report.updated},
        )
        await session.commit()
    return out


@router.get("/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def export_csv(session: SessionDep, user: Manager) -> Response:
    """Every record in the import's column set (protected fields too: case officers only; logged)."""
    text, count = await csv_io.export_csv(session)
    await audit.append(
        session, actor=user.username, action="client.exported", details={"role": user.role, "count": count}
    )
    await session.commit()
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="clients.csv"'},
    )


@router.get("/routing-defects", response_model=list[AlarmOut])
async def routing_defects(session: SessionDep, user: Technician, all_states: bool = False) -> list[QueueAlarm]:
    """Alarms with routing missing (no client, or a client with no patrol area): registry defects to fix."""
    states = None if all_states else [s.value for s in queue.OPEN_STATES]
    return list(await queue.list_alarms(session, states=states, routing_missing=True, limit=500))


@router.get("/{client_id}", response_model=ClientView, response_model_exclude_unset=True)
async def view(client_id: DbId, session: SessionDep, user: CurrentUser, alarm: AlarmQuery = None) -> ClientView:
    """The record as the role may see it (docs/clients.md, "Who sees what"); fields it may not see are absent."""
    record = await access.view_record(session, user, client_id, alarm)
    await session.commit()
    metrics.CLIENT_VIEWS.labels("record", user.role).inc()
    return record


@router.get("/{client_id}/protected", response_model=ProtectedView)
async def protected(client_id: DbId, session: SessionDep, user: CurrentUser, alarm: AlarmQuery = None) -> ProtectedView:
    """Health notes, door code, key-safe code: operators and patrols only with an open alarm of this client they
    handle (``?alarm=``); every view goes to the supervision log."""
    shown = await access.view_protected(session, user, client_id, alarm)
    await session.commit()
    metrics.CLIENT_VIEWS.labels("protected", user.role).inc()
    return shown


@router.put("/{client_id}", response_model=ClientView)
async def replace(client_id: DbId, body: ClientIn, session: SessionDep, user: Manager) -> ClientView:
    client = await repository.replace_client(session, client_id, body)
    await access.log_change(session, user, client, "client.updated")
    view = await access.view_record(session, user, client.id)
    await session.commit()
    return view


@router.get("/{client_id}/devices", response_model=list[DeviceLinkOut])
async def devices(client_id: DbId, session: SessionDep, user: Searcher, history: bool = False) -> list[DeviceLinkOut]:
    await repository.get_client(session, client_id)
    return [DeviceLinkOut.model_validate(d) for d in await repository.devices_of(session, client_id, history=history)]


@router.post("/{client_id}/devices", response_model=DeviceLinkOut, status_code=201)
async def link(client_id: DbId, body: DeviceLinkIn, session: SessionDep, user: Manager) -> DeviceLinkOut:
    """The device belongs to this client from now on (a link to another client ends; its history stays there)."""
    made = await repository.link_device(session, client_id, body.device_id, body.kind)
    client = await repository.get_client(session, client_id)
    await access.log_change(session, user, client, "client.device_linked", device_id=body.device_id, kind=body.kind)
    await session.commit()
    return DeviceLinkOut.model_validate(made)


@router.delete("/{client_id}/devices/{device_id}", status_code=204)
async def unlink(client_id: DbId, device_id: str, session: SessionDep, user: Manager) -> None:
    await repository.unlink_device(session, client_id, device_id)
    client = await repository.get_client(session, client_id)
    await access.log_change(session, user, client, "client.device_unlinked", device_id=device_id)
    await session.commit()


@router.get("/{client_id}/alarms", response_model=list[AlarmOut])
async def alarms(client_id: DbId, session: SessionDep, user: Manager) -> list[QueueAlarm]:
    await repository.get_client(session, client_id)
    return list(await queue.list_alarms(session, client_id=client_id, limit=500))


class TimelineItemOut(BaseModel):
    at: datetime
    alarm_id: int
    alarm_type: str
    action: str
    actor: str
    code: str | None
    params: dict[str, object]


@router.get("/{client_id}/timeline", response_model=list[TimelineItemOut])
async def client_timeline(
    client_id: DbId, session: SessionDep, user: CurrentUser, alarm: AlarmQuery = None
) -> list[TimelineItemOut]:
    """Alarms, tasks, notes, visits, unlocks and door events, newest first (case officers; operators with an open
    alarm of the client, ``?alarm=``)."""
    await access.check_timeline(session, user, client_id, alarm)
    items = await timeline.timeline(session, client_id)
    await session.commit()
    return [TimelineItemOut.model_validate(i, from_attributes=True) for i in items]


@router.get("/{client_id}/log", response_model=list[LogEntryOut])
async def client_log(client_id: DbId, session: SessionDep, user: Manager) -> list[audit.Entry]:
    """Loggkontroll: every entry about this client in the receiver's log (who viewed the record, when, why); the
    read is logged too."""
    client = await repository.get_client(session, client_id)
    entries = await audit.read_client_log(session, client.ref, actor=user.username, extra={"role": user.role})
    await session.commit()
    return entries
