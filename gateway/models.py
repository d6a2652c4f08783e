"""The gateway's core tables: device registry, durably stored alarms, the transactional outbox, dead letters and
installation tests."""

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from trygg.db import UtcDateTime, utcnow


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    client_ref: Mapped[str | None] = mapped_column(String(128))
    location: Mapped[str | None] = mapped_column(Text)  # address or location text
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    installed_on: Mapped[date | None] = mapped_column(Date)
    firmware_version: Mapped[str | None] = mapped_column(String(64))
    network: Mapped[str | None] = mapped_column(String(16))  # ethernet, wifi, lte, 5g, 3g, 2g
    supervision_class: Mapped[str] = mapped_column(String(16), default="alarm")  # alarm | camera
    area: Mapped[str | None] = mapped_column(String(64))  # groups devices for area-outage detection


class StoredAlarm(Base):
    """An alarm the gateway has accepted. Keyed by (device_id, alarm_id): a resend is not stored twice."""

    __tablename__ = "intake_alarms"

    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"), primary_key=True)
    alarm_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer)
    device_ts: Mapped[datetime] = mapped_column(UtcDateTime)
    stored_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # gateway-raised alarms it closed itself
    # The alarm as filed: the contract's fields, the gateway's own details (client_ref from the registry, what a
    # gateway-raised alarm carries) and ``device_extra`` (what else the device sent, never interpreted).
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    # An installation test: decided by the gateway's installation-test window, never by the device.
    is_test: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class OutboxRow(Base):
    """What the forwarder still owes the receiver; written in the same transaction as the alarm."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # "alarm" | "cancel" | "resolve"
    device_id: Mapped[str] = mapped_column(String(64))
    alarm_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # What a "resolve" row carries (outcome, actor); alarms and cancels are read from intake_alarms.
    payload: Mapped[dict[str, object] | None] = mapped_column(JSON)


class DeadLetter(Base):
    """A device message the gateway could not handle (malformed, or its handling failed), kept for a technician.

    Bounded: only the newest ``dead_letter_keep`` are kept, each payload cut at ``dead_letter_payload_max_bytes``.
    The payload may hold personal text: it is shown only behind a login (and the read is logged), never logged.
    """

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(256))  # the MQTT topic (or another protocol's address)
    device_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(32))  # the topic kind (alarm, alarm/cancel, ...), when known
    code: Mapped[str] = mapped_column(String(32))  # rejection code or failure class: invalid, too_deep, handler_error
    error: Mapped[str] = mapped_column(Text)  # the reason, or the exception's type and where it was raised
    size: Mapped[int] = mapped_column(Integer)  # bytes the message had
    payload: Mapped[bytes] = mapped_column(LargeBinary)  # the raw bytes, cut at the bound


class InstallTest(Base):
    """A technician's end-to-end test of one device: its next alarm travels the whole chain as a test.

    The core's (``gateway/install_tests.py``): its window decides how an alarm is filed; the fleet's API starts
    and lists them."""

    __tablename__ = "install_tests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"), index=True)
    started_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    deadline: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(16), default="waiting")  # waiting | stored | passed | failed
    alarm_id: Mapped[str | None] = mapped_column(String(64))
    stored_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_to_end_ms: Mapped[float | None] = mapped_column()
    detail: Mapped[str | None] = mapped_column(Text)  # English, for API users
    detail_code: Mapped[str | None] = mapped_column(String(64))  # what the console shows (test.no_alarm, ...)


class StoreProbe(Base):
    """One row the intake writer rewrites when health asks and nothing else was committed lately: a commit that
    fails (disk full, read-only, locked) shows in ``/health`` even while no alarm comes (gateway/health.py)."""

    __tablename__ = "gateway_store_probe"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    probed_at: Mapped[datetime] = mapped_column(UtcDateTime)
