"""What the parts of the check-in feature share: the port, the camera relay, the clock and the live looks.

``gateway/checkin/``: ``scheduler.py`` makes check-ins due and escalates unstarted ones, ``looks.py`` starts and
ends looks through the relay, ``outcomes.py`` records outcomes and their follow-ups and carries out withdrawals
and skipped nights, ``tasks.py`` is their common side toward the operators' queue and the supervision log,
``routes.py`` the HTTP API, ``feature.py`` the lifecycle. Each raises domain errors (``gateway/errors.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from devices import DeviceStatus
from gateway.checkin.privacy import PrivacyMode
from gateway.port import GatewayPort


class LookRelay(Protocol):
    """What check-ins need of ``gateway.checkin.media.CameraRelayFeature``."""

    async def start_look(
        self,
        *,
        look_id: str,
        camera_id: str,
        offer_sdp: str,
        offer_type: str,
        privacy: PrivacyMode,
        max_s: float,
        audio: bool = False,
        answer_timeout_s: float = 10.0,
    ) -> dict[str, str]: ...

    async def end_look(self, look_id: str, reason: str) -> None: ...

    def add_listener(self, callback: Callable[[Any], None]) -> None: ...

    def camera_state(self, camera_id: str) -> str | None: ...


@dataclass(slots=True)
class LiveLook:
    look_id: str
    checkin_id: int
    consent_id: int
    camera_id: str
    client_ref: str
    operator: str
    started_at: datetime


@dataclass(eq=False)
class CheckinContext:
    """The state of the running check-in feature, handed to each of its parts."""

    port: GatewayPort
    relay: LookRelay
    now: Callable[[], datetime]
    # where camera online/offline comes from when another feature supervises (True, False, None: unknown)
    status_source: Callable[[str], bool | None] | None = None
    live: dict[str, LiveLook] = field(default_factory=dict)
    withdrawn: set[int] = field(default_factory=set)  # consents withdrawn while this gateway runs
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one scheduler round at a time
    status: dict[str, bool] = field(default_factory=dict)  # cameras' own status, without a status source

    async def record_status(self, device_id: str, status: DeviceStatus) -> None:
        self.status[device_id] = status is DeviceStatus.ONLINE

    def camera_online(self, camera_id: str) -> bool:
        """Online by its status (or the status source); unknown status: online if the relay knows the camera."""
        source = self.status_source
        known = source(camera_id) if source is not None else self.status.get(camera_id)
        if known is not None:
            return known
        return self.relay.camera_state(camera_id) is not None
