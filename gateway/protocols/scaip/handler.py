"""The SCAIP application: one ``<mrq>`` from a known unit in, its ``<mrs>`` out, through the gateway's port.

- ME (alarm) and IN (information) go on the durable path (``port.submit_alarm``) typed by ``codes.py``; the answer
  is ``snu`` 0 only once the commit is done. A ``ref`` seen again (a resend) is submitted again as the same
  alarm (same alarm id and time stamp: from memory, or from the store when the store says the id is taken), so
  the store answers it as a duplicate: OK again, nothing new stored. A ``ref`` last seen longer ago than
  ``scaip_ref_window_s`` is a new alarm (the unit's counter came round): it gets an alarm id of its own. The
  first try needs no read of the store; the registry is kept in memory (``identify``).
- RE (reset) cancels the newest alarm with that ``ref`` (``port.submit_cancel``) among the controller's devices.
- PI (heartbeat) is a supervision signal (``port.report_heartbeat``): deadline, offline alarm, area outage.
- A commit that takes longer than ``scaip_commit_wait_s`` is answered 4 HOLD (the unit resends, and is answered
  from the store); with ``scaip_max_pending`` alarms already waiting, 6 BUSY.

Nothing here writes to the store: it reads it (the registry, an earlier alarm's ``ref``) through the port's
sessions.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select

from devices import AlarmCancel, AlarmMessage, AlarmType, Heartbeat, Location
from gateway.models import StoredAlarm
from gateway.port import GatewayPort
from gateway.protocols.scaip import codes, metrics
from gateway.protocols.scaip.models import ScaipUnit
from gateway.protocols.scaip.mrq import MessageType, Mrq, Mrs, Snu
from gateway.protocols.scaip.registry import controller_devices, pick, units_of
from gateway.records import Outcome, Received
from trygg.db import utcnow

log = structlog.get_logger(__name__)

UNITS_KEPT_S = 30.0  # a registry change made elsewhere (trygg scaip) takes effect within this
UNKNOWN_KEPT_S = 5.0  # an unknown controller is looked up at most this often (a flood of strangers costs no reads)
RECENT_KEPT = 100_000
LOOKUPS_PER_S = 50  # registry reads for identities not in memory, at most; beyond: HOLD (the unit resends)


class LookupLimit(Exception):
    """Too many identities not in memory this second: answered HOLD, and the unit resends."""


_SNU_OF: dict[Outcome, tuple[Snu, str]] = {
    Outcome.STORED: (Snu.OK, "stored"),
    Outcome.DUPLICATE: (Snu.OK, "stored"),
    Outcome.CANCELLED: (Snu.OK, "reset stored"),
    Outcome.CANCEL_DUPLICATE: (Snu.OK, "reset stored"),
    Outcome.UNKNOWN_DEVICE: (Snu.NOT_TREATED, "device is not registered"),
    Outcome.RETIRED_DEVICE: (Snu.NOT_TREATED, "device is retired"),
    Outcome.UNKNOWN_ALARM: (Snu.WRONG_DATA, "no alarm with that ref to reset"),
    Outcome.ALARM_ID_REUSED: (Snu.WRONG_DATA, "ref already used for another alarm"),
    Outcome.UNSTORABLE: (Snu.WRONG_DATA, "could not be stored; kept for a technician"),
}


class ScaipHandler:
    def __init__(self, port: GatewayPort) -> None:
        self.port = port
        s = port.settings
        self._wait_s = s.scaip_commit_wait_s
        self._max_pending = s.scaip_max_pending
        self._window = timedelta(seconds=s.scaip_ref_window_s)
        # (device_id, ref) -> (alarm_id, ts) of an alarm submitted and not yet answered by the store
        self._in_flight: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._tasks: set[asyncio.Task[Outcome]] = set()
        # (device_id, ref) -> (alarm_id, ts, when) of alarms stored by this process: a resend needs no look-up
        self._recent: OrderedDict[tuple[str, str], tuple[str, datetime, float]] = OrderedDict()
        self._units: dict[str, tuple[list[ScaipUnit], float]] = {}  # cid -> its registry entries, until when
        self._lookup_window, self._lookups = 0.0, 0

    async def identify(self, mrq: Mrq) -> ScaipUnit | None:
        """The registry entry of a request's identity: from memory (a controller's entries are read once, kept
        ``UNITS_KEPT_S``; an unknown controller is looked up again at most every ``UNKNOWN_KEPT_S``, and at most
        ``LOOKUPS_PER_S`` look-ups a second are made: beyond, :class:`LookupLimit`)."""
        now = time.monotonic()
        cached = self._units.get(mrq.cid)
        if cached is None or cached[1] < now:
            if now - self._lookup_window >= 1.0:
                self._lookup_window, self._lookups = now, 0
            self._lookups += 1
            if self._lookups > LOOKUPS_PER_S:  # a flood of strangers must not keep the store from the alarms
                raise LookupLimit
            async with self.port.sessions() as session:
                units = await units_of(session, mrq.cid)
                for unit in units:
                    session.expunge(unit)
            if len(self._units) > 100_000:
                self._units.clear()
            self._units[mrq.cid] = (units, now + (UNITS_KEPT_S if units else UNKNOWN_KEPT_S))
            cached = self._units[mrq.cid]
        return pick(cached[0], mrq.did, mrq.crd)

    def forget(self, cid: str) -> None:
        """The registry changed for this controller (the unit API): read it again on its next request."""
        self._units.pop(cid, None)

    async def handle(self, mrq: Mrq, unit: ScaipUnit, received: Received) -> Mrs:
        """The answer to a request from a known unit (after the commit, for what is stored)."""
        metrics.REQUESTS.labels(mrq.mty.value).inc()
        if mrq.mty is MessageType.HEARTBEAT:
            self.port.report_heartbeat(unit.device_id, Heartbeat(ts=utcnow()))
            snu, text = Snu.OK, "heartbeat"
        elif mrq.mty is MessageType.RESET:
            snu, text = await self._reset(mrq, unit, received)
        else:
            snu, text = await self._alarm(mrq, unit, received)
        return Mrs(mrq.ref, snu, text, mre=unit.mre, hbi=unit.hbi)

    # --- ME / IN -------------------------------------------------------------------------------------------------
    async def _alarm(self, mrq: Mrq, unit: ScaipUnit, received: Received) -> tuple[Snu, str]:
        if len(self._tasks) >= self._max_pending:
            log.warning("scaip alarm answered BUSY", device_id=unit.device_id, ref=mrq.ref, pending=len(self._tasks))
            return Snu.BUSY, "busy, resend later"
        key = (unit.device_id, mrq.ref)
        known = self._in_flight.get(key) or self._recent_alarm(key)
        alarm_id, ts = known or (mrq.ref, _now())
        outcome = await self._submit(mrq, unit, key, alarm_id, ts, received)
        if outcome is Outcome.ALARM_ID_REUSED and known is None:
            # The ref named an alarm this process has not seen (a resend after a restart, or the unit's counter
            # came round): the store says which, and the alarm is submitted again under the right id.
            same = await self._earlier(unit.device_id, mrq.ref)
            alarm_id, ts = same if same is not None else (f"{mrq.ref}-{ts:%Y%m%d%H%M%S}", ts)
            outcome = await self._submit(mrq, unit, key, alarm_id, ts, received)
        elif outcome is Outcome.DUPLICATE and known is None and await self._earlier(unit.device_id, mrq.ref) is None:
            # The same type in the same second as an alarm stored under this ref before the window: not a resend
            # (that would be within the window) but the unit's counter come round; an alarm of its own.
            alarm_id = f"{mrq.ref}-{ts:%Y%m%d%H%M%S}"
            outcome = await self._submit(mrq, unit, key, alarm_id, ts, received)
        if outcome is None:
            log.warning("scaip alarm answered HOLD: commit still waiting", device_id=unit.device_id, ref=mrq.ref)
            return Snu.HOLD, "hold, resend later"
        if outcome in (Outcome.STORED, Outcome.DUPLICATE):
            self._remember(key, alarm_id, ts)
        if outcome is Outcome.STORED:
            log.info("scaip alarm stored", device_id=unit.device_id, ref=mrq.ref, alarm_id=alarm_id)
        return _SNU_OF[outcome]

    async def _submit(
        self, mrq: Mrq, unit: ScaipUnit, key: tuple[str, str], alarm_id: str, ts: datetime, received: Received
    ) -> Outcome | None:
        """Submit on the durable path; the outcome after the commit, or None when it takes longer than the wait
        (the submission goes on: a resend is answered from the store)."""
        message = self._message(mrq, alarm_id, ts)
        self._in_flight[key] = (alarm_id, ts)
        task = asyncio.ensure_future(self.port.submit_alarm(unit.device_id, message, received))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, key))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._wait_s)
        except TimeoutError:
            return None

    def _done(self, task: asyncio.Task[Outcome], key: tuple[str, str]) -> None:
        """Its commit is done (or failed): a resend from now on is answered from memory or from the store."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is None:
            if task.result() in (Outcome.STORED, Outcome.DUPLICATE) and key in self._in_flight:
                self._remember(key, *self._in_flight[key])
        elif not task.cancelled():
            log.error("scaip alarm submission failed", device_id=key[0], ref=key[1], exc_info=task.exception())
        self._in_flight.pop(key, None)

    def _remember(self, key: tuple[str, str], alarm_id: str, ts: datetime) -> None:
        self._recent[key] = (alarm_id, ts, time.monotonic())
        self._recent.move_to_end(key)
        while len(self._recent) > RECENT_KEPT:
            self._recent.popitem(last=False)

    def _recent_alarm(self, key: tuple[str, str]) -> tuple[str, datetime] | None:
        found = self._recent.get(key)
        if found is None or time.monotonic() - found[2] > self._window.total_seconds():
            return None
        return found[0], found[1]

    async def _earlier(self, device_id: str, ref: str) -> tuple[str, datetime] | None:
        """The alarm this ``ref`` named before, when within the window: a resend is the same alarm."""
        async with self.port.sessions() as session:
            row = (
                await session.execute(
                    select(StoredAlarm.alarm_id, StoredAlarm.device_ts, StoredAlarm.stored_at)
                    .where(
                        StoredAlarm.device_id == device_id,
                        or_(StoredAlarm.alarm_id == ref, StoredAlarm.alarm_id.like(f"{ref}-%")),
                    )
                    .order_by(StoredAlarm.stored_at.desc())
                    .limit(1)
                )
            ).first()
        if row is None or utcnow() - row.stored_at > self._window:
            return None
        return row.alarm_id, row.device_ts

    def _message(self, mrq: Mrq, alarm_id: str, ts: datetime) -> AlarmMessage:
        if mrq.mty is MessageType.INFO and mrq.stc is None:
            # information without a status code (an info code ``ico`` at most): not the device's alarm
            alarm_type, mapped = AlarmType.GENERIC_ALARM, False
        else:
            alarm_type, mapped = codes.alarm_type(mrq.stc, int(mrq.dty))
        raw: dict[str, object] = {"mty": mrq.mty.value, "cid": mrq.cid, "dty": mrq.dty, "ref": mrq.ref, **mrq.fields}
        if mrq.geo:
            raw["lge"] = dict(mrq.geo)
        extra: dict[str, object] = {"scaip": raw}
        if not mapped:
            extra["raw_code"] = mrq.get("stc") or (f"ico {mrq.get('ico')}" if mrq.get("ico") else f"dty {mrq.dty}")
        return AlarmMessage.model_validate(
            {
                "alarm_id": alarm_id,
                "type": alarm_type,
                "ts": ts,
                "location": _location(mrq),
                "text": None if alarm_type is not AlarmType.GENERIC_ALARM else _generic_text(mrq),
                **extra,
            }
        )

    # --- RE ---------------------------------------------------------------------------------------------------
    async def _reset(self, mrq: Mrq, unit: ScaipUnit, received: Received) -> tuple[Snu, str]:
        async with self.port.sessions() as session:
            devices = await controller_devices(session, mrq.cid)
            row = (
                await session.execute(
                    select(StoredAlarm.device_id, StoredAlarm.alarm_id)
                    .where(
                        StoredAlarm.device_id.in_(devices or [unit.device_id]),
                        or_(StoredAlarm.alarm_id == mrq.ref, StoredAlarm.alarm_id.like(f"{mrq.ref}-%")),
                    )
                    .order_by(StoredAlarm.stored_at.desc())
                    .limit(1)
                )
            ).first()
        if row is None:
            in_flight = self._in_flight.get((unit.device_id, mrq.ref))
            if in_flight is None:
                metrics.REJECTED.labels("unknown_ref").inc()
                log.warning("scaip reset of an unknown ref", device_id=unit.device_id, ref=mrq.ref)
                return _SNU_OF[Outcome.UNKNOWN_ALARM]
            device_id, alarm_id = unit.device_id, in_flight[0]  # the cancel queues behind its alarm
        else:
            device_id, alarm_id = row.device_id, row.alarm_id
        outcome = await self.port.submit_cancel(device_id, AlarmCancel(alarm_id=alarm_id, ts=utcnow()), received)
        log.info("scaip reset", device_id=device_id, ref=mrq.ref, outcome=outcome.value)
        return _SNU_OF[outcome]


def _now() -> datetime:
    return utcnow().replace(microsecond=0)


def _location(mrq: Mrq) -> Location | None:
    code, text = mrq.get("lco"), mrq.get("lte")
    lat = lon = None
    if "geo" in mrq.geo:
        lat_s, lon_s = mrq.geo["geo"].split(",", 1)
        lat, lon = float(lat_s), float(lon_s)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            lat = lon = None
    if code is None and text is None and lat is None:
        return None
    return Location(code=code, text=text, lat=lat, lon=lon)


def _generic_text(mrq: Mrq) -> str:
    stc = mrq.get("stc")
    return f"SCAIP status code {stc} from device type {mrq.dty}" if stc else f"SCAIP alarm from device type {mrq.dty}"
