"""Refusals both services send: ``{"detail": "<English>", "code": "<dotted.code>", "params": {...}}``
(``wire.ErrorBody``), built, counted and logged here and nowhere else.

Three kinds of refusal reach the one set of handlers :func:`install_error_handlers` puts on an app: a domain
error (a :class:`CodedError` subclass raised by code that knows no HTTP: the gateway's ``gateway/errors.py``, the
receiver's ``QueueError``; the subclass sets the HTTP ``status``), an :class:`ApiError` (an ``HTTPException``
with a code, for guards and routes), and FastAPI's own (request validation, an unknown path, a plain
``HTTPException``: coded by status, :data:`STATUS_CODES`).

The console translates ``code`` with ``params`` (``alarm_receiver/console/static/i18n.js``) and never shows
``detail``, which stays for API users and logs. A 422 from request validation is ``request.invalid`` with the
first problem's field and constraint in ``params`` (``{"field": "note", "type": "string_too_long",
"max_length": 2000}``) and all of them in ``params.errors``.

Never in a log line or a refusal's params: the request body or any value taken from it (a note can be a
person's health). Logged are the path, the body's size and the codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wire.errors import ErrorBody

log = structlog.get_logger(__name__)

# Codes for refusals raised without one (FastAPI's own 404/405, a guard's plain HTTPException).
STATUS_CODES: Mapping[int, str] = {
    400: "request.bad",
    401: "auth.required",
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
    labelled by code: ``request.invalid``, ``auth.expired``, ``alarm.transition_refused``, ...). Each is logged
    with the path, the body's size, the status and the code: never the body, never the English text (it may
    carry a name)."""

    def refusal(
        request: Request,
        status: int,
        code: str,
        detail: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> JSONResponse:
        refused(code)
        log.info(
            "request refused",
            path=request.url.path,
            method=request.method,
            size=_size(request),
            status=status,
            code=code,
        )
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


__all__ = ["STATUS_CODES", "ApiError", "CodedError", "body", "install_error_handlers", "validation_problems"]
