"""Users and API tokens. Tokens are random 40-hex keys; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Awaitable, Callable

from pymongo.errors import DuplicateKeyError

from app.backends import Backends
from app.errors import Conflict, NotFound
from app.users.models import Classification, Role, User, UserCreate


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _to_user(doc: dict) -> User:
    return User(id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


async def create_user(bk: Backends, *, data: UserCreate) -> User:
    """Create a user; the username is unique."""
    doc = {"_id": str(uuid.uuid4()), **data.model_dump(mode="json"), "is_active": True,
           "created_at": datetime.now(timezone.utc)}
    try:
        await bk.mongo.users.insert_one(doc)
    except DuplicateKeyError:
        raise Conflict(f"User '{data.username}' already exists", code="USER_EXISTS") from None
    return _to_user(doc)


async def get_user_by_username(bk: Backends, *, username: str) -> User:
    doc = await bk.mongo.users.find_one({"username": username})
    if doc is None:
        raise NotFound(f"User '{username}' not found")
    return _to_user(doc)


async def ensure_user(bk: Backends, *, data: UserCreate) -> User:
    """Return the user with this username, creating it when missing (idempotent seeding)."""
    doc = await bk.mongo.users.find_one({"username": data.username})
    return _to_user(doc) if doc else await create_user(bk, data=data)


class Bot(str, Enum):
    """The service's own accounts, one per kind of work nobody asked for in person (the one place they are
    named): automatic postmortem drafts, recommendation refreshes, scheduled pattern mining."""

    POSTMORTEMS = "postmortem-bot"
    RECOMMENDATIONS = "recommendation-bot"
    PATTERNS = "pattern-miner"


async def ids_of(bk: Backends, refs) -> dict[str, str]:
    """User ids by what names them in a request: an id or a username (unknown ones left out)."""
    wanted = sorted({r for r in refs if isinstance(r, str) and r})
    if not wanted:
        return {}
    found: dict[str, str] = {}
    async for d in bk.mongo.users.find({"$or": [{"_id": {"$in": wanted}}, {"username": {"$in": wanted}}]},
                                       {"username": 1}):
        found[d["_id"]] = d["_id"]
        found.setdefault(d["username"], d["_id"])
    return {r: found[r] for r in wanted if r in found}


async def service_account_names(bk: Backends, usernames) -> set[str]:
    """Which of these usernames belong to service accounts (bots, importers): never owners of work."""
    names = sorted({u for u in usernames if isinstance(u, str) and u})
    if not names:
        return set()
    return set(await bk.mongo.users.distinct("username", {"username": {"$in": names}, "service_account": True}))


async def bot(bk: Backends, which: Bot) -> User:
    """The service account `which` works as (created on first use)."""
    return await service_account(bk, username=which.value)


async def service_account(bk: Backends, *, username: str) -> User:
    """The user the service acts as for work nobody asked for in person (bots): an admin who sees
    everything; what it writes is classified by what it was built from."""
    user = await ensure_user(bk, data=UserCreate(username=username, role=Role.ADMIN,
                                                 clearance=Classification.RESTRICTED, service_account=True))
    if not user.service_account:  # created before the flag existed
        await bk.mongo.users.update_one({"_id": user.id}, {"$set": {"service_account": True}})
        user = user.model_copy(update={"service_account": True})
    return user


async def issue_token(bk: Backends, *, user: User, name: str = "default") -> str:
    """Create a new token for the user and return its key; the key is shown only once."""
    key = secrets.token_hex(20)
    await bk.mongo.tokens.insert_one({"_id": str(uuid.uuid4()), "key_hash": _hash(key), "user_id": user.id,
                                      "name": name, "created_at": datetime.now(timezone.utc)})
    return key


# token hash -> (user, expires at): a valid token costs no MongoDB round trip for a few seconds;
# a revoked token or deactivated user stops working within AUTH_CACHE_SECONDS. SSO bearer tokens are
# cached here too (app/users/oidc.py), by their hash, never past their `exp`.
AUTH_CACHE_SECONDS = 10.0
_AUTH_CACHE: dict[str, tuple[User, float]] = {}
_AUTH_CACHE_MAX = 10_000
# Bumped by every `forget_user`: a lookup that read the database before a deactivation and ends after it must not
# cache what it read, or the deactivated user would be let in here for AUTH_CACHE_SECONDS more
_forgotten = 0


@dataclass(frozen=True)
class Credential:
    """What a request signed in with when it was not a token key (app/http/auth.py): a session or an SSO
    bearer token. `recheck(bk)` asks the database whether it still holds: the user it names, or None."""

    method: str
    recheck: Callable[[Backends], Awaitable[User | None]]


# The credential the current HTTP request was authenticated with (set by app/http/auth.py while the request
# runs): a token key, or a Credential. A response that outlives the request's first moments (an SSE stream,
# app/live.py) re-checks it with `authenticate(key=...)`.
request_credential: ContextVar[str | Credential | None] = ContextVar("request_credential", default=None)


def cached_user(*, key: str) -> User | None:
    """The user of a token validated in the last AUTH_CACHE_SECONDS, with no I/O."""
    cached = _AUTH_CACHE.get(_hash(key))
    return cached[0] if cached is not None and cached[1] > time.monotonic() else None


def remember(key: str, user: User, seconds: float = AUTH_CACHE_SECONDS, *, read_at: int) -> None:
    """Cache the user a credential (a token key, an SSO token) names for `seconds` (at most AUTH_CACHE_SECONDS);
    `read_at`: `lookup_started()` before the database was asked — nothing is cached when a user was forgotten
    since."""
    if read_at != _forgotten:
        return
    if len(_AUTH_CACHE) >= _AUTH_CACHE_MAX:
        _AUTH_CACHE.clear()
    _AUTH_CACHE[_hash(key)] = (user, time.monotonic() + min(seconds, AUTH_CACHE_SECONDS))


def forget_user(user_id: str) -> None:
    """Drop this process's cached tokens and SSO tokens of a user (deactivated): at once here, within
    AUTH_CACHE_SECONDS in other processes (sessions: app/users/sessions.py `end_all`)."""
    global _forgotten
    _forgotten += 1
    for digest in [d for d, (user, _) in _AUTH_CACHE.items() if user.id == user_id]:
        _AUTH_CACHE.pop(digest, None)


def lookup_started() -> int:
    """What a credential lookup passes to `remember` as `read_at`, taken before it asks the database."""
    return _forgotten


async def authenticate(bk: Backends, *, key: str | Credential, fresh: bool = False) -> User | None:
    """The active user owning this token (or Credential), or None. `fresh`: ask the database, not the cache
    (a long-lived connection re-checks its credentials this way); a token found invalid leaves the cache too."""
    if isinstance(key, Credential):
        return await key.recheck(bk)
    digest = _hash(key)
    if not fresh and (user := cached_user(key=key)) is not None:
        return user
    read_at = lookup_started()
    token = await bk.mongo.tokens.find_one({"key_hash": digest}, {"user_id": 1})
    doc = None if token is None else await bk.mongo.users.find_one({"_id": token["user_id"], "is_active": True})
    if doc is None:
        _AUTH_CACHE.pop(digest, None)
        return None
    user = _to_user(doc)
    remember(key, user, read_at=read_at)
    return user


async def users_by_ids(bk: Backends, *, ids: list[str]) -> dict[str, User]:
    """Users keyed by id, one query for the whole list."""
    docs = await bk.mongo.users.find({"_id": {"$in": list(set(ids))}}).to_list(None)
    return {d["_id"]: _to_user(d) for d in docs}


def username(people: dict[str, User], user_id: str | None) -> str | None:
    """The username of `user_id` among users loaded by `users_by_ids` (None: no id, or no such user)."""
    person = people.get(user_id) if user_id else None
    return person.username if person is not None else None


async def users_by_usernames(bk: Backends, *, usernames: list[str]) -> dict[str, User]:
    """Active users keyed by username, one query for the whole list."""
    docs = await bk.mongo.users.find({"username": {"$in": list(set(usernames))}, "is_active": True}).to_list(None)
    return {d["username"]: _to_user(d) for d in docs}
