"""The receiver's live feed as a client reads it: (event, data) pairs of its Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx


async def feed_events(http: httpx.AsyncClient, path: str = "/api/v1/events") -> AsyncIterator[tuple[str, str]]:
    """Each event's name and its data line (JSON text), yielded as the data line arrives (benches stamp it)."""
    async with http.stream("GET", path, timeout=None) as resp:
        resp.raise_for_status()
        event = "message"
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                yield event, line[5:].strip()
