"""The contract between Trygg's two services: what the gateway sends the alarm receiver, and the error body
both services' HTTP APIs answer with.

Like ``devices/`` (the contract with devices), this package is pure data and validation: it imports pydantic and
nothing of ``gateway``, ``alarm_receiver`` or ``trygg``, so that each service imports it without importing the
other. The prose version is docs/architecture.md ("The gateway -> receiver wire").
"""

from wire.errors import ErrorBody
from wire.intake import (
    INTAKE_PATH,
    IntakeAlarm,
    IntakeCancel,
    IntakeItem,
    IntakeRequest,
    IntakeResolve,
    IntakeResponse,
    IntakeResult,
)

__all__ = [
    "INTAKE_PATH",
    "ErrorBody",
    "IntakeAlarm",
    "IntakeCancel",
    "IntakeItem",
    "IntakeRequest",
    "IntakeResolve",
    "IntakeResponse",
    "IntakeResult",
]
