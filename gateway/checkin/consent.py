"""Consents to camera check-ins: what the case officer records, checked, stored and logged.

Used by the HTTP API (gateway/checkin/routes.py) and the CLI (trygg_cli/consent.py). Every change is one
transaction together with its supervision-log entry. Side effects on a running gateway (ending a live look,
closing queue tasks) belong to gateway/checkin/outcomes.py. Refusals are domain errors (gateway/errors.py).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from devices import DeviceType
from gateway.checkin.models import Checkin, Consent, SkippedNight
from gateway.checkin.schedule import NightPlan, parse_hhmm
from gateway.errors import Conflict, Invalid, NotFound
from gateway.models import Device
from trygg import audit
from trygg.db import utcnow

EscalationStep = Literal["recheck", "phone", "patrol_visit"]
Privacy = Literal["full", "blurred", "silhouette"]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
DEFAULT_ESCALATION: list[EscalationStep] = ["recheck", "phone", "patrol_visit"]
OPEN_STATES = ("pending", "due", "started")


class Person(BaseModel):
    """Someone who gave consent: the client, an adult living in the home, or a legal representative."""

    name: Name
    role: Literal["client", "cohabitant", "legal_representative"]


class _Terms(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_start: str | None = None
    window_end: str | None = None
    times: list[str] | None = None
    max_look_s: float | None = Field(None, ge=10, le=60)
    privacy: Privacy | None = None
    audio: bool | None = None
    recheck_min: int | None = Field(None, ge=10, le=20)
    escalation: list[EscalationStep] | None = None
    look_on_alarm: bool | None = None

    @field_validator("window_start", "window_end")
    @classmethod
    def _hhmm(cls, v: str | None) -> str | None:
        return None if v is None else parse_hhmm(v).strftime("%H:%M")

    @field_validator("times")
    @classmethod
    def _times(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        if not v:
            raise ValueError("at least one check-in time is needed")
        return sorted({parse_hhmm(t).strftime("%H:%M") for t in v})

    @field_validator("escalation")
    @classmethod
    def _escalation(cls, v: list[EscalationStep] | None) -> list[EscalationStep] | None:
        if v is None:
            return None
        if len(set(v)) != len(v):
            raise ValueError("each escalation step at most once")
        if not v or v[-1] != "patrol_visit":
            raise ValueError("the escalation must end with patrol_visit (a physical visit is the last resort)")
        return v


class ConsentIn(_Terms):
    """A new consent (the case officer's decision)."""

    client_ref: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    camera_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    consented_by: list[Person] = Field(min_length=1)
    consented_at: datetime | None = None
    basis: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    timezone: str | None = None
    window_start: str = "22:00"
    window_end: str = "06:30"
    times: list[str] = ["23:00", "02:00", "05:00"]
    max_look_s: float = Field(30.0, ge=10, le=60)
    privacy: Privacy = "full"
    audio: bool = False
    recheck_min: int = Field(15, ge=10, le=20)
    escalation: list[EscalationStep] = list(DEFAULT_ESCALATION)
    look_on_alarm: bool = False

    @model_validator(mode="after")
    def _has_client(self) -> ConsentIn:
        if not any(p.role in ("client", "legal_representative") for p in self.consented_by):
            raise ValueError("the client (or their legal representative) must be among those who consented")
        if self.consented_at is not None and self.consented_at.tzinfo is None:
            raise ValueError("consented_at must carry a UTC offset")
        return self


class ConsentChange(_Terms):
    """A change of terms; unset fields stay as they are."""

    consented_by: list[Person] | None = None
    basis: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None


class ConsentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    client_ref: str
    camera_id: str
    consented_by: list[dict[str, str]]
    consented_at: datetime
    basis: str
    timezone: str
    window_start: str
    window_end: str
    times: list[str]
    max_look_s: float
    privacy: str
    audio: bool
    recheck_min: int
    escalation: list[str]
    look_on_alarm: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None
    withdrawn_reason: str | None
    skipped_nights: list[date] = []


def plan_of(consent: Consent) -> NightPlan:
    return NightPlan.parse(consent.window_start, consent.window_end, consent.times, consent.timezone)


def _terms(consent: Consent) -> dict[str, Any]:
    return {k: getattr(consent, k) for k in _Terms.model_fields}


async def get_consent(session: AsyncSession, consent_id: int) -> Consent:
    consent = await session.get(Consent, consent_id)
    if consent is None:
        raise NotFound("consent.not_found", f"no consent {consent_id}", consent_id=consent_id)
    return consent


async def skipped_nights(session: AsyncSession, consent_id: int) -> list[date]:
    rows = await session.scalars(
        select(SkippedNight.night).where(SkippedNight.consent_id == consent_id).order_by(SkippedNight.night)
    )
    return list(rows.all())


async def describe(session: AsyncSession, consent: Consent) -> ConsentOut:
    out = ConsentOut.model_validate(consent)
    out.skipped_nights = await skipped_nights(session, consent.id)
    return out


async def list_consents(
    session: AsyncSession, *, client_ref: str | None = None, include_withdrawn: bool = False
) -> list[Consent]:
    query = select(Consent).order_by(Consent.id)
    if client_ref is not None:
        query = query.where(Consent.client_ref == client_ref)
    if not include_withdrawn:
        query = query.where(Consent.withdrawn_at.is_(None))
    return list((await session.scalars(query)).all())


async def create_consent(
    session: AsyncSession, data: ConsentIn, *, actor: str, default_tz: str, now: datetime | None = None
) -> Consent:
    device = await session.get(Device, data.camera_id)
    if device is None or device.retired_at is not None:
        raise NotFound(
            "consent.camera_unknown",
            f"camera {data.camera_id!r} is not a registered, active device",
            camera_id=data.camera_id,
        )
    if device.type != DeviceType.CAMERA.value:
        raise Invalid(
            "consent.not_a_camera",
            f"device {data.camera_id!r} is a {device.type}, not a camera",
            camera_id=data.camera_id,
            device_type=device.type,
        )
    if device.client_ref is not None and device.client_ref != data.client_ref:
        raise Invalid(
            "consent.camera_other_client",
            f"camera {data.camera_id!r} belongs to another client",
            camera_id=data.camera_id,
        )
    active = await session.scalar(
        select(Consent.id).where(Consent.camera_id == data.camera_id, Consent.withdrawn_at.is_(None))
    )
    if active is not None:
        raise Conflict(
            "consent.camera_taken",
            f"camera {data.camera_id!r} already has an active consent ({active})",
            camera_id=data.camera_id,
            consent_id=active,
        )
    tz = data.timezone or default_tz
    try:
        NightPlan.parse(data.window_start, data.window_end, data.times, tz)
    except (ValueError, KeyError) as exc:
        raise Invalid("consent.bad_schedule", str(exc)) from exc
    now = now or utcnow()
    consent = Consent(
        client_ref=data.client_ref,
        camera_id=data.camera_id,
        consented_by=[p.model_dump() for p in data.consented_by],
        consented_at=data.consented_at or now,
        basis=data.basis,
        timezone=tz,
        window_start=data.window_start,
        window_end=data.window_end,
        times=list(data.times),
        max_look_s=data.max_look_s,
        privacy=data.privacy,
        audio=data.audio,
        recheck_min=data.recheck_min,
        escalation=list(data.escalation),
        look_on_alarm=data.look_on_alarm,
        schedule_from=now,
        created_at=now,
        created_by=actor,
        updated_at=now,
    )
    session.add(consent)
    await session.flush()
    await audit.append(
        session,
        actor=actor,
        action="consent.given",
        client_ref=consent.client_ref,
        subject=f"consent-{consent.id}",
        details={
            "camera_id": consent.camera_id,
            "consented_by": consent.consented_by,
            "consented_at": consent.consented_at.isoformat(),
            "basis": consent.basis,
            "timezone": tz,
            **_terms(consent),
        },
    )
    return consent


async def change_consent(
    session: AsyncSession, consent_id: int, data: ConsentChange, *, actor: str, now: datetime | None = None
) -> Consent:
    consent = await get_consent(session, consent_id)
    if consent.withdrawn_at is not None:
        raise Conflict("consent.withdrawn", "the consent was withdrawn; record a new one", consent_id=consent_id)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "consented_by" in changes:
        changes["consented_by"] = [p.model_dump() for p in data.consented_by or []]
    before = {k: getattr(consent, k) for k in changes}
    merged = {**_terms(consent), **changes}
    try:
        NightPlan.parse(merged["window_start"], merged["window_end"], merged["times"], consent.timezone)
    except ValueError as exc:
        raise Invalid("consent.bad_schedule", str(exc)) from exc
    now = now or utcnow()
    for key, value in changes.items():
        setattr(consent, key, value)
    consent.updated_at = now
    if {"times", "window_start", "window_end"} & changes.keys():
        consent.schedule_from = now  # new times count from now: no past slot is made due
    await audit.append(
        session,
        actor=actor,
        action="consent.changed",
        client_ref=consent.client_ref,
        subject=f"consent-{consent.id}",
        details={"before": before, "after": changes},
    )
    return consent


async def skip_night(
    session: AsyncSession, consent_id: int, night: date, *, actor: str, note: str | None = None
) -> list[Checkin]:
    """Record a skipped night; returns that night's open check-ins, now cancelled (their tasks to close)."""
    consent = await get_consent(session, consent_id)
    if consent.withdrawn_at is not None:
        raise Conflict("consent.withdrawn", "the consent was withdrawn", consent_id=consent_id)
    exists = await session.scalar(
        select(SkippedNight.id).where(SkippedNight.consent_id == consent_id, SkippedNight.night == night)
    )
    if exists is None:
        session.add(SkippedNight(consent_id=consent_id, night=night, created_by=actor, note=note))
    cancelled = await _cancel_open(session, consent_id, "night skipped", Checkin.night == night)
    await audit.append(
        session,
        actor=actor,
        action="consent.night_skipped",
        client_ref=consent.client_ref,
        subject=f"consent-{consent.id}",
        details={"night": night.isoformat(), "note": note, "cancelled_checkins": [c.id for c in cancelled]},
    )
    return cancelled


async def withdraw_consent(
    session: AsyncSession, consent_id: int, *, actor: str, reason: str | None = None
) -> tuple[Consent, list[Checkin]]:
    """Withdraw at once; returns the consent and its open check-ins, now cancelled (their tasks to close)."""
    consent = await get_consent(session, consent_id)
    if consent.withdrawn_at is not None:
        return consent, []
    now = utcnow()
    consent.withdrawn_at = now
    consent.withdrawn_by = actor
    consent.withdrawn_reason = reason
    consent.updated_at = now
    cancelled = await _cancel_open(session, consent_id, "consent withdrawn")
    await audit.append(
        session,
        actor=actor,
        action="consent.withdrawn",
        client_ref=consent.client_ref,
        subject=f"consent-{consent.id}",
        details={"reason": reason, "cancelled_checkins": [c.id for c in cancelled]},
    )
    return consent, cancelled


async def _cancel_open(session: AsyncSession, consent_id: int, why: str, *where: Any) -> list[Checkin]:
    rows = list(
        (
            await session.scalars(
                select(Checkin).where(Checkin.consent_id == consent_id, Checkin.state.in_(OPEN_STATES), *where)
            )
        ).all()
    )
    if rows:
        await session.execute(
            update(Checkin).where(Checkin.id.in_([c.id for c in rows])).values(state="cancelled", note=why)
        )
    return rows
