"""The gateway's port: everything a feature or a protocol adapter may use of the gateway's core, and nothing more.

The core (``gateway/core.py``, :class:`gateway.core.GatewayCore`) owns the store, the durable alarm path (the
intake writer, the transactional outbox and the forwarder), the broker connection and the installation-test
window. It implements :class:`GatewayPort`. Features (fleet supervision, the camera relay, check-ins) and protocol
adapters (the MQTT device contract in ``gateway/protocols/mqtt.py``; SCAIP and DC-09 next) receive the port in
their constructor, when the gateway is composed (``gateway/service.py``), and never see the core itself.

What the port offers:

- **a device's own messages, on the durable path**: :meth:`~GatewayPort.submit_alarm` and
  :meth:`~GatewayPort.submit_cancel` return the :class:`~gateway.intake.Outcome` only after the commit, so an adapter
  answers its unit ("stored", SCAIP OK, DC-09 ACK) only then. The installation-test decision is applied here, for
  every protocol alike. :meth:`~GatewayPort.report_heartbeat` and :meth:`~GatewayPort.report_status` hand supervision
  signals to whoever supervises (in memory, flushed to the store periodically: a heartbeat is not an alarm).
- **alarms and tasks the gateway raises itself** (technical alarms, due check-ins, patrol visits):
  :meth:`~GatewayPort.raise_alarm` and :meth:`~GatewayPort.resolve_alarm`, on the same durable path.
- **a message nobody could handle**: :meth:`~GatewayPort.keep_dead_letter` keeps it, bounded, for a technician
  (``GET /api/v1/dead-letters``); an adapter calls it for what it cannot parse, and acknowledges the message after.
- **events**: :meth:`~GatewayPort.on_stored` (an alarm was committed here), :meth:`~GatewayPort.on_delivered`
  (the receiver confirmed an outbox row), :meth:`~GatewayPort.on_heartbeat`, :meth:`~GatewayPort.on_status`.
  Subscribe in the constructor.
- **plumbing**: ``settings``, ``topics``, ``sessions`` (the store), :meth:`~GatewayPort.publish` (to the broker;
  never hides a failure), ``connected``, ``install_tests`` (the window the fleet API opens).
- **leadership** (several gateways on one PostgreSQL database, ``trygg/leader.py``): time-driven work (deadlines,
  area outages, the check-in schedule, installation-test deadlines) runs only where ``leadership.is_leader``;
  on SQLite the one gateway always leads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devices import AlarmCancel, AlarmMessage, AlarmType, DeviceStatus, Heartbeat, Topics
from gateway.records import Letter, Outcome, Received
from trygg.leader import Leadership
from trygg.settings import Settings

if TYPE_CHECKING:
    from gateway.install_tests import InstallTests

# (device_id, alarm_id, is_test): an alarm from a device was committed for the first time.
StoredListener = Callable[[str, str, bool], None]
# (outbox kind "alarm" | "cancel" | "resolve", device_id, alarm_id): the receiver confirmed it.
DeliveredListener = Callable[[str, str, str], None]
# (device_id, heartbeat) -> True when the listener supervises that device. Called inline: must not block.
HeartbeatListener = Callable[[str, Heartbeat], bool]
# (device_id, online or offline)
StatusListener = Callable[[str, DeviceStatus], Awaitable[None]]


class GatewayPort(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def topics(self) -> Topics: ...

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def connected(self) -> bool:
        """The broker connection is up."""
        ...

    @property
    def install_tests(self) -> InstallTests: ...

    @property
    def leadership(self) -> Leadership:
        """Whether this instance runs the time-driven work (always, with one gateway on SQLite)."""
        ...

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        """Publish to the broker, or log and count why not (returns False); never hides a failed publish."""
        ...

    async def submit_alarm(self, device_id: str, message: AlarmMessage, received: Received | None = None) -> Outcome:
        """A device's alarm on the durable path; returns after the commit. ``received``: the message as it came,
        kept as a dead letter should the store refuse the alarm on its content (``Outcome.UNSTORABLE``)."""
        ...

    async def submit_cancel(self, device_id: str, message: AlarmCancel, received: Received | None = None) -> Outcome:
        """A device's cancel of one of its alarms (same ``alarm_id``) on the durable path; returns after the commit."""
        ...

    def is_test_alarm(self, device_id: str) -> bool:
        """Would this device's next alarm be an installation test (its test window is open)?"""
        ...

    def report_heartbeat(self, device_id: str, heartbeat: Heartbeat) -> bool:
        """A supervision signal from a device; True when someone supervises it (the device is known)."""
        ...

    async def report_status(self, device_id: str, status: DeviceStatus) -> None:
        """A device says it is online or offline (MQTT: the retained status and its last will)."""
        ...

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
        """A gateway-raised alarm or task (technical alarm, check-in due, patrol visit) on the durable path.
        ``text`` is English for API users; a ``text_code`` with ``text_params`` among ``details`` is what the
        console shows."""
        ...

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
        """Close, on the durable path, an alarm the gateway raised itself. ``outcome`` is English for API users;
        ``code`` with ``params`` is what the console shows (docs/api.md)."""
        ...

    async def keep_dead_letter(self, letter: Letter) -> None:
        """Keep a message that could not be handled; returns once it is stored (acknowledge the message then).
        Counted (``trygg_gateway_dead_letters_total{code}``); the caller logs it, without its text."""
        ...

    def on_stored(self, listener: StoredListener) -> None: ...

    def on_delivered(self, listener: DeliveredListener) -> None: ...

    def on_heartbeat(self, listener: HeartbeatListener) -> None: ...

    def on_status(self, listener: StatusListener) -> None: ...
