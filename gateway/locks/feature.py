"""The lock feature: a digital lock's ``lock/state`` in, its ``lock/command`` out, and the gateway's half of an
unlock: it verifies the receiver's signed grant (signature, expiry, this lock, this patrol) and asks the receiver,
over HTTP with the patrol's own token, whether the alarm is still open and still theirs, before it publishes the
unlock. Every unlock and refusal goes to the gateway's supervision log and, with every lock state, to the receiver
(``POST /api/v1/intake/locks``, wire/locks.py), which writes them into the alarm's history.

Reports to the receiver wait in memory (bounded) and are retried until it takes them; a gateway restart loses
those not yet delivered, and the lock's retained state is delivered again at the next subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Mapping
from typing import Any

import httpx
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from devices import DeviceStatus, DeviceTopic
from devices.lock import LockCommand, LockState
from devices.validation import Rejection, parse_model
from gateway import metrics
from gateway.errors import Conflict, NotFound, Unavailable
from gateway.features import Subscription
from gateway.models import Device
from gateway.port import GatewayPort
from gateway.users import ApiUser
from trygg import audit, grants
from trygg.audit.anchor import AnchorError, trusted_keys
from trygg.db import utcnow
from trygg.errors import CodedError
from trygg.http import client_tls
from wire.locks import LOCK_EVENTS_PATH, LockEvent

log = structlog.get_logger(__name__)

OPEN_FOR_UNLOCK = ("assigned", "on_site")
MAX_PENDING = 1000


class LockFeature:
    name = "locks"

    def __init__(self, port: GatewayPort) -> None:
        self.port = port
        s = port.settings
        try:
            self.keys: dict[str, Ed25519PublicKey] = trusted_keys(s.lock_grant_public_keys)
        except AnchorError as exc:
            log.error("lock grant public keys unusable: every unlock is refused", error=str(exc))
            self.keys = {}
        self._pending: asyncio.Queue[LockEvent] = asyncio.Queue(MAX_PENDING)
        self._task: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=10.0, verify=client_tls(s))
        self.commands: dict[str, str] = {}  # command_id -> lock (the last ones, for the lock's answer)
        port.on_status(self._status)

    # --- Feature protocol ------------------------------------------------------------------------------------
    def subscriptions(self) -> Mapping[DeviceTopic, Subscription]:
        return {DeviceTopic.LOCK_STATE: Subscription(handler=self._state)}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._deliver(), name="gateway-lock-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()

    def on_connected(self) -> None:
        pass

    # --- lock -> gateway -------------------------------------------------------------------------------------
    async def _state(self, device_id: str, payload: bytes) -> None:
        parsed = parse_model(LockState, payload)
        if isinstance(parsed, Rejection):
            metrics.REJECTED.labels(f"lock_{parsed.code}").inc()
            log.warning("lock state rejected", device_id=device_id, code=parsed.code)
            return
        if not await self._is_lock(device_id):
            metrics.REJECTED.labels("lock_unknown_device").inc()
            log.warning("lock state from a device that is not a registered lock", device_id=device_id)
            return
        self._report(
            LockEvent(
                device_id=device_id,
                kind="state",
                at=parsed.ts,
                lock=parsed.lock.value,
                door=parsed.door.value if parsed.door is not None else None,
                battery_pct=parsed.battery_pct,
            )
        )

    async def _status(self, device_id: str, status: DeviceStatus) -> None:
        if status is DeviceStatus.OFFLINE and await self._is_lock(device_id):
            self._report(LockEvent(device_id=device_id, kind="state", at=utcnow(), lock="offline"))

    async def _is_lock(self, device_id: str) -> bool:
        async with self.port.sessions() as session:
            device = await session.get(Device, device_id)
        return device is not None and device.retired_at is None and device.type == "lock"

    # --- patrol -> lock --------------------------------------------------------------------------------------
    async def unlock(self, user: ApiUser, token: str, device_id: str, grant_text: str) -> str:
        """Publish an unlock for a valid grant; returns the command id. Refusals are logged and reported."""
        async with self.port.sessions() as session:
            device = await session.get(Device, device_id)
        client_ref = device.client_ref if device is not None else None
        alarm: int | None = None
        try:
            if device is None or device.retired_at is not None or device.type != "lock":
                raise NotFound("lock.not_a_lock", f"{device_id} is not a registered lock", device_id=device_id)
            grant = grants.verify(grant_text, self.keys, lock=device_id, patrol=user.username, now=utcnow())
            alarm = grant.alarm
            await self._check_alarm(token, grant.alarm, user.username)
            command = LockCommand(
                command="unlock",
                command_id=secrets.token_urlsafe(9).replace("-", "_"),
                ts=utcnow(),
                grant=grant_text,
                relock_after_s=self.port.settings.lock_relock_after_s,
            )
            topic = self.port.topics.device(device_id, DeviceTopic.LOCK_COMMAND)
            if not self.port.publish(topic, command.model_dump_json().encode(), qos=1):
                raise Unavailable("lock.publish_failed", "the unlock could not be published to the broker")
        except CodedError as exc:
            grant_alarm = exc.params.get("alarm")
            alarm = alarm if alarm is not None else (grant_alarm if isinstance(grant_alarm, int) else None)
            await self._log(user, "lock.unlock_refused", client_ref, device_id, alarm=alarm, code=exc.code)
            self._report(
                LockEvent(
                    device_id=device_id, kind="unlock_refused", at=utcnow(), alarm=alarm, patrol=user.username,
                    code=exc.code,
                )
            )  # fmt: skip
            log.warning("unlock refused", device_id=device_id, user=user.username, code=exc.code)
            raise
        self.commands[command.command_id] = device_id
        await self._log(user, "lock.unlock_sent", client_ref, device_id, alarm=grant.alarm, grant=grant.jti)
        self._report(
            LockEvent(
                device_id=device_id, kind="unlock_sent", at=utcnow(), alarm=grant.alarm, patrol=user.username,
                grant_id=grant.jti,
            )
        )  # fmt: skip
        log.info("unlock published", device_id=device_id, user=user.username, alarm=grant.alarm)
        return command.command_id

    async def _check_alarm(self, token: str, alarm: int, patrol: str) -> None:
        """The receiver says whether the alarm is open and assigned to this patrol (its own rule: a patrol sees only
        its alarms); the grant alone is not enough once the alarm is resolved."""
        url = f"{self.port.settings.receiver_url.rstrip('/')}/api/v1/alarms/{alarm}"
        try:
            resp = await self._http.get(url, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise Unavailable("auth.check_unavailable", "the receiver cannot be asked right now") from exc
        body: dict[str, Any] = resp.json() if resp.status_code == 200 else {}
        if body.get("state") not in OPEN_FOR_UNLOCK or body.get("assigned_to") != patrol:
            raise Conflict("lock.alarm_not_open", f"alarm {alarm} is not open and assigned to you", alarm=alarm)

    async def _log(self, user: ApiUser, action: str, client_ref: str | None, device_id: str, **details: Any) -> None:
        async with self.port.sessions.begin() as session:
            await audit.append(
                session,
                actor=user.username,
                action=action,
                client_ref=client_ref,
                subject=f"lock-{device_id}",
                details={k: v for k, v in details.items() if v is not None},
            )

    # --- gateway -> receiver ---------------------------------------------------------------------------------
    def _report(self, event: LockEvent) -> None:
        try:
            self._pending.put_nowait(event)
        except asyncio.QueueFull:
            metrics.PUBLISH_FAILED.inc()
            log.error("lock report dropped: the receiver has not taken the last ones", device_id=event.device_id)

    async def _deliver(self) -> None:
        s = self.port.settings
        url = f"{s.receiver_url.rstrip('/')}{LOCK_EVENTS_PATH}"
        token = s.intake_token.get_secret_value() if s.intake_token is not None else ""
        delay = 0.2
        while True:
            batch = [await self._pending.get()]
            while not self._pending.empty() and len(batch) < 200:
                batch.append(self._pending.get_nowait())
            body = {"events": [e.model_dump(mode="json") for e in batch]}
            while True:
                try:
                    resp = await self._http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
                    if resp.status_code == 204:
                        delay = 0.2
                        break
                    log.error("receiver refused lock reports", status=resp.status_code)
                except httpx.HTTPError as exc:
                    log.warning("lock reports not delivered yet", error=str(exc) or type(exc).__name__)
                metrics.FORWARD_FAILURES.inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
