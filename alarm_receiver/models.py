"""The receiver's tables: the queue, each alarm's history, users and tokens, notices owed to devices."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alarm_receiver.clients.models import Client
from alarm_receiver.db import Base
from trygg.db import UtcDateTime, utcnow


class QueueAlarm(Base):
    __tablename__ = "queue_alarms"
    __table_args__ = (
        UniqueConstraint("device_id", "alarm_id", name="uq_queue_alarms_key"),
        Index("ix_queue_alarms_open", "state", "priority", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    alarm_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="new")
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    device_ts: Mapped[datetime] = mapped_column(UtcDateTime)
    stored_at: Mapped[datetime] = mapped_column(UtcDateTime)  # when the gateway made it durable
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    assigned_to: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(Text)
    # The outcome as a code with parameters when the gateway closed it (the console translates; outcome stays
    # the English for API users). None for an operator's outcome (one of the console's words).
    outcome_code: Mapped[str | None] = mapped_column(String(64))
    outcome_params: Mapped[dict[str, object] | None] = mapped_column(JSON)
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    # The client the alarm's device belonged to when the alarm came in (client register, issue 10): it stays with
    # that client when the device moves. routing_missing: no client, or a client with no patrol area.
    # (no foreign key in the database: adding one would make SQLite copy this table, which others reference)
    client_id: Mapped[int | None] = mapped_column(Integer, index=True)
    routing_missing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Alarms of the same type from the same device that came while this one was open, collapsed into it (each in
    # queue_repeats and in the history): how many, and when the latest was stored at the gateway.
    repeats: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_repeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When the device cancelled this item's own alarm while alarms collapsed into it still stood (the item stays
    # until every one of them is cancelled too, alarm_receiver/queue.py).
    device_cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    events: Mapped[list["AlarmEvent"]] = relationship(back_populates="alarm", order_by="AlarmEvent.id", lazy="raise")
    client: Mapped[Client | None] = relationship(
        lazy="selectin", primaryjoin="foreign(QueueAlarm.client_id) == Client.id", viewonly=True
    )

    @property
    def client_name(self) -> str | None:
        return self.client.name if self.client is not None else None

    @property
    def client_address(self) -> str | None:
        return self.client.short_address if self.client is not None else None


class AlarmEvent(Base):
    """One change in an alarm's life: who, when, what, and an optional note."""

    __tablename__ = "alarm_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alarm_pk: Mapped[int] = mapped_column(ForeignKey("queue_alarms.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)  # English for API users (with a person's note, if any)
    # What the console shows: a code and its parameters (a person's own note under params["note"]). Rows from
    # before codes have none: the console shows the action's word and the note.
    code: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, object] | None] = mapped_column(JSON)

    alarm: Mapped[QueueAlarm] = relationship(back_populates="events")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """Bearer tokens are random; only their SHA-256 is stored, so a database leak does not log anyone in."""

    __tablename__ = "api_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class DeviceNotice(Base):
    """A status owed to a device (``acknowledged``: help is coming), published until the broker takes it."""

    __tablename__ = "device_notices"
    __table_args__ = (Index("ix_device_notices_pending", "sent_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    alarm_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class QueueRepeat(Base):
    """An alarm collapsed into an open queue item of the same device and type (a flood, a pressed-again button):
    kept under its own key, so that a resend is still answered as a duplicate and a cancel finds it."""

    __tablename__ = "queue_repeats"
    __table_args__ = (UniqueConstraint("device_id", "alarm_id", name="uq_queue_repeats_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alarm_pk: Mapped[int] = mapped_column(ForeignKey("queue_alarms.id"), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    alarm_id: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer)
    device_ts: Mapped[datetime] = mapped_column(UtcDateTime)
    stored_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # cancelled on the device


class StoreProbe(Base):
    """One row health rewrites when no intake committed lately: a store that cannot commit answers 503."""

    __tablename__ = "receiver_store_probe"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    probed_at: Mapped[datetime] = mapped_column(UtcDateTime)
