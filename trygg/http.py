"""HTTP pieces both services share: refusals as codes, database ids in paths, clean JSON text, /metrics.

A refusal's body is ``{"detail": "<English>", "code": "<dotted.code>", "params": {...}}``: the console translates
``code`` (with ``params``); ``detail`` is for people reading the API directly. Raise :class:`ApiProblem` (or a
subclass) anywhere below a route; ``install_problem_handler`` answers it.
"""

from __future__ import annotations

import hmac
import json
import re
import ssl
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trygg.settings import Settings

# Primary keys are 32-bit INTEGER columns on PostgreSQL: a larger id can name no row, and asking the database for
# one fails (asyncpg: "value out of int32 range") instead of finding nothing. So a path id is 1 .. 2**31 - 1,
# anything else is a 422 before any query.
MAX_DB_ID = 2**31 - 1
DbId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="a database id (1 to 2147483647)")]


class ApiProblem(Exception):
    """A refusal the API answers with ``status`` and the agreed body."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.params = dict(params or {})
        self.headers = dict(headers or {})


class Problem(BaseModel):
    """The body of every refusal (documented in the OpenAPI description)."""

    detail: Any
    code: str | None = None
    params: dict[str, Any] = {}


def problem_body(code: str, detail: Any, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"detail": detail, "code": code, "params": dict(params or {})}


def install_problem_handler(app: FastAPI, counter: Counter) -> None:
    """Answer :class:`ApiProblem` with its status, headers and the agreed body; count it by code."""

    @app.exception_handler(ApiProblem)
    async def problem(request: Request, exc: ApiProblem) -> JSONResponse:
        counter.labels(exc.code).inc()
        return JSONResponse(problem_body(exc.code, exc.detail, exc.params), exc.status, headers=exc.headers)


_DESCRIPTIONS = {
    401: "Not logged in, or the session ended (code `auth.*`)",
    403: "The role may not do this",
    404: "No such item (for this user)",
    409: "The item's state does not allow it",
    422: "Malformed request: path, query or body",
    429: "Too many requests; `Retry-After` says when to try again",
    503: "A service this needs cannot be reached right now",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the refusals it documents, each with the :class:`Problem` body."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}


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


def bad_json_text(body: bytes) -> bool:
    """Whether a JSON body is not UTF-8, or holds a lone surrogate or NUL anywhere (keys included)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True  # JSON is UTF-8 (RFC 8259); FastAPI would answer an undocumented 400
    if not _SUSPECT.search(body):
        return False
    try:
        return _has_bad_text(json.loads(body))
    except (ValueError, RecursionError):
        return False  # not JSON at all: the route's own validation answers it


class RefuseBadText:
    """ASGI middleware: a JSON body with a lone surrogate or NUL is a 422 (`request.bad_text`)."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope.get("query_string", b"") or b"%00" in scope.get("raw_path", b""):
            await self._refuse(scope, receive, send)  # NUL in a query or path: no database stores it either
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
        body = b"".join(chunks)
        if bad_json_text(body):
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.counter.labels("request.bad_text").inc()
        detail = "the request holds text no database can store (a lone UTF-16 surrogate or NUL)"
        await JSONResponse(problem_body("request.bad_text", detail), 422)(scope, receive, send)


def _replay(messages: list[Message], then: Receive) -> Receive:
    """The messages already read, then the connection's own (a later disconnect still reaches the app)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive


# --- calls between the services ---------------------------------------------------------------------------------
def client_tls(settings: Settings) -> ssl.SSLContext | bool:
    """httpx's ``verify=`` for calls to the other service: ``http_ca_file`` when set, else the system's CA store."""
    if settings.http_ca_file is None:
        return True
    return ssl.create_default_context(cafile=str(settings.http_ca_file))


# --- /metrics ---------------------------------------------------------------------------------------------------
def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def matches_metrics_token(settings: Settings, token: str | None) -> bool:
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    return bool(expected and token and hmac.compare_digest(token.encode(), expected.encode()))


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def unauthorized() -> HTTPException:
    return HTTPException(401, "metrics need a bearer token", headers={"WWW-Authenticate": "Bearer"})
