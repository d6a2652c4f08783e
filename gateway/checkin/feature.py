"""Camera check-ins, the scheduling side, as a gateway feature: its lifecycle and the entry points its routes and
tests use. The work is done by the modules beside it (``gateway/checkin/state.py`` lists them); the media side
(WebRTC, privacy filter, camera signaling) is ``gateway/checkin/media.py``'s ``CameraRelayFeature``, which this
feature asks to start and end looks and listens to for looks ending. Flow and rules: docs/checkins.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from devices import DeviceTopic
from gateway.checkin import looks, outcomes, scheduler
from gateway.checkin.models import Checkin, Consent
from gateway.checkin.schemas import AlarmLookIn, OfferIn, OutcomeIn, SkipIn
from gateway.checkin.state import CheckinContext, LiveLook, LookRelay
from gateway.features import Subscription
from gateway.port import GatewayPort
from gateway.users import ApiUser
from trygg.db import utcnow
from trygg.loops import Backoff, run_forever
from trygg.settings import Settings


class CheckinFeature:
    """Consents, the check-in scheduler, looks (through the relay), outcomes and escalation.

    ``now``: the clock (tests pass their own). ``background``: run the scheduler every
    ``checkin_scheduler_period_s`` (tests call :meth:`run_once` instead). ``status_source``: where camera
    online/offline comes from when another feature supervises (returns True, False or None for unknown); without
    it this feature listens to the port's status messages itself.
    """

    name = "checkin"

    def __init__(
        self,
        port: GatewayPort,
        relay: LookRelay,
        *,
        now: Callable[[], datetime] = utcnow,
        background: bool = True,
        status_source: Callable[[str], bool | None] | None = None,
    ) -> None:
        self.ctx = CheckinContext(port, relay, now, status_source=status_source)
        self.background = background
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        if status_source is None:
            port.on_status(self.ctx.record_status)
        relay.add_listener(self._on_look_ended)

    @property
    def now(self) -> Callable[[], datetime]:
        return self.ctx.now

    @now.setter
    def now(self, clock: Callable[[], datetime]) -> None:
        self.ctx.now = clock

    @property
    def settings(self) -> Settings:
        return self.ctx.port.settings

    # --- Feature protocol -------------------------------------------------------------------------------
    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        return {}

    async def start(self) -> None:
        if self.background:
            period = self.settings.checkin_scheduler_period_s
            self._task = asyncio.create_task(
                run_forever("check-in scheduler round", self._round, every_s=period, backoff=Backoff(period, 30)),
                name="checkin-scheduler",
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def on_connected(self) -> None:
        pass

    # --- entry points -----------------------------------------------------------------------------------
    async def run_once(self) -> None:
        """One scheduler round (docs in gateway/checkin/scheduler.py)."""
        await scheduler.run_round(self.ctx)

    async def _round(self) -> None:
        if self.ctx.port.leadership.is_leader:  # several gateways: one schedules (trygg/leader.py)
            await self.run_once()

    def camera_online(self, camera_id: str) -> bool:
        return self.ctx.camera_online(camera_id)

    def live_looks(self) -> list[LiveLook]:
        return list(self.ctx.live.values())

    async def start_look(self, checkin_id: int, offer: OfferIn, user: ApiUser) -> dict[str, Any]:
        return await looks.start_look(self.ctx, checkin_id, offer, user)

    async def start_alarm_look(self, consent_id: int, body: AlarmLookIn, user: ApiUser) -> dict[str, Any]:
        return await looks.start_alarm_look(self.ctx, consent_id, body, user)

    async def end_look(self, look_id: str, user: ApiUser, reason: str = "operator") -> None:
        """End a live look; ``reason`` "page_left" when the operator's page was left (reload, closed tab)."""
        await looks.end_look(self.ctx, look_id, user, reason)

    async def record_outcome(self, checkin_id: int, body: OutcomeIn, user: ApiUser) -> Checkin:
        return await outcomes.record_outcome(self.ctx, checkin_id, body, user)

    async def withdraw(self, consent_id: int, user: ApiUser, reason: str | None) -> Consent:
        return await outcomes.withdraw(self.ctx, consent_id, user, reason)

    async def skip(self, consent_id: int, body: SkipIn, user: ApiUser) -> None:
        await outcomes.skip(self.ctx, consent_id, body, user)

    def _on_look_ended(self, event: Any) -> None:
        look = self.ctx.live.pop(event.look_id, None)
        if look is None:
            return  # not a look of a check-in (or already accounted for)
        task = asyncio.get_running_loop().create_task(looks.log_look_ended(self.ctx, look, event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
