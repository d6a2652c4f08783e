"""Domain errors of the gateway: what a request or a command may be refused with, and why.

Domain modules raise these (never ``HTTPException``); ``gateway/app.py`` maps them to HTTP in one handler,
and the command line prints ``detail``. Each carries a stable dotted ``code`` and its ``params``, which the
console translates (the body format is ``wire.ErrorBody``); ``detail`` is the English text.
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    """A refusal: ``code`` (dotted, stable), ``detail`` (English text), ``params`` (what the text refers to)."""

    def __init__(self, code: str, detail: str, **params: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.params = params


class Invalid(GatewayError):
    """The request makes no sense as it is (HTTP 400)."""


class Unauthorized(GatewayError):
    """Not logged in, or the login is no longer valid (HTTP 401)."""


class Forbidden(GatewayError):
    """This user may not do this (HTTP 403)."""


class NotFound(GatewayError):
    """No such thing (HTTP 404)."""


class Conflict(GatewayError):
    """Not in this state (HTTP 409)."""


class UpstreamFailed(GatewayError):
    """Something the gateway depends on for this request failed (a camera, HTTP 502)."""


class Unavailable(GatewayError):
    """Cannot be answered right now (HTTP 503)."""


HTTP_STATUS: dict[type[GatewayError], int] = {
    Invalid: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    UpstreamFailed: 502,
    Unavailable: 503,
}


def http_status(exc: GatewayError) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400
