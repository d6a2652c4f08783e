"""MQTT credentials of devices and of Trygg's own services (issue "device fleet").

Only Mosquitto's PBKDF2 hash is stored: the clear password is shown once when it is issued, so a copy of the
database never lets anyone log in to the broker. The broker's password file and ACL are rendered from these
tables (gateway/provisioning.py), which makes the database the one source of truth for who may connect.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from trygg.db import UtcDateTime, utcnow


class DeviceCredential(Base):
    """A device's broker login. The username is the device id, so the ACL can confine it with ``%u``."""

    __tablename__ = "device_credentials"

    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"), primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ServiceAccount(Base):
    """The broker login of the gateway or the receiver; its role decides its ACL entries."""

    __tablename__ = "service_accounts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # "gateway" | "receiver"
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
