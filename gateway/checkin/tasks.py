"""The check-in feature's side toward the operators' queue and the supervision log: tasks raised and closed on the
gateway's durable path, state moves logged, refusals logged before they are raised."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from devices import AlarmType
from gateway.checkin.models import Checkin
from gateway.checkin.state import CheckinContext
from gateway.errors import GatewayError
from gateway.records import Outcome
from gateway.users import ApiUser
from trygg import audit
from trygg.db import dialect_insert

log = structlog.get_logger(__name__)

PATROL_PRIORITY = 7
URGENT_PATROL_PRIORITY = 9
PHONE_PRIORITY = 6
RAISED_OK = (Outcome.STORED, Outcome.DUPLICATE, Outcome.ALARM_ID_REUSED)  # reused: raised before a restart

E = TypeVar("E", bound=GatewayError)


def task_id(ck: Checkin) -> str:
    """The check-in's task in the operators' queue (on its camera's device id)."""
    return f"checkin-{ck.id}"


async def insert_checkin(session: AsyncSession, **values: Any) -> None:
    """A check-in made due (scheduled, or a follow-up), once: a restart or a second round adds nothing."""
    insert = dialect_insert(session)
    await session.execute(
        insert(Checkin).values(**values).on_conflict_do_nothing(index_elements=["consent_id", "kind", "due_at"])
    )


async def raise_task(
    ctx: CheckinContext,
    ck: Checkin,
    alarm_id: str,
    alarm_type: AlarmType,
    priority: int | None,
    text: str,
    text_code: str,
    text_params: dict[str, Any] | None = None,
    **more: Any,
) -> Outcome:
    """A check-in's task in the operators' queue, on the durable path, with the check-in's details: ``text`` in
    English for API users, ``text_code`` with the check-in's kind, client and due time (plus ``text_params``) for
    the console (details.text_code, details.text_params)."""
    return await ctx.port.raise_alarm(
        ck.camera_id,
        alarm_id,
        alarm_type,
        priority=priority,
        text=text,
        text_code=text_code,
        text_params={
            "kind": ck.kind,
            "client_ref": ck.client_ref,
            "due_at": ck.due_at.isoformat(),
            **(text_params or {}),
        },
        client_ref=ck.client_ref,
        due_at=ck.due_at.isoformat(),
        checkin_id=ck.id,
        **more,
    )


async def raise_patrol(
    ctx: CheckinContext, ck: Checkin, priority: int, why: str, cause: str, text_code: str, **text_params: Any
) -> None:
    """A patrol visit task: ``why`` in English, ``text_code`` (``task.visit_*``) with ``text_params`` for the
    console."""
    outcome = await raise_task(
        ctx, ck, f"patrol-{ck.id}", AlarmType.PATROL_VISIT, priority, why, text_code, text_params, cause=cause
    )
    if outcome not in RAISED_OK:
        log.error("PATROL VISIT REFUSED by the intake", checkin_id=ck.id, outcome=outcome.value, why=why)
    else:
        log.info("patrol visit raised", checkin_id=ck.id, client_ref=ck.client_ref, cause=cause)


async def close_task(
    ctx: CheckinContext,
    ck: Checkin,
    outcome: str,
    actor: str = "gateway",
    *,
    code: str,
    params: dict[str, Any] | None = None,
) -> None:
    """Close the check-in's task: ``outcome`` in English for API users, ``code`` (``outcome.*``) with ``params``
    for the console."""
    await ctx.port.resolve_alarm(ck.camera_id, task_id(ck), outcome, actor, code=code, params=params)


async def set_state(
    ctx: CheckinContext, ck: Checkin, from_state: str, to_state: str, now: datetime, action: str, text: str
) -> bool:
    """Move one check-in if it is still in ``from_state``, and log it; False if someone else moved it."""
    async with ctx.port.sessions.begin() as session:
        values: dict[str, Any] = {"state": to_state}
        if from_state == "pending":
            values["raised_at"] = now
        result = await session.execute(
            update(Checkin).where(Checkin.id == ck.id, Checkin.state == from_state).values(**values)
        )
        moved = bool(getattr(result, "rowcount", 0))
        if moved:
            await audit.append(
                session,
                actor="gateway",
                action=action,
                client_ref=ck.client_ref,
                subject=task_id(ck),
                details={"kind": ck.kind, "due_at": ck.due_at.isoformat(), "state": to_state, "text": text},
            )
        return moved


async def log_escalation(ctx: CheckinContext, ck: Checkin, step: str, text: str) -> None:
    async with ctx.port.sessions.begin() as session:
        await audit.append(
            session,
            actor="gateway",
            action=f"escalation.{step}",
            client_ref=ck.client_ref,
            subject=task_id(ck),
            details={"text": text, "kind": ck.kind},
        )


async def log_by(
    session: AsyncSession, user: ApiUser, action: str, client_ref: str | None, subject: str, **details: Any
) -> None:
    """An entry in the supervision log for what ``user`` did (in the caller's transaction)."""
    await audit.append(
        session, actor=user.username, action=action, client_ref=client_ref, subject=subject, details=details
    )


async def refused(ctx: CheckinContext, user: ApiUser, action: str, error: E, client_ref: str | None, subject: str) -> E:
    """Log a refusal in the supervision log (who asked for what, and why not); returns the error to raise."""
    async with ctx.port.sessions.begin() as session:
        await log_by(session, user, action, client_ref, subject, role=user.role, reason=error.detail, code=error.code)
    # the code, not the English: a reason may name the client's night or window
    log.warning("check-in request refused", user=user.username, action=action, subject=subject, code=error.code)
    return error
