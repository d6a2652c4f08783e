"""The live feed: every change to the queue is pushed to each connected browser (SSE).

Each subscription belongs to a session (the SHA-256 of its token): ``end_session`` ends every stream of that
session at once (logout), with a last ``session_ended`` event that carries the reason as a code.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Message = dict[str, Any] | None


class LiveFeed:
    """In-process fan-out. A subscriber that cannot keep up is dropped; its browser reconnects and reloads."""

    def __init__(self, queue_size: int = 2000) -> None:
        self._subscribers: dict[asyncio.Queue[Message], str | None] = {}
        self._queue_size = queue_size

    def subscribe(self, session_key: str | None = None) -> asyncio.Queue[Message]:
        q: asyncio.Queue[Message] = asyncio.Queue(self._queue_size)
        self._subscribers[q] = session_key
        return q

    def unsubscribe(self, q: asyncio.Queue[Message]) -> None:
        self._subscribers.pop(q, None)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event: str, data: dict[str, Any], text: str | None = None) -> None:
        """``text``: ``data`` as JSON, if the caller has it already. Encoded once here, not once per subscriber (every
        console on the feed gets the same text)."""
        message = {"event": event, "data": data, "text": text if text is not None else json.dumps(data)}
        for q in list(self._subscribers):
            try:
                q.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("live feed subscriber too slow; dropping it")
                self._close(q)

    def end_session(self, session_key: str, code: str) -> int:
        """End every stream of one session with ``session_ended`` ``{"code": code}``; how many there were."""
        ended = [q for q, key in self._subscribers.items() if key == session_key]
        for q in ended:
            self._close(q, {"event": "session_ended", "data": {"code": code}})
        return len(ended)

    def _close(self, q: asyncio.Queue[Message], last: Message = None) -> None:
        self._subscribers.pop(q, None)
        while not q.empty():
            q.get_nowait()
        if last is not None:
            q.put_nowait(last)
        q.put_nowait(None)  # tells the stream to close

    def close(self) -> None:
        for q in list(self._subscribers):
            self._close(q)
