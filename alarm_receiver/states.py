"""The states of a queue item (alarm_receiver/queue.py): on their own, so that what an intake batch writes
(alarm_receiver/intake_batch.py) and the queue's lifecycle share them without importing each other."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    ON_SITE = "on_site"
    RESOLVED = "resolved"
    CANCELLED = "cancelled"


OPEN_STATES = (State.NEW, State.ACKNOWLEDGED, State.ASSIGNED, State.ON_SITE)
