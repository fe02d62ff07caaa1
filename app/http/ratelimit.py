"""Per-user rate limits, as documented: reads 1000/h, writes 100/h, searches 500/h.

Counters are fixed one-hour windows in the Redis-protocol server (Valkey), so every API process
shares them. If that server is down, requests are let through (and logged): availability of the
API matters more than the exactness of a limit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from app.backends import Backends
from app.errors import ServiceError

log = logging.getLogger(__name__)

WINDOW_SECONDS = 3600


class RateLimited(ServiceError):
    status = 429
    code = "RATE_LIMITED"


@dataclass
class Verdict:
    limit: int
    remaining: int
    reset_in: int


def classify(method: str, path: str) -> str:
    """REST: search routes are "search", reads "read", everything else "write"."""
    if path.rstrip("/").endswith("/search"):
        return "search"
    return "read" if method in ("GET", "HEAD", "OPTIONS") else "write"


async def check(bk: Backends, *, user_id: str, kind: str) -> Verdict | None:
    """Count one request of `kind` for the user; raises RateLimited past the limit."""
    limit = getattr(bk.settings, f"rate_limit_{kind}")
    if limit <= 0:
        return None
    now = int(time.time())
    window = now - now % WINDOW_SECONDS
    key = f"ikl:rl:{kind}:{user_id}:{window}"
    try:
        async with bk.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS + 60)
            count, _ = await pipe.execute()
    except Exception as exc:  # noqa: BLE001 - fail open
        log.warning("rate limiter unavailable; request allowed", extra={"error": str(exc)[:200]})
        return None
    verdict = Verdict(limit=limit, remaining=max(limit - count, 0), reset_in=window + WINDOW_SECONDS - now)
    if count > limit:
        raise RateLimited(f"Rate limit exceeded: {limit} {kind} requests per hour",
                          {"kind": kind, "limit": limit, "retry_after_seconds": verdict.reset_in})
    return verdict
