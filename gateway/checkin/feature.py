"""Camera check-ins, the scheduling side: consents API, the scheduler, looks and outcomes, escalation, the log.

The media side (WebRTC, privacy filter, camera signaling) is ``gateway/checkin/media.py``'s
``CameraRelayFeature``; this feature asks it to start and end looks and listens for looks ending.
Flow and rules: docs/checkins.md.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

import structlog
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import select, update

from devices import AlarmType, DeviceTopic
from gateway.api.deps import ApiUser, CurrentUser, require_roles
from gateway.checkin import consent as consents
from gateway.checkin.consent import ConsentChange, ConsentError, ConsentIn, ConsentOut, plan_of
from gateway.checkin.models import Checkin, Consent
from gateway.checkin.privacy import PrivacyMode
from gateway.checkin.schedule import local_label
from gateway.features import Subscription
from gateway.intake import Outcome
from gateway.models import Device, StoredAlarm
from trygg import audit
from trygg.db import dialect_insert, utcnow
from trygg.errors import ApiError, responses
from trygg.http import DbId

if TYPE_CHECKING:
    from gateway.service import Gateway

log = structlog.get_logger(__name__)

PATROL_PRIORITY = 7
URGENT_PATROL_PRIORITY = 9
PHONE_PRIORITY = 6
_RAISED_OK = (Outcome.STORED, Outcome.DUPLICATE, Outcome.ALARM_ID_REUSED)  # reused: raised before a restart
_LOOK_STATES = ("due", "started")
ALARM_LOOK_MAX_AGE_S = 3600  # a look on an alarm: the alarm must be open and at most an hour old


class LookRelay(Protocol):
    """What this feature needs of ``gateway.checkin.media.CameraRelayFeature``."""

    async def start_look(
        self,
        *,
        look_id: str,
        camera_id: str,
        offer_sdp: str,
        offer_type: str,
        privacy: PrivacyMode,
        max_s: float,
        audio: bool = False,
        answer_timeout_s: float = 10.0,
    ) -> dict[str, str]: ...

    async def end_look(self, look_id: str, reason: str) -> None: ...

    def add_listener(self, callback: Callable[[Any], None]) -> None: ...

    def camera_state(self, camera_id: str) -> str | None: ...


@dataclass(slots=True)
class LiveLook:
    look_id: str
    checkin_id: int
    consent_id: int
    camera_id: str
    client_ref: str
    operator: str
    started_at: datetime


class OfferIn(BaseModel):
    sdp: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
    type: Literal["offer"]
    # The same operator's own live look through this camera (a reloaded page) ends and this one takes over.
    take_over: bool = False


class EndLookIn(BaseModel):
    """Why the operator's page ends a look: the operator's button, or the page being left (reload, close)."""

    reason: Literal["operator", "page_left"] = "operator"


class AlarmLookIn(OfferIn):
    """A look on an alarm: which alarm (from one of the client's devices), and the operator's offer."""

    device_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    alarm_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["seen_ok", "not_seen", "needs_help"]
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class SkipIn(BaseModel):
    night: date
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class WithdrawIn(BaseModel):
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None


class CheckinOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    consent_id: int
    client_ref: str
    camera_id: str
    kind: str
    night: date
    due_at: datetime
    step: int
    parent_id: int | None
    state: str
    raised_at: datetime | None
    started_at: datetime | None
    started_by: str | None
    look_id: str | None
    outcome: str | None
    outcome_by: str | None
    outcome_at: datetime | None
    note: str | None


class LogEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    actor: str
    action: str
    client_ref: str | None
    subject: str | None
    details: dict[str, Any]
    hash: str


Reader = Annotated[ApiUser, Depends(require_roles("operator", "case_officer"))]
CaseOfficer = Annotated[ApiUser, Depends(require_roles("case_officer"))]
ClientRequest = Annotated[ApiUser, Depends(require_roles("case_officer", "operator"))]
LogReader = Annotated[ApiUser, Depends(require_roles("case_officer"))]


def _consent_http(exc: ConsentError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.reason, **exc.params)


# A cancelled check-in's note (gateway/checkin/consent.py) -> the code that closes its queue task.
_CANCEL_CODES = {"night skipped": "outcome.checkin_night_skipped", "consent withdrawn": "outcome.checkin_withdrawn"}


class CheckinFeature:
    """Consents, the check-in scheduler, looks (through the relay), outcomes and escalation.

    ``now``: the clock (tests pass their own). ``background``: run the scheduler loop every
    ``checkin_scheduler_period_s`` (tests call :meth:`run_once` instead). ``status_source``: where camera
    online/offline comes from when another feature owns the ``status`` topic (returns True, False or None
    for unknown); without it this feature subscribes to ``status`` itself.
    """

    name = "checkin"

    def __init__(
        self,
        relay: LookRelay,
        *,
        now: Callable[[], datetime] = utcnow,
        background: bool = True,
        status_source: Callable[[str], bool | None] | None = None,
    ) -> None:
        self.relay = relay
        self.now = now
        self.background = background
        self.status_source = status_source
        self.gateway: Gateway | None = None
        self._status: dict[str, bool] = {}
        self._live: dict[str, LiveLook] = {}
        self._withdrawn: set[int] = set()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    # --- Feature protocol -------------------------------------------------------------------------------
    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        if self.status_source is not None:
            return {}
        return {DeviceTopic.STATUS: Subscription(self._on_status, qos=1)}

    async def start(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.relay.add_listener(self._on_look_ended)
        if self.background:
            self._task = asyncio.create_task(self._loop(), name="checkin-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def on_connected(self) -> None:
        pass

    def _gw(self) -> Gateway:
        if self.gateway is None:
            raise RuntimeError("the checkin feature is not started")
        return self.gateway

    # --- camera status -----------------------------------------------------------------------------------
    async def _on_status(self, device_id: str, payload: bytes) -> None:
        value = payload.decode(errors="replace").strip().lower()
        if value in ("online", "offline"):
            self._status[device_id] = value == "online"

    def camera_online(self, camera_id: str) -> bool:
        """Online by its retained status (or the status source); unknown status: online if the relay knows it."""
        known = self.status_source(camera_id) if self.status_source is not None else self._status.get(camera_id)
        if known is not None:
            return known
        return self.relay.camera_state(camera_id) is not None

    # --- the scheduler --------------------------------------------------------------------------------
    async def _loop(self) -> None:
        period = self._gw().settings.checkin_scheduler_period_s
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("check-in scheduler round failed", error=str(exc))
            await asyncio.sleep(period)

    async def run_once(self) -> None:
        """One round: make slots due, raise them (or a patrol visit if the camera is down), time out unstarted
        check-ins, close tasks of cancelled ones, end looks whose consent was withdrawn elsewhere."""
        async with self._lock:
            now = self.now()
            await self._materialise(now)
            await self._raise_pending(now)
            await self._time_out(now)
            await self._close_cancelled()
            await self._end_withdrawn_looks()

    async def _materialise(self, now: datetime) -> None:
        gw = self._gw()
        earliest = now - timedelta(seconds=gw.settings.checkin_catch_up_s)
        async with gw.sessions.begin() as session:
            for c in await consents.list_consents(session):
                plan = plan_of(c)
                skipped = await consents.skipped_nights(session, c.id)
                for night, due in plan.slots_between(max(c.schedule_from, earliest), now, skipped):
                    insert = dialect_insert(session)
                    await session.execute(
                        insert(Checkin)
                        .values(
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
                        .on_conflict_do_nothing(index_elements=["consent_id", "kind", "due_at"])
                    )

    async def _raise_pending(self, now: datetime) -> None:
        gw = self._gw()
        async with gw.sessions() as session:
            rows = (
                await session.execute(
                    select(Checkin, Consent)
                    .join(Consent, Consent.id == Checkin.consent_id)
                    .where(Checkin.state == "pending", Checkin.due_at <= now)
                    .order_by(Checkin.due_at, Checkin.id)
                )
            ).all()
        for ck, consent in rows:
            tz = plan_of(consent).tz
            due_label = local_label(ck.due_at, tz)
            if ck.kind != "phone" and not self.camera_online(ck.camera_id):
                why = f"camera {ck.camera_id} offline at the camera check-in due {due_label}: physical visit"
                await self._raise_patrol(
                    ck, PATROL_PRIORITY, why, "camera_offline", "task.visit_camera_offline", camera_id=ck.camera_id
                )
                await self._set_state(ck, "pending", "camera_offline", now, "escalation.patrol_visit", why)
                continue
            if ck.kind == "phone":
                text = f"Phone the client {ck.client_ref}: not seen at the camera check-in (due {due_label})"
                text_code = "task.phone_client"
                priority: int | None = PHONE_PRIORITY
            else:
                text = f"Camera check-in ({ck.kind}) for client {ck.client_ref}, due {due_label}"
                text_code = "task.checkin_due"
                priority = None
            outcome = await gw.raise_alarm(
                ck.camera_id,
                f"checkin-{ck.id}",
                AlarmType.CHECKIN_DUE,
                priority=priority,
                text=text,
                text_code=text_code,
                text_params={"kind": ck.kind, "client_ref": ck.client_ref, "due_at": ck.due_at.isoformat()},
                client_ref=ck.client_ref,
                due_at=ck.due_at.isoformat(),
                checkin_id=ck.id,
                kind=ck.kind,
            )
            if outcome not in _RAISED_OK:
                log.error("check-in task refused by the intake", checkin_id=ck.id, outcome=outcome.value)
            if not await self._set_state(ck, "pending", "due", now, "checkin.due", text):
                await gw.resolve_alarm(
                    ck.camera_id, f"checkin-{ck.id}", "cancelled", "gateway", code="outcome.checkin_cancelled"
                )

    async def _time_out(self, now: datetime) -> None:
        gw = self._gw()
        limit = now - timedelta(seconds=gw.settings.checkin_start_timeout_s)
        async with gw.sessions() as session:
            rows = (await session.scalars(select(Checkin).where(Checkin.state == "due", Checkin.due_at <= limit))).all()
        for ck in rows:
            minutes = round(gw.settings.checkin_start_timeout_s / 60)
            what = "phone call" if ck.kind == "phone" else "camera check-in"
            why = f"{what} for client {ck.client_ref} not started within {minutes} min of its due time: physical visit"
            await self._raise_patrol(ck, PATROL_PRIORITY, why, "missed", "task.visit_not_started", minutes=minutes)
            if await self._set_state(ck, "due", "missed", now, "escalation.patrol_visit", why):
                await gw.resolve_alarm(
                    ck.camera_id,
                    f"checkin-{ck.id}",
                    "missed: patrol visit sent",
                    "gateway",
                    code="outcome.checkin_missed",
                )

    async def _close_cancelled(self) -> None:
        """Queue tasks of cancelled check-ins (withdrawn, night skipped) are resolved with the reason."""
        gw = self._gw()
        async with gw.sessions() as session:
            rows = (
                await session.scalars(
                    select(Checkin).where(
                        Checkin.state == "cancelled", Checkin.raised_at.is_not(None), Checkin.outcome.is_(None)
                    )
                )
            ).all()
        for ck in rows:
            code = _CANCEL_CODES.get(ck.note or "", "outcome.checkin_cancelled")
            await gw.resolve_alarm(ck.camera_id, f"checkin-{ck.id}", ck.note or "cancelled", "gateway", code=code)
            async with gw.sessions.begin() as session:
                await session.execute(update(Checkin).where(Checkin.id == ck.id).values(outcome="cancelled"))

    async def _end_withdrawn_looks(self) -> None:
        if not self._live:
            return
        ids = {look.consent_id for look in self._live.values()}
        async with self._gw().sessions() as session:
            gone = set(
                (
                    await session.scalars(
                        select(Consent.id).where(Consent.id.in_(ids), Consent.withdrawn_at.is_not(None))
                    )
                ).all()
            )
        self._withdrawn |= gone
        for look in list(self._live.values()):
            if look.consent_id in gone:
                await self.relay.end_look(look.look_id, "withdrawn")

    async def _set_state(
        self, ck: Checkin, from_state: str, to_state: str, now: datetime, action: str, text: str
    ) -> bool:
        """Move one check-in if it is still in ``from_state``, and log it; False if someone else moved it."""
        async with self._gw().sessions.begin() as session:
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
                    subject=f"checkin-{ck.id}",
                    details={"kind": ck.kind, "due_at": ck.due_at.isoformat(), "state": to_state, "text": text},
                )
            return moved

    async def _raise_patrol(
        self, ck: Checkin, priority: int, why: str, cause: str, text_code: str, **text_params: Any
    ) -> None:
        """A patrol visit task: ``why`` in English for API users, ``text_code`` with the check-in's kind, client
        and due time (plus ``text_params``) for the console."""
        outcome = await self._gw().raise_alarm(
            ck.camera_id,
            f"patrol-{ck.id}",
            AlarmType.PATROL_VISIT,
            priority=priority,
            text=why,
            text_code=text_code,
            text_params={"kind": ck.kind, "client_ref": ck.client_ref, "due_at": ck.due_at.isoformat(), **text_params},
            client_ref=ck.client_ref,
            due_at=ck.due_at.isoformat(),
            checkin_id=ck.id,
            cause=cause,
        )
        if outcome not in _RAISED_OK:
            log.error("PATROL VISIT REFUSED by the intake", checkin_id=ck.id, outcome=outcome.value, why=why)
        else:
            log.info("patrol visit raised", checkin_id=ck.id, client_ref=ck.client_ref, cause=cause)

    # --- looks ------------------------------------------------------------------------------------------
    def _on_look_ended(self, event: Any) -> None:
        look = self._live.pop(event.look_id, None)
        if look is None:
            return  # not a look of a check-in (or already accounted for)
        task = asyncio.get_running_loop().create_task(self._log_look_ended(look, event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _log_look_ended(self, look: LiveLook, event: Any) -> None:
        try:
            async with self._gw().sessions.begin() as session:
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

    def live_looks(self) -> list[LiveLook]:
        return list(self._live.values())

    async def _refuse(
        self,
        user: ApiUser,
        action: str,
        reason: str,
        client_ref: str | None,
        subject: str,
        status: int = 403,
        code: str = "checkin.refused",
        **params: Any,
    ) -> ApiError:
        async with self._gw().sessions.begin() as session:
            await audit.append(
                session,
                actor=user.username,
                action=action,
                client_ref=client_ref,
                subject=subject,
                details={"role": user.role, "reason": reason, "code": code},
            )
        log.warning("check-in request refused", user=user.username, action=action, subject=subject, code=code)
        return ApiError(status, code, reason, **params)

    async def start_look(self, checkin_id: int, offer: OfferIn, user: ApiUser) -> dict[str, Any]:
        gw = self._gw()
        now = self.now()
        subject = f"checkin-{checkin_id}"
        async with gw.sessions() as session:
            ck = await session.get(Checkin, checkin_id)
            consent = await session.get(Consent, ck.consent_id) if ck is not None else None
            skipped = await consents.skipped_nights(session, consent.id) if consent is not None else []
        if ck is None or consent is None:
            raise await self._refuse(
                user,
                "checkin.look_refused",
                f"no check-in {checkin_id}",
                None,
                subject,
                404,
                "checkin.not_found",
                id=checkin_id,
            )
        plan = plan_of(consent)
        night = plan.night_at(now)
        reason: str | None = None
        status = 403
        code, params = "checkin.refused", dict[str, Any]()
        live = next((look for look in self._live.values() if look.camera_id == ck.camera_id), None)
        if user.role != "operator":
            reason = f"role {user.role!r} may not look through a client's camera (operators only)"
            code, params = "checkin.operators_only", {"role": user.role}
        elif consent.withdrawn_at is not None or consent.id in self._withdrawn:
            reason, code = "the client has withdrawn consent to camera check-ins", "checkin.consent_withdrawn"
        elif ck.kind == "phone":
            reason, code = "this check-in is a phone call to the client, not a camera look", "checkin.is_phone_call"
        elif night is None:
            reason = (
                f"outside the agreed night window {consent.window_start}-{consent.window_end} ({consent.timezone}); "
                f"now {local_label(now, plan.tz)}"
            )
            code = "checkin.outside_window"
            params = {"window_start": consent.window_start, "window_end": consent.window_end}
        elif night in skipped:
            reason = f"the client skipped the night of {night.isoformat()}"
            code, params = "checkin.night_skipped", {"night": night.isoformat()}
        elif ck.state not in _LOOK_STATES:
            reason = f"this check-in is not due (it is {ck.state})"
            code, params = "checkin.not_due", {"state": ck.state}
        elif ck.night != night:
            reason = f"this check-in belongs to the night of {ck.night.isoformat()}, not tonight"
            code, params = "checkin.other_night", {"night": ck.night.isoformat()}
        elif live is not None and live.operator != user.username:
            reason, status = "a look through this camera is already live", 409
            code, params = "checkin.look_live", {"operator": live.operator}
        elif live is not None and not offer.take_over:
            # The same operator (a reloaded page, a second tab): they may take it over or end it at once.
            reason, status = "your own look through this camera is still live; take it over or end it", 409
            code, params = "checkin.look_live_own", {"look_id": live.look_id, "checkin_id": live.checkin_id}
        if reason is not None:
            raise await self._refuse(
                user, "checkin.look_refused", reason, ck.client_ref, subject, status, code, **params
            )
        if live is not None:  # the same operator takes their own live look over: it ends first, logged as such
            await self.relay.end_look(live.look_id, "taken_over")

        look_id = uuid.uuid4().hex
        look = LiveLook(look_id, ck.id, consent.id, ck.camera_id, ck.client_ref, user.username, now)
        self._live[look_id] = look
        try:
            answer = await self.relay.start_look(
                look_id=look_id,
                camera_id=ck.camera_id,
                offer_sdp=offer.sdp,
                offer_type=offer.type,
                privacy=PrivacyMode(consent.privacy),
                max_s=consent.max_look_s,
                audio=consent.audio,
            )
        except Exception as exc:
            self._live.pop(look_id, None)
            failure = str(getattr(exc, "reason", None) or exc or type(exc).__name__)
            why = (
                f"camera look failed ({failure}) at the check-in due {local_label(ck.due_at, plan.tz)}: physical visit"
            )
            await self._raise_patrol(ck, PATROL_PRIORITY, why, "look_failed", "task.visit_look_failed")
            if await self._set_state(ck, ck.state, "camera_offline", now, "escalation.patrol_visit", why):
                await gw.resolve_alarm(
                    ck.camera_id,
                    f"checkin-{ck.id}",
                    "camera failed: patrol visit sent",
                    "gateway",
                    code="outcome.camera_failed",
                )
            raise await self._refuse(
                user, "checkin.look_failed", why, ck.client_ref, subject, 502, "checkin.look_failed"
            ) from exc
        if consent.id in self._withdrawn:  # withdrawn while the camera was connecting
            await self.relay.end_look(look_id, "withdrawn")
            raise await self._refuse(
                user,
                "checkin.look_refused",
                "the client has withdrawn consent",
                ck.client_ref,
                subject,
                403,
                "checkin.consent_withdrawn",
            )
        async with gw.sessions.begin() as session:
            await session.execute(
                update(Checkin)
                .where(Checkin.id == ck.id)
                .values(state="started", started_at=now, started_by=user.username, look_id=look_id)
            )
            await audit.append(
                session,
                actor=user.username,
                action="checkin.look_started",
                client_ref=ck.client_ref,
                subject=subject,
                details={
                    "look_id": look_id,
                    "camera_id": ck.camera_id,
                    "kind": ck.kind,
                    "max_s": consent.max_look_s,
                    "privacy": consent.privacy,
                    "audio": consent.audio,
                },
            )
        return {**answer, "look_id": look_id, "max_s": consent.max_look_s, "privacy": consent.privacy}

    async def start_alarm_look(self, consent_id: int, body: AlarmLookIn, user: ApiUser) -> dict[str, Any]:
        """A look on an alarm from the client, when the consent allows it: an event check-in (kind "alarm")
        made due now, then the same checks and media path as any check-in (role, consent, window, night)."""
        gw = self._gw()
        now = self.now()
        subject = f"alarm:{body.device_id}/{body.alarm_id}"
        async with gw.sessions() as session:
            consent = await session.get(Consent, consent_id)
            alarm = await session.get(StoredAlarm, (body.device_id, body.alarm_id))
            device = await session.get(Device, body.device_id)
        client_ref = consent.client_ref if consent is not None else None
        reason: str | None = None
        if consent is None:
            raise await self._refuse(
                user, "checkin.look_refused", f"no consent {consent_id}", None, subject, 404, "consent.not_found"
            )
        code, params = "checkin.refused", dict[str, Any]()
        if user.role != "operator":
            reason = f"role {user.role!r} may not look through a client's camera (operators only)"
            code, params = "checkin.operators_only", {"role": user.role}
        elif not consent.look_on_alarm:
            reason, code = "the consent does not allow a look on an alarm", "checkin.no_look_on_alarm"
        elif alarm is None or device is None or device.client_ref != consent.client_ref:
            reason, code = "no alarm with that id from this client's devices", "checkin.alarm_not_found"
        elif alarm.cancelled_at is not None or alarm.resolved_at is not None:
            reason, code = "that alarm is cancelled or resolved", "checkin.alarm_closed"
        elif (now - alarm.stored_at).total_seconds() > ALARM_LOOK_MAX_AGE_S:
            reason = f"that alarm is older than {ALARM_LOOK_MAX_AGE_S // 60} minutes"
            code, params = "checkin.alarm_too_old", {"minutes": ALARM_LOOK_MAX_AGE_S // 60}
        if reason is not None:
            raise await self._refuse(user, "checkin.look_refused", reason, client_ref, subject, 403, code, **params)
        night = plan_of(consent).night_at(now)
        async with gw.sessions.begin() as session:
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
            await audit.append(
                session,
                actor=user.username,
                action="checkin.alarm_look_requested",
                client_ref=consent.client_ref,
                subject=subject,
                details={"checkin_id": ck.id},
            )
        return await self.start_look(ck.id, OfferIn(sdp=body.sdp, type=body.type), user)

    async def end_look(self, look_id: str, user: ApiUser, reason: str = "operator") -> None:
        """End a live look; ``reason`` "page_left" when the operator's page was left (reload, closed tab)."""
        look = self._live.get(look_id)
        if look is None:
            raise ApiError(404, "look.not_found", "no live look with that id")
        if user.role not in ("operator", "admin"):
            raise await self._refuse(
                user,
                "checkin.end_refused",
                "only operators end looks",
                look.client_ref,
                f"checkin-{look.checkin_id}",
                403,
                "checkin.operators_only",
                role=user.role,
            )
        await self.relay.end_look(look_id, reason)

    # --- outcomes and escalation ------------------------------------------------------------------------
    async def record_outcome(self, checkin_id: int, body: OutcomeIn, user: ApiUser) -> Checkin:
        gw = self._gw()
        now = self.now()
        subject = f"checkin-{checkin_id}"
        async with gw.sessions() as session:
            ck = await session.get(Checkin, checkin_id)
            consent = await session.get(Consent, ck.consent_id) if ck is not None else None
        if ck is None or consent is None:
            raise ApiError(404, "checkin.not_found", f"no check-in {checkin_id}", id=checkin_id)
        reason: str | None = None
        code, params = "checkin.refused", dict[str, Any](state=ck.state)
        if user.role != "operator":
            reason = f"role {user.role!r} may not record check-in outcomes (operators only)"
            code, params = "checkin.operators_only", {"role": user.role}
        elif ck.kind == "phone" and ck.state != "due":
            reason, code = f"this phone call is not open (it is {ck.state})", "checkin.phone_not_open"
        elif ck.kind != "phone" and ck.state != "started":
            reason, code = f"an outcome needs a look first (this check-in is {ck.state})", "checkin.look_first"
        if reason is not None:
            raise await self._refuse(
                user, "checkin.outcome_refused", reason, ck.client_ref, subject, 409, code, **params
            )
        for look in list(self._live.values()):
            if look.checkin_id == ck.id:
                await self.relay.end_look(look.look_id, "operator")
        async with gw.sessions.begin() as session:
            result = await session.execute(
                update(Checkin)
                .where(Checkin.id == ck.id, Checkin.state == ck.state)
                .values(state="done", outcome=body.outcome, outcome_by=user.username, outcome_at=now, note=body.note)
            )
            if not getattr(result, "rowcount", 0):
                raise ApiError(409, "checkin.changed", "the check-in changed meanwhile; reload it")
            await audit.append(
                session,
                actor=user.username,
                action="checkin.outcome",
                client_ref=ck.client_ref,
                subject=subject,
                details={"outcome": body.outcome, "note": body.note, "kind": ck.kind},
            )
        task_outcome, code, params = await self._follow_up(ck, consent, body.outcome, now)
        await gw.resolve_alarm(ck.camera_id, f"checkin-{ck.id}", task_outcome, user.username, code=code, params=params)
        await self.run_once()  # a phone step is due at once
        async with gw.sessions() as session:
            fresh = await session.get(Checkin, ck.id)
        assert fresh is not None
        return fresh

    async def _follow_up(
        self, ck: Checkin, consent: Consent, outcome: str, now: datetime
    ) -> tuple[str, str, dict[str, Any]]:
        """What follows an outcome; returns what closes the check-in's queue task: the English text, its code and
        parameters."""
        if outcome == "seen_ok":
            return "seen_ok", "outcome.seen_ok", {}
        if outcome == "needs_help":
            why = f"client {ck.client_ref} needs help (seen at the camera check-in): urgent visit"
            await self._raise_patrol(ck, URGENT_PATROL_PRIORITY, why, "needs_help", "task.visit_needs_help")
            await self._log_escalation(ck, "patrol_visit", why)
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
                await self._add_followup(ck, "recheck", due, step, now)
                label = local_label(due, plan.tz)
                await self._log_escalation(ck, "recheck", f"not seen: recheck at {label}")
                return f"not_seen: recheck at {label}", "outcome.not_seen_recheck", {"at": due.isoformat()}
            if nxt == "phone":
                await self._add_followup(ck, "phone", now, step, now)
                await self._log_escalation(ck, "phone", "not seen: phone the client")
                return "not_seen: phone the client", "outcome.not_seen_phone", {}
            why = f"client {ck.client_ref} not seen ({ck.kind} check-in due {local_label(ck.due_at, plan.tz)}): visit"
            await self._raise_patrol(ck, PATROL_PRIORITY, why, "not_seen", "task.visit_not_seen")
            await self._log_escalation(ck, "patrol_visit", why)
            return "not_seen: patrol visit sent", "outcome.not_seen_visit", {}

    async def _add_followup(self, ck: Checkin, kind: str, due: datetime, step: int, now: datetime) -> None:
        async with self._gw().sessions.begin() as session:
            insert = dialect_insert(session)
            await session.execute(
                insert(Checkin)
                .values(
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
                .on_conflict_do_nothing(index_elements=["consent_id", "kind", "due_at"])
            )

    async def _log_escalation(self, ck: Checkin, step: str, text: str) -> None:
        async with self._gw().sessions.begin() as session:
            await audit.append(
                session,
                actor="gateway",
                action=f"escalation.{step}",
                client_ref=ck.client_ref,
                subject=f"checkin-{ck.id}",
                details={"text": text, "kind": ck.kind},
            )

    # --- consents (side effects on the running gateway) -----------------------------------------------
    async def withdraw(self, consent_id: int, user: ApiUser, reason: str | None) -> Consent:
        """Withdrawal takes effect at once: live looks end first, then the database, then the queue."""
        gw = self._gw()
        async with gw.sessions() as session:
            if await session.get(Consent, consent_id) is None:
                raise ApiError(404, "consent.not_found", f"no consent {consent_id}", id=consent_id)
        self._withdrawn.add(consent_id)
        for look in list(self._live.values()):
            if look.consent_id == consent_id:
                await self.relay.end_look(look.look_id, "withdrawn")
        async with gw.sessions.begin() as session:
            consent, _ = await consents.withdraw_consent(session, consent_id, actor=user.username, reason=reason)
        await self._close_cancelled()
        return consent

    async def skip(self, consent_id: int, body: SkipIn, user: ApiUser) -> None:
        gw = self._gw()
        try:
            async with gw.sessions.begin() as session:
                await consents.skip_night(session, consent_id, body.night, actor=user.username, note=body.note)
        except ConsentError as exc:
            raise _consent_http(exc) from exc
        for look in list(self._live.values()):
            if look.consent_id == consent_id:
                async with gw.sessions() as session:
                    ck = await session.get(Checkin, look.checkin_id)
                if ck is not None and ck.night == body.night:
                    await self.relay.end_look(look.look_id, "withdrawn")
        await self._close_cancelled()

    # --- HTTP ---------------------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        r = APIRouter(tags=["camera check-ins"], responses=responses(400, 401, 403, 404, 409, 422, 503))
        feature = self

        @r.get("/consents", response_model=list[ConsentOut])
        async def list_consents(
            user: Reader, client_ref: str | None = None, include_withdrawn: bool = False
        ) -> list[ConsentOut]:
            async with feature._gw().sessions() as session:
                rows = await consents.list_consents(session, client_ref=client_ref, include_withdrawn=include_withdrawn)
                return [await consents.describe(session, c) for c in rows]

        @r.get("/consents/{consent_id}", response_model=ConsentOut)
        async def get_consent(consent_id: DbId, user: Reader) -> ConsentOut:
            async with feature._gw().sessions() as session:
                try:
                    return await consents.describe(session, await consents.get_consent(session, consent_id))
                except ConsentError as exc:
                    raise _consent_http(exc) from exc

        @r.post("/consents", response_model=ConsentOut, status_code=201)
        async def create_consent(body: ConsentIn, user: CaseOfficer) -> ConsentOut:
            gw = feature._gw()
            try:
                async with gw.sessions.begin() as session:
                    c = await consents.create_consent(
                        session, body, actor=user.username, default_tz=gw.settings.timezone, now=feature.now()
                    )
                    return await consents.describe(session, c)
            except ConsentError as exc:
                raise _consent_http(exc) from exc

        @r.patch("/consents/{consent_id}", response_model=ConsentOut)
        async def change_consent(consent_id: DbId, body: ConsentChange, user: CaseOfficer) -> ConsentOut:
            try:
                async with feature._gw().sessions.begin() as session:
                    c = await consents.change_consent(session, consent_id, body, actor=user.username, now=feature.now())
                    return await consents.describe(session, c)
            except ConsentError as exc:
                raise _consent_http(exc) from exc

        @r.post("/consents/{consent_id}/skip", status_code=204)
        async def skip_night(consent_id: DbId, body: SkipIn, user: ClientRequest) -> None:
            await feature.skip(consent_id, body, user)

        @r.post("/consents/{consent_id}/withdraw", response_model=ConsentOut)
        async def withdraw(consent_id: DbId, body: WithdrawIn, user: ClientRequest) -> ConsentOut:
            c = await feature.withdraw(consent_id, user, body.reason)
            async with feature._gw().sessions() as session:
                return await consents.describe(session, c)

        @r.get("/checkins", response_model=list[CheckinOut])
        async def list_checkins(
            user: Reader,
            client_ref: str | None = None,
            state: str | None = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 200,
        ) -> list[Checkin]:
            query = select(Checkin).order_by(Checkin.due_at.desc(), Checkin.id.desc()).limit(limit)
            if client_ref is not None:
                query = query.where(Checkin.client_ref == client_ref)
            if state is not None:
                query = query.where(Checkin.state == state)
            async with feature._gw().sessions() as session:
                return list((await session.scalars(query)).all())

        @r.get("/checkins/{checkin_id}", response_model=CheckinOut)
        async def get_checkin(checkin_id: DbId, user: Reader) -> Checkin:
            async with feature._gw().sessions() as session:
                ck = await session.get(Checkin, checkin_id)
            if ck is None:
                raise ApiError(404, "checkin.not_found", f"no check-in {checkin_id}", id=checkin_id)
            return ck

        @r.post("/checkins/{checkin_id}/look")
        async def look(checkin_id: DbId, body: OfferIn, user: CurrentUser) -> dict[str, Any]:
            return await feature.start_look(checkin_id, body, user)

        @r.post("/consents/{consent_id}/alarm-look")
        async def alarm_look(consent_id: DbId, body: AlarmLookIn, user: CurrentUser) -> dict[str, Any]:
            return await feature.start_alarm_look(consent_id, body, user)

        @r.post("/looks/{look_id}/end", status_code=204)
        async def end_look(look_id: str, user: CurrentUser, body: EndLookIn | None = None) -> None:
            await feature.end_look(look_id, user, body.reason if body is not None else "operator")

        @r.post("/checkins/{checkin_id}/outcome", response_model=CheckinOut)
        async def outcome(checkin_id: DbId, body: OutcomeIn, user: CurrentUser) -> Checkin:
            return await feature.record_outcome(checkin_id, body, user)

        @r.get("/clients/{client_ref}/log", response_model=list[LogEntryOut])
        async def client_log(
            client_ref: str, user: LogReader, since: Annotated[datetime | None, Query()] = None
        ) -> list[audit.Entry]:
            if since is not None and since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            async with feature._gw().sessions.begin() as session:
                await audit.append(
                    session,
                    actor=user.username,
                    action="log.read",
                    client_ref=client_ref,
                    subject=f"client-{client_ref}"[:128],
                    details={"since": since.isoformat() if since else None, "role": user.role},
                )
                return await audit.client_entries(session, client_ref, since)

        return r


__all__ = ["CheckinFeature", "CheckinOut", "LiveLook", "LookRelay", "OfferIn", "OutcomeIn"]
