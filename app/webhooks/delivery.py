"""Sending webhook deliveries: the workers' side (docs/domains/webhooks.md).

Deliveries are written by app/webhooks/events.py in the transaction of their event, `active` and due. Every
worker process runs the `webhook deliveries` periodic job in a lane of its own (so a slow receiver never
delays index syncs): it leases due deliveries (`leased_until`, a lease token: a worker that dies mid-send
leaves its delivery to another once the lease runs out — delivery is at least once, receivers dedupe by
`delivery_id`), sends them side by side, and records every attempt on the delivery.

Before sending, a delivery is **skipped** (recorded, not sent) when its webhook is gone or inactive, when the
admin who registered the webhook is no longer an active admin, or when the subject is classified above that
admin's clearance now (the most secret of the classification it had when the event happened and the one its
document has now). Otherwise the target is checked and resolved again (app/webhooks/targets.py), and the body
is POSTed to those addresses only, signed `X-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`, within
`IKL_WEBHOOK_TIMEOUT_SECONDS`, never following a redirect. A 2xx answer delivers it; anything else is a
failed attempt, tried again after `IKL_WEBHOOK_FIRST_RETRY_SECONDS`, doubling up to
`IKL_WEBHOOK_MAX_BACKOFF_SECONDS`, until `IKL_WEBHOOK_MAX_ATTEMPTS`; then it is `failed` (an admin may
redeliver it). Finished deliveries are removed `IKL_WEBHOOK_DELIVERY_RETENTION_DAYS` later (a TTL index).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

import httpx

from app import leases, periodic
from app.backends import Backends
from app.settings import Settings
from app.timefmt import utcnow
from app.users.models import Classification, Role
from app.webhooks import targets
from app.webhooks.events import DELIVERIES, WEBHOOKS, DeliveryStatus

log = logging.getLogger(__name__)

LANE = "webhooks"
BATCH = 20            # deliveries leased and sent side by side
BATCHES_PER_RUN = 10  # then the lane waits for its next run
ATTEMPTS_KEPT = 50    # attempts recorded on one delivery (the oldest dropped past it)
USER_AGENT = "incident-knowledge-webhooks/1"
S = DeliveryStatus


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, body)>`, the X-Signature-256 header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(settings: Settings, failures: int) -> float:
    """Seconds before the next attempt after `failures` failed ones: the first retry, doubling, capped."""
    return min(settings.webhook_first_retry_seconds * 2 ** max(failures - 1, 0), settings.webhook_max_backoff_seconds)


def lease_seconds(settings: Settings) -> float:
    return 2 * settings.webhook_timeout_seconds + 10


@dataclass
class Outcome:
    response_code: int | None
    duration_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.response_code is not None and 200 <= self.response_code < 300


async def post(url: str, body: bytes, headers: Mapping[str, str], settings: Settings) -> Outcome:
    """POST `body` to the webhook URL: its host resolved and checked once, the connection made to those addresses
    (Host header and, for https, TLS SNI and the certificate check for the URL's host), no redirect followed,
    no proxy from the environment, no pooled connection shared with another target, all within the timeout."""
    started = time.monotonic()

    def took() -> int:
        return round((time.monotonic() - started) * 1000)

    timeout = settings.webhook_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            target = await targets.resolve(url, settings)
            sni = {"sni_hostname": target.host} if target.scheme == "https" else None  # TLS: the URL's host
            for n, ip in enumerate(target.ips):  # the next address only when this one cannot be reached
                try:
                    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False,
                                                 trust_env=False) as c:
                        request = c.build_request("POST", target.pinned_url(ip), content=body,
                                                  headers={**headers, "Host": target.host_header}, extensions=sni)
                        response = await c.send(request, stream=True)
                        await response.aclose()  # the answer's body is never read
                    break
                except httpx.ConnectError:
                    if n == len(target.ips) - 1:
                        raise
    except targets.TargetRefused as exc:
        return Outcome(None, took(), f"refused: {exc}")
    except TimeoutError:
        return Outcome(None, took(), f"timed out after {timeout:g} s")
    except (httpx.HTTPError, OSError) as exc:
        return Outcome(None, took(), f"{type(exc).__name__}: {str(exc)[:300] or 'connection failed'}")
    code = response.status_code
    error = None if 200 <= code < 300 else (
        f"redirect (HTTP {code}) not followed" if 300 <= code < 400 else f"HTTP {code}")
    return Outcome(code, took(), error)


async def skip_reason(bk: Backends, hook: Mapping[str, Any] | None, delivery: Mapping[str, Any]) -> str | None:
    """Why the delivery must not be sent now (None: send it)."""
    if hook is None:
        return "the webhook was deleted"
    if not hook.get("active", True):
        return "the webhook is inactive"
    owner = await bk.mongo.users.find_one({"_id": hook.get("created_by")},
                                          {"username": 1, "role": 1, "clearance": 1, "is_active": 1})
    if owner is None or owner.get("is_active") is False:
        return "the admin who registered the webhook no longer exists or is deactivated"
    if owner.get("role") != Role.ADMIN.value:
        return f"the user who registered the webhook ({owner.get('username')}) is no longer an admin"
    level = Classification(delivery.get("data_classification") or "INTERNAL")
    source = delivery.get("source")
    if source:
        now = await bk.mongo[source["collection"]].find_one({"_id": source["id"]}, {"data_classification": 1})
        if now is not None and Classification(now.get("data_classification") or "INTERNAL").rank > level.rank:
            level = Classification(now["data_classification"])
    clearance = Classification(owner.get("clearance") or "INTERNAL")
    if level.rank > clearance.rank:
        return (f"the subject is classified {level.value}, above the clearance {clearance.value} of the admin who "
                f"registered the webhook ({owner.get('username')})")
    return None


# deliveries as leased jobs (app/leases.py): `active` until delivered, skipped or failed; claiming leaves the
# status (queued or retrying) as it is
JOBS = leases.Jobs(DELIVERIES, running=None, lease_seconds=lease_seconds, what="webhook delivery")


async def claim(bk: Backends) -> dict | None:
    """Lease one due delivery (the earliest due first)."""
    now = utcnow()
    return await JOBS.claim(bk, {"active": True, "next_attempt_at": {"$lte": now}, **JOBS.claimable(now)},
                            sort=[("next_attempt_at", 1)])


async def deliver(bk: Backends, delivery: Mapping[str, Any]) -> str:
    """Send (or skip) one leased delivery and record the attempt; returns its new status."""
    settings = bk.settings
    hook = await bk.mongo[WEBHOOKS].find_one({"_id": delivery["webhook_id"]})
    started = utcnow()
    tries = delivery.get("tries", 0) + 1
    if (reason := await skip_reason(bk, hook, delivery)) is not None:
        status, outcome = S.SKIPPED, Outcome(None, 0, reason)
    else:
        body = body_bytes(delivery["payload"])
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                   "X-Delivery-Id": delivery["_id"], "X-Event": delivery["event"],
                   "X-Signature-256": signature(hook["secret"], body)}
        outcome = await post(hook["url"], body, headers, settings)
        status = S.DELIVERED if outcome.ok else S.RETRYING if tries < settings.webhook_max_attempts else S.FAILED
    now = utcnow()
    attempt = {"attempt": delivery.get("attempt_count", 0) + 1, "at": started,
               "status": S.FAILED.value if status == S.RETRYING else status.value,
               "response_code": outcome.response_code, "duration_ms": outcome.duration_ms, "error": outcome.error,
               "url": hook["url"] if hook else None}
    update: dict[str, Any] = {"$push": {"attempts": {"$each": [attempt], "$slice": -ATTEMPTS_KEPT}},
                              "$inc": {"attempt_count": 1}}
    if status == S.RETRYING:
        update["$set"] = {"tries": tries, "next_attempt_at": now + timedelta(seconds=backoff(settings, tries))}
    else:
        update["$set"] = {"tries": tries, "finished_at": now, "next_attempt_at": None,
                          "expires_at": now + timedelta(days=settings.webhook_delivery_retention_days)}
        update["$unset"] = {"active": ""}
    if not await JOBS.release(bk, delivery, status=status.value, update=update):
        # the lease ran out and another worker took it over: its record stands
        log.warning("webhook delivery lease lost", extra={"delivery": delivery["_id"]})
    return status.value


@periodic.every(lambda s: s.webhook_sweep_seconds, name="webhook deliveries", lane=LANE)
async def sweep(bk: Backends) -> int:
    """Send the due deliveries, BATCH at a time side by side; returns how many were handled."""
    handled = 0
    for _ in range(BATCHES_PER_RUN):
        leased: list[dict] = []
        while len(leased) < BATCH and (d := await claim(bk)) is not None:
            leased.append(d)
        results = await asyncio.gather(*(deliver(bk, d) for d in leased), return_exceptions=True)
        for d, result in zip(leased, results):
            if isinstance(result, BaseException):  # its lease runs out and it is tried again
                log.warning("webhook delivery failed to run", extra={"delivery": d["_id"], "error": str(result)[:300]})
        handled += len(leased)
        if len(leased) < BATCH:
            break
    return handled
