"""The one way tests (and benches) wait for something: :func:`eventually`.

Waiting is on events with a timeout, never on a sleep that hopes to be long enough. Where the code under test
notifies a condition on each change, the check runs on each notification; where the state has no event of its
own (a row in a database, an HTTP API, a page in a browser), it is polled.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def _value(check: Callable[[], T | Awaitable[T]]) -> T:
    got = check()
    if inspect.isawaitable(got):
        return await got
    return got


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    timeout: float = 5.0,
    *,
    changed: asyncio.Condition | None = None,
    interval: float = 0.05,
) -> T:
    """Wait until ``check()`` (plain or async) returns something truthy, and return that.

    With ``changed``, a condition the producer notifies on every change, the check runs on each notification
    (under the condition's lock); without it, every ``interval`` seconds. ``TimeoutError`` after ``timeout``.
    """
    async with asyncio.timeout(timeout):
        if changed is not None:
            async with changed:
                while not (got := await _value(check)):
                    await changed.wait()
                return got
        while True:  # polled: this state has no event to wait on
            if got := await _value(check):
                return got
            await asyncio.sleep(interval)
