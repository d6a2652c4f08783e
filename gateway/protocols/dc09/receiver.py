"""The SIA DC-09 receiver: TCP and UDP listeners that turn frames into the durable intake and supervision.

Every frame is answered once it has been handled: ``ACK`` only after the alarm (or the cancel a restore makes) is
committed through the port (``submit_alarm``/``submit_cancel`` return after the commit), ``NAK`` with the
receiver's time stamp for a bad CRC, length or time stamp, ``DUH`` for an unknown account or content it cannot use.
``NULL`` link tests and test events are supervision signals (``report_heartbeat``). A resend is the same alarm: its
``alarm_id`` is derived from the account, receiver, line, token, sequence number and content (never from the time
stamp, which a dialler renews on each attempt) and the receiver's UTC day, so the intake stores it once and the
unit gets its ACK again. Malformed or oversize input is refused, logged (never the content or a key) and counted;
a handler that fails unexpectedly answers nothing (the unit resends) and never stops the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import select

from devices import AlarmCancel, AlarmMessage, AlarmType, DeviceTopic, Heartbeat
from gateway.features import Subscription
from gateway.models import StoredAlarm
from gateway.port import GatewayPort
from gateway.protocols.dc09 import accounts
from gateway.protocols.dc09 import metrics as m
from gateway.protocols.dc09.codes import Event, Kind, Unsupported, read_event
from gateway.protocols.dc09.frame import (
    Answer,
    Frame,
    FrameError,
    Header,
    Message,
    build_answer,
    check_window,
    open_frame,
    parse_frame,
)
from gateway.records import Letter, Outcome, Received
from trygg.db import utcnow

log = structlog.get_logger(__name__)

PROTOCOL = "dc09"
_ACKED = {Outcome.STORED, Outcome.DUPLICATE, Outcome.ALARM_ID_REUSED, Outcome.CANCELLED, Outcome.CANCEL_DUPLICATE}
UDP_PENDING_MAX = 1000
ACCOUNT_CACHE_S = 5.0
MIDNIGHT_GRACE_MIN = 10  # a resend this long after midnight UTC still finds the alarm of the day before


@dataclass(frozen=True, slots=True)
class Listening:
    transport: str
    host: str
    port: int


class Dc09Receiver:
    """A gateway feature: built with the port, started and stopped with the gateway."""

    name = "dc09"

    def __init__(self, port: GatewayPort) -> None:
        self.port = port
        s = port.settings
        self._max = s.dc09_max_frame_bytes
        self._tcp: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._datagrams: set[asyncio.Task[None]] = set()
        self.listening: list[Listening] = []
        self._accounts: dict[tuple[str, str | None, str | None], tuple[accounts.Known, float]] = {}
        self._accounts_generation = accounts.generation()

    # --- Feature protocol ------------------------------------------------------------------------------------
    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        return {}

    def on_connected(self) -> None:
        return None

    async def start(self) -> None:
        s = self.port.settings
        assert s.dc09_port is not None
        port = s.dc09_port
        if "tcp" in s.dc09_transports:
            self._tcp = await asyncio.start_server(self._connection, s.dc09_host, port, limit=self._max)
            port = self._tcp.sockets[0].getsockname()[1]  # port 0: the one the system chose, UDP takes the same
            self.listening.append(Listening("tcp", s.dc09_host, port))
        if "udp" in s.dc09_transports:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self), local_addr=(s.dc09_host, port))
            self._udp = transport
            self.listening.append(Listening("udp", s.dc09_host, transport.get_extra_info("sockname")[1]))
        log.info("dc09 receiver listening", listening=[f"{x.transport}://{x.host}:{x.port}" for x in self.listening])

    async def stop(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
        if self._udp is not None:
            self._udp.close()
        tasks = self._connections | self._datagrams
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._tcp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 5)
        self._tcp = self._udp = None
        self.listening = []

    # --- transports ------------------------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.port.settings.dc09_max_connections:
            m.REFUSED.labels("too_many_connections").inc()
            log.warning("dc09 connection refused: too many open (the unit retries)", open=len(self._connections))
            writer.close()
            return
        self._connections.add(task)
        m.CONNECTIONS.inc()
        peer = writer.get_extra_info("peername")
        source = f"dc09/tcp/{peer[0]}:{peer[1]}" if peer else "dc09/tcp"
        idle_s = self.port.settings.dc09_idle_timeout_s
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: no extra task per read (two reads per connection, a unit
                    # dials once per message)
                    async with asyncio.timeout(idle_s):
                        raw = await reader.readuntil(b"\r")
                except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
                    return  # closed by the unit, or idle
                except asyncio.LimitOverrunError:
                    # no <CR> within the bound: answer NAK and close (the stream cannot be resynchronised)
                    writer.write(
                        self._refuse(FrameError(Answer.NAK, "oversize", "no frame end within the bound"), "tcp")
                    )
                    await writer.drain()
                    return
                answer = await self.answer(raw, source, "tcp")
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
        except ConnectionError:
            return
        finally:
            m.CONNECTIONS.dec()
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(self._datagrams) >= UDP_PENDING_MAX:
            m.REFUSED.labels("busy").inc()
            log.warning("dc09 datagram dropped: too many pending (the unit resends)", peer=addr[0])
            return
        task = asyncio.get_running_loop().create_task(self._datagram(data, addr))
        self._datagrams.add(task)
        task.add_done_callback(self._datagrams.discard)

    async def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = await self.answer(data, f"dc09/udp/{addr[0]}:{addr[1]}", "udp")
        if answer is not None and self._udp is not None:
            self._udp.sendto(answer, addr)

    # --- one frame -------------------------------------------------------------------------------------------
    async def answer(self, raw: bytes, source: str, transport: str) -> bytes | None:
        """The answer to one frame, after its alarm is committed; None when handling failed (no answer: resend)."""
        try:
            answer = await self._handle(raw, source, transport)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not stop the listener; no answer, so the unit sends again
            m.REFUSED.labels("handler_error").inc()
            log.error("dc09 frame handling failed", source=source, error_type=type(exc).__name__, exc_info=exc)
            return None
        return answer

    async def _handle(self, raw: bytes, source: str, transport: str) -> bytes:
        now = utcnow()
        parsed = parse_frame(raw, self._max)
        if isinstance(parsed, FrameError):
            return self._refuse(parsed, transport, source)
        header = parsed.header
        known = await self._find(header)
        if known is None:
            return self._refuse(
                FrameError(Answer.DUH, "unknown_account", "account not registered", header), transport, source
            )
        message = open_frame(parsed, known.key)
        if isinstance(message, FrameError):
            return self._refuse(message, transport, source, known.device_id)
        s = self.port.settings
        if header.encrypted:
            assert message.timestamp is not None
            late = check_window(message.timestamp, now, s.dc09_time_behind_s, s.dc09_time_ahead_s)
            if late is not None:
                return self._refuse(late, transport, source, known.device_id)
        if header.token == "NULL":
            return self._link_test(known.device_id, header, known.key, transport)
        try:
            event = read_event(header.token, message.content, s.dc09_code_map)
        except Unsupported as exc:
            refusal = FrameError(Answer.DUH, "unsupported", str(exc), header)
            await self.port.keep_dead_letter(
                Letter(Received(source, raw, PROTOCOL), "unsupported", str(exc), known.device_id, "dc09")
            )
            return self._refuse(refusal, transport, source, known.device_id)
        if event.kind is Kind.TEST:
            return self._link_test(known.device_id, header, known.key, transport)
        received = Received(source, raw, PROTOCOL)
        if event.kind is Kind.RESTORE:
            outcome = await self._restore(known.device_id, parsed, message, event, received)
        else:
            outcome = await self._alarm(known.device_id, parsed, message, event, event.alarm_type, received)
        if outcome in _ACKED or outcome is None:
            return self._ack(header, known.key, transport)
        return self._refuse(
            FrameError(Answer.DUH, outcome.value, "refused by the store", header), transport, source, known.device_id
        )

    async def _find(self, header: Header) -> accounts.Known | None:
        """The registry's answer, remembered for ``ACCOUNT_CACHE_S`` (a frame per alarm, link tests every minute or
        so): a new account is seen at once (misses are not remembered); one removed or re-keyed through the API at
        once too (``accounts.registry_changed``), through the CLI (another process) within that time."""
        if accounts.generation() != self._accounts_generation:
            self._accounts.clear()
            self._accounts_generation = accounts.generation()
        ident = (header.account, header.receiver, header.line)
        now = time.monotonic()
        cached = self._accounts.get(ident)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self.port.sessions() as session:
            known = await accounts.find(session, header.account, header.receiver, header.line)
        if known is not None:
            if len(self._accounts) > 100_000:
                self._accounts.clear()
            self._accounts[ident] = (known, now + ACCOUNT_CACHE_S)
        else:
            self._accounts.pop(ident, None)
        return known

    def _link_test(self, device_id: str, header: Header, key: bytes | None, transport: str) -> bytes:
        supervised = self.port.report_heartbeat(device_id, Heartbeat(ts=utcnow()))
        if supervised:
            m.LINK_TESTS.inc()
        return self._ack(header, key, transport)

    async def _alarm(
        self, device_id: str, frame: Frame, message: Message, event: Event, alarm_type: AlarmType, received: Received
    ) -> Outcome:
        h = frame.header
        now = utcnow()
        identity = "|".join((h.account, h.receiver or "", h.line or "", h.token, h.seq, message.content, message.extra))
        digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
        alarm_id = f"dc09-{now:%y%m%d}-{h.seq}-{digest}"
        if now.hour == 0 and now.minute < MIDNIGHT_GRACE_MIN:
            # just after midnight UTC: a resend of yesterday's message is yesterday's alarm
            yesterday = f"dc09-{now - timedelta(days=1):%y%m%d}-{h.seq}-{digest}"
            async with self.port.sessions() as session:
                if await session.get(StoredAlarm, (device_id, yesterday)) is not None:
                    alarm_id = yesterday
        zone = f" {event.zone}" if event.zone else ""  # code and zone, no words: shown as is in any language
        fields: dict[str, object] = {
            "alarm_id": alarm_id,
            "type": alarm_type,
            "ts": message.timestamp or now,
            "text": f"{event.code}{zone}",
            "dc09": {
                "account": h.account,
                "receiver": h.receiver,
                "line": h.line,
                "seq": h.seq,
                "code": event.code,
                "zone": event.zone,
                "family": event.meaning.family if event.meaning else None,
            },
        }
        if event.meaning is not None and event.meaning.priority is not None and alarm_type is event.alarm_type:
            fields["priority"] = event.meaning.priority
        alarm = AlarmMessage.model_validate(fields)
        outcome = await self.port.submit_alarm(device_id, alarm, received)
        log.info("dc09 alarm", device_id=device_id, alarm_id=alarm_id, code=event.code, outcome=outcome.value)
        return outcome

    async def _restore(
        self, device_id: str, frame: Frame, message: Message, event: Event, received: Received
    ) -> Outcome | None:
        """Cancel the newest alarm of the event's family (and zone) from this device; with none, file the family's
        ``restored`` type if it has one (mains, battery, link), otherwise only log it."""
        family = event.meaning.family if event.meaning else event.code
        alarm_id = await self._newest_of(device_id, event.alarm_type, family, event.zone)
        if alarm_id is not None:
            outcome = await self.port.submit_cancel(device_id, AlarmCancel(alarm_id=alarm_id, ts=utcnow()), received)
            log.info("dc09 restore", device_id=device_id, alarm_id=alarm_id, code=event.code, outcome=outcome.value)
            return outcome
        restored = event.meaning.restored if event.meaning else None
        if restored is not None:
            return await self._alarm(device_id, frame, message, event, restored, received)
        m.REFUSED.labels("restore_without_alarm").inc()
        log.info("dc09 restore with no alarm to cancel", device_id=device_id, code=event.code)
        return None

    async def _newest_of(self, device_id: str, alarm_type: AlarmType, family: str, zone: str | None) -> str | None:
        """The newest not-resolved alarm of that type whose DC-09 family and zone match (cancelled ones count, so a
        resent restore answers again without filing anything new)."""
        async with self.port.sessions() as session:
            rows = (
                await session.execute(
                    select(StoredAlarm.alarm_id, StoredAlarm.payload)
                    .where(
                        StoredAlarm.device_id == device_id,
                        StoredAlarm.type == alarm_type.value,
                        StoredAlarm.resolved_at.is_(None),
                    )
                    .order_by(StoredAlarm.stored_at.desc())
                    .limit(50)
                )
            ).all()
        for alarm_id, payload in rows:
            extra = payload.get("device_extra") if isinstance(payload, dict) else None
            dc09 = extra.get("dc09") if isinstance(extra, dict) else None
            if not isinstance(dc09, dict) or dc09.get("family") != family:
                continue
            if zone is None or dc09.get("zone") in (None, zone):
                return str(alarm_id)
        return None

    # --- answers ---------------------------------------------------------------------------------------------
    def _ack(self, header: Header, key: bytes | None, transport: str) -> bytes:
        m.FRAMES.labels(transport, "ACK").inc()
        return build_answer(Answer.ACK, header, utcnow(), key)

    def _refuse(self, refusal: FrameError, transport: str, source: str = "", device_id: str | None = None) -> bytes:
        header = refusal.header
        m.FRAMES.labels(transport, refusal.answer.value).inc()
        m.REFUSED.labels(refusal.code).inc()
        log.warning(
            "dc09 frame refused",
            answer=refusal.answer.value,
            code=refusal.code,
            reason=refusal.reason,
            source=source,
            account=header.account if header else None,
            seq=header.seq if header else None,
            device_id=device_id,
        )
        return build_answer(refusal.answer, header, utcnow())


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, receiver: Dc09Receiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.receiver.datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.warning("dc09 udp error", error_type=type(exc).__name__)
