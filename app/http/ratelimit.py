"""Per-user rate limits, as documented: reads 1000/h, writes 100/h, searches 500/h.

Counters are fixed one-hour windows in the Redis-protocol server (Valkey), so every API process
shares them. A process reserves requests in small blocks (`INCRBY`, a hundredth of the limit) and
spends them locally, so most requests cost no round trip. A block is granted only up to what is left
of the limit, so the processes together never grant more than the limit; what a process reserved and
did not spend is lost to the user until the window ends.
If that server is down, requests are let through (and logged): availability of the API matters
more than the exactness of a limit.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass

from prometheus_client import Counter

from app.backends import Backends
from app.errors import ServiceError

log = logging.getLogger(__name__)

WINDOW_SECONDS = 3600
# Every refusal, by the class of the limit: read, write, search (per user), auth (failed authentications per
# address), login (failed sign-ins). Counted in this process: each API process's /metrics has its own.
REFUSALS = Counter("ikl_rate_limit_refusals", "Requests refused (429) by a rate limit, by the limit's class",
                   ["class"])
for _class in ("read", "write", "search", "auth", "login"):  # listed at 0 from the start
    REFUSALS.labels(_class)


class RateLimited(ServiceError):
    """A refusal by a rate limit (429); raised only to refuse, so it is counted when made."""

    status = 429
    code = "RATE_LIMITED"

    def __init__(self, error: str, details: dict, *, verdict: "Verdict"):
        super().__init__(error, details)
        self.verdict = verdict
        REFUSALS.labels(str(details.get("kind") or "unknown")).inc()


@dataclass
class Verdict:
    limit: int
    remaining: int
    reset_in: int


# Paths of the REST search routes (each domain adds its own; an incident named "search" is not one).
SEARCH_PATHS: set[str] = set()


def classify(method: str, path: str) -> str:
    """REST: search routes are "search", reads "read", everything else "write"."""
    if path in SEARCH_PATHS:
        return "search"
    return "read" if method in ("GET", "HEAD", "OPTIONS") else "write"


# key -> [requests left in this process's block, shared count at the end of the block]
_blocks: dict[str, list[int]] = {}
_blocks_window = 0


def _window(now: int) -> int:
    global _blocks_window
    window = now - now % WINDOW_SECONDS
    if window != _blocks_window:
        _blocks.clear()
        _blocks_window = window
    return window


async def check(bk: Backends, *, user_id: str, kind: str, amount: int = 1) -> Verdict | None:
    """Count `amount` requests of `kind` for the user (a GraphQL document counts one per root
    field); raises RateLimited, carrying the verdict, when they would pass the limit."""
    limit = getattr(bk.settings, f"rate_limit_{kind}")
    if limit <= 0 or amount <= 0:
        return None
    now = int(time.time())
    window = _window(now)
    key = f"ikl:rl:{kind}:{user_id}:{window}"
    reset_in = window + WINDOW_SECONDS - now
    block = _blocks.setdefault(key, [0, 0])
    if block[0] < amount:
        size = max(limit // 100, amount - block[0])
        try:
            async with bk.redis.pipeline(transaction=False) as pipe:
                pipe.incrby(key, size)
                pipe.expire(key, WINDOW_SECONDS + 60)
                end, _ = await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - fail open
            log.warning("rate limiter unavailable; request allowed", extra={"error": str(exc)[:200]})
            return None
        granted = max(0, min(size, limit - (end - size)))
        block[0] += granted
        block[1] = end - size + granted
        if block[0] < amount:  # what is left stays reserved here for smaller requests
            verdict = Verdict(limit=limit, remaining=block[0], reset_in=reset_in)
            raise RateLimited(f"Rate limit exceeded: {limit} {kind} requests per hour",
                              {"kind": kind, "limit": limit, "requested": amount, "retry_after_seconds": reset_in},
                              verdict=verdict)
    block[0] -= amount
    return Verdict(limit=limit, remaining=max(limit - (block[1] - block[0]), 0), reset_in=reset_in)


def headers(verdict: Verdict) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(verdict.limit), "X-RateLimit-Remaining": str(verdict.remaining),
            "X-RateLimit-Reset": str(verdict.reset_in)}


def limited_headers(exc: "RateLimited") -> dict[str, str]:
    return {"Retry-After": str(exc.details["retry_after_seconds"]), **headers(exc.verdict)}


AUTH_WINDOW_SECONDS = 60
# address -> (window, failures seen in the shared counter); learnt on each failure this process sees
_auth_failures: dict[str, tuple[int, int]] = {}


def client_key(address: str) -> str:
    """The unit the failed-auth limit counts: the IPv4 address, or the /64 an IPv6 address is in
    (one host usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def auth_blocked(bk: Backends, *, address: str) -> int | None:
    """Seconds until this address may try again, when it has failed authentication too often; no I/O,
    so a flood of bad tokens costs neither a database nor a Valkey round trip once blocked."""
    limit = bk.settings.auth_failures_per_minute
    now = int(time.time())
    window = now - now % AUTH_WINDOW_SECONDS
    seen = _auth_failures.get(address)
    if limit <= 0 or seen is None or seen[0] != window or seen[1] < limit:
        return None
    return window + AUTH_WINDOW_SECONDS - now


async def record_auth_failure(bk: Backends, *, address: str) -> None:
    """Count a failed authentication for the address in a per-minute window shared by all processes."""
    now = int(time.time())
    window = now - now % AUTH_WINDOW_SECONDS
    key = f"ikl:authfail:{address}:{window}"
    seen = _auth_failures.get(address)
    count = seen[1] + 1 if seen is not None and seen[0] == window else 1  # if Valkey cannot count
    try:
        async with bk.redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, AUTH_WINDOW_SECONDS + 5)
            count, _ = await pipe.execute()
    except Exception as exc:  # noqa: BLE001 - counted in this process only
        log.warning("rate limiter unavailable; auth failure counted locally", extra={"error": str(exc)[:200]})
    if len(_auth_failures) > 50_000:
        _auth_failures.clear()
    _auth_failures[address] = (window, int(count))
