"""The DC-09 registry's logic (``trygg dc09``, ``/api/v1/dc09/accounts``): add, list, remove, look up.

An account (3-16 hex digits) with receiver and line numbers (1-6 hex digits each, or "any") maps to one registered
device; its AES key (128, 192 or 256 bits, given as hex) is optional. A frame is looked up by its exact account,
receiver and line first, then with "any" in place of the receiver, the line, or both.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import Device
from gateway.protocols.dc09.frame import KEY_BYTES
from gateway.protocols.dc09.models import ANY, Dc09Account

ACCOUNT_RE = re.compile(r"^[0-9A-Fa-f]{3,16}$")
NUMBER_RE = re.compile(r"^[0-9A-Fa-f]{1,6}$")


class AccountError(ValueError):
    """A refusal with a code (``dc09.*``) for the API and the CLI."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_generation = 0  # this process's registry changes, counted: a receiver forgets what it remembered when it moves


def registry_changed() -> None:
    """The registry changed in this process (the API calls it after its commit): every receiver here forgets its
    cached look-ups at its next frame. A change made by another process (``trygg dc09``) is seen within the
    receiver's cache time instead (``receiver.ACCOUNT_CACHE_S``)."""
    global _generation
    _generation += 1


def generation() -> int:
    return _generation


@dataclass(frozen=True, slots=True)
class Known:
    """What a frame's look-up found: the device and the key (bytes) if the account encrypts."""

    device_id: str
    key: bytes | None


def parse_key(text: str) -> bytes:
    """A key given as hex (32, 48 or 64 digits)."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise AccountError("dc09.bad_key", "the AES key must be hexadecimal") from None
    if len(key) not in KEY_BYTES:
        raise AccountError("dc09.bad_key", "the AES key must be 128, 192 or 256 bits (32, 48 or 64 hex digits)")
    return key


def new_key(bits: int = 128) -> str:
    """A random key as hex (for the unit's configuration and the registry)."""
    if bits // 8 not in KEY_BYTES:
        raise AccountError("dc09.bad_key", "key size must be 128, 192 or 256 bits")
    return secrets.token_hex(bits // 8).upper()


def _number(value: str | None, what: str) -> str:
    if value is None or value == "":
        return ANY
    if not NUMBER_RE.match(value):
        raise AccountError("dc09.bad_number", f"{what} must be 1-6 hex digits")
    return value.upper()


def _account(value: str) -> str:
    if not ACCOUNT_RE.match(value):
        raise AccountError("dc09.bad_account", "account must be 3-16 hex digits")
    return value.upper()


async def add_account(
    session: AsyncSession,
    account: str,
    device_id: str,
    *,
    receiver: str | None = None,
    line: str | None = None,
    key: str | None = None,
) -> Dc09Account:
    acct, rcv, lin = _account(account), _number(receiver, "receiver"), _number(line, "line")
    key_hex = parse_key(key).hex().upper() if key else None
    device = await session.get(Device, device_id)
    if device is None or device.retired_at is not None:
        raise AccountError("dc09.unknown_device", f"no registered device {device_id!r}")
    existing = await session.scalar(
        select(Dc09Account).where(Dc09Account.account == acct, Dc09Account.receiver == rcv, Dc09Account.line == lin)
    )
    if existing is not None:
        raise AccountError("dc09.account_exists", "that account, receiver and line are already registered")
    row = Dc09Account(account=acct, receiver=rcv, line=lin, device_id=device_id, aes_key=key_hex)
    session.add(row)
    await session.flush()
    return row


async def list_accounts(session: AsyncSession, device_id: str | None = None) -> Sequence[Dc09Account]:
    stmt = select(Dc09Account).order_by(Dc09Account.account, Dc09Account.receiver, Dc09Account.line)
    if device_id is not None:
        stmt = stmt.where(Dc09Account.device_id == device_id)
    return (await session.scalars(stmt)).all()


async def remove_account(
    session: AsyncSession, account: str, *, receiver: str | None = None, line: str | None = None
) -> Dc09Account:
    acct, rcv, lin = _account(account), _number(receiver, "receiver"), _number(line, "line")
    row = await session.scalar(
        select(Dc09Account).where(Dc09Account.account == acct, Dc09Account.receiver == rcv, Dc09Account.line == lin)
    )
    if row is None:
        raise AccountError("dc09.unknown_account", "no such account")
    await session.delete(row)
    return row


async def find(session: AsyncSession, account: str, receiver: str | None, line: str | None) -> Known | None:
    """The device a frame's account, receiver and line map to: the most specific registration wins."""
    rows = (await session.scalars(select(Dc09Account).where(Dc09Account.account == account.upper()))).all()
    rcv, lin = (receiver or ANY).upper(), (line or ANY).upper()
    for want_r, want_l in ((rcv, lin), (rcv, ANY), (ANY, lin), (ANY, ANY)):
        for row in rows:
            if row.receiver == want_r and row.line == want_l:
                return Known(row.device_id, bytes.fromhex(row.aes_key) if row.aes_key else None)
    return None
