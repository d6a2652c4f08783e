"""Heartbeat supervision as plain logic: feed it heartbeats, status messages and clock ticks; it answers with
the actions to take (raise or resolve technical alarms). No I/O here, so every rule is testable with a clock.

Rules (docs/fleet.md):
- Deadline: a device is offline when nothing was heard for its interval + grace, and never later than
  ``offline_cap_alarm_s`` (180 s) for the alarm class. A retained last-will ``offline`` makes it offline at once.
- Hysteresis: a device_offline alarm is resolved only after the device has stayed online ``online_settle_s``.
  Going offline again before that keeps the same alarm open (and counts a flap): a flapping device gives one
  alarm, not dozens.
- Area outage: when at least ``area_outage_min_devices`` and more than ``area_outage_share`` of the supervised
  devices of an area (devices without an area form one area) went offline within ``area_outage_window_s``,
  one area_outage alarm is raised listing them; their own alarms are resolved as grouped under it, and more
  devices of that area going offline join it silently. It resolves when the area is back under the share.
- Restart: devices known online get a fresh deadline from the restart (the gateway heard nothing while it was
  down); devices silent since before the restart therefore go offline one deadline after it, not never.
- Devices never heard from are not supervised until their first heartbeat (installation).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from devices import Heartbeat
from trygg.db import utcnow
from trygg.settings import Settings

WHOLE_FLEET = "*"


@dataclass(slots=True)
class DeviceState:
    device_id: str
    supervision_class: str = "alarm"
    area: str = WHOLE_FLEET
    interval_s: float = 60.0
    status: str = "unknown"  # unknown | online | offline
    last_seen: datetime | None = None
    last_seen_mono: float = 0.0
    status_since: datetime | None = None
    online_since_mono: float | None = None
    offline_since_mono: float | None = None
    battery_pct: int | None = None
    has_mains: bool | None = None  # False: battery-only, never "mains lost"; None: not said
    mains: bool | None = None
    signal_dbm: int | None = None
    network: str | None = None
    firmware: str | None = None
    config_version: int | None = None
    open_alarm_id: str | None = None
    grouped_under: str | None = None  # the open area_outage alarm this device is part of
    flaps: int = 0
    dirty: bool = True


@dataclass(frozen=True, slots=True)
class RaiseOffline:
    device_id: str
    alarm_id: str
    silent_s: float
    reason: str  # English
    cause: str = "deadline"  # deadline | last_will | still_offline (the console's text code's parameter)


@dataclass(frozen=True, slots=True)
class ResolveOffline:
    device_id: str
    alarm_id: str
    outcome: str  # English
    grouped_under: str | None = None  # resolved as part of this area outage alarm (else: back online)


@dataclass(frozen=True, slots=True)
class DeviceBackOnline:
    device_id: str
    offline_s: float


@dataclass(frozen=True, slots=True)
class RaiseAreaOutage:
    area: str
    alarm_id: str
    device_ids: tuple[str, ...]
    supervised: int


@dataclass(frozen=True, slots=True)
class ResolveAreaOutage:
    area: str
    alarm_id: str
    outcome: str  # English
    back: int = 0  # devices back online, of
    members: int = 0


Action = RaiseOffline | ResolveOffline | DeviceBackOnline | RaiseAreaOutage | ResolveAreaOutage


@dataclass(slots=True)
class _Area:
    went_offline: dict[str, float] = field(default_factory=dict)  # device -> when (monotonic), inside the window
    alarm_id: str | None = None
    members: set[str] = field(default_factory=set)


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        *,
        mono: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.s = settings
        self._mono = mono
        self._now = now
        self.states: dict[str, DeviceState] = {}
        self._areas: dict[str, _Area] = {}
        self._pending: list[Action] = []  # raised between ticks (last wills), emitted by the next tick
        self._seq = 0
        self._held_until: float | None = None  # the end of a takeover's unknown window (see hold_deadlines)

    # --- registry ------------------------------------------------------------------------------------------
    def interval_for(self, supervision_class: str, override: float | None = None) -> float:
        if override is not None:
            return float(override)
        if supervision_class == "camera":
            return float(self.s.heartbeat_interval_camera_s)
        return float(self.s.heartbeat_interval_alarm_s)

    def limit_s(self, state: DeviceState) -> float:
        limit = state.interval_s + self.s.heartbeat_grace_s
        if state.supervision_class == "alarm":
            limit = min(limit, self.s.offline_cap_alarm_s)
        return limit

    def track(self, state: DeviceState, *, restarted: bool = False) -> None:
        """Start supervising a device (from the registry, or restored after a restart or a takeover).

        ``restarted``: nothing could be heard while the gateway was down, so a device known online gets a full
        deadline from now. (A takeover from another instance's leader restores without it and holds the deadlines
        instead: :meth:`hold_deadlines`.)"""
        now_mono, now = self._mono(), self._now()
        if state.last_seen is not None:
            heard_ago = max(0.0, (now - state.last_seen).total_seconds())
            state.last_seen_mono = now_mono - heard_ago
            if restarted and state.status == "online":
                state.last_seen_mono = max(state.last_seen_mono, now_mono)
        if state.status == "offline":
            state.offline_since_mono = now_mono
        self.states[state.device_id] = state

    def hold_deadlines(self, unknown_until: float) -> None:
        """After a takeover: heartbeats heard by the old leader up to ``unknown_until`` (monotonic, this
        supervisor's clock; it may lie ahead) may be unknown here (it died before sharing them, or hung while the
        broker still sent it its share). Such a heartbeat would have given its device a full deadline from when it
        was heard, so no device is judged offline by its deadline before ``unknown_until`` plus its own full
        deadline: a device's deadline is the later of its last known heartbeat's and the unknown window's end,
        plus its limit, whichever way it is or becomes online (restored from the store, first heard through a
        shared heartbeat, or unknown to the old leader's last flush)."""
        self._held_until = unknown_until

    def _held(self, state: DeviceState, now_mono: float) -> bool:
        if self._held_until is None:
            return False
        return now_mono - self._held_until <= self.limit_s(state)

    def forget(self, device_id: str) -> None:
        self.states.pop(device_id, None)

    # --- inputs --------------------------------------------------------------------------------------------
    def heartbeat(self, device_id: str, hb: Heartbeat, at: datetime | None = None) -> list[Action]:
        """A heartbeat heard now, or (``at``) heard earlier by another gateway and shared through the store."""
        state = self.states.get(device_id)
        if state is None:
            return []
        state.battery_pct = hb.battery_pct if hb.battery_pct is not None else state.battery_pct
        if hb.has_mains is not None:
            state.has_mains = hb.has_mains
        state.mains = None if state.has_mains is False else hb.mains if hb.mains is not None else state.mains
        state.signal_dbm = hb.signal_dbm if hb.signal_dbm is not None else state.signal_dbm
        state.network = hb.network if hb.network is not None else state.network
        state.firmware = hb.firmware if hb.firmware is not None else state.firmware
        state.config_version = hb.config_version if hb.config_version is not None else state.config_version
        if at is None:
            return self._seen(state)
        now_mono = self._mono()
        heard_mono = now_mono - max(0.0, (self._now() - at).total_seconds())
        if heard_mono <= state.last_seen_mono:
            return []  # already known (or older than what this gateway heard itself)
        return self._seen(state, heard_mono)

    def status(self, device_id: str, online: bool) -> list[Action]:
        state = self.states.get(device_id)
        if state is None:
            return []
        if online:
            return self._seen(state)
        if state.status == "online":
            # emitted by the next tick, so that many wills at once can still be grouped as an area outage
            self._pending += self._went_offline(state, "last will: connection dropped", "last_will")
        return []

    def tick(self) -> list[Action]:
        now_mono = self._mono()
        actions, self._pending = self._pending, []
        for state in self.states.values():
            if state.status == "online":
                if now_mono - state.last_seen_mono > self.limit_s(state):
                    if not self._held(state, now_mono):
                        actions += self._went_offline(state, "heartbeat deadline passed", "deadline")
                elif (
                    state.open_alarm_id is not None
                    and state.online_since_mono is not None
                    and now_mono - state.online_since_mono >= self.s.online_settle_s
                ):
                    actions.append(ResolveOffline(state.device_id, state.open_alarm_id, "device back online"))
                    state.open_alarm_id = None
                    state.flaps = 0
                    state.dirty = True
        area_actions = self._check_areas(now_mono)
        # An alarm raised and grouped under an area outage in the same tick is never raised at all.
        raised = {a.alarm_id for a in actions if isinstance(a, RaiseOffline)}
        grouped = {a.alarm_id for a in area_actions if isinstance(a, ResolveOffline) and a.alarm_id in raised}
        return [
            a
            for a in actions + area_actions
            if not (isinstance(a, RaiseOffline | ResolveOffline) and a.alarm_id in grouped)
        ]

    # --- transitions ---------------------------------------------------------------------------------------
    def _seen(self, state: DeviceState, heard_mono: float | None = None) -> list[Action]:
        now_mono = self._mono()
        state.last_seen_mono = now_mono if heard_mono is None else heard_mono
        state.dirty = True
        if state.status == "online":
            # the hot path (thousands a second): the wall-clock last_seen is derived when read (sync_times)
            return []
        state.last_seen = self._now()
        was_offline = state.status == "offline"
        offline_s = now_mono - state.offline_since_mono if state.offline_since_mono is not None else 0.0
        state.status = "online"
        state.status_since = state.last_seen
        state.online_since_mono = now_mono
        state.offline_since_mono = None
        actions: list[Action] = []
        if was_offline:
            state.grouped_under = None  # stays a member of the area outage until that resolves
            actions.append(DeviceBackOnline(state.device_id, offline_s))
            if state.open_alarm_id is not None and self.s.online_settle_s == 0:
                actions.append(ResolveOffline(state.device_id, state.open_alarm_id, "device back online"))
                state.open_alarm_id = None
                state.flaps = 0
        return actions

    def _went_offline(self, state: DeviceState, reason: str, cause: str) -> list[Action]:
        now_mono = self._mono()
        silent_s = now_mono - state.last_seen_mono
        state.status = "offline"
        state.status_since = self._now()
        state.offline_since_mono = now_mono
        state.online_since_mono = None
        state.dirty = True
        area = self._areas.setdefault(state.area, _Area())
        area.went_offline[state.device_id] = now_mono
        if area.alarm_id is not None:  # an area outage is open: join it quietly
            area.members.add(state.device_id)
            state.grouped_under = area.alarm_id
            return []
        if state.open_alarm_id is not None:  # still open from before (hysteresis): a flap, not a new alarm
            state.flaps += 1
            return []
        state.open_alarm_id = self._new_id("offline", state.device_id)
        return [RaiseOffline(state.device_id, state.open_alarm_id, silent_s, reason, cause)]

    def _check_areas(self, now_mono: float) -> list[Action]:
        actions: list[Action] = []
        window = self.s.area_outage_window_s
        for name, area in self._areas.items():
            for device_id, when in list(area.went_offline.items()):
                if now_mono - when > window:
                    del area.went_offline[device_id]
            supervised = [st for st in self.states.values() if st.area == name and st.status != "unknown"]
            offline_now = {st.device_id for st in supervised if st.status == "offline"}
            if area.alarm_id is None:
                recent = [d for d in area.went_offline if d in offline_now]
                if len(recent) >= self.s.area_outage_min_devices and len(recent) > self.s.area_outage_share * len(
                    supervised
                ):
                    area.alarm_id = self._new_id("area", name)
                    area.members = set(recent)
                    actions.append(RaiseAreaOutage(name, area.alarm_id, tuple(sorted(recent)), len(supervised)))
                    for device_id in recent:
                        st = self.states[device_id]
                        st.grouped_under = area.alarm_id
                        if st.open_alarm_id is not None:
                            actions.append(
                                ResolveOffline(
                                    device_id,
                                    st.open_alarm_id,
                                    f"grouped under area outage {area.alarm_id}",
                                    grouped_under=area.alarm_id,
                                )
                            )
                            st.open_alarm_id = None
                        st.dirty = True
            else:
                still = area.members & offline_now
                if len(still) <= self.s.area_outage_share * max(1, len(supervised)) or not still:
                    back = len(area.members) - len(still)
                    actions.append(
                        ResolveAreaOutage(
                            name,
                            area.alarm_id,
                            f"{back} of {len(area.members)} devices back online",
                            back=back,
                            members=len(area.members),
                        )
                    )
                    for device_id in still:  # those still silent get alarms of their own
                        st = self.states[device_id]
                        st.grouped_under = None
                        st.open_alarm_id = self._new_id("offline", device_id)
                        st.dirty = True
                        actions.append(
                            RaiseOffline(
                                device_id,
                                st.open_alarm_id,
                                now_mono - st.last_seen_mono,
                                "still offline",
                                "still_offline",
                            )
                        )
                    for device_id in area.members:
                        if device_id in self.states:
                            self.states[device_id].grouped_under = None
                    area.alarm_id = None
                    area.members = set()
                    area.went_offline.clear()
        return actions

    def _new_id(self, kind: str, subject: str) -> str:
        """Unique per device across restarts: time, a counter and a random part."""
        self._seq += 1
        stamp = self._now().strftime("%Y%m%dT%H%M%S")
        return f"{kind}-{stamp}-{self._seq}-{os.urandom(2).hex()}"

    # --- reading -------------------------------------------------------------------------------------------
    def dirty(self) -> Iterable[DeviceState]:
        dirty = [st for st in self.states.values() if st.dirty]
        self.sync_times(dirty)
        return dirty

    def sync_times(self, states: Iterable[DeviceState]) -> None:
        """Set the wall-clock ``last_seen`` from the monotonic one (kept off the per-heartbeat path)."""
        now_mono, now = self._mono(), self._now()
        for st in states:
            if st.last_seen_mono and st.status != "unknown":
                st.last_seen = now - timedelta(seconds=now_mono - st.last_seen_mono)

    def silent_for(self, state: DeviceState) -> timedelta | None:
        self.sync_times([state])
        if state.last_seen is None:
            return None
        return self._now() - state.last_seen
