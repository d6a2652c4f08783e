"""One way to open an MQTT connection (gmqtt, MQTT 5) for the gateway, the receiver and the simulators.

gmqtt is used because it is asyncio-native, speaks MQTT 5 session expiry, and with
``optimistic_acknowledgement=False`` sends a QoS 1 PUBACK only after our async handler returns, so the
broker keeps an alarm until it is stored. Figures behind the choice: docs/architecture.md.
"""

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
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


class PubackTracker(PersistentStorage):  # type: ignore[misc,unused-ignore]
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
    tracker: PubackTracker | None = None,
) -> Any:
    """A gmqtt client that reconnects forever. ``persistent`` keeps the broker session (clean start off);
    ``tracker`` lets ``tracker.publish_confirmed`` wait for the broker's PUBACK."""
    kwargs: dict[str, Any] = {}
    if tracker is not None:
        kwargs["persistent_storage"] = tracker
    if persistent:
        kwargs["session_expiry_interval"] = session_expiry_s
    if will is not None:
        kwargs["will_message"] = gmqtt.Message(will.topic, will.payload, qos=will.qos, retain=will.retain)
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
