"""Domain errors of the gateway: what a request or a command may be refused with, and why.

Domain modules raise these (never ``HTTPException``); the one handler of ``trygg/errors.py`` (installed by
``gateway/app.py``) answers them with the refusal body, counts and logs them, and the command line prints
``detail``. Each carries a stable dotted ``code`` and its ``params``, which the console translates (the body
format is ``wire.ErrorBody``); ``detail`` is the English text. The class says the HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from trygg.errors import CodedError


class GatewayError(CodedError):
    """A refusal: ``code`` (dotted, stable), ``detail`` (English text), ``params`` (what the text refers to)."""


class Invalid(GatewayError):
    """The request makes no sense as it is (HTTP 400)."""

    status = 400


class Unauthorized(GatewayError):
    """Not logged in, or the login is no longer valid (HTTP 401)."""

    status = 401
    headers: ClassVar[Mapping[str, str] | None] = MappingProxyType({"WWW-Authenticate": "Bearer"})


class Forbidden(GatewayError):
    """This user may not do this (HTTP 403)."""

    status = 403


class NotFound(GatewayError):
    """No such thing (HTTP 404)."""

    status = 404


class Conflict(GatewayError):
    """Not in this state (HTTP 409)."""

    status = 409


class UpstreamFailed(GatewayError):
    """Something the gateway depends on for this request failed (a camera, HTTP 502)."""

    status = 502


class Unavailable(GatewayError):
    """Cannot be answered right now (HTTP 503)."""

    status = 503
