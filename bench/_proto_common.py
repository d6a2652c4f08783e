"""What every protocol bench module shares (``bench/protocols.py`` runs them side by side): the load it is given and
the figures it returns. A module has ``NAME: str`` and ``async def run(load: Load) -> Figures``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Load:
    alarms: int  # how many alarms in all
    rate: float  # offered alarms per second (absolute schedule)
    units: int  # simulated units sending them, round-robin


@dataclass(frozen=True)
class Figures:
    name: str
    sent: int  # alarms sent
    answered: int  # alarms the receiver answered OK/ACK
    stored: int  # alarms the receiver's store (or handler) holds afterwards
    duplicates: int  # alarms held more than once
    seconds: float  # from the first send to the last answer
    rate_per_s: float  # answered / seconds
    p50_ms: float  # send -> OK/ACK
    p99_ms: float
