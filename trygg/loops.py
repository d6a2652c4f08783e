"""Background work that must not die: run a step forever, survive its failures, back off, go on.

Every long-lived loop of the services (the forwarder, the escalator, the notifier, supervision, the check-in
scheduler, ...) is one call of :func:`run_forever` with its own step; a one-off task that must eventually succeed
(the receiver's first broker connection, a supervision action) is :func:`retry_until_done`. A failed step is
logged with its traceback and the exception's type, then retried after an exponential backoff with jitter; a
step that succeeds resets the backoff. ``CancelledError`` (shutdown) always goes through.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import structlog

T = TypeVar("T")
_log = structlog.get_logger(__name__)


class Backoff:
    """Exponential backoff with jitter: ``first_s``, doubling up to ``max_s``, each delay ±``jitter``."""

    def __init__(self, first_s: float = 0.2, max_s: float = 30.0, jitter: float = 0.2) -> None:
        self._first = first_s
        self._max = max(max_s, first_s)
        self._jitter = jitter
        self._next = first_s
        self.failures = 0

    def next(self) -> float:
        """The delay before the next attempt (and grows the one after it)."""
        self.failures += 1
        delay = self._next
        self._next = min(self._next * 2, self._max)
        return delay * random.uniform(1 - self._jitter, 1 + self._jitter)

    def reset(self) -> None:
        self._next = self._first
        self.failures = 0


async def run_forever(
    name: str,
    step: Callable[[], Awaitable[float | None]],
    *,
    every_s: float,
    wake: asyncio.Event | None = None,
    backoff: Backoff | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
    log: structlog.typing.FilteringBoundLogger | None = None,
) -> NoReturn:
    """Run ``step`` again and again until cancelled.

    After a step that returned, wait ``every_s`` (or the seconds the step returned; 0: go on at once); with a
    ``wake`` event, that wait ends early when the event is set (it is cleared before each step, so a wake-up
    during a step is not lost). After a step that raised, log it with its traceback, call ``on_failure`` (count
    it), and sleep the backoff (not cut short by ``wake``: a failing peer is not hammered on every wake-up).
    """
    logger = log or _log
    backoff = backoff or Backoff()
    while True:
        if wake is not None:
            wake.clear()
        try:
            delay = await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await _failed(name, exc, backoff, on_failure, logger)
            continue
        backoff.reset()
        wait = every_s if delay is None else delay
        if wait <= 0:
            await asyncio.sleep(0)  # let others run between back-to-back steps
        elif wake is None:
            await asyncio.sleep(wait)
        else:
            try:
                async with asyncio.timeout(wait):
                    await wake.wait()
            except TimeoutError:
                pass


async def retry_until_done(
    name: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
    log: structlog.typing.FilteringBoundLogger | None = None,
) -> T:
    """Await ``attempt()`` until it returns, logging each failure with its traceback and backing off between."""
    logger = log or _log
    backoff = backoff or Backoff()
    while True:
        try:
            return await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await _failed(name, exc, backoff, on_failure, logger)


async def _failed(
    name: str,
    exc: Exception,
    backoff: Backoff,
    on_failure: Callable[[BaseException], None] | None,
    logger: structlog.typing.FilteringBoundLogger,
) -> None:
    """Log the failure with its traceback, count it, and sleep the backoff."""
    retry_in = backoff.next()
    logger.error(
        f"{name} failed; retrying",
        error_type=type(exc).__name__,
        attempt=backoff.failures,
        retry_in_s=round(retry_in, 2),
        exc_info=exc,
    )
    if on_failure is not None:
        on_failure(exc)
    await asyncio.sleep(retry_in)
