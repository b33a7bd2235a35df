"""Exponential backoff with jitter, capped; an immutable value like urllib3's Retry.

The drain loop is the only owner of retries: urllib3 runs with ``retries=False``
and a failed POST ends the pass; this value says how long the next one waits.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime

__all__ = ["Backoff", "parse_retry_after"]


@dataclass(frozen=True)
class Backoff:
    base_s: float
    max_s: float
    failures: int = 0

    def increment(self) -> Backoff:
        """The backoff after one more consecutive failure."""
        return replace(self, failures=self.failures + 1)

    def reset(self) -> Backoff:
        return replace(self, failures=0)

    def delay(self, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before the next attempt; never above ``max_s``.

        A server's Retry-After wins over the computed delay (it knows its own
        load), but is capped too: a hostile or buggy value cannot park the queue.
        """
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_s)
        if self.failures <= 0:
            return 0.0
        # 2**60 keeps the float finite however many failures piled up.
        exp = min(self.max_s, self.base_s * 2.0 ** min(self.failures - 1, 60))
        # "Equal jitter": at least half the delay, so hosts that failed together
        # do not come back together, yet never retry almost at once.
        r = (rng or random).random()
        return min(self.max_s, exp / 2.0 + r * exp / 2.0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
