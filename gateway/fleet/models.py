"""Supervision state that must survive a gateway restart, remote configuration (installation tests are the
core's: ``gateway.models.InstallTest``)."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from trygg.db import UtcDateTime, utcnow


class DeviceHealth(Base):
    """The last word from each device, flushed from memory every few seconds and on stop."""

    __tablename__ = "device_health"

    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="unknown")  # online | offline | unknown
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    battery_pct: Mapped[int | None] = mapped_column(Integer)
    has_mains: Mapped[bool | None] = mapped_column(Boolean)  # False: a battery-only device
    mains: Mapped[bool | None] = mapped_column(Boolean)
    signal_dbm: Mapped[int | None] = mapped_column(Integer)
    network: Mapped[str | None] = mapped_column(String(16))
    firmware: Mapped[str | None] = mapped_column(String(64))
    config_version: Mapped[int | None] = mapped_column(Integer)
    open_alarm_id: Mapped[str | None] = mapped_column(String(64))  # the open device_offline alarm
    flaps: Mapped[int] = mapped_column(Integer, default=0)  # offline/online changes under the open alarm


class DeviceConfigRow(Base):
    """The configuration the gateway wants a device to run (published retained on its config topic)."""

    __tablename__ = "device_configs"

    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    heartbeat_interval_s: Mapped[int] = mapped_column(Integer)
    extra: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    changed_by: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # when a heartbeat reported this version


class HeartbeatSeen(Base):
    """Several gateways (shared subscriptions): the newest heartbeat each follower gateway heard from a device,
    written every ``heartbeat_share_flush_s``; the leader, which alone judges deadlines, reads the rows written
    since its last read (``written_at``, the database's clock) and counts them as heard (gateway/fleet/sharing.py)."""

    __tablename__ = "heartbeats_seen"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime)  # when the follower received it (its clock)
    written_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now(), index=True)
    gateway: Mapped[str] = mapped_column(String(64))  # the instance that heard it
    heartbeat: Mapped[dict[str, object]] = mapped_column(JSON)  # the validated Heartbeat, as JSON
