"""The gateway's door into the queue: idempotent on (device_id, alarm_id)."""

from __future__ import annotations

from collections import Counter

import structlog
from fastapi import APIRouter
from sqlalchemy.exc import OperationalError

from alarm_receiver import metrics, queue
from alarm_receiver.api.deps import GatewayAuth, ReceiverDep, SessionDep
from alarm_receiver.service import alarm_messages
from trygg.errors import ApiError, responses
from wire.intake import IntakeAlarm, IntakeRequest, IntakeResponse

log = structlog.get_logger(__name__)
router = APIRouter(responses=responses(401, 422, 503), tags=["intake"])


@router.post("/intake", response_model=IntakeResponse, dependencies=[GatewayAuth])
async def intake(body: IntakeRequest, session: SessionDep, receiver: ReceiverDep) -> IntakeResponse:
    try:
        results, changed = await queue.ingest(session, body.items)
        messages = await alarm_messages(session, changed)  # for the live feed, once committed
        await session.commit()  # confirmed to the gateway only once stored here
    except OperationalError as exc:  # the store is down, locked or full: the gateway keeps the batch and retries
        metrics.INTAKE_COMMIT_FAILURES.inc()
        receiver.store_health.failed()  # /health answers 503 until a commit goes through again
        log.error("intake commit failed", error_type=type(exc.orig).__name__)
        raise ApiError(503, "intake.store_unavailable", "the receiver's store cannot commit now; retry") from None
    receiver.store_health.committed()
    for result, count in Counter(r.result for r in results).items():
        metrics.INTAKE_ITEMS.labels(result).inc(count)
    for r in results:
        if r.result != "duplicate":
            log.info("queue updated from gateway", device_id=r.device_id, alarm_id=r.alarm_id, result=r.result)
    receiver.publish_messages(messages, changed)
    if any(isinstance(item, IntakeAlarm) and item.is_test for item in body.items):
        receiver.notice_wake.set()  # installation tests owe their device an "acknowledged" (else: its 2 s round)
    return IntakeResponse(results=results)
