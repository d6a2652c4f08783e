"""The check-in scheduler: one round makes agreed times due, raises them as tasks in the operators' queue (or a
patrol visit when the camera is down), sends a patrol when a check-in was not started in time, closes the tasks
of cancelled check-ins, and ends looks whose consent was withdrawn elsewhere (the CLI). Restart-safe: a slot is
made due once, whatever the number of rounds or restarts (docs/checkins.md)."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update

from devices import AlarmType
from gateway.checkin import consent as consents
from gateway.checkin.consent import plan_of
from gateway.checkin.models import Checkin, Consent
from gateway.checkin.schedule import local_label
from gateway.checkin.state import CheckinContext
from gateway.checkin.tasks import (
    PATROL_PRIORITY,
    PHONE_PRIORITY,
    RAISED_OK,
    close_task,
    insert_checkin,
    raise_patrol,
    raise_task,
    set_state,
    task_id,
)

log = structlog.get_logger(__name__)

# A cancelled check-in's note (gateway/checkin/consent.py) -> the code that closes its queue task.
_CANCEL_CODES = {"night skipped": "outcome.checkin_night_skipped", "consent withdrawn": "outcome.checkin_withdrawn"}


async def run_round(ctx: CheckinContext) -> None:
    async with ctx.lock:
        now = ctx.now()
        await _materialise(ctx, now)
        await _raise_pending(ctx, now)
        await _time_out(ctx, now)
        await close_cancelled(ctx)
        await _end_withdrawn_looks(ctx)


async def _materialise(ctx: CheckinContext, now: datetime) -> None:
    earliest = now - timedelta(seconds=ctx.port.settings.checkin_catch_up_s)
    async with ctx.port.sessions.begin() as session:
        for c in await consents.list_consents(session):
            plan = plan_of(c)
            skipped = await consents.skipped_nights(session, c.id)
            for night, due in plan.slots_between(max(c.schedule_from, earliest), now, skipped):
                await insert_checkin(
                    session,
                    consent_id=c.id,
                    client_ref=c.client_ref,
                    camera_id=c.camera_id,
                    kind="scheduled",
                    night=night,
                    due_at=due,
                    step=0,
                    state="pending",
                    created_at=now,
                )


async def _raise_pending(ctx: CheckinContext, now: datetime) -> None:
    async with ctx.port.sessions() as session:
        rows = (
            await session.execute(
                select(Checkin, Consent)
                .join(Consent, Consent.id == Checkin.consent_id)
                .where(Checkin.state == "pending", Checkin.due_at <= now)
                .order_by(Checkin.due_at, Checkin.id)
            )
        ).all()
    for ck, consent in rows:
        due_label = local_label(ck.due_at, plan_of(consent).tz)
        if ck.kind != "phone" and not ctx.camera_online(ck.camera_id):
            why = f"camera {ck.camera_id} offline at the camera check-in due {due_label}: physical visit"
            await raise_patrol(
                ctx, ck, PATROL_PRIORITY, why, "camera_offline", "task.visit_camera_offline", camera_id=ck.camera_id
            )
            await set_state(ctx, ck, "pending", "camera_offline", now, "escalation.patrol_visit", why)
            continue
        if ck.kind == "phone":
            text = f"Phone the client {ck.client_ref}: not seen at the camera check-in (due {due_label})"
            text_code = "task.phone_client"
            priority: int | None = PHONE_PRIORITY
        else:
            text = f"Camera check-in ({ck.kind}) for client {ck.client_ref}, due {due_label}"
            text_code = "task.checkin_due"
            priority = None
        outcome = await raise_task(ctx, ck, task_id(ck), AlarmType.CHECKIN_DUE, priority, text, text_code, kind=ck.kind)
        if outcome not in RAISED_OK:
            log.error("check-in task refused by the intake", checkin_id=ck.id, outcome=outcome.value)
        if not await set_state(ctx, ck, "pending", "due", now, "checkin.due", text):
            await close_task(ctx, ck, "cancelled", code="outcome.checkin_cancelled")


async def _time_out(ctx: CheckinContext, now: datetime) -> None:
    timeout_s = ctx.port.settings.checkin_start_timeout_s
    limit = now - timedelta(seconds=timeout_s)
    async with ctx.port.sessions() as session:
        rows = (await session.scalars(select(Checkin).where(Checkin.state == "due", Checkin.due_at <= limit))).all()
    for ck in rows:
        minutes = round(timeout_s / 60)
        what = "phone call" if ck.kind == "phone" else "camera check-in"
        why = f"{what} for client {ck.client_ref} not started within {minutes} min of its due time: physical visit"
        await raise_patrol(ctx, ck, PATROL_PRIORITY, why, "missed", "task.visit_not_started", minutes=minutes)
        if await set_state(ctx, ck, "due", "missed", now, "escalation.patrol_visit", why):
            await close_task(ctx, ck, "missed: patrol visit sent", code="outcome.checkin_missed")


async def close_cancelled(ctx: CheckinContext) -> None:
    """Queue tasks of cancelled check-ins (withdrawn, night skipped) are resolved with the reason."""
    async with ctx.port.sessions() as session:
        rows = (
            await session.scalars(
                select(Checkin).where(
                    Checkin.state == "cancelled", Checkin.raised_at.is_not(None), Checkin.outcome.is_(None)
                )
            )
        ).all()
    for ck in rows:
        code = _CANCEL_CODES.get(ck.note or "", "outcome.checkin_cancelled")
        await close_task(ctx, ck, ck.note or "cancelled", code=code)
        async with ctx.port.sessions.begin() as session:
            await session.execute(update(Checkin).where(Checkin.id == ck.id).values(outcome="cancelled"))


async def _end_withdrawn_looks(ctx: CheckinContext) -> None:
    if not ctx.live:
        return
    ids = {look.consent_id for look in ctx.live.values()}
    async with ctx.port.sessions() as session:
        gone = set(
            (
                await session.scalars(select(Consent.id).where(Consent.id.in_(ids), Consent.withdrawn_at.is_not(None)))
            ).all()
        )
    ctx.withdrawn |= gone
    for look in list(ctx.live.values()):
        if look.consent_id in gone:
            await ctx.relay.end_look(look.look_id, "withdrawn")
