"""MQTT for the gateway, the receiver and the simulators (gmqtt, MQTT 5).

gmqtt is used because it is asyncio-native, speaks MQTT 5 session expiry, and with
``optimistic_acknowledgement=False`` sends a QoS 1 PUBACK only after our async handler returns, so the
broker keeps an alarm until it is stored. Figures behind the choice: docs/architecture.md.

:class:`MqttConnection` is the typed face of a gmqtt client, in the manner aiomqtt wraps paho: typed
messages (:class:`Message`), typed callbacks, ``connect``/``disconnect``/``publish``/``subscribe``, an async
context manager, and a failed publish raised as :class:`PublishFailed` instead of a gmqtt internal. The services
use it; ``make_client``/``connect`` remain for the simulators, benchmarks and tests that drive gmqtt directly.

gmqtt facts that shape the handler contract: a handler that raises (or returns something other than a reason
code) never gets its PUBACK sent, and once the broker's in-flight window is full of such messages the broker
sends that session nothing more. :class:`MqttConnection` therefore always answers 0 for a handler that returned,
and lets only ``CancelledError`` (shutdown) through un-acknowledged; a handler's other failures are the
handler's to deal with (the gateway's dispatcher keeps them as dead letters).
"""

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import unquote, urlsplit

import gmqtt  # type: ignore[import-untyped,unused-ignore]
from gmqtt.mqtt.constants import MQTTv50, MQTTv311  # type: ignore[import-untyped,unused-ignore]
from gmqtt.storage import PersistentStorage  # type: ignore[import-untyped,unused-ignore]

# (client, topic, payload, qos, properties) -> PUBACK reason code (0 = success). gmqtt sends the
# QoS 1 PUBACK when this coroutine returns.
MessageHandler = Callable[[Any, str, bytes, int, dict[str, Any]], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    # CA certificate(s) (PEM) to verify the broker with over TLS (the ``mqtt_ca_file`` setting); None: the system's.
    ca_file: Path | None = None

    @classmethod
    def from_url(
        cls, url: str, username: str | None = None, password: str | None = None, *, ca_file: Path | None = None
    ) -> "MqttEndpoint":
        """``mqtt://[user:pass@]host[:port]`` or ``mqtts://...``; explicit credentials win over the URL's."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"unsupported MQTT URL scheme in {url!r}")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=username if username is not None else (unquote(parts.username) if parts.username else None),
            password=password if password is not None else (unquote(parts.password) if parts.password else None),
            tls=tls,
            ca_file=ca_file,
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What gmqtt's ``connect(ssl=...)`` takes: False for plain MQTT, else a verifying context."""
        if not self.tls:
            return False
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


def parse_login_file(text: str) -> dict[str, str]:
    """``username:password`` lines (blank lines and ``#`` comments ignored): the logins of simulated devices that
    ``trygg broker provision --fleet-credentials`` writes and ``sim_credentials_file`` reads."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
    return {user.strip(): password.strip() for user, password in pairs}


def render_login_file(passwords: dict[str, str]) -> str:
    header = "# Broker logins of simulated devices (trygg broker provision): device_id:password"
    return "\n".join([header, *(f"{k}:{v}" for k, v in sorted(passwords.items()))]) + "\n"


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class PublishNotDelivered(ConnectionError):
    """A QoS 1 message was dropped before its PUBACK: the broker had no session to resume."""


class InflightStore(PersistentStorage):  # type: ignore[misc,unused-ignore]
    """gmqtt's store of in-flight QoS 1 messages, with the time each was sent and a call when one is acknowledged.

    The store is the one place gmqtt hands over both ends of a QoS 1 publish (``push_message`` when sent,
    ``remove_message_by_mid`` on the PUBACK). Health reads :meth:`oldest_age` (how long the oldest message waits for
    its PUBACK: a stalled session) and :class:`MqttConnection` sends what waited for a free slot in ``on_free``."""

    def __init__(self) -> None:
        super().__init__()
        self._sent_at: dict[int, float] = {}
        self.last_puback = time.monotonic()
        self.on_free: Callable[[], None] | None = None

    def push_message(self, mid: int, raw_package: bytes) -> None:
        super().push_message(mid, raw_package)
        self._sent_at.setdefault(mid, time.monotonic())  # a resend after a reconnect keeps its first time

    def remove_message_by_mid(self, mid: int) -> None:
        super().remove_message_by_mid(mid)
        self._sent_at.pop(mid, None)
        self.last_puback = time.monotonic()
        if self.on_free is not None:
            self.on_free()

    def clear(self) -> None:
        super().clear()
        self._sent_at.clear()

    @property
    def in_flight(self) -> int:
        return len(self._sent_at)

    def oldest_age(self) -> float | None:
        """Seconds the oldest unacknowledged message has waited; None when nothing is in flight."""
        if not self._sent_at:
            return None
        return time.monotonic() - min(self._sent_at.values())


class PubackTracker(InflightStore):
    """gmqtt's store of in-flight QoS 1 messages, which also says when each one's PUBACK arrived.

    gmqtt's ``publish`` returns nothing and its PUBACK handling has no callback; the store is the one
    place it hands over both ends (``push_message`` when sent, ``remove_message_by_mid`` on PUBACK) and
    it is a constructor argument of ``gmqtt.Client``. ``publish_confirmed`` gives a future that completes
    on the PUBACK and fails when the in-flight store is cleared (a reconnect without a session), so a
    caller can keep a message "unsent" in its own outbox until the broker has it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._last_mid: int | None = None
        self._waiting: dict[int, asyncio.Future[None]] = {}

    def push_message(self, mid: int, raw_package: bytes) -> None:
        super().push_message(mid, raw_package)
        self._last_mid = mid

    def remove_message_by_mid(self, mid: int) -> None:
        super().remove_message_by_mid(mid)
        fut = self._waiting.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def clear(self) -> None:
        super().clear()
        waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(PublishNotDelivered("in-flight message dropped on reconnect"))

    def publish_confirmed(self, client: Any, topic: str, payload: bytes) -> asyncio.Future[None]:
        """Publish at QoS 1 through ``client`` (made with this tracker); the future completes on PUBACK."""
        self._last_mid = None
        client.publish(topic, payload, qos=1)
        if self._last_mid is None:
            raise RuntimeError("the client does not use this PubackTracker")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[self._last_mid] = fut
        return fut


def make_client(
    client_id: str,
    *,
    persistent: bool,
    session_expiry_s: int = 0,
    on_message: MessageHandler | None = None,
    will: Will | None = None,
    reconnect_delay_s: float = 1.0,
    tracker: InflightStore | None = None,
    receive_maximum: int | None = None,
) -> Any:
    """A gmqtt client that reconnects forever. ``persistent`` keeps the broker session (clean start off);
    ``tracker`` (a :class:`PubackTracker`) lets ``tracker.publish_confirmed`` wait for the broker's PUBACK."""
    kwargs: dict[str, Any] = {}
    if tracker is not None:
        kwargs["persistent_storage"] = tracker
    if persistent:
        kwargs["session_expiry_interval"] = session_expiry_s
    if will is not None:
        kwargs["will_message"] = gmqtt.Message(will.topic, will.payload, qos=will.qos, retain=will.retain)
    if receive_maximum is not None:  # MQTT 5: the broker's QoS 1 messages in flight to us at most (else 65,535)
        kwargs["receive_maximum"] = receive_maximum
    client = gmqtt.Client(
        client_id,
        clean_session=not persistent,
        optimistic_acknowledgement=False,
        **kwargs,
    )
    client.set_config({"reconnect_retries": -1, "reconnect_delay": reconnect_delay_s})
    if on_message is not None:
        client.on_message = on_message
    return client


async def connect(
    client: Any, endpoint: MqttEndpoint, *, keepalive: int = 30, timeout_s: float = 10.0, protocol: str = "5"
) -> None:
    """Connect once (gmqtt reconnects by itself afterwards). ``protocol`` "3.1.1" for brokers without MQTT 5
    (the embedded amqtt of the demo); the persistent session then rests on clean-session off alone."""
    if endpoint.username is not None:
        client.set_auth_credentials(endpoint.username, endpoint.password)
    version = MQTTv311 if protocol == "3.1.1" else MQTTv50
    await asyncio.wait_for(
        client.connect(endpoint.host, endpoint.port, ssl=endpoint.ssl_context(), keepalive=keepalive, version=version),
        timeout_s,
    )


def is_connected(client: Any) -> bool:
    return bool(getattr(client, "is_connected", False))


class Message(NamedTuple):
    """One received MQTT message (a NamedTuple: built for every message, thousands a second, it must be cheap)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    dup: bool = False


# Runs as its own task; for QoS 1 the PUBACK is sent when it returns (and never when it raises).
OnMessage = Callable[[Message], Awaitable[None]]
# Called inline on gmqtt's read path (no task per message): for QoS 0 floods. Must not block or raise.
OnMessageInline = Callable[[Message], None]


# QoS 1 messages a connection keeps waiting for the broker's in-flight window before it refuses more.
WAITING_MAX = 100_000


class PublishFailed(ConnectionError):
    """A publish could not be handed to the connection (not connected yet, or the connection is closing)."""


def _message(topic: str | bytes, payload: bytes, qos: int, properties: Mapping[str, Any] | None) -> Message:
    props = properties or {}
    # gmqtt passes the topic as bytes when it is not UTF-8: keep it readable, it will not match a subscription.
    name = topic if isinstance(topic, str) else topic.decode("utf-8", errors="replace")
    return Message(name, payload, qos, bool(props.get("retain")), bool(props.get("dup")))


class MqttConnection:
    """A typed gmqtt client that reconnects forever.

    ``persistent`` keeps the broker session (clean start off, ``session_expiry_s``), so QoS 1 messages published
    while this client is away wait at the broker. ``on_message`` gets every message as its own task (QoS 1
    PUBACK after it returns); ``on_message_inline`` instead runs inline, for QoS 0 floods. ``tracker`` lets
    :meth:`publish_confirmed` wait for the broker's PUBACK. ``receive_maximum`` (MQTT 5) caps the QoS 1 messages the
    broker sends before their PUBACKs (without it 65,535: a backlog is read into memory at once).
    ``on_connect(session_present)`` runs on every (re)connect: subscribe and re-publish retained state there;
    ``on_disconnect()`` on every loss.
    """

    def __init__(
        self,
        client_id: str,
        endpoint: MqttEndpoint,
        *,
        persistent: bool,
        session_expiry_s: int = 0,
        protocol: str = "5",
        keepalive: int = 30,
        will: Will | None = None,
        reconnect_delay_s: float = 1.0,
        tracker: PubackTracker | None = None,
        receive_maximum: int | None = None,
        on_message: OnMessage | None = None,
        on_message_inline: OnMessageInline | None = None,
        on_connect: Callable[[bool], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        if on_message is not None and on_message_inline is not None:
            raise ValueError("give on_message or on_message_inline, not both")
        self.client_id = client_id
        self.endpoint = endpoint
        self._protocol = protocol
        self._keepalive = keepalive
        self._tracker = tracker
        self._on_message = on_message
        self._on_message_inline = on_message_inline
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self.connected = asyncio.Event()
        self.inflight: InflightStore = tracker if tracker is not None else InflightStore()
        self.inflight.on_free = self._send_waiting
        # QoS 1 messages waiting for a free slot of the broker's receive maximum (its in-flight window, e.g. 100):
        # gmqtt refuses a publish beyond it (OverflowError), so a storm of acks waits here, in order, instead.
        self._waiting: deque[tuple[str, bytes, int, bool]] = deque()
        self._client: Any = make_client(
            client_id,
            persistent=persistent,
            session_expiry_s=session_expiry_s,
            will=will,
            reconnect_delay_s=reconnect_delay_s,
            tracker=self.inflight,
            receive_maximum=receive_maximum if protocol == "5" else None,
        )
        if on_message is not None:
            self._client.on_message = self._handle
        elif on_message_inline is not None:
            self._client.on_message = self._handle_inline
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected

    @property
    def is_connected(self) -> bool:
        return is_connected(self._client)

    def set_reconnect_delay(self, seconds: float) -> None:
        """Seconds between reconnect attempts from now on (tests shorten it)."""
        self._client.set_config({"reconnect_retries": -1, "reconnect_delay": seconds})

    async def connect(self, timeout_s: float = 10.0) -> None:
        """Connect once (the client reconnects by itself afterwards); raises when the broker cannot be reached."""
        await connect(
            self._client, self.endpoint, keepalive=self._keepalive, timeout_s=timeout_s, protocol=self._protocol
        )

    async def disconnect(self, timeout_s: float = 5.0) -> None:
        """Disconnect cleanly (no last will); a connection that never opened is left alone."""
        if getattr(self._client, "_connection", None) is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.disconnect(), timeout_s)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Hand a message to the connection (QoS 1 is kept in flight until its PUBACK); :class:`PublishFailed` if
        it cannot be handed over (not connected, or :data:`WAITING_MAX` messages already wait for the window).

        With the broker's in-flight window full, a QoS 1 message waits here and is sent, in order, as PUBACKs free
        slots (gmqtt would refuse it: that lost 6,038 of 10,000 ``stored`` acks in a storm, issue 8)."""
        if qos > 0 and self._waiting:
            self._wait(topic, payload, qos, retain)
            return
        try:
            self._client.publish(topic, payload, qos=qos, retain=retain)
        except OverflowError:  # gmqtt: every packet id of the broker's receive maximum is in flight
            self._wait(topic, payload, qos, retain)
        except Exception as exc:
            raise PublishFailed(str(exc) or type(exc).__name__) from exc

    def pause_reading(self, paused: bool) -> None:
        """Stop (True) or go on (False) reading messages from the broker: they wait in the socket and at the broker,
        nothing is lost or reordered (the gateway, while a flood's messages would crowd out another device's alarm)."""
        transport = getattr(getattr(self._client, "_connection", None), "_transport", None)
        if transport is None or transport.is_closing():
            return
        if paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    @property
    def waiting(self) -> int:
        """QoS 1 messages waiting for a slot in the broker's in-flight window."""
        return len(self._waiting)

    def _wait(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if not self.is_connected:
            raise PublishFailed("not connected")
        if len(self._waiting) >= WAITING_MAX:
            raise PublishFailed(f"{WAITING_MAX} messages already wait for the broker's in-flight window")
        self._waiting.append((topic, payload, qos, retain))

    def _send_waiting(self) -> None:
        """A PUBACK freed a slot (or the connection is back): send what waits, until the window is full again."""
        while self._waiting:
            topic, payload, qos, retain = self._waiting[0]
            try:
                self._client.publish(topic, payload, qos=qos, retain=retain)
            except Exception:  # window full again, or the connection closing: the next PUBACK or connect sends it
                return
            self._waiting.popleft()

    def publish_confirmed(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        """Publish at QoS 1; the future completes on the broker's PUBACK (needs a ``tracker``)."""
        if self._tracker is None:
            raise RuntimeError("publish_confirmed needs a connection made with a PubackTracker")
        try:
            return self._tracker.publish_confirmed(self._client, topic, payload)
        except RuntimeError:
            raise
        except Exception as exc:
            raise PublishFailed(str(exc) or type(exc).__name__) from exc

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self._client.subscribe(topic_filter, qos=qos)

    # --- gmqtt callbacks ------------------------------------------------------------------------------------
    async def _handle(self, client: Any, topic: str | bytes, payload: bytes, qos: int, properties: Any) -> int:
        assert self._on_message is not None
        await self._on_message(_message(topic, payload, qos, properties))
        return 0  # gmqtt sends the PUBACK with this reason code; anything else but a code sends none

    def _handle_inline(self, client: Any, topic: str | bytes, payload: bytes, qos: int, properties: Any) -> None:
        assert self._on_message_inline is not None
        self._on_message_inline(_message(topic, payload, qos, properties))

    def _connected(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        self.connected.set()
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._send_waiting)  # after gmqtt's own resend of its in-flight
        if self._on_connect is not None:
            self._on_connect(bool(flags))

    def _disconnected(self, client: Any, packet: Any, exc: Any = None) -> None:
        self.connected.clear()
        if self._on_disconnect is not None:
            self._on_disconnect()
