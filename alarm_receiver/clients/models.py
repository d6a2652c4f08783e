"""The client register's tables (receiver database only: the gateway keeps just the client reference)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from alarm_receiver.db import Base
from trygg.db import UtcDateTime, utcnow

# The fields shown only under the need-to-know rule (access.py): health notes and the codes that open the door.
PROTECTED_FIELDS = ("health_notes", "door_code", "key_safe_code")


class Client(Base):
    """One person the service is for. ``ref`` is the municipality's reference, the ``client_ref`` the gateway's
    registry and the consents carry."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    street: Mapped[str] = mapped_column(String(200), default="")
    postcode: Mapped[str] = mapped_column(String(16), default="")
    town: Mapped[str] = mapped_column(String(100), default="")
    floor: Mapped[str | None] = mapped_column(String(32))
    entrance: Mapped[str | None] = mapped_column(String(100))
    door_code: Mapped[str | None] = mapped_column(String(100))  # the entrance's door-code text (protected)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(32))
    hard_of_hearing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    speech_impaired: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    interpreter: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    practical_notes: Mapped[str | None] = mapped_column(Text)  # pets, oxygen, smoking
    health_notes: Mapped[str | None] = mapped_column(Text)  # protected
    care_unit: Mapped[str | None] = mapped_column(String(100))  # hemtjänstgrupp
    area: Mapped[str | None] = mapped_column(String(64))  # patrol area code
    key_safe_location: Mapped[str | None] = mapped_column(String(200))
    key_safe_code: Mapped[str | None] = mapped_column(String(64))  # protected
    key_number: Mapped[str | None] = mapped_column(String(32))  # in the key cabinet
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    contacts: Mapped[list[ClientContact]] = relationship(
        back_populates="client", order_by="ClientContact.position", lazy="raise", cascade="all, delete-orphan"
    )

    @property
    def short_address(self) -> str:
        return ", ".join(p for p in (self.street, self.town) if p)


class ClientContact(Base):
    """One line of a client's ordered call list."""

    __tablename__ = "client_contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    relation: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))
    phone_digits: Mapped[str] = mapped_column(String(32), index=True)  # for search: digits only
    has_key: Mapped[bool] = mapped_column(Boolean, default=False)
    call_at_night: Mapped[bool] = mapped_column(Boolean, default=True)

    client: Mapped[Client] = relationship(back_populates="contacts")


class ClientDevice(Base):
    """A device (alarm device, camera or digital lock) belonging to a client from ``linked_at`` until
    ``unlinked_at``. Moving a device ends its link and opens a new one: its alarms stay with the old client."""

    __tablename__ = "client_devices"
    __table_args__ = (Index("ix_client_devices_device", "device_id", "unlinked_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="device")  # device | camera | lock
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    unlinked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PatrolArea(Base):
    __tablename__ = "patrol_areas"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class PatrolShift(Base):
    """A patrol signed on for one area, until it signs off (``ended_at``)."""

    __tablename__ = "patrol_shifts"
    __table_args__ = (Index("ix_patrol_shifts_open", "ended_at", "area"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    area: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LockState(Base):
    """A digital lock's last reported state, as the gateway forwarded it (docs/contract.md, "Digital locks")."""

    __tablename__ = "lock_states"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # locked | unlocked | jammed | offline
    door: Mapped[str | None] = mapped_column(String(16))  # open | closed
    battery_pct: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
