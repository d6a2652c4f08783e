"""The fleet feature: heartbeats and status in, technical alarms out, remote configuration, installation tests.

Heartbeats are handled in memory (they come by the thousand per second) and flushed to ``device_health``
every ``health_flush_s``; every alarm goes through the gateway's durable path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import APIRouter
from pydantic import ValidationError
from sqlalchemy import select, update

from devices import AlarmType, DeviceConfig, DeviceTopic, DeviceType, Heartbeat
from gateway import metrics
from gateway.features import Subscription
from gateway.fleet.models import DeviceConfigRow, DeviceHealth, InstallTest
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
from gateway.registry import add_device
from trygg.db import dialect_insert, utcnow

if TYPE_CHECKING:
    from gateway.service import Gateway

log = structlog.get_logger(__name__)

AREA_DEVICE_PREFIX = "area-"


def area_device_id(area: str) -> str:
    """Area outages are filed under a registry entry of their own (type base_unit, never supervised)."""
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in area)[:58] or "all"
    return AREA_DEVICE_PREFIX + ("all" if area == WHOLE_FLEET else safe)


class FleetFeature:
    name = "fleet"

    def __init__(self) -> None:
        self.gateway: Gateway | None = None
        self.supervisor: Supervisor | None = None
        self.configs: dict[str, DeviceConfigRow] = {}
        self._applied: dict[str, int] = {}  # device -> config version newly reported applied
        self._tests: dict[str, int] = {}  # device -> open installation test id
        self._test_alarms: dict[tuple[str, str], tuple[int, float]] = {}  # (device, alarm) -> (test id, mono)
        self._unknown_checked: dict[str, float] = {}
        self._lookups: set[asyncio.Task[bool]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._actions: asyncio.Queue[Action] = asyncio.Queue()

    # --- Feature protocol ------------------------------------------------------------------------------------
    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        return {
            DeviceTopic.HEARTBEAT: Subscription(fast=self._on_heartbeat, qos=0),
            DeviceTopic.STATUS: Subscription(self._on_status, qos=1),
        }

    def router(self) -> APIRouter:
        from gateway.fleet.api import build_router

        return build_router(self)

    async def start(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.supervisor = Supervisor(gateway.settings)
        await self._load()
        gateway.is_test_alarm = lambda device_id: device_id in self._tests
        gateway.stored_listeners.append(self._alarm_stored)
        gateway.delivered_listeners.append(self._alarm_delivered)
        self._tasks = [
            asyncio.create_task(self._tick_loop(), name="fleet-tick"),
            asyncio.create_task(self._flush_loop(), name="fleet-flush"),
            asyncio.create_task(self._action_loop(), name="fleet-actions"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.gateway is not None:
            with contextlib.suppress(Exception):
                await self.flush()

    def on_connected(self) -> None:
        """Re-publish every device's retained configuration (a broker without persistence forgets it)."""
        for row in self.configs.values():
            self._publish_config(row)

    # --- loading and saving ----------------------------------------------------------------------------------
    async def _load(self) -> None:
        gw, sup = self._gw(), self._sup()
        async with gw.sessions() as session:
            devices = (await session.scalars(select(Device).where(Device.retired_at.is_(None)))).all()
            health = {h.device_id: h for h in (await session.scalars(select(DeviceHealth))).all()}
            self.configs = {c.device_id: c for c in (await session.scalars(select(DeviceConfigRow))).all()}
            open_tests = (await session.scalars(select(InstallTest).where(InstallTest.state == "waiting"))).all()
        for device in devices:
            if device.id.startswith(AREA_DEVICE_PREFIX):
                continue
            sup.track(self._state_from(device, health.get(device.id)), restarted=True)
        self._tests = {t.device_id: t.id for t in open_tests}
        log.info("fleet supervision loaded", devices=len(sup.states), configs=len(self.configs))

    def _state_from(self, device: Device, h: DeviceHealth | None) -> DeviceState:
        sup = self._sup()
        config = self.configs.get(device.id)
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
        sup, gw = self._sup(), self._gw()
        dirty = list(sup.dirty())
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
            async with gw.sessions.begin() as session:
                insert = dialect_insert(session)
                for chunk in range(0, len(rows), 500):
                    part = rows[chunk : chunk + 500]
                    stmt = insert(DeviceHealth).values(part)
                    cols = {k: stmt.excluded[k] for k in part[0] if k != "device_id"}
                    await session.execute(stmt.on_conflict_do_update(index_elements=["device_id"], set_=cols))
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

    # --- inputs ----------------------------------------------------------------------------------------------
    def _on_heartbeat(self, device_id: str, payload: bytes) -> None:
        """Inline on the fast connection: validate, update the in-memory state, queue any action."""
        try:
            hb = Heartbeat.model_validate_json(payload)
        except ValidationError as exc:
            metrics.REJECTED.labels("invalid_heartbeat").inc()
            log.warning("heartbeat rejected", device_id=device_id, reason=str(exc.errors()[0]["msg"]))
            return
        sup = self._sup()
        if device_id not in sup.states:
            # maybe registered since start: look it up (off this path), take its next heartbeat
            if self._lookup_allowed(device_id):
                task = asyncio.get_running_loop().create_task(self._maybe_track(device_id))
                self._lookups.add(task)
                task.add_done_callback(self._lookups.discard)
            metrics.REJECTED.labels("unknown_device").inc()
            return
        metrics.HEARTBEATS.inc()
        self._enqueue(sup.heartbeat(device_id, hb))
        config = self.configs.get(device_id)
        if config is not None and hb.config_version == config.version and config.applied_at is None:
            config.applied_at = utcnow()
            self._applied[device_id] = config.version
            log.info("device applied config", device_id=device_id, version=config.version)

    async def _on_status(self, device_id: str, payload: bytes) -> None:
        text = payload.decode(errors="replace").strip().lower()
        if text not in ("online", "offline"):
            metrics.REJECTED.labels("invalid_status").inc()
            return
        sup = self._sup()
        if device_id not in sup.states and not (self._lookup_allowed(device_id) and await self._maybe_track(device_id)):
            return
        self._enqueue(sup.status(device_id, text == "online"))

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
        async with self._gw().sessions() as session:
            device = await session.get(Device, device_id)
        if device is None or device.retired_at is not None:
            return False
        self._unknown_checked.pop(device_id, None)
        self._sup().track(self._state_from(device, None))
        return True

    def is_online(self, device_id: str) -> bool | None:
        """True/False once supervised and heard from; None when unknown (never heard, or not supervised)."""
        state = self.supervisor.states.get(device_id) if self.supervisor else None
        if state is None or state.status == "unknown":
            return None
        return state.status == "online"

    def forget(self, device_id: str) -> None:
        self._sup().forget(device_id)

    # --- actions ---------------------------------------------------------------------------------------------
    def _enqueue(self, actions: Sequence[Action]) -> None:
        for action in actions:
            self._actions.put_nowait(action)

    async def _tick_loop(self) -> None:
        period = self._gw().settings.supervision_period_s
        while True:
            self._enqueue(self._sup().tick())
            self._check_test_deadlines()
            await asyncio.sleep(period)

    async def _flush_loop(self) -> None:
        period = self._gw().settings.health_flush_s
        while True:
            await asyncio.sleep(period)
            try:
                await self.flush()
            except Exception as exc:
                log.error("health flush failed; will retry", error=str(exc))

    async def _action_loop(self) -> None:
        """Raises and resolves in order, one at a time, each durably; a failure is retried, never dropped."""
        while True:
            action = await self._actions.get()
            delay = 0.2
            while True:
                try:
                    await self._execute(action)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("supervision action failed; retrying", action=repr(action), error=str(exc))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10)

    async def _execute(self, action: Action) -> None:
        gw = self._gw()
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
        async with self._gw().sessions.begin() as session:
            await add_device(session, device_id, DeviceType.BASE_UNIT, location=f"area {area}", exist_ok=True)
        return device_id

    # --- remote configuration --------------------------------------------------------------------------------
    async def set_config(
        self, device_id: str, heartbeat_interval_s: int, extra: dict[str, Any], actor: str
    ) -> DeviceConfigRow:
        gw, sup = self._gw(), self._sup()
        current = self.configs.get(device_id)
        version = (current.version if current else 0) + 1
        DeviceConfig.model_validate({"version": version, "heartbeat_interval_s": heartbeat_interval_s, **extra})
        async with gw.sessions.begin() as session:
            row = await session.get(DeviceConfigRow, device_id)
            if row is None:
                row = DeviceConfigRow(device_id=device_id)
                session.add(row)
            row.version, row.heartbeat_interval_s, row.extra = version, heartbeat_interval_s, extra
            row.changed_by, row.changed_at, row.applied_at = actor, utcnow(), None
        self.configs[device_id] = row
        state = sup.states.get(device_id)
        if state is not None:
            state.interval_s = float(heartbeat_interval_s)
        self._publish_config(row)
        log.info("device config changed", device_id=device_id, version=version, by=actor)
        return row

    def _publish_config(self, row: DeviceConfigRow) -> None:
        gw = self._gw()
        body = {"version": row.version, "heartbeat_interval_s": row.heartbeat_interval_s, **(row.extra or {})}
        topic = gw.topics.device(row.device_id, DeviceTopic.CONFIG)
        gw.publish(topic, DeviceConfig.model_validate(body).model_dump_json().encode(), qos=1, retain=True)

    # --- installation tests ----------------------------------------------------------------------------------
    async def start_install_test(self, device_id: str, actor: str, window_s: float) -> InstallTest:
        async with self._gw().sessions.begin() as session:
            # one open test per device: a new one replaces the old
            await session.execute(
                update(InstallTest)
                .where(InstallTest.device_id == device_id, InstallTest.state.in_(("waiting", "stored")))
                .values(
                    state="failed", finished_at=utcnow(), detail="replaced by a new test", detail_code="test.replaced"
                )
            )
            test = InstallTest(device_id=device_id, started_by=actor, deadline=utcnow() + timedelta(seconds=window_s))
            session.add(test)
            await session.flush()
        self._tests[device_id] = test.id
        log.info("installation test started", device_id=device_id, test=test.id, by=actor, window_s=window_s)
        return test

    def _alarm_stored(self, device_id: str, alarm_id: str, is_test: bool) -> None:
        if not is_test:
            return
        test_id = self._tests.pop(device_id, None)
        if test_id is None:
            return
        self._test_alarms[(device_id, alarm_id)] = (test_id, time.monotonic())
        asyncio.get_running_loop().create_task(
            self._update_test(test_id, state="stored", alarm_id=alarm_id, stored_at=utcnow())
        )

    def _alarm_delivered(self, kind: str, device_id: str, alarm_id: str) -> None:
        found = self._test_alarms.pop((device_id, alarm_id), None) if kind == "alarm" else None
        if found is None:
            return
        test_id, _ = found
        asyncio.get_running_loop().create_task(self._finish_passed(test_id))

    async def _finish_passed(self, test_id: int) -> None:
        async with self._gw().sessions.begin() as session:
            test = await session.get(InstallTest, test_id)
            if test is None or test.state not in ("waiting", "stored"):
                return
            now = utcnow()
            test.state, test.finished_at = "passed", now
            test.end_to_end_ms = (now - test.stored_at).total_seconds() * 1000 if test.stored_at else None
            test.detail = "alarm stored by the gateway and confirmed by the alarm receiver"
            test.detail_code = "test.passed"
        log.info("installation test passed", test=test_id)

    async def _update_test(self, test_id: int, **values: Any) -> None:
        async with self._gw().sessions.begin() as session:
            await session.execute(update(InstallTest).where(InstallTest.id == test_id).values(**values))

    def _check_test_deadlines(self) -> None:
        if not self._tests and not self._test_alarms:
            return
        asyncio.get_running_loop().create_task(self._fail_overdue_tests())

    async def _fail_overdue_tests(self) -> None:
        now = utcnow()
        async with self._gw().sessions.begin() as session:
            overdue = (
                await session.scalars(
                    select(InstallTest).where(InstallTest.state.in_(("waiting", "stored")), InstallTest.deadline < now)
                )
            ).all()
            for test in overdue:
                test.finished_at = now
                if test.state == "waiting":
                    test.detail = "no alarm from the device within the test window (check pairing, radio, broker)"
                    test.detail_code = "test.no_alarm"
                else:
                    test.detail = "stored at the gateway but not confirmed by the alarm receiver in time"
                    test.detail_code = "test.not_confirmed"
                test.state = "failed"
                self._tests.pop(test.device_id, None)
                if test.alarm_id is not None:
                    self._test_alarms.pop((test.device_id, test.alarm_id), None)
                log.warning("installation test failed", test=test.id, device_id=test.device_id, why=test.detail)

    # --- helpers ---------------------------------------------------------------------------------------------
    def _gw(self) -> Gateway:
        if self.gateway is None:
            raise RuntimeError("the fleet feature is not started")
        return self.gateway

    def _sup(self) -> Supervisor:
        if self.supervisor is None:
            raise RuntimeError("the fleet feature is not started")
        return self.supervisor
