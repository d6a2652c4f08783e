"""Failed logins per username and per client address, in a sliding window (issue 8, point 5).

When either key has had ``limit`` failures within the window, further logins for it are refused (429 with
``Retry-After``) without hashing, until the oldest of those failures leaves the window. An attempt counts as
failed from the moment it starts (parallel attempts cannot slip past the limit while the first ones hash); a
success takes its own count back and clears its username. Each key keeps only its last ``limit`` failure times,
and at most ``max_keys`` keys are kept (the least recently failed go first), so a flood of made-up usernames or
addresses cannot grow the memory without bound.

Where the state lives, and why (docs/architecture.md, "Users and tokens"): in each receiver process's memory. A
login flood must not turn into writes on the database the alarms are committed to, and the counts need no
durability (a restart forgets at most one window). With several receivers behind HAProxy, ``balance source``
keeps one client address on one receiver, so the per-address limit holds as set; the per-username limit then
holds per receiver (at most N times the limit with N receivers), which the password rules
(alarm_receiver/passwords.py) leave far from a useful guessing rate. HAProxy's own stick-table rate limit is the
outer guard in front of all instances.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindow:
    """Failure times per key; ``retry_after(key)`` is how long the key must still wait (0: not limited)."""

    def __init__(self, limit: int, window_s: float, *, max_keys: int = 100_000, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> float:
        times = self._failures.get(key)
        if times is None or len(times) < self.limit:
            return 0.0
        wait = times[0] + self.window_s - self._clock()
        if wait <= 0:
            return 0.0
        return wait

    def now(self) -> float:
        return self._clock()

    def failed(self, key: str, at: float | None = None) -> None:
        times = self._failures.pop(key, None)
        if times is None:
            times = deque(maxlen=self.limit)
        times.append(self._clock() if at is None else at)
        self._failures[key] = times  # most recently failed last
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def forget(self, key: str, at: float) -> None:
        """Take back one failure recorded at ``at`` (an attempt that turned out to succeed)."""
        times = self._failures.get(key)
        if times is not None and at in times:
            times.remove(at)

    def __len__(self) -> int:
        return len(self._failures)


class LoginThrottle:
    def __init__(
        self,
        *,
        per_account: int,
        per_address: int,
        window_s: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.accounts = SlidingWindow(per_account, window_s, max_keys=max_keys, clock=clock)
        self.addresses = SlidingWindow(per_address, window_s, max_keys=max_keys, clock=clock)

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until a login for ``username`` from ``address`` may be tried (0: now)."""
        return max(self.accounts.retry_after(username), self.addresses.retry_after(address))

    def attempt(self, username: str, address: str) -> float:
        """Count an attempt as failed before it is checked, so that parallel attempts cannot slip past the limit
        while the first ones are still hashing; ``succeeded`` takes it back. Returns the attempt's time."""
        at = self.accounts.now()
        self.accounts.failed(username, at)
        self.addresses.failed(address, at)
        return at

    def succeeded(self, username: str, address: str, at: float) -> None:
        self.accounts.clear(username)
        self.addresses.forget(address, at)
