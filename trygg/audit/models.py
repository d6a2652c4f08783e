"""The supervision log's table: on its own ``MetaData``, migrated by its own chain (``trygg.audit.migrations``),
which both services run, so each service's database holds one (one shared table when both share a database)."""

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from trygg.db import UtcDateTime, new_metadata


class AuditBase(DeclarativeBase):
    metadata = new_metadata()


class LogEntry(AuditBase):
    """One entry of the append-only, hash-chained supervision log. Never updated, never deleted."""

    __tablename__ = "supervision_log"
    __table_args__ = (Index("ix_supervision_log_client", "client_ref", "at"),)

    # Set explicitly (previous id + 1) under the append lock: the id is part of the hash, so a deleted or
    # reordered entry breaks the chain.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    client_ref: Mapped[str | None] = mapped_column(String(128))
    subject: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, object]] = mapped_column(JSON)
    # Unique: two appends that read the same previous entry cannot both commit (the chain never forks).
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
