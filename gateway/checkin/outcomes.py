"""What follows a check-in: the operator's outcome and its escalation (recheck, phone call, patrol visit), and the
client's own decisions taking effect at once on the running gateway (consent withdrawn, a night skipped)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from gateway.checkin import consent as consents
from gateway.checkin.consent import plan_of
from gateway.checkin.models import Checkin, Consent
from gateway.checkin.schedule import local_label
from gateway.checkin.scheduler import close_cancelled, run_round
from gateway.checkin.schemas import OutcomeIn, SkipIn
from gateway.checkin.state import CheckinContext
from gateway.checkin.tasks import (
    PATROL_PRIORITY,
    URGENT_PATROL_PRIORITY,
    close_task,
    insert_checkin,
    log_by,
    log_escalation,
    raise_patrol,
    refused,
)
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.users import ApiUser


def _outcome_refusal(ck: Checkin, user: ApiUser) -> GatewayError | None:
    if user.role != "operator":
        return Conflict(
            "checkin.outcome_operators_only",
            f"role {user.role!r} may not record check-in outcomes (operators only)",
            role=user.role,
        )
    if ck.kind == "phone" and ck.state != "due":
        return Conflict("checkin.phone_not_open", f"this phone call is not open (it is {ck.state})", state=ck.state)
    if ck.kind != "phone" and ck.state != "started":
        return Conflict(
            "checkin.look_first", f"an outcome needs a look first (this check-in is {ck.state})", state=ck.state
        )
    return None


async def record_outcome(ctx: CheckinContext, checkin_id: int, body: OutcomeIn, user: ApiUser) -> Checkin:
    now = ctx.now()
    subject = f"checkin-{checkin_id}"
    async with ctx.port.sessions() as session:
        ck = await session.get(Checkin, checkin_id)
        consent = await session.get(Consent, ck.consent_id) if ck is not None else None
    if ck is None or consent is None:
        raise NotFound("checkin.not_found", f"no check-in {checkin_id}", checkin_id=checkin_id)
    refusal = _outcome_refusal(ck, user)
    if refusal is not None:
        raise await refused(ctx, user, "checkin.outcome_refused", refusal, ck.client_ref, subject)
    for look in list(ctx.live.values()):
        if look.checkin_id == ck.id:
            await ctx.relay.end_look(look.look_id, "operator")
    async with ctx.port.sessions.begin() as session:
        result = await session.execute(
            update(Checkin)
            .where(Checkin.id == ck.id, Checkin.state == ck.state)
            .values(state="done", outcome=body.outcome, outcome_by=user.username, outcome_at=now, note=body.note)
        )
        if not getattr(result, "rowcount", 0):
            raise Conflict("checkin.changed", "the check-in changed meanwhile; reload it")
        details = {"outcome": body.outcome, "note": body.note, "kind": ck.kind}
        await log_by(session, user, "checkin.outcome", ck.client_ref, subject, **details)
    task_outcome, code, params = await _follow_up(ctx, ck, consent, body.outcome, now)
    await close_task(ctx, ck, task_outcome, user.username, code=code, params=params)
    await run_round(ctx)  # a phone step is due at once
    async with ctx.port.sessions() as session:
        fresh = await session.get(Checkin, ck.id)
    assert fresh is not None
    return fresh


async def _follow_up(
    ctx: CheckinContext, ck: Checkin, consent: Consent, outcome: str, now: datetime
) -> tuple[str, str, dict[str, Any]]:
    """What follows an outcome; returns what closes the check-in's queue task: the English text, its code and
    parameters."""
    if outcome == "seen_ok":
        return "seen_ok", "outcome.seen_ok", {}
    if outcome == "needs_help":
        why = f"client {ck.client_ref} needs help (seen at the camera check-in): urgent visit"
        await raise_patrol(ctx, ck, URGENT_PATROL_PRIORITY, why, "needs_help", "task.visit_needs_help")
        await log_escalation(ctx, ck, "patrol_visit", why)
        return "needs_help: urgent patrol visit sent", "outcome.needs_help_visit", {}
    plan = plan_of(consent)
    step = ck.step
    while True:
        nxt = consent.escalation[step] if step < len(consent.escalation) else "patrol_visit"
        step += 1
        if consent.withdrawn_at is not None and nxt != "patrol_visit":
            continue  # no more looks or calls without consent; the visit still goes out
        if nxt == "recheck":
            due = now + timedelta(minutes=consent.recheck_min)
            if plan.night_at(due) != ck.night:
                continue  # would fall outside the window: the camera may not be used then
            await _add_followup(ctx, ck, "recheck", due, step, now)
            label = local_label(due, plan.tz)
            await log_escalation(ctx, ck, "recheck", f"not seen: recheck at {label}")
            return f"not_seen: recheck at {label}", "outcome.not_seen_recheck", {"at": due.isoformat()}
        if nxt == "phone":
            await _add_followup(ctx, ck, "phone", now, step, now)
            await log_escalation(ctx, ck, "phone", "not seen: phone the client")
            return "not_seen: phone the client", "outcome.not_seen_phone", {}
        why = f"client {ck.client_ref} not seen ({ck.kind} check-in due {local_label(ck.due_at, plan.tz)}): visit"
        await raise_patrol(ctx, ck, PATROL_PRIORITY, why, "not_seen", "task.visit_not_seen")
        await log_escalation(ctx, ck, "patrol_visit", why)
        return "not_seen: patrol visit sent", "outcome.not_seen_visit", {}


async def _add_followup(ctx: CheckinContext, ck: Checkin, kind: str, due: datetime, step: int, now: datetime) -> None:
    async with ctx.port.sessions.begin() as session:
        await insert_checkin(
            session,
            consent_id=ck.consent_id,
            client_ref=ck.client_ref,
            camera_id=ck.camera_id,
            kind=kind,
            night=ck.night,
            due_at=due,
            step=step,
            parent_id=ck.id,
            state="pending",
            created_at=now,
        )


async def withdraw(ctx: CheckinContext, consent_id: int, user: ApiUser, reason: str | None) -> Consent:
    """Withdrawal takes effect at once: live looks end first, then the database, then the queue."""
    async with ctx.port.sessions() as session:
        await consents.get_consent(session, consent_id)
    ctx.withdrawn.add(consent_id)
    for look in list(ctx.live.values()):
        if look.consent_id == consent_id:
            await ctx.relay.end_look(look.look_id, "withdrawn")
    async with ctx.port.sessions.begin() as session:
        consent, _ = await consents.withdraw_consent(session, consent_id, actor=user.username, reason=reason)
    await close_cancelled(ctx)
    return consent


async def skip(ctx: CheckinContext, consent_id: int, body: SkipIn, user: ApiUser) -> None:
    async with ctx.port.sessions.begin() as session:
        await consents.skip_night(session, consent_id, body.night, actor=user.username, note=body.note)
    for look in list(ctx.live.values()):
        if look.consent_id == consent_id:
            async with ctx.port.sessions() as session:
                ck = await session.get(Checkin, look.checkin_id)
            if ck is not None and ck.night == body.night:
                await ctx.relay.end_look(look.look_id, "withdrawn")
    await close_cancelled(ctx)
