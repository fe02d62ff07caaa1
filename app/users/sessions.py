"""Server-side sessions (session sign-in, Django's conventions): revocable, stored in MongoDB.

A session is a random key given to the browser in the `sessionid` cookie (HttpOnly); only its SHA-256 is
stored, in `sessions`: the user, when it was created and last seen, when it expires (a TTL index removes it
then; a lookup refuses it from that moment), the address and user agent that signed in, and the SHA-256 of
the session's CSRF token (the readable `csrftoken` cookie: an unsafe request must echo it in `X-CSRFToken`).
Ending a session deletes it; a password change ends every other session of the user, a deactivated user's
sessions stop working at once (the lookup asks for an active user).

A valid session is cached in-process for AUTH_CACHE_SECONDS like a token (so `last_seen` is written at most
that often per process); ending one drops it from this process's cache at once, other processes within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from app.backends import Backends
from app.users.models import User
from app.users.service import Credential, _to_user

COOKIE = "sessionid"
CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "X-CSRFToken"
CACHE_SECONDS = 10.0
_CACHE_MAX = 10_000


@dataclass(frozen=True)
class Session:
    user: User
    digest: str      # the stored id: SHA-256 of the key
    csrf_hash: str   # SHA-256 of the session's CSRF token

    def csrf_matches(self, token: str | None) -> bool:
        """Whether `token` is this session's CSRF token (constant time)."""
        return bool(token) and hmac.compare_digest(_digest(token or ""), self.csrf_hash)


# session digest -> (session, expires at (monotonic))
_CACHE: dict[str, tuple[Session, float]] = {}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def create(bk: Backends, *, user: User, address: str | None = None,
                 user_agent: str | None = None) -> tuple[str, str]:
    """A new session of the user: (its key, its CSRF token), both shown only to the browser."""
    key, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = _now()
    await bk.mongo.sessions.insert_one({
        "_id": _digest(key), "user_id": user.id, "csrf_hash": _digest(csrf), "created_at": now, "last_seen": now,
        "expires_at": now + timedelta(seconds=bk.settings.session_lifetime_seconds),
        "address": address, "user_agent": (user_agent or "")[:300]})
    return key, csrf


KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def well_formed(key: str) -> bool:
    """Whether `key` could be a session key at all (anything else is refused without a lookup)."""
    return KEY_PATTERN.fullmatch(key) is not None


def cached(key: str) -> Session | None:
    hit = _CACHE.get(_digest(key))
    return hit[0] if hit is not None and hit[1] > time.monotonic() else None


async def lookup(bk: Backends, *, key: str, fresh: bool = False) -> Session | None:
    """The open session with this key, of an active user, or None. `fresh`: ask the database, not the cache."""
    digest = _digest(key)
    if not fresh and (hit := cached(key)) is not None:
        return hit
    now = _now()
    doc = await bk.mongo.sessions.find_one({"_id": digest, "expires_at": {"$gt": now}})
    user_doc = None if doc is None else await bk.mongo.users.find_one({"_id": doc["user_id"], "is_active": True})
    if user_doc is None:
        _CACHE.pop(digest, None)
        return None
    session = Session(user=_to_user(user_doc), digest=digest, csrf_hash=doc["csrf_hash"])
    if (now - _aware(doc.get("last_seen") or now)).total_seconds() >= CACHE_SECONDS:
        await bk.mongo.sessions.update_one({"_id": digest}, {"$set": {"last_seen": now}})
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[digest] = (session, time.monotonic() + CACHE_SECONDS)
    return session


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


async def end(bk: Backends, *, key: str) -> bool:
    """End one session (sign-out); whether there was one."""
    digest = _digest(key)
    _CACHE.pop(digest, None)
    return (await bk.mongo.sessions.delete_one({"_id": digest})).deleted_count == 1


async def end_all(bk: Backends, *, user_id: str, keep: str | None = None) -> int:
    """End every session of the user but the one whose key is `keep` (a password change, a deactivation);
    how many ended."""
    query: dict = {"user_id": user_id}
    if keep:
        query["_id"] = {"$ne": _digest(keep)}
    forget_user(user_id, keep=_digest(keep) if keep else None)
    return (await bk.mongo.sessions.delete_many(query)).deleted_count


def forget_user(user_id: str, *, keep: str | None = None) -> None:
    """Drop this process's cached sessions of a user (but the one whose digest is `keep`)."""
    for digest in [d for d, (s, _) in _CACHE.items() if s.user.id == user_id and d != keep]:
        _CACHE.pop(digest, None)


def credential(key: str) -> Credential:
    """What a long-lived response re-checks for a request signed in with this session (app/live.py)."""
    async def recheck(bk: Backends) -> User | None:
        found = await lookup(bk, key=key, fresh=True)
        return found.user if found is not None else None

    return Credential("session", recheck)
