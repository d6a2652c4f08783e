"""Devices sending more alarms than a person can: flagged for technicians, never refused (issue 8).

Every alarm is still stored, answered and forwarded (the receiver collapses repeats into their open queue item, the
forwarder serves devices fairly); the flag tells a technician that a unit is broken or abused. A device is flagged
when it sends more than ``device_alarm_rate_limit`` alarms within one window of ``device_alarm_rate_window_s``
(fixed windows per device; valid alarms counted as they come, before they are stored, resends too, so that a flood
is flagged, and held back behind other devices' alarms, before its first commit), and the flag clears once a whole
window passes within the limit. Flags live in memory:
a restarted gateway flags a flood again within one window. Seen in ``GET /api/v1/floods``, the gauge
``trygg_gateway_devices_flooding`` and the counter ``trygg_gateway_device_floods_total``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import structlog

from gateway import metrics
from trygg.db import utcnow

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Flood:
    device_id: str
    since: datetime  # when the device went over the limit (UTC)
    alarms: int  # alarms in the window it was last counted over
    window_s: float
    limit: int


@dataclass(slots=True)
class _Window:
    started: float
    count: int


class FloodWatch:
    def __init__(self, limit: int, window_s: float) -> None:
        self._limit = limit
        self._window_s = window_s
        self._windows: dict[str, _Window] = {}
        self.flagged: dict[str, Flood] = {}
        self._swept = time.monotonic()

    def alarm(self, device_id: str) -> None:
        """Count one alarm of the device as it comes; flag it when it goes over the limit."""
        now = time.monotonic()
        window = self._windows.get(device_id)
        if window is None or now - window.started >= self._window_s:
            if window is not None and window.count <= self._limit and now - window.started < 2 * self._window_s:
                self._clear(device_id)  # the window that just ended was within the limit
            elif window is not None and now - window.started >= 2 * self._window_s:
                self._clear(device_id)  # a whole window passed without a single alarm
            window = self._windows[device_id] = _Window(now, 0)
        window.count += 1
        if window.count > self._limit:
            flood = self.flagged.get(device_id)
            if flood is None:
                self.flagged[device_id] = Flood(device_id, utcnow(), window.count, self._window_s, self._limit)
                metrics.DEVICE_FLOODS.inc()
                metrics.DEVICES_FLOODING.set(len(self.flagged))
                log.warning(
                    "device is flooding alarms; flagged for technicians (every alarm is still stored)",
                    device_id=device_id,
                    limit=self._limit,
                    window_s=self._window_s,
                )
            else:
                flood.alarms = max(flood.alarms, window.count)
        if now - self._swept > self._window_s:
            self._sweep(now)

    def active(self) -> bool:
        """Some device is flagged now (cheap: called for every message of the bypass, ``gateway/dispatch.py``);
        the flags of windows that ended are swept at most once a second."""
        if self.flagged:
            now = time.monotonic()
            if now - self._swept > 1.0:
                self._sweep(now)
        return bool(self.flagged)

    def current(self) -> list[Flood]:
        """Flagged devices, the flags of windows that ended within the limit cleared first."""
        self._sweep(time.monotonic())
        return sorted(self.flagged.values(), key=lambda f: f.since)

    def _clear(self, device_id: str) -> None:
        if self.flagged.pop(device_id, None) is not None:
            log.info("device no longer flooding alarms", device_id=device_id)
            metrics.DEVICES_FLOODING.set(len(self.flagged))

    def _sweep(self, now: float) -> None:
        self._swept = now
        for device_id, window in list(self._windows.items()):
            if now - window.started >= self._window_s:
                if window.count <= self._limit or now - window.started >= 2 * self._window_s:
                    self._clear(device_id)
                if now - window.started >= 2 * self._window_s:
                    del self._windows[device_id]
