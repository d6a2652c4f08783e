"""Refusals both services send: ``{"detail": "<English>", "code": "<dotted.code>", "params": {...}}``
(``wire.ErrorBody``), built, counted and logged here and nowhere else.

Four kinds of refusal meet the one set of handlers :func:`install_error_handlers` puts on an app:

- a domain error: a :class:`CodedError` subclass raised by code that knows no HTTP (the gateway's
  ``gateway/errors.py``, the receiver's ``QueueError``); the subclass sets the HTTP ``status``;
- an :class:`ApiError` (an ``HTTPException`` with a code), for guards and routes, and for refusals whose headers
  vary per answer (a login's ``Retry-After``);
- FastAPI's own (request validation, an unknown path, a plain ``HTTPException``): coded by status,
  :data:`STATUS_CODES`;
- refusals made at the ASGI edge before routing: JSON text no database can store (:class:`RefuseBadText`,
  ``request.bad_text``) and a throttled login flood (``alarm_receiver/logins.py``), answered by
  :func:`send_refusal` with :func:`refusal_response`.

Each refusal is counted once, by code (the ``refused`` callback: a Prometheus counter labelled by code), and logged
with the path, the method, the body's size, the status and the code. :func:`responses` documents a route's
refusals in the OpenAPI description (:class:`Problem`, the same body).

The console translates ``code`` with ``params`` (``alarm_receiver/console/static/i18n.js``) and never shows
``detail``, which stays for API users and logs. A 422 from request validation is ``request.invalid`` with
``detail`` a string, the first problem's field and constraint in ``params`` (``{"field": "note", "type":
"string_too_long", "max_length": 2000}``) and all of them in ``params.errors``.

Never in a log line or a refusal's params: the request body or any value taken from it (a note can be a
person's health), nor the English text (it may carry a name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wire.errors import ErrorBody

log = structlog.get_logger(__name__)

# Codes for refusals raised without one (FastAPI's own 404/405, a guard's plain HTTPException).
STATUS_CODES: Mapping[int, str] = {
    400: "request.bad",
    401: "auth.not_logged_in",
    403: "auth.forbidden",
    404: "http.not_found",
    405: "http.method_not_allowed",
    409: "http.conflict",
    413: "request.too_large",
    429: "http.too_many_requests",
    503: "http.unavailable",
}
# Constraint values a 422 may name (never the input itself).
_CONSTRAINTS = ("max_length", "min_length", "ge", "gt", "le", "lt", "pattern", "expected", "multiple_of")


class CodedError(Exception):
    """A refusal raised by domain code: ``code`` (dotted, stable), ``detail`` (English text), ``params`` (what the
    text refers to). A service's subclasses say their HTTP ``status`` (and ``headers``, e.g. for a 401)."""

    status: ClassVar[int] = 400
    headers: ClassVar[Mapping[str, str] | None] = None

    def __init__(self, code: str, detail: str, **params: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.params = params


class ApiError(HTTPException):
    """A refusal with a code and parameters (an ``HTTPException``, so FastAPI's guards may raise it too)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(status_code, detail, dict(headers) if headers else None)
        self.code = code
        self.params = params


def body(code: str, detail: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The refusal body (``wire.ErrorBody``), JSON-ready."""
    return ErrorBody(detail=detail, code=code, params=dict(params or {})).model_dump(mode="json")


def refusal_response(exc: ApiError) -> JSONResponse:
    """``exc`` as the answer: its status, its headers (``Retry-After``, ``WWW-Authenticate``) and the agreed body."""
    return JSONResponse(body(exc.code, str(exc.detail), exc.params), status_code=exc.status_code, headers=exc.headers)


def _logged(path: str | None, method: str | None, size: int | None, status: int, code: str) -> None:
    log.info("request refused", path=path, method=method, size=size, status=status, code=code)


async def send_refusal(
    scope: Scope, receive: Receive, send: Send, exc: ApiError, refused: Callable[[str], None], size: int | None = None
) -> None:
    """Answer ``exc`` from ASGI middleware (before routing), counted and logged as the handlers do."""
    refused(exc.code)
    _logged(scope.get("path"), scope.get("method"), size, exc.status_code, exc.code)
    await refusal_response(exc)(scope, receive, send)


class Problem(ErrorBody):
    """The body of every refusal (``wire.ErrorBody``), as the OpenAPI description documents it."""


_DESCRIPTIONS = {
    400: "Refused: the request cannot be carried out as asked (code and params say why)",
    401: "Not logged in, or the session ended (code `auth.*`)",
    403: "The role may not do this",
    404: "No such item (for this user)",
    409: "The item's state does not allow it",
    422: "Malformed request: path, query or body (`request.invalid`, `request.bad_text`)",
    429: "Too many requests; `Retry-After` says when to try again",
    502: "A device this needs failed to answer (a camera's look, `checkin.look_failed`)",
    503: "A service this needs cannot be reached right now",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: the refusals it documents, each with the :class:`Problem` body."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}


def _field(loc: Sequence[Any]) -> str:
    # ("body", "note") -> "note"; ("query", "limit") -> "limit"; ("body",) -> "body"
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 and loc[0] in ("body", "query", "path", "header") else loc
    return ".".join(str(p) for p in parts)


def validation_problems(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Field, error type and constraint of each problem: nothing of the input."""
    out: list[dict[str, Any]] = []
    for err in errors:
        problem: dict[str, Any] = {"field": _field(err.get("loc", ())), "type": str(err.get("type", "invalid"))}
        ctx = err.get("ctx") or {}
        for key in _CONSTRAINTS:
            value = ctx.get(key)
            if isinstance(value, str | int | float | bool):
                problem[key] = value
        out.append(problem)
    return out


def validation_detail(errors: Sequence[Mapping[str, Any]]) -> str:
    """English for API users: "note: String should have at most 2000 characters" (pydantic's messages do not
    repeat the input; a custom validator's message is our own text)."""
    return "; ".join(f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors)


def _size(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    return int(raw) if raw and raw.isdigit() else None


def install_error_handlers(app: FastAPI, refused: Callable[[str], None]) -> None:
    """Every 4xx/5xx refusal in the agreed shape; ``refused(code)`` counts each one once (a Prometheus counter
    labelled by code: ``request.invalid``, ``auth.session_expired``, ``alarm.transition_refused``, ...). Each is
    logged with the path, the body's size, the status and the code: never the body, never the English text (it
    may carry a name). Also installs :class:`RefuseBadText` with the same counter."""
    app.add_middleware(RefuseBadText, refused=refused)

    def refusal(
        request: Request,
        status: int,
        code: str,
        detail: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> JSONResponse:
        refused(code)
        _logged(request.url.path, request.method, _size(request), status, code)
        return JSONResponse(body(code, detail, params), status_code=status, headers=dict(headers) if headers else None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = validation_problems(exc.errors())
        refused("request.invalid")
        log.info(
            "invalid request",
            path=request.url.path,
            method=request.method,
            size=_size(request),
            problems=",".join(f"{p['field']}:{p['type']}" for p in problems)[:300],
        )
        first = problems[0] if problems else {"field": "", "type": "invalid"}
        params = {**first, "errors": problems[:20]}
        return JSONResponse(body("request.invalid", validation_detail(exc.errors()), params), status_code=422)

    @app.exception_handler(CodedError)
    async def domain_error(request: Request, exc: CodedError) -> JSONResponse:
        return refusal(request, exc.status, exc.code, exc.detail, exc.params, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            code, params = exc.code, exc.params
        else:
            code, params = STATUS_CODES.get(exc.status_code, f"http.{exc.status_code}"), {}
        return refusal(request, exc.status_code, code, str(exc.detail), params, getattr(exc, "headers", None))


# --- JSON text a database cannot store ------------------------------------------------------------------------
# JSON may escape a lone UTF-16 surrogate ("\ud800") or NUL ("\u0000"): Python parses both into a str that
# SQLite's and PostgreSQL's drivers then refuse (an HTTP 500). No Trygg field has a use for either, so such a body
# (and one that is not UTF-8 at all) is refused as a 422 before any route sees it. The full check runs only when
# the raw body contains such an escape.
_SUSPECT = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")
_JSON_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _has_bad_text(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_bad_text(k) or _has_bad_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_bad_text(v) for v in value)
    return False


def bad_json_text(raw: bytes) -> bool:
    """Whether a JSON body is not UTF-8, or holds a lone surrogate or NUL anywhere (keys included)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True  # JSON is UTF-8 (RFC 8259); FastAPI would answer an undocumented 400
    if not _SUSPECT.search(raw):
        return False
    try:
        return _has_bad_text(json.loads(raw))
    except (ValueError, RecursionError):
        return False  # not JSON at all: the route's own validation answers it


class RefuseBadText:
    """ASGI middleware: a JSON body with a lone surrogate or NUL (or NUL in the query or path) is a 422
    ``request.bad_text``, counted by ``refused`` and logged with the path and size only."""

    def __init__(self, app: ASGIApp, refused: Callable[[str], None]) -> None:
        self.app = app
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b"") or b"%00" in scope.get("raw_path", b""):
            await self._refuse(scope, receive, send, None)  # NUL in a query or path: no database stores it either
            return
        if scope["method"] not in _JSON_METHODS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        if bad_json_text(raw):
            await self._refuse(scope, receive, send, len(raw))
            return
        await self.app(scope, _replay([{"type": "http.request", "body": raw, "more_body": False}], receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int | None) -> None:
        detail = "the request holds text no database can store (a lone UTF-16 surrogate or NUL)"
        await send_refusal(scope, receive, send, ApiError(422, "request.bad_text", detail), self.refused, size)


def _replay(messages: list[Message], then: Receive) -> Receive:
    """The messages already read, then the connection's own (a later disconnect still reaches the app)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive


__all__ = [
    "STATUS_CODES",
    "ApiError",
    "CodedError",
    "Problem",
    "RefuseBadText",
    "body",
    "install_error_handlers",
    "refusal_response",
    "responses",
    "send_refusal",
    "validation_problems",
]
