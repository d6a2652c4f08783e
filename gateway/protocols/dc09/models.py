"""The DC-09 registry: which Trygg device an account (with receiver and line) is, and its AES key."""

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from trygg.db import UtcDateTime, utcnow

# Receiver and line are optional in a frame; '' in the registry stands for "any" (a unit that sends none, or a
# registration that does not care), so that the unique key holds on every database.
ANY = ""


class Dc09Account(Base):
    """A DC-09 account mapped to a device. ``aes_key`` is hex (32, 48 or 64 digits) or NULL for a plain unit; it is
    shown only as "set" and never logged (its ``repr`` leaves it out)."""

    __tablename__ = "dc09_accounts"
    __table_args__ = (UniqueConstraint("account", "receiver", "line", name="uq_dc09_accounts_account"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(16))  # upper-case hex, 3-16 digits
    receiver: Mapped[str] = mapped_column(String(6), default=ANY)  # upper-case hex or '' (any)
    line: Mapped[str] = mapped_column(String(6), default=ANY)
    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id"), index=True)
    aes_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def __repr__(self) -> str:
        return (
            f"Dc09Account(account={self.account!r}, receiver={self.receiver!r}, line={self.line!r}, "
            f"device_id={self.device_id!r}, encrypted={self.aes_key is not None})"
        )
