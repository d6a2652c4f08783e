"""The supervision log: append-only and hash-chained, shared by the gateway and the receiver.

Each entry carries the hash of the one before it; its own hash is SHA-256 over a canonical JSON of its
fields (id, at, actor, action, client_ref, subject, details) and ``prev_hash``. Changing, deleting or
reordering any entry breaks the chain at that entry, and :func:`verify` names it.

Appends are serialised so that two of them never read the same previous entry: on PostgreSQL with a
transaction-scoped advisory lock (held until the caller's transaction ends); on SQLite by the database's
single writer (Trygg's engines use one connection per process, and a second process that read an older
chain end fails to write rather than forking it). As a last guard ``prev_hash`` is UNIQUE.

The caller owns the transaction: the entry is committed with whatever it records (a consent change and its
log entry are one commit). See docs/checkins.md, "The supervision log".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from trygg.audit.models import LogEntry
from trygg.db import utcnow

__all__ = ["GENESIS", "Entry", "VerifyResult", "append", "client_entries", "entry_hash", "read_client_log", "verify"]

Entry = LogEntry
GENESIS = "0" * 64
# pg_advisory_xact_lock key: "trygg-supervision-log" folded into a signed 64-bit integer.
_PG_LOCK_KEY = int.from_bytes(hashlib.sha256(b"trygg-supervision-log").digest()[:8], "big", signed=True)
_VERIFY_BATCH = 1000
# session.info key: (id, hash) of the entry this session's transaction appended last (see append)
_CHAIN_END = "trygg.audit.chain_end"


@event.listens_for(Session, "after_transaction_end")
def _forget_on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None or transaction.nested:  # not a flush's own inner transaction
        session.info.pop(_CHAIN_END, None)


@event.listens_for(Session, "transient_to_pending")
def _forget_on_add(session: Session, instance: object) -> None:
    if isinstance(instance, LogEntry):  # an entry not added by append (it re-reads the chain's end next time)
        session.info.pop(_CHAIN_END, None)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str | None = None


def _canonical_at(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


_SCALARS = frozenset({str, int, bool, type(None)})  # exactly these types read back from JSON as they are


def _plain(details: dict[str, Any] | None) -> dict[str, Any]:
    """Details as they read back from a JSON column (datetimes and enums as text). Flat details of plain scalars (an
    intake batch's entries) are that already: copied, not encoded and decoded."""
    if not details:
        return {}
    if all(type(k) is str and type(v) in _SCALARS for k, v in details.items()):
        return dict(details)
    result: dict[str, Any] = json.loads(json.dumps(details, default=str))
    return result


def entry_hash(
    *,
    id: int,
    at: datetime,
    actor: str,
    action: str,
    client_ref: str | None,
    subject: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "id": id,
        "at": _canonical_at(at),
        "actor": actor,
        "action": action,
        "client_ref": client_ref,
        "subject": subject,
        "details": details,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _next_link(session: AsyncSession) -> tuple[int, str]:
    """The next entry's id and the hash it links to: the chain's end as an earlier append of this transaction left it
    (see :func:`append`), else read under the chain's lock."""
    end: tuple[int, str] | None = session.sync_session.info.get(_CHAIN_END)
    if end is None:
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        last = (await session.execute(select(LogEntry.id, LogEntry.hash).order_by(LogEntry.id.desc()).limit(1))).first()
        end = (last[0], last[1]) if last is not None else (0, GENESIS)
    return end[0] + 1, end[1]


async def append(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    client_ref: str | None = None,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> LogEntry:
    """Add one entry at the end of the chain, in the caller's transaction (written with its next flush).

    The chain's end is read once per transaction: each append remembers the entry it added, and the next append in
    the same transaction links to it without reading the table again (an intake batch of hundreds of alarms is one
    read, and its entries are written together at the flush). That is safe because the chain cannot move under the
    transaction once it has appended: on PostgreSQL the advisory lock is held until the transaction ends, on SQLite
    the transaction's write holds the database's only write lock. The remembered end is dropped when any transaction
    of the session ends (commit, rollback, a savepoint's end) and when anyone else adds an entry to the session."""
    info = session.sync_session.info
    entry_id, prev = await _next_link(session)
    when = (at or utcnow()).astimezone(UTC)
    plain = _plain(details)
    fields: dict[str, Any] = {
        "id": entry_id,
        "at": when,
        "actor": actor,
        "action": action,
        "client_ref": client_ref,
        "subject": subject,
        "details": plain,
        "prev_hash": prev,
    }
    entry = LogEntry(**fields, hash=entry_hash(**fields))
    session.add(entry)  # drops the remembered end (_forget_on_add): set again just below, to this entry
    info[_CHAIN_END] = (entry_id, entry.hash)
    return entry


@dataclass(frozen=True, slots=True)
class Pending:
    """One entry for :func:`append_many` (the arguments of :func:`append`)."""

    actor: str
    action: str
    client_ref: str | None = None
    subject: str | None = None
    details: dict[str, Any] | None = None
    at: datetime | None = None


async def append_many(session: AsyncSession, entries: list[Pending]) -> None:
    """Several entries at the end of the chain, in order, in the caller's transaction, the same chain as one
    :func:`append` each: the chain's end read once (or taken from an :func:`append` or :func:`append_many` earlier in
    the same transaction, see :func:`append`) and the rows written as one executemany INSERT of a cached Core
    statement on the session's connection (an intake batch of hundreds of alarms: no ORM object per entry)."""
    if not entries:
        return
    info = session.sync_session.info
    entry_id, prev = await _next_link(session)
    rows = []
    now = utcnow()
    for e in entries:
        fields: dict[str, Any] = {
            "id": entry_id,
            "at": (e.at or now).astimezone(UTC),
            "actor": e.actor,
            "action": e.action,
            "client_ref": e.client_ref,
            "subject": e.subject,
            "details": _plain(e.details),
            "prev_hash": prev,
        }
        prev = fields["hash"] = entry_hash(**fields)
        rows.append(fields)
        entry_id += 1
    await session.flush()  # entries an append() added to the session come first in the chain
    await (await session.connection()).execute(_INSERT_ENTRY, rows)
    info[_CHAIN_END] = (entry_id - 1, prev)


_INSERT_ENTRY = insert(cast(Table, LogEntry.__table__))


async def verify(session: AsyncSession) -> VerifyResult:
    """Walk the whole chain in id order; the first entry that does not fit is named."""
    prev = GENESIS
    expected_id = 1
    count = 0
    after = 0
    while True:
        cols = (
            LogEntry.id,
            LogEntry.at,
            LogEntry.actor,
            LogEntry.action,
            LogEntry.client_ref,
            LogEntry.subject,
            LogEntry.details,
            LogEntry.prev_hash,
            LogEntry.hash,
        )
        rows = (
            await session.execute(select(*cols).where(LogEntry.id > after).order_by(LogEntry.id).limit(_VERIFY_BATCH))
        ).all()
        if not rows:
            return VerifyResult(ok=True, entries=count)
        for e in rows:
            count += 1
            if e.id != expected_id:
                return VerifyResult(False, count, e.id, f"entry {expected_id} is missing (next is {e.id})")
            if e.prev_hash != prev:
                return VerifyResult(False, count, e.id, "prev_hash does not match the previous entry's hash")
            computed = entry_hash(
                id=e.id,
                at=e.at,
                actor=e.actor,
                action=e.action,
                client_ref=e.client_ref,
                subject=e.subject,
                details=dict(e.details or {}),
                prev_hash=e.prev_hash,
            )
            if computed != e.hash:
                return VerifyResult(False, count, e.id, "content does not match its hash (entry was altered)")
            prev = e.hash
            expected_id += 1
            after = e.id


async def client_entries(session: AsyncSession, client_ref: str, since: datetime | None = None) -> list[LogEntry]:
    """One client's entries, oldest first (reading them is itself worth logging: the caller does)."""
    query = select(LogEntry).where(LogEntry.client_ref == client_ref)
    if since is not None:
        query = query.where(LogEntry.at >= since.astimezone(UTC))
    return list((await session.scalars(query.order_by(LogEntry.id))).all())


async def read_client_log(
    session: AsyncSession,
    client_ref: str,
    *,
    actor: str,
    since: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> list[LogEntry]:
    """A client's entries, after logging the read itself (``log.read``) in the caller's transaction.

    A naive ``since`` is taken as UTC. The read's own entry is part of what is returned.
    """
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    await append(
        session,
        actor=actor,
        action="log.read",
        client_ref=client_ref,
        subject=f"client-{client_ref}"[:128],
        details={"since": since.isoformat() if since else None, **(extra or {})},
    )
    return await client_entries(session, client_ref, since)
