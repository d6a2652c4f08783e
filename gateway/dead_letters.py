"""Dead letters: device messages the gateway could not handle, kept (bounded) for a technician to see.

A message is a dead letter when the contract refuses it as malformed (``invalid``, ``not_json``, ``too_deep``,
...; docs/contract.md), when its handler raised (``handler_error``), when the store refused it on its content
(``unstorable``), or when it came on a topic the gateway does not know (``bad_topic``). It is kept as it came, cut
at ``dead_letter_payload_max_bytes``, with its size, source, code and the reason or the exception's type and where
it was raised (never the exception's text, which may quote the payload). Only the newest ``dead_letter_keep`` stay.

Written by the intake writer (the gateway's one writer) in its group commit, so a flood of poison costs a few
commits, not one each; listed by ``GET /api/v1/dead-letters`` and ``trygg dead-letters list``.
"""

from __future__ import annotations

import base64
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import DeadLetter
from gateway.records import Letter


@dataclass(frozen=True, slots=True)
class Bounds:
    keep: int = 1000
    payload_max_bytes: int = 4096


def where(exc: BaseException) -> str:
    """The exception's type and the innermost place it was raised: enough to find the bug, no payload text."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {Path(last.filename).name}:{last.lineno} in {last.name}"


def add(session: AsyncSession, letters: Sequence[Letter], bounds: Bounds) -> None:
    for letter in letters:
        payload = letter.received.payload
        session.add(
            DeadLetter(
                received_at=letter.received_at,
                source=letter.received.source[:256],
                device_id=letter.device_id[:64] if letter.device_id else None,
                kind=letter.kind[:32] if letter.kind else None,
                code=letter.code[:32],
                error=letter.error[:1000],
                size=len(payload),
                payload=payload[: bounds.payload_max_bytes],
            )
        )


async def prune(session: AsyncSession, bounds: Bounds) -> None:
    """Keep only the newest ``bounds.keep``."""
    await session.flush()
    cutoff = await session.scalar(select(DeadLetter.id).order_by(DeadLetter.id.desc()).offset(bounds.keep).limit(1))
    if cutoff is not None:
        await session.execute(delete(DeadLetter).where(DeadLetter.id <= cutoff))


async def newest(session: AsyncSession, limit: int, device_id: str | None = None) -> Sequence[DeadLetter]:
    query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if device_id is not None:
        query = query.where(DeadLetter.device_id == device_id)
    return (await session.scalars(query)).all()


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    source: str
    device_id: str | None
    kind: str | None
    code: str
    error: str
    size: int
    truncated: bool
    payload_text: str  # the kept bytes as UTF-8, undecodable bytes as U+FFFD
    payload_base64: str  # the kept bytes exactly


def out(row: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(
        id=row.id,
        received_at=row.received_at,
        source=row.source,
        device_id=row.device_id,
        kind=row.kind,
        code=row.code,
        error=row.error,
        size=row.size,
        truncated=len(row.payload) < row.size,
        payload_text=row.payload.decode("utf-8", errors="replace"),
        payload_base64=base64.b64encode(row.payload).decode(),
    )
