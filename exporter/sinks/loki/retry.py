"""When to retry a push and how long to wait: one predicate, one backoff."""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

import httpx


def is_retryable(status: int | None) -> bool:
    """Retry only rate limiting (429), server errors (5xx) and connection errors (status None).

    Never 400: Loki already stored the other entries and would ignore the same ones again.
    """
    return status is None or status == 429 or 500 <= status <= 599


RETRYABLE_ERRORS = (httpx.TransportError,)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def backoff(attempt: int, min_s: float, max_s: float, retry_after: float | None = None,
            rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter in [d/2, d], d = min_s * 2**attempt capped at max_s.

    A server's Retry-After is honoured (but capped at max_s, so a retry loop stays bounded).
    """
    delay = min(max_s, min_s * (2 ** min(attempt, 64)))   # capped: a float overflows past 2**1023
    delay = delay / 2 + (rng or random).random() * delay / 2
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_s))
    return delay
