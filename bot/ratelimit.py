"""Per-user rate limit for questions: a token bucket, so a conversation can keep its pace.

A fixed cooldown ("one question every 10 s") punishes exactly what conversations are made
of: a question, then two quick follow-ups ("why?", "when was that?"). A bucket holds up to
`burst` questions and refills one every `seconds`, so a burst of follow-ups goes through at
once while a flood is held to one question per `seconds` over time. `burst` 1 is the old
fixed cooldown.

Whoever is refused is told once per spell of refusals (`should_warn`): a flood of messages
must not become a flood of "slow down" replies, which Discord would rate-limit in turn.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

MAX_TRACKED_USERS = 10_000  # above this, buckets that are full again are dropped


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    warned: bool = False


class TokenBucket:
    """Up to `burst` questions at once per user, refilled one per `seconds` (0 disables)."""

    def __init__(self, seconds: float, burst: int = 1) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.seconds = seconds
        self.burst = burst
        self._buckets: dict[int, _Bucket] = {}

    def _refilled(self, user_id: int, now: float) -> _Bucket:
        bucket = self._buckets.get(user_id)
        if bucket is None:
            return _Bucket(float(self.burst), now)
        gained = (now - bucket.updated) / self.seconds if self.seconds > 0 else self.burst
        bucket.tokens = min(float(self.burst), bucket.tokens + max(0.0, gained))
        bucket.updated = now
        return bucket

    def retry_after(self, user_id: int, now: float | None = None) -> float:
        """Seconds until `user_id` may ask again; 0 when they may ask now."""
        if self.seconds <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        bucket = self._refilled(user_id, now)
        if bucket.tokens >= 1.0:
            return 0.0
        return (1.0 - bucket.tokens) * self.seconds

    def consume(self, user_id: int, now: float | None = None) -> None:
        """Spend one question of `user_id`'s bucket (check `retry_after` first)."""
        if self.seconds <= 0:
            return
        now = time.monotonic() if now is None else now
        bucket = self._refilled(user_id, now)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)
        bucket.warned = False
        self._buckets[user_id] = bucket
        if len(self._buckets) > MAX_TRACKED_USERS:
            self._prune(now)

    def should_warn(self, user_id: int) -> bool:
        """True the first time a refused user is refused since their last question."""
        bucket = self._buckets.get(user_id)
        if bucket is None or bucket.warned:
            return bucket is None
        bucket.warned = True
        return True

    def _prune(self, now: float) -> None:
        """Forget users whose bucket is full again: they are back to a fresh start."""
        for user_id in list(self._buckets):
            if self._refilled(user_id, now).tokens >= self.burst:
                del self._buckets[user_id]

    @staticmethod
    def message(retry_after: float) -> str:
        return f"You're asking too fast — try again in {max(1, math.ceil(retry_after))} s."
