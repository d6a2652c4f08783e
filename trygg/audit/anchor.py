"""Signed checkpoints of the supervision log, kept outside the database (issue 8, point 10; docs/audit.md).

The hash chain proves that nothing inside it was changed, but not that it is whole: deleting the newest entries,
wiping the table, or rewriting it and computing every hash again all leave a chain that verifies. So each service
regularly signs its chain's head (the newest entry's id and hash) with an Ed25519 key that lives outside the
database and appends that checkpoint, one JSON line, to a file the database's owner cannot rewrite
(``audit_checkpoint_file``: an append-only file, another host's mount, a log shipper). ``trygg log verify`` then
checks every checkpoint's signature against the trusted public keys and that the database still holds each
checkpointed entry with the same hash: a truncation, a wipe or a rewrite is named with the checkpoint that proves it.
Entries newer than the last checkpoint (at most ``audit_checkpoint_interval_s`` old) are not anchored yet.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trygg.audit.models import LogEntry
from trygg.settings import Settings

log = structlog.get_logger(__name__)

GENESIS = "0" * 64
VERSION = 1


class AnchorError(ValueError):
    """A key or checkpoint file that cannot be used as configured."""


# --- keys ----------------------------------------------------------------------------------------------------
def generate_key(path: Path) -> str:
    """Write a new Ed25519 private key (PEM, mode 0600) to ``path``, never over an existing file; its public key."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AnchorError(f"{path} exists: a signing key is never overwritten (rotate to a new file)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    return public_key_text(key.public_key())


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise AnchorError(f"cannot read the signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise AnchorError(f"{path} is not an Ed25519 private key")
    return key


def public_key_text(key: Ed25519PublicKey) -> str:
    """The public key as base64 of its 32 raw bytes (how `trygg log keygen` prints it and settings list it)."""
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def key_id(public_text: str) -> str:
    return hashlib.sha256(public_text.encode()).hexdigest()[:16]


def trusted_keys(texts: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """key id -> public key, from base64 texts (a bad one is an error naming it)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for text in texts:
        try:
            keys[key_id(text)] = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
        except ValueError as exc:
            raise AnchorError(f"audit public key {text[:12]}... is not base64 of 32 raw bytes: {exc}") from exc
    return keys


# --- checkpoints ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Checkpoint:
    db: str  # which service's log: "gateway" or "receiver"
    last_id: int  # the newest entry's id when signed (0: the log was empty)
    last_hash: str  # that entry's hash (GENESIS for an empty log)
    at: str  # when signed, ISO 8601 UTC
    key_id: str
    signature: str = ""
    v: int = VERSION

    def signed_bytes(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "signature"}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def sign(key: Ed25519PrivateKey, db: str, last_id: int, last_hash: str, at: datetime | None = None) -> Checkpoint:
    when = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
    unsigned = Checkpoint(db, last_id, last_hash, when, key_id(public_key_text(key.public_key())))
    signature = base64.b64encode(key.sign(unsigned.signed_bytes())).decode()
    return Checkpoint(db, last_id, last_hash, when, unsigned.key_id, signature)


def append(path: Path, checkpoint: Checkpoint) -> None:
    """Add one line with O_APPEND (each line is far below PIPE_BUF, so two services never interleave) and fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (checkpoint.line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> list[tuple[int, Checkpoint | str]]:
    """(line number, checkpoint) for each line; a line that is no checkpoint comes back as its problem (text)."""
    lines: list[tuple[int, Checkpoint | str]] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            fields: dict[str, Any] = json.loads(raw)
            lines.append((number, Checkpoint(**fields)))
        except (ValueError, TypeError) as exc:
            lines.append((number, f"line {number} is not a checkpoint ({type(exc).__name__})"))
    return lines


async def chain_head(session: AsyncSession) -> tuple[int, str]:
    row = (await session.execute(select(LogEntry.id, LogEntry.hash).order_by(LogEntry.id.desc()).limit(1))).first()
    return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS)


# --- verification --------------------------------------------------------------------------------------------
def _signature_ok(checkpoint: Checkpoint, keys: dict[str, Ed25519PublicKey]) -> str | None:
    key = keys.get(checkpoint.key_id)
    if key is None:
        return f"signed by key {checkpoint.key_id}, which is not trusted (audit_public_keys)"
    try:
        key.verify(base64.b64decode(checkpoint.signature), checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return "its signature does not match (the line was altered or forged)"
    return None


async def verify(
    session: AsyncSession, db: str, lines: Sequence[tuple[int, Checkpoint | str]], keys: dict[str, Ed25519PublicKey]
) -> list[str]:
    """Problems of ``db``'s log against the checkpoints (empty: every checkpoint holds)."""
    problems: list[str] = []
    previous = 0
    wanted: dict[int, tuple[int, Checkpoint]] = {}
    for number, item in lines:
        if isinstance(item, str):
            problems.append(item)
            continue
        if item.db != db:
            continue
        bad = _signature_ok(item, keys)
        if bad is not None:
            problems.append(f"checkpoint on line {number} ({item.at}): {bad}")
            continue
        if item.last_id < previous:
            problems.append(
                f"checkpoint on line {number} ({item.at}) goes back to entry {item.last_id} from {previous}"
            )
        previous = max(previous, item.last_id)
        if item.last_id > 0:
            wanted[item.last_id] = (number, item)
    if not wanted:
        return problems
    rows = await session.execute(select(LogEntry.id, LogEntry.hash).where(LogEntry.id.in_(list(wanted))))
    found = {int(row[0]): str(row[1]) for row in rows}
    head_id, _ = await chain_head(session)
    for entry_id, (number, item) in sorted(wanted.items()):
        if entry_id not in found:
            how = "wiped" if head_id == 0 else f"truncated (it ends at entry {head_id})"
            problems.append(f"entry {entry_id}, signed on line {number} at {item.at}, is missing: the log was {how}")
        elif found[entry_id] != item.last_hash:
            problems.append(
                f"entry {entry_id} differs from its checkpoint on line {number} ({item.at}): the log was rewritten"
            )
    return problems


# --- the running service's checkpoints -------------------------------------------------------------------------
class Checkpointer:
    """Signs and appends ``db``'s chain head at start, every ``interval_s`` when it moved, and at stop."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        db: str,
        key_file: Path,
        checkpoint_file: Path,
        interval_s: float,
    ) -> None:
        self._sessions = sessions
        self._db = db
        self._key = load_signing_key(key_file)
        self._file = checkpoint_file
        self._interval = interval_s
        self._last: tuple[int, str] | None = None
        self._task: asyncio.Task[None] | None = None

    async def checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        async with self._sessions() as session:
            head = await chain_head(session)
        if head == self._last and not force:
            return None
        checkpoint = sign(self._key, self._db, *head)
        await asyncio.to_thread(append, self._file, checkpoint)
        self._last = head
        return checkpoint

    async def start(self) -> None:
        await self.checkpoint(force=True)
        self._task = asyncio.create_task(self._run(), name=f"audit-checkpoints-{self._db}")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.checkpoint()
            except Exception as exc:  # a full disk must not stop the service; the next round tries again
                log.error("audit checkpoint failed", db=self._db, error=str(exc) or type(exc).__name__)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.checkpoint()


def service_checkpointer(
    sessions: async_sessionmaker[AsyncSession], db: str, settings: Settings
) -> Checkpointer | None:
    """The service's checkpointer when the anchor is configured (``audit_signing_key_file``), else None."""
    if settings.audit_signing_key_file is None or settings.audit_checkpoint_file is None:
        return None
    return Checkpointer(
        sessions,
        db,
        settings.audit_signing_key_file,
        settings.audit_checkpoint_file,
        settings.audit_checkpoint_interval_s,
    )
