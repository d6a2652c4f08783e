"""The gateway's health: what ``/health`` answers, as reason codes with parameters (503 when any is found).

- the store: a commit failing now (``health.store_failing``), or the writer's probe row not committed within
  ``health_store_timeout_s`` when nothing was committed for ``health_store_probe_s`` (``health.store_unresponsive``);
- the MQTT session: not connected (``health.mqtt_disconnected``), or work pending on it (QoS 1 publishes waiting for
  their PUBACK, messages being handled) while nothing was handled or acknowledged for ``health_mqtt_stall_s``
  (``health.mqtt_stalled``): a broker that stopped answering, a session the broker stopped delivering to;
- the forwarder: the oldest row still owed to the receiver older than ``health_backlog_max_s``
  (``health.backlog_old``).

Each reason is also the gauge ``trygg_gateway_health_failing{code}``; config/prometheus/trygg-alerts.yml alerts on
it and on the figures behind it (docs/deployment.md, "Health and alerts").
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from gateway import metrics
from gateway.core import GatewayCore
from trygg.db import utcnow


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Health:
    problems: list[Problem]
    figures: dict[str, object]

    @property
    def ok(self) -> bool:
        return not self.problems

    def body(self) -> dict[str, object]:
        return {
            "status": "ok" if self.ok else "failing",
            "problems": [{"code": p.code, "params": p.params} for p in self.problems],
            **self.figures,
        }


async def check(core: GatewayCore) -> Health:
    s = core.settings
    problems: list[Problem] = []
    now = time.monotonic()

    writer = core.writer
    if writer.failing_since is not None:
        problems.append(Problem("health.store_failing", {"for_s": round(now - writer.failing_since, 1)}))
    elif now - writer.last_commit_ok > s.health_store_probe_s:
        try:
            await asyncio.wait_for(asyncio.shield(writer.probe()), s.health_store_timeout_s)
        except TimeoutError:
            problems.append(Problem("health.store_unresponsive", {"timeout_s": s.health_store_timeout_s}))

    connected = core.connected
    inflight = core.mqtt.inflight
    pending = inflight.in_flight + core.mqtt.waiting + core.dispatcher.handling
    progress = max(inflight.last_puback, core.dispatcher.last_handled)
    oldest = inflight.oldest_age()
    metrics.MQTT_INFLIGHT_OLDEST_AGE.set(oldest or 0)
    if not connected:
        problems.append(Problem("health.mqtt_disconnected"))
    elif pending and now - progress > s.health_mqtt_stall_s:
        problems.append(Problem("health.mqtt_stalled", {"pending": pending, "idle_s": round(now - progress, 1)}))

    oldest_pending = core.forwarder.oldest_pending
    backlog_age = (utcnow() - oldest_pending).total_seconds() if oldest_pending is not None else 0.0
    if backlog_age > s.health_backlog_max_s:
        problems.append(Problem("health.backlog_old", {"age_s": round(backlog_age, 1)}))

    failing = {p.code for p in problems}
    for code in metrics.HEALTH_CODES:
        metrics.HEALTH_FAILING.labels(code).set(1 if code in failing else 0)
    return Health(
        problems,
        {
            "mqtt_connected": connected,
            "brokers_connected": core.brokers_connected,
            "receiver_reachable": core.forwarder.receiver_reachable,
            "backlog_age_s": round(backlog_age, 1),
            "mqtt_pending": pending,
        },
    )
