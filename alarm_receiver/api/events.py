"""The live feed over Server-Sent Events: every change to an alarm, as it happens."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from sse_starlette.sse import EventSourceResponse

from alarm_receiver import metrics
from alarm_receiver.api.deps import QueueReader, ReceiverDep

router = APIRouter(tags=["live"])


@router.get("/events")
async def events(request: Request, receiver: ReceiverDep, user: QueueReader) -> EventSourceResponse:
    """``event: alarm`` with the alarm as JSON; ``event: hello`` first. Token in header or ?access_token=."""
    q = receiver.live.subscribe()
    metrics.LIVE_SUBSCRIBERS.set(receiver.live.subscriber_count)
    patrol = user.username if user.role == "patrol" else None

    async def stream() -> AsyncIterator[dict[str, Any]]:
        try:
            yield {"event": "hello", "data": json.dumps({"user": user.username})}
            while True:
                message = await q.get()
                if message is None:
                    return
                data = message["data"]
                if patrol is not None and data.get("assigned_to") != patrol:
                    continue
                yield {"event": message["event"], "data": json.dumps(data)}
        except asyncio.CancelledError:
            raise
        finally:
            receiver.live.unsubscribe(q)
            metrics.LIVE_SUBSCRIBERS.set(receiver.live.subscriber_count)

    return EventSourceResponse(stream(), ping=15)
