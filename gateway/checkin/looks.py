"""Looks: an operator's short live view through a client's camera, for a due check-in or on an alarm.

Every rule is checked before the camera is asked (role, consent, night window, skipped night, the check-in's
state and night, one look per camera); a refusal is logged in the supervision log and raised as a domain error.
The media side is the relay's (``gateway/checkin/media.py``); a look that fails sends a patrol instead.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import structlog
from sqlalchemy import update

from gateway.checkin import consent as consents
from gateway.checkin.consent import plan_of
from gateway.checkin.models import Checkin, Consent
from gateway.checkin.privacy import PrivacyMode
from gateway.checkin.schedule import local_label
from gateway.checkin.schemas import AlarmLookIn, OfferIn
from gateway.checkin.state import CheckinContext, LiveLook
from gateway.checkin.tasks import PATROL_PRIORITY, close_task, log_by, raise_patrol, refused, set_state
from gateway.errors import Conflict, Forbidden, GatewayError, NotFound, UpstreamFailed
from gateway.models import Device, StoredAlarm
from gateway.users import ApiUser
from trygg import audit

log = structlog.get_logger(__name__)

LOOK_STATES = ("due", "started")
ALARM_LOOK_MAX_AGE_S = 3600  # a look on an alarm: the alarm must be open and at most an hour old


def _operators_only(user: ApiUser) -> GatewayError | None:
    if user.role != "operator":
        return Forbidden(
            "checkin.look_operators_only",
            f"role {user.role!r} may not look through a client's camera (operators only)",
            role=user.role,
        )
    return None


def _look_refusal(
    ctx: CheckinContext, ck: Checkin, consent: Consent, skipped: list[date], user: ApiUser, take_over: bool
) -> GatewayError | None:
    """Why this operator may not look for this check-in now, or None. A live look through the camera is another
    operator's (refused) or this operator's own (a reloaded page, a second tab: refused unless ``take_over``)."""
    now = ctx.now()
    plan = plan_of(consent)
    night = plan.night_at(now)
    if (refusal := _operators_only(user)) is not None:
        return refusal
    if consent.withdrawn_at is not None or consent.id in ctx.withdrawn:
        return Forbidden("checkin.consent_withdrawn", "the client has withdrawn consent to camera check-ins")
    if ck.kind == "phone":
        return Forbidden("checkin.is_phone_call", "this check-in is a phone call to the client, not a camera look")
    if night is None:
        return Forbidden(
            "checkin.outside_window",
            f"outside the agreed night window {consent.window_start}-{consent.window_end} ({consent.timezone}); "
            f"now {local_label(now, plan.tz)}",
            window_start=consent.window_start,
            window_end=consent.window_end,
            timezone=consent.timezone,
            now=local_label(now, plan.tz),
        )
    if night in skipped:
        return Forbidden(
            "checkin.night_skipped", f"the client skipped the night of {night.isoformat()}", night=night.isoformat()
        )
    if ck.state not in LOOK_STATES:
        return Forbidden("checkin.not_due", f"this check-in is not due (it is {ck.state})", state=ck.state)
    if ck.night != night:
        return Forbidden(
            "checkin.other_night",
            f"this check-in belongs to the night of {ck.night.isoformat()}, not tonight",
            night=ck.night.isoformat(),
        )
    live = _live_on(ctx, ck.camera_id)
    if live is not None and live.operator != user.username:
        return Conflict("checkin.look_live", "a look through this camera is already live", operator=live.operator)
    if live is not None and not take_over:
        return Conflict(
            "checkin.look_live_own",
            "your own look through this camera is still live; take it over or end it",
            look_id=live.look_id,
            checkin_id=live.checkin_id,
        )
    return None


def _live_on(ctx: CheckinContext, camera_id: str) -> LiveLook | None:
    return next((look for look in ctx.live.values() if look.camera_id == camera_id), None)


async def start_look(ctx: CheckinContext, checkin_id: int, offer: OfferIn, user: ApiUser) -> dict[str, Any]:
    now = ctx.now()
    subject = f"checkin-{checkin_id}"
    async with ctx.port.sessions() as session:
        ck = await session.get(Checkin, checkin_id)
        consent = await session.get(Consent, ck.consent_id) if ck is not None else None
        skipped = await consents.skipped_nights(session, consent.id) if consent is not None else []
    if ck is None or consent is None:
        missing = NotFound("checkin.not_found", f"no check-in {checkin_id}", checkin_id=checkin_id)
        raise await refused(ctx, user, "checkin.look_refused", missing, None, subject)
    refusal = _look_refusal(ctx, ck, consent, skipped, user, offer.take_over)
    if refusal is not None:
        raise await refused(ctx, user, "checkin.look_refused", refusal, ck.client_ref, subject)
    taken = _live_on(ctx, ck.camera_id)
    if taken is not None:  # the same operator takes their own live look over: it ends first, logged as such
        await ctx.relay.end_look(taken.look_id, "taken_over")

    plan = plan_of(consent)
    look_id = uuid.uuid4().hex
    ctx.live[look_id] = LiveLook(look_id, ck.id, consent.id, ck.camera_id, ck.client_ref, user.username, now)
    try:
        answer = await ctx.relay.start_look(
            look_id=look_id,
            camera_id=ck.camera_id,
            offer_sdp=offer.sdp,
            offer_type=offer.type,
            privacy=PrivacyMode(consent.privacy),
            max_s=consent.max_look_s,
            audio=consent.audio,
        )
    except Exception as exc:
        ctx.live.pop(look_id, None)
        failure = str(getattr(exc, "reason", None) or exc or type(exc).__name__)
        due = local_label(ck.due_at, plan.tz)
        why = f"camera look failed ({failure}) at the check-in due {due}: physical visit"
        await raise_patrol(ctx, ck, PATROL_PRIORITY, why, "look_failed", "task.visit_look_failed")
        if await set_state(ctx, ck, ck.state, "camera_offline", now, "escalation.patrol_visit", why):
            await close_task(ctx, ck, "camera failed: patrol visit sent", code="outcome.camera_failed")
        failed = UpstreamFailed("checkin.look_failed", why, failure=failure, due=due)
        raise await refused(ctx, user, "checkin.look_failed", failed, ck.client_ref, subject) from exc
    if consent.id in ctx.withdrawn:  # withdrawn while the camera was connecting
        await ctx.relay.end_look(look_id, "withdrawn")
        withdrawn = Forbidden("checkin.consent_withdrawn", "the client has withdrawn consent")
        raise await refused(ctx, user, "checkin.look_refused", withdrawn, ck.client_ref, subject)
    async with ctx.port.sessions.begin() as session:
        await session.execute(
            update(Checkin)
            .where(Checkin.id == ck.id)
            .values(state="started", started_at=now, started_by=user.username, look_id=look_id)
        )
        await log_by(
            session,
            user,
            "checkin.look_started",
            ck.client_ref,
            subject,
            look_id=look_id,
            camera_id=ck.camera_id,
            kind=ck.kind,
            max_s=consent.max_look_s,
            privacy=consent.privacy,
            audio=consent.audio,
        )
    return {**answer, "look_id": look_id, "max_s": consent.max_look_s, "privacy": consent.privacy}


async def start_alarm_look(ctx: CheckinContext, consent_id: int, body: AlarmLookIn, user: ApiUser) -> dict[str, Any]:
    """A look on an alarm from the client, when the consent allows it: an event check-in (kind "alarm") made due
    now, then the same checks and media path as any check-in (role, consent, window, night)."""
    now = ctx.now()
    subject = f"alarm:{body.device_id}/{body.alarm_id}"
    async with ctx.port.sessions() as session:
        consent = await session.get(Consent, consent_id)
        alarm = await session.get(StoredAlarm, (body.device_id, body.alarm_id))
        device = await session.get(Device, body.device_id)
    if consent is None:
        missing = NotFound("consent.not_found", f"no consent {consent_id}", consent_id=consent_id)
        raise await refused(ctx, user, "checkin.look_refused", missing, None, subject)
    refusal = _operators_only(user) or _alarm_refusal(consent, alarm, device, now)
    if refusal is not None:
        raise await refused(ctx, user, "checkin.look_refused", refusal, consent.client_ref, subject)
    night = plan_of(consent).night_at(now)
    async with ctx.port.sessions.begin() as session:
        ck = Checkin(
            consent_id=consent.id,
            client_ref=consent.client_ref,
            camera_id=consent.camera_id,
            kind="alarm",
            night=night or now.date(),
            due_at=now,
            state="due",
            raised_at=now,
            note=f"look on alarm {body.device_id}/{body.alarm_id}",
        )
        session.add(ck)
        await session.flush()
        await log_by(session, user, "checkin.alarm_look_requested", consent.client_ref, subject, checkin_id=ck.id)
    return await start_look(ctx, ck.id, OfferIn(sdp=body.sdp, type=body.type), user)


def _alarm_refusal(
    consent: Consent, alarm: StoredAlarm | None, device: Device | None, now: datetime
) -> GatewayError | None:
    if not consent.look_on_alarm:
        return Forbidden("checkin.no_look_on_alarm", "the consent does not allow a look on an alarm")
    if alarm is None or device is None or device.client_ref != consent.client_ref:
        return Forbidden("checkin.alarm_not_found", "no alarm with that id from this client's devices")
    if alarm.cancelled_at is not None or alarm.resolved_at is not None:
        return Forbidden("checkin.alarm_closed", "that alarm is cancelled or resolved")
    if (now - alarm.stored_at).total_seconds() > ALARM_LOOK_MAX_AGE_S:
        minutes = ALARM_LOOK_MAX_AGE_S // 60
        return Forbidden("checkin.alarm_too_old", f"that alarm is older than {minutes} minutes", minutes=minutes)
    return None


async def end_look(ctx: CheckinContext, look_id: str, user: ApiUser, reason: str = "operator") -> None:
    """End a live look; ``reason``: the operator's button ("operator") or the page being left ("page_left")."""
    look = ctx.live.get(look_id)
    if look is None:
        raise NotFound("look.not_found", "no live look with that id", look_id=look_id)
    if user.role not in ("operator", "admin"):
        error = Forbidden("look.operators_only", "only operators end looks", role=user.role)
        raise await refused(ctx, user, "checkin.end_refused", error, look.client_ref, f"checkin-{look.checkin_id}")
    await ctx.relay.end_look(look_id, reason)


async def log_look_ended(ctx: CheckinContext, look: LiveLook, event: Any) -> None:
    """The supervision log's record of a look: who, on whom, how long, why it ended (the relay's LookEnded)."""
    try:
        async with ctx.port.sessions.begin() as session:
            await audit.append(
                session,
                actor=look.operator,
                action="checkin.look_ended",
                client_ref=look.client_ref,
                subject=f"checkin-{look.checkin_id}",
                details={
                    "look_id": look.look_id,
                    "camera_id": look.camera_id,
                    "reason": str(event.reason),
                    "duration_s": round(float(event.duration_s), 3),
                    "started_at": event.started_at,
                    "ended_at": event.ended_at,
                    "frames_relayed": int(event.frames_relayed),
                },
            )
    except Exception as exc:
        log.exception("could not log the end of a look", look_id=look.look_id, error=str(exc))
