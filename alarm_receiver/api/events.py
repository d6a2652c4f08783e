"""The live feed over Server-Sent Events: every change to an alarm, as it happens, while the session lasts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from sse_starlette.sse import EventSourceResponse

from alarm_receiver import metrics
from alarm_receiver.api.deps import QueueReader, ReceiverDep
from trygg.db import utcnow
from trygg.errors import responses

router = APIRouter(tags=["live"])


@router.get("/events", responses=responses(401, 403))
async def events(request: Request, receiver: ReceiverDep, user: QueueReader) -> EventSourceResponse:
    """``event: hello`` first, then ``event: alarm`` with the alarm as JSON. The token goes in the Authorization
    header only. When the session ends (logout, or its expiry) the stream sends ``event: session_ended`` with
    ``{"code": "auth.logged_out" | "auth.session_expired"}`` and closes."""
    expires_at: datetime = request.state.token_expires_at
    q = receiver.live.subscribe(request.state.token_hash)
    metrics.LIVE_SUBSCRIBERS.set(receiver.live.subscriber_count)
    patrol = user.username if user.role == "patrol" else None

    async def stream() -> AsyncIterator[dict[str, Any]]:
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
                if message is None:
                    return
                data = message["data"]
                if message["event"] == "alarm" and patrol is not None and data.get("assigned_to") != patrol:
                    continue
                yield {"event": message["event"], "data": message.get("text") or json.dumps(data)}
        finally:
            receiver.live.unsubscribe(q)
            metrics.LIVE_SUBSCRIBERS.set(receiver.live.subscriber_count)

    return EventSourceResponse(stream(), ping=15)
