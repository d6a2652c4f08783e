"""The live feed over Server-Sent Events: every change to an alarm, as it happens, while the session lasts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from alarm_receiver import metrics
from alarm_receiver.api.deps import QueueReader, ReceiverDep
from trygg.db import utcnow
from trygg.errors import responses

router = APIRouter(tags=["live"])
EVENTS_PER_WRITE = 500  # at most this many queued events sent to a browser in one write


@router.get("/events", responses=responses(401, 403))
async def events(request: Request, receiver: ReceiverDep, user: QueueReader) -> EventSourceResponse:
    """``event: hello`` first, then ``event: alarm`` with the alarm as JSON. The token goes in the Authorization
    header only. When the session ends (logout, or its expiry) the stream sends ``event: session_ended`` with
    ``{"code": "auth.logged_out" | "auth.session_expired"}`` and closes."""
    expires_at: datetime = request.state.token_expires_at
    q = receiver.live.subscribe(request.state.token_hash)
    metrics.LIVE_SUBSCRIBERS.set(receiver.live.subscriber_count)
    patrol = user.username if user.role == "patrol" else None

    async def stream() -> AsyncIterator[dict[str, Any] | bytes]:
        try:
            yield {"event": "hello", "data": json.dumps({"user": user.username, "expires_at": expires_at.isoformat()})}
            while True:
                left = (expires_at - utcnow()).total_seconds()
                try:
                    message = await asyncio.wait_for(q.get(), max(left, 0.0))
                except TimeoutError:
                    metrics.SESSIONS_ENDED.labels("expired").inc()
                    yield {"event": "session_ended", "data": json.dumps({"code": "auth.session_expired"})}
                    return
                # What else is queued goes out with it, as one write: an intake batch changes hundreds of items
                # at once, and each write to the browser costs more than encoding an event (same events, same order).
                chunk: list[bytes] = []
                while message is not None:
                    data = message["data"]
                    if not (message["event"] == "alarm" and patrol is not None and data.get("assigned_to") != patrol):
                        text = message.get("text") or json.dumps(data)
                        chunk.append(ServerSentEvent(data=text, event=message["event"]).encode())
                    if q.empty() or len(chunk) >= EVENTS_PER_WRITE:
                        break
                    message = q.get_nowait()
                if chunk:
                    yield b"".join(chunk)
                if message is None:
                    return
        finally:
            receiver.live.unsubscribe(q)
            metrics.LIVE_SUBSCRIBERS.set(receiver.live.subscriber_count)

    return EventSourceResponse(stream(), ping=15)
