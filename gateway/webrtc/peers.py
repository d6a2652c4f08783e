"""The peer connections and background tasks of one WebRTC relay, tracked so that none outlives it.

The bookkeeping aiortc's server example does (a set of every RTCPeerConnection, closed when it fails and all of
them on shutdown), once for the camera relay (``gateway/checkin/media.py``) and the voice relay
(``gateway/voice/relay.py``). What a state change means for a look or a call stays with the relay: it is given
each new state first, then a failed connection is closed and forgotten here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from trygg.settings import Settings
from trygg.webrtc import new_peer_connection

StateHandler = Callable[[str], Awaitable[None]]  # the connection's new state: "connected", "failed", "closed", ...


class Peers:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pcs: set[Any] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def open(self) -> int:
        """Peer connections made here and not closed yet."""
        return len(self._pcs)

    def new(self, on_state: StateHandler) -> Any:
        """A new RTCPeerConnection (``trygg.webrtc``'s configuration), tracked until closed. ``on_state`` gets each
        connection state change; a connection that failed is closed afterwards."""
        pc = new_peer_connection(self._settings)
        self._pcs.add(pc)

        @pc.on("connectionstatechange")  # type: ignore[untyped-decorator]
        async def changed() -> None:
            state = pc.connectionState
            await on_state(state)
            if state == "failed":
                await self.close([pc])

        return pc

    async def close(self, pcs: Iterable[Any]) -> None:
        """Close these connections (a look's, a call's) and forget them, whatever closing raises."""
        pcs = list(pcs)
        try:
            await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
        finally:
            self._pcs.difference_update(pcs)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a task kept until it ends (cancelled by :meth:`close_all`)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close_all(self) -> None:
        """On shutdown: close every connection still open, then cancel every task but the caller's own."""
        pcs, self._pcs = list(self._pcs), set()
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
