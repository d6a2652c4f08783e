"""The SCAIP unit registry's table: which Trygg device a unit's identity (``cid``, ``did``, ``crd``) is."""

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from trygg.db import UtcDateTime, utcnow


class ScaipUnit(Base):
    """One SCAIP identity: a controller (``cid``), optionally one of its devices (``did``; none: any device of the
    controller without an entry of its own), mapped to a registered Trygg device. ``crd``, when set, must be the
    caller id the unit sends. ``mre`` and ``hbi`` are what the receiver answers the unit with; ``mrs_in_200``
    carries the answer in the SIP 200 OK instead of a MESSAGE of its own (docs/protocols-scaip.md)."""

    __tablename__ = "scaip_units"
    __table_args__ = (Index("ix_scaip_units_identity", "cid", "did", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cid: Mapped[str] = mapped_column(String(16))
    did: Mapped[str | None] = mapped_column(String(8))
    crd: Mapped[str | None] = mapped_column(String(256))
    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"), index=True)
    mre: Mapped[int] = mapped_column(Integer, default=0)
    hbi: Mapped[int | None] = mapped_column(Integer)
    mrs_in_200: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
