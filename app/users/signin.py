"""Password sign-in (sessions), sign-out and passwords: the rules, whatever calls them (REST, `ikl`).

- Only an active person with a password signs in with one: an unknown username, a wrong password, a
  deactivated user, a service account and a user created by SSO are all refused alike (401
  `INVALID_CREDENTIALS`, the same message, a password hash checked every time so the time taken says nothing).
- Failed attempts are counted per username and per client address in fixed windows shared through Valkey
  (`login_failures_per_username`, `login_failures_per_address` per `login_failure_window_seconds`); past
  either, 429 `RATE_LIMITED` with `Retry-After` before any lookup. A success clears the username's count.
  If Valkey is down the counts are kept in this process.
- Every sign-in and every refused one is audit-logged (`auth.login`, `auth.login_failed` with the reason);
  refusals for the rate limit are logged, not audited (a flood would otherwise write one entry per request).
- Setting a password (`ikl set_password`, or its owner with the old one) ends every other session of the user.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from app.activity.service import record_audit
from app.backends import Backends
from app.errors import Conflict, NotAuthenticated, ValidationFailed
from app.http import ratelimit
from app.users import passwords, sessions
from app.users.models import User
from app.users.service import _to_user, forget_user

log = logging.getLogger(__name__)

INVALID = "Invalid username or password."
# key -> (window, count): failures counted here while Valkey cannot be reached
_local: dict[str, tuple[int, int]] = {}


def _window(bk: Backends) -> tuple[int, int]:
    """(the current window's start, seconds until it ends)."""
    size = max(bk.settings.login_failure_window_seconds, 1)
    now = int(time.time())
    start = now - now % size
    return start, start + size - now


def _counters(bk: Backends, username: str, address: str) -> list[tuple[str, int]]:
    start, _ = _window(bk)
    settings = bk.settings
    return [(f"ikl:loginfail:user:{username}:{start}", settings.login_failures_per_username),
            (f"ikl:loginfail:addr:{address}:{start}", settings.login_failures_per_address)]


async def check_limits(bk: Backends, *, username: str, address: str) -> None:
    """429 when the username or the address has failed too often in this window."""
    counters = _counters(bk, username, address)
    start, retry = _window(bk)
    try:
        counts = [int(c or 0) for c in await bk.redis.mget([key for key, _ in counters])]
    except Exception as exc:  # noqa: BLE001 - this process's own counts
        log.warning("login limiter unavailable; local counts used", extra={"error": str(exc)[:200]})
        counts = [_local.get(key, (start, 0))[1] for key, _ in counters]
    for (key, limit), count in zip(counters, counts):
        if 0 < limit <= count:
            log.warning("sign-in refused: too many failures", extra={"counter": key.split(":")[2]})
            raise ratelimit.RateLimited("Too many failed sign-in attempts; try again later",
                                        {"kind": "login", "retry_after_seconds": retry},
                                        verdict=ratelimit.Verdict(limit=limit, remaining=0, reset_in=retry))


async def _count_failure(bk: Backends, *, username: str, address: str) -> None:
    counters = _counters(bk, username, address)
    start, retry = _window(bk)
    try:
        async with bk.redis.pipeline(transaction=False) as pipe:
            for key, _ in counters:
                pipe.incr(key)
                pipe.expire(key, retry + 5)
            await pipe.execute()
    except Exception as exc:  # noqa: BLE001
        log.warning("login limiter unavailable; failure counted locally", extra={"error": str(exc)[:200]})
        if len(_local) > 50_000:
            _local.clear()
        for key, _ in counters:
            _local[key] = (start, _local.get(key, (start, 0))[1] + 1)


async def _clear_username(bk: Backends, username: str) -> None:
    key = _counters(bk, username, "-")[0][0]
    _local.pop(key, None)
    try:
        await bk.redis.delete(key)
    except Exception:  # noqa: BLE001 - the count ends with its window anyway
        pass


def _refusal(doc: dict | None, matches: bool) -> str | None:
    """Why a password sign-in is refused (None: it is not)."""
    if doc is None:
        return "unknown_user"
    if not doc.get("password_hash"):
        return "no_password"
    if not matches:
        return "wrong_password"
    if not doc.get("is_active", True):
        return "inactive"
    if doc.get("service_account"):
        return "service_account"
    if doc.get("sso_provider"):
        return "sso_user"
    return None


async def login(bk: Backends, *, username: str, password: str, address: str,
                user_agent: str = "") -> tuple[User, str, str]:
    """Sign in with a password: (the user, the new session's key, its CSRF token). Raises NotAuthenticated
    (any refusal, one message) or RateLimited."""
    await check_limits(bk, username=username, address=address)
    doc = await bk.mongo.users.find_one({"username": username})
    stored = doc.get("password_hash") if doc is not None else None
    matches = await passwords.verify_password(stored, password)
    if (reason := _refusal(doc, matches)) is not None:
        await _count_failure(bk, username=username, address=address)
        who = _to_user(doc) if doc is not None else None
        await record_audit(bk, action="auth.login_failed", user=who, subject_type="user",
                           subject_id=who.id if who is not None else None, username=username,
                           auth_method="session", changes={"reason": reason})
        raise NotAuthenticated(INVALID, code="INVALID_CREDENTIALS")
    assert doc is not None and stored is not None
    if passwords.needs_rehash(stored):
        await bk.mongo.users.update_one({"_id": doc["_id"]}, {"$set": {
            "password_hash": await passwords.hash_password(password)}})
    await _clear_username(bk, username)
    user = _to_user(doc)
    await record_audit(bk, action="auth.login", user=user, subject_type="user", subject_id=user.id,
                       auth_method="session")
    key, csrf = await sessions.create(bk, user=user, address=address, user_agent=user_agent)
    return user, key, csrf


async def logout(bk: Backends, *, key: str, user: User) -> bool:
    """End the session with this key (audit-logged when it was one); whether there was one."""
    ended = await sessions.end(bk, key=key)
    if ended:
        await record_audit(bk, action="auth.logout", user=user, subject_type="user", subject_id=user.id,
                           auth_method="session")
    return ended


async def set_password(bk: Backends, *, user: User, password: str, keep_session: str | None = None,
                       actor: User | None = None) -> int:
    """Set the user's password and end every session of the user but `keep_session` (the one that asked);
    how many sessions ended. Service accounts and SSO users have no password (409)."""
    if user.service_account or user.sso_provider:
        kind = "a service account" if user.service_account else f"signed in by SSO ({user.sso_provider})"
        raise Conflict(f"User '{user.username}' is {kind} and does not sign in with a password",
                       code="PASSWORD_NOT_ALLOWED")
    passwords.check_strength(password)
    digest = await passwords.hash_password(password)
    await bk.mongo.users.update_one({"_id": user.id}, {"$set": {
        "password_hash": digest, "password_changed_at": datetime.now(timezone.utc)}})
    ended = await sessions.end_all(bk, user_id=user.id, keep=keep_session)
    await record_audit(bk, action="auth.password_set", user=actor or user, subject_type="user", subject_id=user.id,
                       changes={"sessions_ended": ended})
    return ended


async def change_password(bk: Backends, *, user: User, old_password: str, new_password: str, address: str,
                          keep_session: str | None) -> int:
    """The user changes their own password, giving the current one (limited and audited like a sign-in)."""
    await check_limits(bk, username=user.username, address=address)
    doc = await bk.mongo.users.find_one({"_id": user.id})
    stored = doc.get("password_hash") if doc is not None else None
    if not await passwords.verify_password(stored, old_password):
        await _count_failure(bk, username=user.username, address=address)
        await record_audit(bk, action="auth.password_change_failed", user=user, subject_type="user",
                           subject_id=user.id)
        raise ValidationFailed("The current password is not correct", {"field": "old_password"},
                               code="INVALID_PASSWORD")
    return await set_password(bk, user=user, password=new_password, keep_session=keep_session)


def forget_cached(user_id: str) -> None:
    """Drop this process's cached credentials of a user (tokens, SSO tokens, sessions): its next request is
    checked against the database (a changed role or clearance, a revoked token)."""
    forget_user(user_id)
    sessions.forget_user(user_id)


async def sign_out_everywhere(bk: Backends, *, user_id: str) -> int:
    """End every session of the user and drop their cached credentials in this process (a deactivation:
    tokens and SSO tokens are refused by the database check once out of the caches); how many sessions ended."""
    forget_user(user_id)
    return await sessions.end_all(bk, user_id=user_id)
