"""The fleet feature: heartbeats and status in, technical alarms out, remote configuration.

Heartbeats and status messages come from the port (``report_heartbeat``/``report_status``: the MQTT contract
today, other protocols later); they are handled in memory (they come by the thousand per second) and flushed to
``device_health`` every ``health_flush_s``. Every alarm goes through the gateway's durable path. Installation
tests are the core's (``gateway/install_tests.py``): their window decides how an alarm is filed. The technicians'
routes are ``gateway/fleet/api.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select, update

from devices import AlarmType, DeviceConfig, DeviceStatus, DeviceTopic, DeviceType, Heartbeat
from gateway import metrics
from gateway.features import Subscription
from gateway.fleet.models import DeviceConfigRow, DeviceHealth
from gateway.fleet.sharing import HeartbeatShare
from gateway.fleet.supervision import (
    WHOLE_FLEET,
    Action,
    DeviceBackOnline,
    DeviceState,
    RaiseAreaOutage,
    RaiseOffline,
    ResolveAreaOutage,
    ResolveOffline,
    Supervisor,
)
from gateway.models import Device
from gateway.port import GatewayPort
from gateway.registry import add_device
from trygg.db import dialect_insert, utcnow
from trygg.loops import Backoff, run_forever
from trygg.settings import Settings

log = structlog.get_logger(__name__)

AREA_DEVICE_PREFIX = "area-"


def area_device_id(area: str) -> str:
    """Area outages are filed under a registry entry of their own (type base_unit, never supervised)."""
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in area)[:58] or "all"
    return AREA_DEVICE_PREFIX + ("all" if area == WHOLE_FLEET else safe)


def _health_upsert(insert: Any, row: Mapping[str, object]) -> Any:
    table = DeviceHealth.__table__
    stmt = insert(table)
    cols = {k: stmt.excluded[k] for k in row if k != "device_id"}
    return stmt.on_conflict_do_update(index_elements=[table.c.device_id], set_=cols)


class FleetFeature:
    name = "fleet"

    def __init__(self, port: GatewayPort) -> None:
        self.port = port
        self.supervisor = Supervisor(port.settings)
        self.configs: dict[str, DeviceConfigRow] = {}
        self._applied: dict[str, int] = {}  # device -> config version newly reported applied
        self._unknown_checked: dict[str, float] = {}
        self._lookups: set[asyncio.Task[bool]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._actions: asyncio.Queue[Action] = asyncio.Queue()
        self._current: Action | None = None  # the action being carried out (retried until it succeeds)
        # Several gateways: only the leader judges deadlines; followers share what they hear (sharing.py).
        self.share = HeartbeatShare(port.sessions, port.settings.instance_name)
        self._leading = False  # this instance's supervisor is the fleet's (set at start or at a takeover)
        self._sharing = not port.leadership.single  # several instances: every one shares what it hears, the leader too
        port.on_heartbeat(self.heartbeat)
        port.on_status(self.status)

    @property
    def settings(self) -> Settings:
        return self.port.settings

    @property
    def leading(self) -> bool:
        """This instance's supervisor is the fleet's (the leader's, after its takeover)."""
        return self._leading

    # --- Feature protocol ------------------------------------------------------------------------------------
    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        return {}  # heartbeats and status come through the port, from whatever protocol the device speaks

    async def start(self) -> None:
        await self._load()
        self._leading = self.port.leadership.single  # one instance: it leads from its start
        s = self.settings
        self._tasks = [
            asyncio.create_task(
                run_forever("heartbeat share", self._share_round, every_s=s.heartbeat_share_flush_s, log=log),
                name="fleet-share",
            ),
            asyncio.create_task(
                run_forever("supervision tick", self._tick, every_s=s.supervision_period_s, log=log),
                name="fleet-tick",
            ),
            asyncio.create_task(
                run_forever("health flush", self._flush_round, every_s=s.health_flush_s, log=log),
                name="fleet-flush",
            ),
            asyncio.create_task(
                run_forever(
                    "supervision action",
                    self._next_action,
                    every_s=0,
                    backoff=Backoff(0.2, 10.0),
                    on_failure=self._action_failed,
                    log=log,
                ),
                name="fleet-actions",
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.flush()

    def on_connected(self) -> None:
        """Re-publish every device's retained configuration (a broker without persistence forgets it)."""
        for row in self.configs.values():
            self._publish_config(row)

    # --- loading and saving ----------------------------------------------------------------------------------
    async def _load(self) -> None:
        self.configs = await self._load_into(self.supervisor)

    async def _load_into(self, sup: Supervisor, *, restarted: bool = True) -> dict[str, DeviceConfigRow]:
        """Fill ``sup`` from the store (registry, ``device_health``); returns the configurations read.
        ``restarted``: devices known online get a full deadline from now (see ``Supervisor.track``)."""
        async with self.port.sessions() as session:
            devices = (await session.scalars(select(Device).where(Device.retired_at.is_(None)))).all()
            health = {h.device_id: h for h in (await session.scalars(select(DeviceHealth))).all()}
            configs = {c.device_id: c for c in (await session.scalars(select(DeviceConfigRow))).all()}
        for device in devices:
            if device.id.startswith(AREA_DEVICE_PREFIX):
                continue
            sup.track(self._state_from(device, health.get(device.id), sup, configs), restarted=restarted)
        log.info("fleet supervision loaded", devices=len(sup.states), configs=len(configs))
        return configs

    def _state_from(
        self,
        device: Device,
        h: DeviceHealth | None,
        sup: Supervisor | None = None,
        configs: Mapping[str, DeviceConfigRow] | None = None,
    ) -> DeviceState:
        sup = sup or self.supervisor
        config = (self.configs if configs is None else configs).get(device.id)
        state = DeviceState(
            device_id=device.id,
            supervision_class=device.supervision_class or ("camera" if device.type == "camera" else "alarm"),
            area=device.area or WHOLE_FLEET,
            network=device.network,
            firmware=device.firmware_version,
        )
        state.interval_s = sup.interval_for(state.supervision_class, config.heartbeat_interval_s if config else None)
        if h is not None:
            state.status = h.status
            state.last_seen = h.last_seen
            state.status_since = h.status_since
            state.battery_pct, state.mains, state.signal_dbm = h.battery_pct, h.mains, h.signal_dbm
            state.has_mains = h.has_mains
            state.network = h.network or state.network
            state.firmware = h.firmware or state.firmware
            state.config_version = h.config_version
            state.open_alarm_id = h.open_alarm_id
            state.flaps = h.flaps
            state.dirty = False
        return state

    async def flush(self) -> int:
        """Write changed supervision state to the store (a restarted gateway starts from it)."""
        dirty = list(self.supervisor.dirty())
        applied, self._applied = self._applied, {}
        if not dirty and not applied:
            return 0
        rows = [
            {
                "device_id": st.device_id,
                "status": st.status,
                "last_seen": st.last_seen,
                "status_since": st.status_since,
                "battery_pct": st.battery_pct,
                "has_mains": st.has_mains,
                "mains": st.mains,
                "signal_dbm": st.signal_dbm,
                "network": st.network,
                "firmware": st.firmware,
                "config_version": st.config_version,
                "open_alarm_id": st.open_alarm_id,
                "flaps": st.flaps,
            }
            for st in dirty
        ]
        for st in dirty:
            st.dirty = False
        try:
            async with self.port.sessions.begin() as session:
                # One upsert run as an executemany (its compiled form is cached; a multi-row ``.values()`` was
                # compiled again on every flush, a CPU stall on the heartbeat path at thousands of devices).
                await session.execute(_health_upsert(dialect_insert(session), rows[0]), rows)
                for device_id, version in applied.items():
                    await session.execute(
                        update(DeviceConfigRow)
                        .where(DeviceConfigRow.device_id == device_id, DeviceConfigRow.version == version)
                        .values(applied_at=utcnow())
                    )
        except BaseException:  # a stop cancelling a flush mid-write must not lose the state it took
            for st in dirty:
                st.dirty = True
            self._applied.update(applied)
            raise
        return len(rows)

    # --- inputs (from the port) -----------------------------------------------------------------------------
    def heartbeat(self, device_id: str, hb: Heartbeat) -> bool:
        """Inline on the heartbeat path: update the in-memory state, queue any action; False for an unknown device."""
        sup = self.supervisor
        if device_id not in sup.states:
            # maybe registered since start: look it up (off this path), take its next heartbeat
            if self._lookup_allowed(device_id):
                task = asyncio.get_running_loop().create_task(self._maybe_track(device_id))
                self._lookups.add(task)
                task.add_done_callback(self._lookups.discard)
            metrics.REJECTED.labels("unknown_device").inc()
            return False
        metrics.HEARTBEATS.inc()
        if self._sharing:
            # Every instance shares what it hears, the leader too: whoever leads next then knows every heartbeat
            # heard up to the last share of each instance (gateway/fleet/sharing.py).
            self.share.record(device_id, hb)
        if not self._leading:
            return True  # the leader counts it
        self._enqueue(sup.heartbeat(device_id, hb))
        self._config_applied(device_id, hb)
        return True

    def _config_applied(self, device_id: str, hb: Heartbeat) -> None:
        config = self.configs.get(device_id)
        if config is not None and hb.config_version == config.version and config.applied_at is None:
            config.applied_at = utcnow()
            self._applied[device_id] = config.version
            log.info("device applied config", device_id=device_id, version=config.version)

    async def status(self, device_id: str, status: DeviceStatus) -> None:
        if not self._leading:
            return  # status is not a shared subscription: every gateway gets it, the leader acts on it
        sup = self.supervisor
        if device_id not in sup.states and not (self._lookup_allowed(device_id) and await self._maybe_track(device_id)):
            return
        self._enqueue(sup.status(device_id, status is DeviceStatus.ONLINE))

    def _lookup_allowed(self, device_id: str) -> bool:
        """At most one registry look-up per unknown id every 30 s."""
        now = time.monotonic()
        if now - self._unknown_checked.get(device_id, -1e9) < 30 or device_id.startswith(AREA_DEVICE_PREFIX):
            return False
        if len(self._unknown_checked) > 100_000:
            self._unknown_checked.clear()
        self._unknown_checked[device_id] = now
        return True

    async def _maybe_track(self, device_id: str) -> bool:
        """A device registered after start: look it up and supervise it from now on."""
        async with self.port.sessions() as session:
            device = await session.get(Device, device_id)
        if device is None or device.retired_at is not None:
            return False
        self._unknown_checked.pop(device_id, None)
        self.supervisor.track(self._state_from(device, None))
        return True

    def is_online(self, device_id: str) -> bool | None:
        """True/False once supervised and heard from; None when unknown (never heard, or not supervised)."""
        state = self.supervisor.states.get(device_id)
        if state is None or state.status == "unknown":
            return None
        return state.status == "online"

    def forget(self, device_id: str) -> None:
        self.supervisor.forget(device_id)

    # --- actions ---------------------------------------------------------------------------------------------
    def _enqueue(self, actions: Sequence[Action]) -> None:
        for action in actions:
            self._actions.put_nowait(action)

    async def _tick(self) -> None:
        if not self.port.leadership.is_leader:
            self._step_down()
            return
        if not self._leading:
            await self._take_over()
        if self._sharing:
            for device_id, seen_at, hb in await self.share.read_new():
                self._apply_shared(device_id, seen_at, hb)
        self._enqueue(self.supervisor.tick())

    async def _flush_round(self) -> None:
        if self._leading:  # device_health is the leader's to write
            await self.flush()

    async def _share_round(self) -> None:
        if self._sharing:  # the leader too: for the next leader, should this one die (see _take_over)
            await self.share.flush()

    def _apply_shared(self, device_id: str, seen_at: datetime, hb: Heartbeat) -> None:
        if device_id in self.supervisor.states:
            self._enqueue(self.supervisor.heartbeat(device_id, hb, at=seen_at))
            self._config_applied(device_id, hb)

    async def _take_over(self) -> None:
        """This instance just became the leader: start from what the previous one left in the store (statuses,
        open alarms), what every instance shared (the old leader's own heartbeats up to its last share too) and
        what it heard itself, and hold each device's deadline to what a heartbeat heard by the old leader alone
        could still justify (``Settings.takeover_window_s``, docs/architecture.md "Several instances"): such a
        heartbeat was heard no later than ``takeover_window_s`` after this instance got the lock, so a device is
        judged offline no earlier than its own full deadline from the later of its last known heartbeat and that
        time, and no later either.

        The new state is built beside the current one and swapped in without an await in between: heartbeats keep
        arriving while the store is read (thousands a second), and they go on being shared (``share.record``)
        until the swap, then are applied to the new state with the rest. (Emptying the supervisor before reading
        made every heartbeat of those seconds an unknown device: not counted, and a registry look-up each.)"""
        sup = Supervisor(self.settings)
        configs = await self._load_into(sup, restarted=False)  # the hold below gives the deadlines
        shared = await self.share.read_new(everything=True)
        mine = self.share.heard()  # no await from here on (and still to be written: this instance may die next)
        now = time.monotonic()  # the supervisor's clock, and the election's
        elected = self.port.leadership.elected_at
        got_lock = now if elected is None else min(elected, now)
        # Never before now either: at a start of every instance at once, nothing was heard before this one listened.
        sup.hold_deadlines(max(now, got_lock + self.settings.takeover_window_s()))
        self.supervisor, self.configs = sup, configs
        for device_id, seen_at, hb in shared:
            self._apply_shared(device_id, seen_at, hb)
        for device_id, (seen_at, hb) in mine.items():
            self._apply_shared(device_id, seen_at, hb)
        self._leading = True
        metrics.TAKEOVERS.inc()
        log.warning(
            "fleet supervision taken over",
            devices=len(self.supervisor.states),
            unknown_window_s=round(got_lock + self.settings.takeover_window_s() - now, 1),
        )

    def _step_down(self) -> None:
        if not self._leading:
            return
        self._leading = False
        dropped = self._actions.qsize() + (self._current is not None)
        while not self._actions.empty():
            self._actions.get_nowait()
        self._current = None
        log.warning("fleet supervision handed over: no longer leader", dropped_actions=dropped)

    async def _next_action(self) -> float:
        """Raises and resolves in order, one at a time, each durably; a failure is retried, never dropped
        (except by a leader that lost its leadership: the next leader judges again)."""
        if self._current is None:
            self._current = await self._actions.get()
        if not self.port.leadership.is_leader:
            self._current = None
            return 0
        await self._execute(self._current)
        self._current = None
        return 0

    def _action_failed(self, exc: BaseException) -> None:
        log.warning("supervision action will be retried", action=repr(self._current))

    async def _execute(self, action: Action) -> None:
        gw = self.port
        if isinstance(action, RaiseOffline):
            metrics.DEVICES_OFFLINE.inc()
            await gw.raise_alarm(
                action.device_id,
                action.alarm_id,
                AlarmType.DEVICE_OFFLINE,
                text=f"no word from the device for {action.silent_s:.0f} s ({action.reason})",
                text_code="device.silent",
                text_params={"silent_s": round(action.silent_s), "cause": action.cause},
                silent_s=round(action.silent_s, 1),
            )
        elif isinstance(action, ResolveOffline):
            grouped = action.grouped_under
            await gw.resolve_alarm(
                action.device_id,
                action.alarm_id,
                action.outcome,
                actor="supervision",
                code="outcome.grouped_in_area_outage" if grouped else "outcome.device_back_online",
                params={"area_alarm": grouped} if grouped else {},
            )
        elif isinstance(action, DeviceBackOnline):
            # Recorded in the queue's history but not left open: the open device_offline alarm is what an
            # operator acts on, and it is resolved by the hysteresis rule.
            alarm_id = f"online-{utcnow():%Y%m%dT%H%M%S%f}"
            await gw.raise_alarm(
                action.device_id,
                alarm_id,
                AlarmType.DEVICE_ONLINE,
                text=f"device back online after {action.offline_s:.0f} s",
                text_code="device.back_online",
                text_params={"offline_s": round(action.offline_s)},
            )
            await gw.resolve_alarm(
                action.device_id, alarm_id, "informational", actor="supervision", code="outcome.informational"
            )
        elif isinstance(action, RaiseAreaOutage):
            device_id = await self._ensure_area_device(action.area)
            listed = ", ".join(action.device_ids[:50]) + (" ..." if len(action.device_ids) > 50 else "")
            await gw.raise_alarm(
                device_id,
                action.alarm_id,
                AlarmType.AREA_OUTAGE,
                text=f"{len(action.device_ids)} of {action.supervised} devices silent in area {action.area}: {listed}",
                text_code="area.outage",
                text_params={"count": len(action.device_ids), "supervised": action.supervised, "area": action.area},
                area=action.area,
                devices=list(action.device_ids),
            )
        elif isinstance(action, ResolveAreaOutage):
            device_id = await self._ensure_area_device(action.area)
            await gw.resolve_alarm(
                device_id,
                action.alarm_id,
                action.outcome,
                actor="supervision",
                code="outcome.area_back",
                params={"back": action.back, "members": action.members},
            )

    async def _ensure_area_device(self, area: str) -> str:
        device_id = area_device_id(area)
        async with self.port.sessions.begin() as session:
            await add_device(session, device_id, DeviceType.BASE_UNIT, location=f"area {area}", exist_ok=True)
        return device_id

    # --- remote configuration --------------------------------------------------------------------------------
    async def set_config(
        self, device_id: str, heartbeat_interval_s: int, extra: dict[str, Any], actor: str
    ) -> DeviceConfigRow:
        current = self.configs.get(device_id)
        version = (current.version if current else 0) + 1
        DeviceConfig.model_validate({"version": version, "heartbeat_interval_s": heartbeat_interval_s, **extra})
        async with self.port.sessions.begin() as session:
            row = await session.get(DeviceConfigRow, device_id)
            if row is None:
                row = DeviceConfigRow(device_id=device_id)
                session.add(row)
            row.version, row.heartbeat_interval_s, row.extra = version, heartbeat_interval_s, extra
            row.changed_by, row.changed_at, row.applied_at = actor, utcnow(), None
        self.configs[device_id] = row
        state = self.supervisor.states.get(device_id)
        if state is not None:
            state.interval_s = float(heartbeat_interval_s)
        self._publish_config(row)
        log.info("device config changed", device_id=device_id, version=version, by=actor)
        return row

    def _publish_config(self, row: DeviceConfigRow) -> None:
        body = {"version": row.version, "heartbeat_interval_s": row.heartbeat_interval_s, **(row.extra or {})}
        topic = self.port.topics.device(row.device_id, DeviceTopic.CONFIG)
        self.port.publish(topic, DeviceConfig.model_validate(body).model_dump_json().encode(), qos=1, retain=True)
