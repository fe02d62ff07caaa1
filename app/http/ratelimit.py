"""Per-user rate limits, as documented: reads 1000/h, writes 100/h, searches 500/h.

Counters are fixed one-hour windows in the Redis-protocol server (Valkey), so every API process
shares them. A process reserves requests in small blocks (`INCRBY`, a hundredth of the limit) and
spends them locally, so most requests cost no round trip; a user can therefore get at most one
block minus one request more per API process than the limit (none for the write limit of 100).
If that server is down, requests are let through (and logged): availability of the API matters
more than the exactness of a limit.
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


# key -> [requests left in this process's block, shared count at the end of the block]
_blocks: dict[str, list[int]] = {}
_blocks_window = 0


async def check(bk: Backends, *, user_id: str, kind: str) -> Verdict | None:
    """Count one request of `kind` for the user; raises RateLimited past the limit."""
    global _blocks_window
    limit = getattr(bk.settings, f"rate_limit_{kind}")
    if limit <= 0:
        return None
    now = int(time.time())
    window = now - now % WINDOW_SECONDS
    if window != _blocks_window:
        _blocks.clear()
        _blocks_window = window
    key = f"ikl:rl:{kind}:{user_id}:{window}"
    reset_in = window + WINDOW_SECONDS - now
    block = _blocks.get(key)
    if block is None or block[0] <= 0:
        size = max(1, limit // 100)
        try:
            async with bk.redis.pipeline(transaction=False) as pipe:
                pipe.incrby(key, size)
                pipe.expire(key, WINDOW_SECONDS + 60)
                end, _ = await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - fail open
            log.warning("rate limiter unavailable; request allowed", extra={"error": str(exc)[:200]})
            return None
        granted = max(0, min(size, limit - (end - size)))
        block = _blocks[key] = [granted, end - size + granted]
        if granted == 0:
            raise RateLimited(f"Rate limit exceeded: {limit} {kind} requests per hour",
                              {"kind": kind, "limit": limit, "retry_after_seconds": reset_in})
    block[0] -= 1
    return Verdict(limit=limit, remaining=max(limit - (block[1] - block[0]), 0), reset_in=reset_in)
