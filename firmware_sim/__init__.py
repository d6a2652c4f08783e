"""Simulated social-alarm devices: real MQTT clients on top of the device contract (``devices``).

Each :class:`SimDevice` behaves like real firmware: a durable outbox on disk, resend with backoff until the
gateway answers ``stored``, a fallback broker, heartbeats and a retained online/offline status. A
:class:`Fleet` runs many of them plus a control channel so another process can press a button.
"""

from firmware_sim.alarms import DEFAULT_ALARM_TYPE
from firmware_sim.device import SimDevice
from firmware_sim.fleet import DEFAULT_MIX, Fleet, device_ids
from firmware_sim.outbox import EntryKind, Outbox, OutboxEntry

__all__ = [
    "DEFAULT_ALARM_TYPE",
    "DEFAULT_MIX",
    "EntryKind",
    "Fleet",
    "Outbox",
    "OutboxEntry",
    "SimDevice",
    "device_ids",
]
