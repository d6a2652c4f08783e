"""The gateway, composed: the core (store, durable path, broker connection), the MQTT device contract and the
features, each feature built with the port it may use.

``Gateway(settings)`` runs the default features (``trygg gateway``); ``features=`` takes another set, as a
function of the port (tests and benchmarks run a gateway with only the parts they need).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.core import GatewayCore
from gateway.features import Feature
from gateway.forwarder import Forwarder
from gateway.port import GatewayPort
from gateway.protocols.mqtt import MqttContract
from trygg.settings import Settings

log = structlog.get_logger(__name__)

F = TypeVar("F")
FeatureFactory = Callable[[GatewayPort], Sequence[Feature]]


def default_features(port: GatewayPort) -> list[Feature]:
    """The features ``trygg gateway`` runs."""
    from gateway.checkin.feature import CheckinFeature
    from gateway.checkin.media import CameraRelayFeature
    from gateway.fleet.feature import FleetFeature
    from gateway.locks.feature import LockFeature
    from gateway.voice.feature import VoiceFeature
    from gateway.voice.relay import VoiceRelayFeature

    fleet = FleetFeature(port)
    relay = CameraRelayFeature(port)
    voice = VoiceRelayFeature(port)
    # The fleet feature supervises the devices' status; check-ins ask it whether a camera is online.
    features: list[Feature] = [
        fleet,
        relay,
        CheckinFeature(port, relay, status_source=fleet.is_online),
        voice,
        VoiceFeature(port, voice),
        LockFeature(port),
    ]
    if port.settings.scaip_port is not None:  # the SCAIP receiver, when configured (docs/protocols-scaip.md)
        from gateway.protocols.scaip.feature import ScaipFeature

        features.append(ScaipFeature(port))
    # Protocol adapters for alarm units, each when configured (issue 11).
    if port.settings.dc09_port is not None:
        from gateway.protocols.dc09.receiver import Dc09Receiver

        features.append(Dc09Receiver(port))
    return features


class Gateway:
    def __init__(
        self, settings: Settings, engine: AsyncEngine | None = None, features: FeatureFactory | None = None
    ) -> None:
        self.core = GatewayCore(settings, engine)
        self.features: list[Feature] = list((features or default_features)(self.core))
        self.contract = MqttContract(self.core)
        heartbeats, statuses = self.core.supervised
        self.core.dispatcher.add(self.contract.subscriptions(heartbeats=heartbeats, statuses=statuses))
        for feature in self.features:
            self.core.dispatcher.add(feature.subscriptions())
            self.core.after_connect(feature.on_connected)

    @property
    def port(self) -> GatewayPort:
        return self.core

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.core.sessions

    @property
    def forwarder(self) -> Forwarder:
        return self.core.forwarder

    def feature(self, cls: type[F]) -> F:
        """The running feature of that class."""
        for feature in self.features:
            if isinstance(feature, cls):
                return feature
        raise LookupError(f"no {cls.__name__} in this gateway")

    async def start(self, *, run_migrations: bool = True) -> None:
        await self.core.start(run_migrations=run_migrations)
        for feature in self.features:
            await feature.start()
        await self.core.connect()
        brokers = [f"{link.endpoint.host}:{link.endpoint.port}" for link in self.core.links]
        log.info("gateway started", brokers=brokers, receiver=self.settings.receiver_url)

    async def stop(self) -> None:
        self.core.stopping = True  # from now on a lost broker connection is expected, not warned about
        # Features first, while the broker connection is up: a camera is told its look ended, state is flushed.
        for feature in reversed(self.features):
            try:
                await feature.stop()
            except Exception as exc:
                log.error("feature did not stop cleanly", feature=feature.name, error_type=type(exc).__name__)
        await self.core.disconnect()
        await self.core.stop()
        log.info("gateway stopped")
