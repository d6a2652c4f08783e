"""The voice feature's line to the receiver (wire/voice.py): ask it for a person's right to talk (with that
person's own token, nothing cached), and report each call's steps for the alarm's history (with the intake
token, retried while the receiver is away or has not got the alarm yet)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from gateway.errors import Forbidden, GatewayError, NotFound, Unauthorized, Unavailable
from trygg.http import client_tls
from trygg.settings import Settings
from wire.voice import EVENTS_PATH, RIGHTS_PATH, CallEvent, VoiceRight, VoiceRightRequest

log = structlog.get_logger(__name__)

REPORT_DEADLINE_S = 60.0


class ReceiverLink:
    def __init__(self, settings: Settings, timeout_s: float = 5.0) -> None:
        self._base = settings.receiver_url.rstrip("/")
        token = settings.intake_token
        self._intake = token.get_secret_value() if token is not None else ""
        self._http = httpx.AsyncClient(timeout=timeout_s, verify=client_tls(settings))

    async def close(self) -> None:
        await self._http.aclose()

    async def right(self, token: str, request: VoiceRightRequest) -> VoiceRight:
        """The receiver's decision for the holder of ``token``: the right, or its own coded refusal."""
        try:
            resp = await self._http.post(
                self._base + RIGHTS_PATH,
                content=request.model_dump_json(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.error("cannot ask the receiver for a voice right", error=str(exc) or type(exc).__name__)
            raise Unavailable("voice.rights_unavailable", "cannot check the right to talk right now") from exc
        if resp.status_code == 200:
            return VoiceRight.model_validate_json(resp.content)
        body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
        body = body if isinstance(body, dict) else {}
        raw_code, raw_params = body.get("code"), body.get("params")
        code = raw_code if isinstance(raw_code, str) else "voice.refused"
        detail = str(body.get("detail") or "refused by the alarm receiver")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        error: type[GatewayError] = {401: Unauthorized, 404: NotFound}.get(resp.status_code, Forbidden)
        if resp.status_code >= 500:
            error = Unavailable
        raise error(code, detail, **params)

    async def report(self, event: CallEvent) -> bool:
        """Deliver one call step to the receiver; retried (the receiver away, the alarm not forwarded yet) for
        up to a minute. False, logged, when it never got there."""
        deadline = asyncio.get_running_loop().time() + REPORT_DEADLINE_S
        delay = 0.2
        while True:
            try:
                resp = await self._http.post(
                    self._base + EVENTS_PATH,
                    content=event.model_dump_json(),
                    headers={"Authorization": f"Bearer {self._intake}", "Content-Type": "application/json"},
                )
                if resp.status_code < 300:
                    return True
                why = f"status {resp.status_code}"
                if resp.status_code not in (404, 503):
                    break
            except httpx.HTTPError as exc:
                why = str(exc) or type(exc).__name__
            if asyncio.get_running_loop().time() + delay > deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        log.error("call event not delivered to the receiver", call_id=event.call_id, event=event.event, why=why)
        return False
