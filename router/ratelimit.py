"""In-memory rate limits for public endpoints (per process)."""

from __future__ import annotations

import time
from collections import OrderedDict

from router.core.errors import RateLimited


class RateLimiter:
    """Token bucket per key (client address) for public endpoints; in memory, per process.

    Per-process is enough to blunt floods from one address; it is not a quota system.
    """

    def __init__(self, rate_per_minute: float, burst: int, max_keys: int = 10_000):
        self.rate = rate_per_minute / 60.0
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def check(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            raise RateLimited("too many requests from this address; try again in a minute")
        self._buckets[key] = (tokens - 1, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
