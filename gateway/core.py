"""The gateway's core: the store, the durable alarm path, the broker connection; it implements the port.

MQTT session: fixed client id, clean start off and a session expiry, so alarms published while the gateway
restarts wait at the broker. A QoS 1 PUBACK is sent only when the message's handler returns, i.e. after the alarm
is committed; the application ack (``stored``) follows the commit too. What features and protocol adapters may use
of all this is :class:`gateway.port.GatewayPort` (its docstring lists it); they never see this class.

Two brokers (``mqtt_second_url``): the gateway holds the same connections to a second, independent broker
(:class:`BrokerLink`, one per broker, each with its own sessions). A message is handled the same whichever broker it
came by; what the gateway says in answer to it (``stored``, ``rejected``) goes back on that broker, anything else it
publishes (retained configs, requests to cameras and locks) goes to every broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections import deque
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from devices import AlarmCancel, AlarmMessage, AlarmType, DeviceStatus, DeviceTopic, Heartbeat, Topics
from gateway import dead_letters, metrics
from gateway.db import migrate, reader_engine
from gateway.dispatch import Dispatcher
from gateway.floods import FloodWatch
from gateway.forwarder import Forwarder
from gateway.install_tests import InstallTests
from gateway.intake import IntakeItem, Resolution, letter_item
from gateway.intake_writer import IntakeWriter
from gateway.port import DeliveredListener, HeartbeatListener, StatusListener, StoredListener
from gateway.records import Letter, Outcome, Received
from trygg import mqtt
from trygg.db import create_engine, session_factory, utcnow
from trygg.http import client_tls
from trygg.leader import Leadership
from trygg.loops import Backoff, retry_until_done, run_forever
from trygg.secrets import check_service_secrets
from trygg.settings import Settings

log = structlog.get_logger(__name__)

# Longest pause of the main sessions' reading while another device's alarm is committed ahead of a flood.
PAUSE_MAX_S = 2.0
# Longest wait at stop for the messages being handled (their commits): a stop never waits forever for one (a test's
# gateway was once seen stuck in its stop for 20 minutes under heavy load, cause not found).
STOP_HANDLING_S = 10.0
# The broker connection the message being handled came from (set per message task): answers go back there.
_ORIGIN: ContextVar[mqtt.MqttConnection | None] = ContextVar("trygg_gateway_origin", default=None)


@dataclass(slots=True)
class BrokerLink:
    """The gateway's connections to one broker: the persistent main session (QoS 1 kinds) and the fast one."""

    number: int  # 1 for mqtt_url, 2 for mqtt_second_url
    endpoint: mqtt.MqttEndpoint
    main: mqtt.MqttConnection
    fast: mqtt.MqttConnection | None = None
    bypass: mqtt.MqttConnection | None = None  # QoS 0 copies of alarms, taken in ahead of a flood (flood_bypass)


class GatewayCore:
    """Store, intake writer, forwarder, broker connection(s), installation-test window; a ``GatewayPort``."""

    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        check_service_secrets(settings, "gateway")  # before anything starts: no default or short secret
        assert settings.intake_token is not None
        self._settings = settings
        self._topics = Topics(settings.topic_root)
        self._own_engine = engine is None
        self.engine = engine or create_engine(settings.gateway_database_url)
        self._sessions = session_factory(self.engine)
        self._leadership = Leadership(
            self.engine,
            "trygg.gateway.leader",
            instance=settings.instance_name,
            check_s=settings.leader_check_s,
            ttl_s=settings.leader_ttl_s,
        )
        self._forward_wake = asyncio.Event()
        self.writer = IntakeWriter(
            self._sessions,
            batch_max=settings.intake_batch_max,
            on_commit=self._forward_wake,
            on_rows=lambda rows: self.forwarder.committed(rows),
            kill_at=settings.fault_kill_at,
            dead_letter_bounds=dead_letters.Bounds(settings.dead_letter_keep, settings.dead_letter_payload_max_bytes),
            source_of=self._source_of,
            held=self._held,
            urgent=self._urgent,
            on_urgent=self._pause_floods,
        )
        # SQLite: the forwarder reads the outbox through a connection of its own (gateway.db.reader_engine says why)
        self._forward_engine = reader_engine(settings.gateway_database_url) if engine is None else None
        self.forward_engine = self._forward_engine or self.engine  # where the forwarder reads (tests watch it)
        self.forwarder = Forwarder(
            session_factory(self._forward_engine) if self._forward_engine is not None else self._sessions,
            receiver_url=settings.receiver_url,
            token=settings.intake_token.get_secret_value(),
            wake=self._forward_wake,
            mark_delivered=self.writer.mark_delivered,
            on_delivered=self._delivered,
            batch_max=settings.forward_batch_max,
            backoff_max_s=settings.forward_backoff_max_s,
            timeout_s=settings.forward_timeout_s,
            verify=client_tls(settings),
            # from memory only when this gateway is the store's only writer: with several gateways another one's rows
            # (an alarm whose cancel this one stored) are known only to the store
            direct=settings.mqtt_shared_group is None,
        )
        self.floods = FloodWatch(settings.device_alarm_rate_limit, settings.device_alarm_rate_window_s)
        self._install_tests = InstallTests(self._sessions)
        self._stored: list[StoredListener] = [self._install_tests.alarm_stored]
        self._delivered_to: list[DeliveredListener] = [self._install_tests.alarm_delivered]
        self._heartbeats: list[HeartbeatListener] = []
        self._statuses: list[StatusListener] = []
        self._after_connect: list[Callable[[], None]] = []
        self.dispatcher = Dispatcher(
            self._topics,
            settings.max_payload_bytes,
            keep=self.keep_dead_letter,
            shared_group=settings.mqtt_shared_group,
        )
        urls = [settings.mqtt_url] + ([settings.mqtt_second_url] if settings.mqtt_second_url else [])
        self.links = [self._link(number, url) for number, url in enumerate(urls, start=1)]
        self.mqtt = self.links[0].main
        self._connecting: list[asyncio.Task[None]] = []
        self.stopping = False  # set when the gateway stops: a disconnect is then ours, not warned about
        self._tasks: list[asyncio.Task[None]] = []
        self._pause_timer: asyncio.TimerHandle | None = None
        self._paused_urgent = self._paused_load = self._reading_paused = False
        # main-session messages past the gate (being handled), waiting at it, let go and not yet run
        self._passed = 0
        self._gate: deque[asyncio.Future[None]] = deque()
        self._gate_released = 0

    # --- GatewayPort: plumbing ------------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def topics(self) -> Topics:
        return self._topics

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self._sessions

    @property
    def connected(self) -> bool:
        """Connected to a broker (with two brokers: to at least one)."""
        return any(link.main.connected.is_set() for link in self.links)

    @property
    def brokers_connected(self) -> list[bool]:
        return [link.main.connected.is_set() for link in self.links]

    @property
    def fast_mqtt(self) -> mqtt.MqttConnection | None:
        """The first broker's QoS 0 connection (heartbeats), when a kind is fast."""
        return self.links[0].fast

    @property
    def install_tests(self) -> InstallTests:
        return self._install_tests

    @property
    def leadership(self) -> Leadership:
        return self._leadership

    @property
    def client_id(self) -> str:
        """The broker session's id: one per instance when several gateways run (``instance_name``)."""
        s = self._settings
        return f"{s.gateway_client_id}-{s.instance_name}" if s.instance_name else s.gateway_client_id

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        """To the broker the message being handled came from (an answer); otherwise, and retained state always,
        to every broker. True when at least one broker took it."""
        origin = _ORIGIN.get()
        targets = [origin] if origin is not None and not retain else [link.main for link in self.links]
        failed: list[str] = []
        for connection in targets:
            try:
                connection.publish(topic, payload, qos=qos, retain=retain)
            except mqtt.PublishFailed as exc:
                failed.append(str(exc))
        if len(failed) == len(targets):
            metrics.PUBLISH_FAILED.inc()
            log.error("publish failed", topic=topic, error=failed[0])
            return False
        if failed:
            log.warning("publish reached only some brokers", topic=topic, failed=len(failed), brokers=len(targets))
        return True

    # --- GatewayPort: a device's messages -------------------------------------------------------------------
    async def submit_alarm(self, device_id: str, message: AlarmMessage, received: Received | None = None) -> Outcome:
        is_test = self._install_tests.is_open(device_id)
        origin = _ORIGIN.get()
        if origin is None or all(origin is not link.bypass for link in self.links):  # a bypass copy is counted once
            # counted as it comes, not once stored: a flood is flagged (and held back) before its first commit
            self.floods.alarm(device_id)
        # submit() queues synchronously, before this coroutine's first wait: arrival order is kept.
        outcome = await self.writer.submit(IntakeItem(device_id, message, is_test=is_test, received=received))
        if outcome is Outcome.STORED:
            metrics.ALARMS_STORED.inc()
            log.info("alarm stored", device_id=device_id, alarm_id=message.alarm_id)
            for listener in self._stored:
                self._call(listener, device_id, message.alarm_id, is_test)
        elif outcome is Outcome.DUPLICATE:
            metrics.DUPLICATES.inc()
            log.info("duplicate alarm answered again", device_id=device_id, alarm_id=message.alarm_id)
        return outcome

    async def submit_cancel(self, device_id: str, message: AlarmCancel, received: Received | None = None) -> Outcome:
        return await self.writer.submit(IntakeItem(device_id, message, received=received))

    async def keep_dead_letter(self, letter: Letter) -> None:
        # Through the one writer, in its group commit: a flood of poison costs a few commits. A store that is down
        # is waited for (the writer retries), so the message is acknowledged only once its dead letter is kept.
        outcome = await self.writer.submit(letter_item(letter))
        if outcome is Outcome.DEAD_LETTERED:
            metrics.DEAD_LETTERS.labels(letter.code).inc()

    def is_test_alarm(self, device_id: str) -> bool:
        return self._install_tests.is_open(device_id)

    def report_heartbeat(self, device_id: str, heartbeat: Heartbeat) -> bool:
        known = False
        for listener in self._heartbeats:
            known = listener(device_id, heartbeat) or known
        return known

    async def report_status(self, device_id: str, status: DeviceStatus) -> None:
        if status is DeviceStatus.OFFLINE and len(self.links) > 1:
            # With two brokers a will says only that the device left that broker: it may be on the other one
            # (a device moving publishes "offline" where it leaves). The heartbeat deadline judges it instead.
            log.debug("offline status with two brokers left to the heartbeat deadline", device_id=device_id)
            return
        for listener in self._statuses:
            await listener(device_id, status)

    # --- GatewayPort: what the gateway raises itself --------------------------------------------------------
    async def raise_alarm(
        self,
        device_id: str,
        alarm_id: str,
        alarm_type: AlarmType,
        *,
        priority: int | None = None,
        text: str | None = None,
        **details: Any,
    ) -> Outcome:
        message = AlarmMessage(
            alarm_id=alarm_id,
            type=alarm_type,
            ts=utcnow(),
            priority=priority,
            text=text[:1024] if text is not None else None,
        )
        filed = json.loads(json.dumps(details, default=str))  # JSON values, as the store keeps them
        outcome = await self.writer.submit(IntakeItem(device_id, message, from_device=False, details=filed))
        log.info(
            "gateway raised alarm", device_id=device_id, alarm_id=alarm_id, type=alarm_type.value, outcome=outcome.value
        )
        return outcome

    async def resolve_alarm(
        self,
        device_id: str,
        alarm_id: str,
        outcome: str,
        actor: str = "gateway",
        *,
        code: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Outcome:
        return await self.writer.submit(IntakeItem(device_id, Resolution(alarm_id, outcome, actor, code, params)))

    # --- GatewayPort: events --------------------------------------------------------------------------------
    def on_stored(self, listener: StoredListener) -> None:
        self._stored.append(listener)

    def on_delivered(self, listener: DeliveredListener) -> None:
        self._delivered_to.append(listener)

    def on_heartbeat(self, listener: HeartbeatListener) -> None:
        self._heartbeats.append(listener)

    def on_status(self, listener: StatusListener) -> None:
        self._statuses.append(listener)

    @property
    def supervised(self) -> tuple[bool, bool]:
        """(someone listens to heartbeats, someone listens to status messages)."""
        return bool(self._heartbeats), bool(self._statuses)

    def after_connect(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after every (re)connect, once the subscriptions are made (features' on_connected)."""
        self._after_connect.append(callback)

    # --- lifecycle ------------------------------------------------------------------------------------------
    async def start(self, *, run_migrations: bool = True) -> None:
        """The store and the durable path; the broker connection opens later, in :meth:`connect`."""
        if run_migrations:
            await migrate(self.engine)
        await self._leadership.start()
        self.writer.start()
        self.forwarder.start()
        await self._install_tests.load()
        self._tasks.append(
            asyncio.create_task(
                run_forever(
                    "installation-test deadline check",
                    self._check_tests,
                    every_s=self._settings.supervision_period_s,
                    log=log,
                ),
                name="install-test-deadlines",
            )
        )

    async def connect(self) -> None:
        """Connect to the broker; with two brokers to both, and start when one answers (the other is tried on in
        the background)."""
        if len(self.links) == 1:
            await self._connect_link(self.links[0])
            return
        results = await asyncio.gather(*(self._connect_link(link) for link in self.links), return_exceptions=True)
        if all(isinstance(result, BaseException) for result in results):
            raise ConnectionError(f"no broker answered: {results[0]!r}")
        for link, result in zip(self.links, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("broker not reachable at start; trying on", broker=link.number, error=repr(result))
                self._connecting.append(
                    asyncio.create_task(
                        retry_until_done(
                            f"connection to broker {link.number}",
                            functools.partial(self._connect_link, link),
                            backoff=Backoff(0.5, 10.0),
                            log=log,
                        ),
                        name=f"gateway-broker-{link.number}-connect",
                    )
                )

    async def _connect_link(self, link: BrokerLink) -> None:
        await link.main.connect()
        await asyncio.wait_for(link.main.connected.wait(), 10)
        if self.dispatcher.has_fast and link.fast is None:
            fast_id = f"{link.main.client_id}-fast"
            link.fast = mqtt.MqttConnection(
                fast_id,
                link.endpoint,
                persistent=False,
                protocol=self._settings.mqtt_protocol,
                keepalive=self._settings.gateway_mqtt_keepalive_s,
                on_message_inline=self.dispatcher.on_inline,
                on_connect=lambda _present: self._on_fast_connect(link),
            )
            await link.fast.connect()
        topic_filter = self.dispatcher.bypass_filter()
        if self._settings.flood_bypass and topic_filter is not None and link.bypass is None:
            link.bypass = mqtt.MqttConnection(
                f"{link.main.client_id}-bypass",
                link.endpoint,
                persistent=False,
                protocol=self._settings.mqtt_protocol,
                keepalive=self._settings.gateway_mqtt_keepalive_s,
                on_message_inline=lambda message: self._bypass(link, message),
                on_connect=lambda _present: self._on_bypass_connect(link, topic_filter),
            )
            await link.bypass.connect()

    async def disconnect(self) -> None:
        self.stopping = True
        for task in self._connecting:
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        for link in self.links:
            for connection in (link.bypass, link.fast, link.main):
                if connection is not None:
                    await connection.disconnect()

    async def stop(self) -> None:
        if self._pause_timer is not None:
            self._pause_timer.cancel()
        try:  # a message still being handled after this is left unanswered: the device resends, the broker redelivers
            await asyncio.wait_for(self.dispatcher.close(), STOP_HANDLING_S)
        except TimeoutError:
            log.warning("messages still being handled at stop: left unanswered", after_s=STOP_HANDLING_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.forwarder.stop()
        await self.writer.stop()
        if self._forward_engine is not None:
            await self._forward_engine.dispose()
        await self._install_tests.close()
        await self._leadership.stop()
        if self._own_engine:
            await self.engine.dispose()

    # --- internals ------------------------------------------------------------------------------------------
    def _source_of(self, item: IntakeItem) -> str:
        kind = DeviceTopic.ALARM if isinstance(item.message, AlarmMessage) else DeviceTopic.ALARM_CANCEL
        return self._topics.device(item.device_id, kind)

    async def _check_tests(self) -> None:
        if self._leadership.is_leader:
            await self._install_tests.fail_overdue()

    def _link(self, number: int, url: str) -> BrokerLink:
        s = self._settings
        endpoint = mqtt.MqttEndpoint.from_url(
            url,
            s.gateway_mqtt_username,
            s.gateway_mqtt_password.get_secret_value() if s.gateway_mqtt_password else None,
            ca_file=s.mqtt_ca_file,
        )
        # The second broker's sessions get ids of their own (the same ids would do on an independent broker, but
        # two URLs naming one broker by mistake must not throw each other off).
        client_id = self.client_id if number == 1 else f"{self.client_id}-b{number}"
        link: BrokerLink  # the callbacks below run only after it is made
        main = mqtt.MqttConnection(
            client_id,
            endpoint,
            persistent=True,
            session_expiry_s=s.gateway_session_expiry_s,
            protocol=s.mqtt_protocol,
            keepalive=s.gateway_mqtt_keepalive_s,  # a hung gateway's share of the topics moves on within 1.5 x
            receive_maximum=s.gateway_mqtt_receive_maximum,
            on_message=lambda message: self._handle_from(main, message),
            on_connect=lambda present: self._on_connect(link, present),
            on_disconnect=lambda: self._on_disconnect(link),
        )
        link = BrokerLink(number, endpoint, main)
        return link

    async def _handle_from(self, origin: mqtt.MqttConnection, message: mqtt.Message) -> None:
        token = _ORIGIN.set(origin)
        if self._gate_closed():
            await self._wait_at_gate()
        self._passed += 1
        try:
            await self.dispatcher.on_message(message)
        finally:
            self._passed -= 1
            _ORIGIN.reset(token)
            if self._reading_paused or self._gate:
                self._flow()

    def _gate_closed(self) -> bool:
        """The main sessions' messages wait here, before their validation, in arrival order: while earlier ones wait
        (or were let go and have not run yet), while an urgent commit waits, or while the read-ahead limit is being
        handled. A socket read can bring thousands of a flood's messages at once; each waiting costs a future."""
        if self._gate or self._gate_released:
            return True
        if self._paused_urgent:
            return True
        if self._passed >= self._settings.gateway_mqtt_receive_maximum:
            self._paused_load = True
            self._flow()
            return True
        return False

    async def _wait_at_gate(self) -> None:
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._gate.append(turn)
        try:
            await turn
        except asyncio.CancelledError:  # shutdown: no PUBACK, the broker delivers it again
            if turn.cancelled():  # while waiting (perhaps still in line)
                with contextlib.suppress(ValueError):
                    self._gate.remove(turn)
            else:  # let go, cancelled before it ran
                self._gate_released -= 1
            raise
        self._gate_released -= 1

    def _open_gate(self) -> None:
        """Let waiting messages go on, oldest first, as far as the read-ahead limit allows (none while urgent)."""
        room = 0 if self._paused_urgent else self._settings.gateway_mqtt_receive_maximum - self._passed
        while self._gate and room > 0:
            turn = self._gate.popleft()
            if turn.done():  # cancelled (shutdown)
                continue
            self._gate_released += 1
            room -= 1
            turn.set_result(None)

    def _on_connect(self, link: BrokerLink, session_present: bool) -> None:
        self.dispatcher.subscribe_main(link.main)
        metrics.MQTT_CONNECTED.set(1)
        log.info("connected to broker", broker=link.number, session_present=session_present)
        for callback in self._after_connect:
            try:
                callback()
            except Exception as exc:
                log.error("re-publishing after a reconnect failed", error_type=type(exc).__name__, exc_info=exc)

    def _on_fast_connect(self, link: BrokerLink) -> None:
        assert link.fast is not None
        self.dispatcher.subscribe_fast(link.fast)

    def _on_bypass_connect(self, link: BrokerLink, topic_filter: str) -> None:
        assert link.bypass is not None
        link.bypass.subscribe(topic_filter, qos=0)

    def _bypass(self, link: BrokerLink, message: mqtt.Message) -> None:
        """A QoS 0 copy of an alarm (``gateway/dispatch.py``, the bypass): its answer goes back on the bypass
        connection, whose in-flight window the flood's ``stored`` acks do not fill."""
        token = _ORIGIN.set(link.bypass)
        try:
            self.dispatcher.on_bypass(message, self._flooding)
        finally:
            _ORIGIN.reset(token)

    def _held(self, device_id: str) -> bool:
        """The intake commits a flooding device's alarms after everyone else's (gateway/intake.py)."""
        return device_id in self.floods.flagged

    def _urgent(self, device_id: str) -> bool:
        return self.floods.active() and device_id not in self.floods.flagged

    def _pause_floods(self, urgent: bool) -> None:
        """While another device's alarm waits for its commit during a flood, the main sessions are not read: the
        flood's next messages (validated as they are read) would otherwise take the loop from that commit."""
        self._paused_urgent = urgent
        self._flow()

    def _flow(self) -> None:
        """Read the main sessions, or not: not while an urgent commit waits (above), nor while
        ``gateway_mqtt_receive_maximum`` messages are being handled (the broker does not hold to the receive maximum
        we announce: Mosquitto 2.0.11 sent 7,000; until half of them are done). Unread messages wait in the socket
        and at the broker: nothing is lost or reordered. At most PAUSE_MAX_S at a time (the keepalive needs
        reading)."""
        handling = self._passed + len(self._gate)
        if handling >= self._settings.gateway_mqtt_receive_maximum:
            self._paused_load = True
        elif handling <= self._settings.gateway_mqtt_receive_maximum // 2:
            self._paused_load = False
        if self._gate:
            self._open_gate()
        paused = self._paused_urgent or self._paused_load
        if paused == self._reading_paused:
            return
        self._reading_paused = paused
        for link in self.links:
            link.main.pause_reading(paused)
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None
        if paused:
            self._pause_timer = asyncio.get_running_loop().call_later(PAUSE_MAX_S, self._unpause)

    def _unpause(self) -> None:
        self._pause_timer = None
        self._paused_urgent = self._paused_load = self._reading_paused = False
        for link in self.links:
            link.main.pause_reading(False)
        self._open_gate()

    def _flooding(self, device_id: str) -> bool | None:
        if not self.floods.active():
            return None
        return device_id in self.floods.flagged

    def _on_disconnect(self, link: BrokerLink) -> None:
        metrics.MQTT_CONNECTED.set(1 if self.connected else 0)
        if self.stopping:
            log.info("disconnected from broker (stopping)", broker=link.number)
        else:
            log.warning("disconnected from broker; reconnecting", broker=link.number)

    def _delivered(self, rows: Sequence[tuple[str, str, str]]) -> None:
        for kind, device_id, alarm_id in rows:
            for listener in self._delivered_to:
                self._call(listener, kind, device_id, alarm_id)

    @staticmethod
    def _call(listener: Callable[..., None], *args: Any) -> None:
        try:
            listener(*args)
        except Exception as exc:  # an observer's bug must not touch the alarm path
            log.error("listener failed", listener=getattr(listener, "__qualname__", "?"), exc_info=exc)
