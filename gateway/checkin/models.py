"""Tables of camera check-ins: consents, skipped nights, and check-ins (scheduled, rechecks, phone calls)."""

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from trygg.db import UtcDateTime, utcnow


class Consent(Base):
    """A client's consent to camera check-ins through one camera. Withdrawn consents are kept (history)."""

    __tablename__ = "checkin_consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_ref: Mapped[str] = mapped_column(String(128), index=True)
    camera_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"))
    consented_by: Mapped[list[dict[str, str]]] = mapped_column(JSON)  # [{"name", "role"}]
    consented_at: Mapped[datetime] = mapped_column(UtcDateTime)
    basis: Mapped[str] = mapped_column(Text)  # e.g. the case officer's decision reference
    timezone: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[str] = mapped_column(String(5))  # local "HH:MM"
    window_end: Mapped[str] = mapped_column(String(5))
    times: Mapped[list[str]] = mapped_column(JSON)  # local "HH:MM"
    max_look_s: Mapped[float] = mapped_column(Float)
    privacy: Mapped[str] = mapped_column(String(16))
    audio: Mapped[bool] = mapped_column(Boolean)
    recheck_min: Mapped[int] = mapped_column(Integer)
    escalation: Mapped[list[str]] = mapped_column(JSON)
    look_on_alarm: Mapped[bool] = mapped_column(Boolean)
    # Slots before this instant are never made due (set at creation and when times or window change).
    schedule_from: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    withdrawn_by: Mapped[str | None] = mapped_column(String(128))
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)


class SkippedNight(Base):
    """The client skips one night (named by the local date on which its window starts)."""

    __tablename__ = "checkin_skipped_nights"
    __table_args__ = (UniqueConstraint("consent_id", "night", name="uq_checkin_skipped_nights_consent_night"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consent_id: Mapped[int] = mapped_column(Integer, ForeignKey("checkin_consents.id"))
    night: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)


class Checkin(Base):
    """One check-in: scheduled at an agreed time, a recheck after "not seen", or a phone call to the client.

    States: ``pending`` (known, not yet due) -> ``due`` (in the operators' queue) -> ``started`` (a look was
    made) -> ``done`` (outcome given); or ``missed`` (nobody started it in time: patrol sent),
    ``camera_offline`` (camera down or the look failed: patrol sent), ``cancelled`` (withdrawn, night skipped).
    The unique key (consent, kind, due_at) makes the scheduler restart-safe.
    """

    __tablename__ = "checkins"
    __table_args__ = (
        UniqueConstraint("consent_id", "kind", "due_at", name="uq_checkins_consent_kind_due"),
        Index("ix_checkins_state_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consent_id: Mapped[int] = mapped_column(Integer, ForeignKey("checkin_consents.id"))
    client_ref: Mapped[str] = mapped_column(String(128))
    camera_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # "scheduled" | "recheck" | "phone"
    night: Mapped[date] = mapped_column(Date)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    step: Mapped[int] = mapped_column(Integer, default=0)  # escalation steps taken before this one
    parent_id: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    raised_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    started_by: Mapped[str | None] = mapped_column(String(128))
    look_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(32))
    outcome_by: Mapped[str | None] = mapped_column(String(128))
    outcome_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text)
