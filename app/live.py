"""Live updates: a change announced by one process reaches every stream following it, in any process.

A service announces that a document changed with `announce(bk, topic, doc_id)` (Redis pub/sub on the
broker's server; best-effort: a broker that is down loses the announcement, never the write). A stream
follows one document with `follow(...)`: it yields the document's current public form at once, then
again after every announcement, and also re-reads it every `live_keepalive_seconds` (so a lost
announcement delays an update, never loses it), until the document reaches a final state, disappears
from the reader's view, or `live_stream_max_seconds` pass. An announcement carries only the id: each
reader re-reads the document through its own service call, so a stream shows only what that reader may
see. Between changes `follow` yields `None` every keep-alive interval (SSE comments, WebSocket pings).

A stream opened by an HTTP request (SSE) outlives the moment its token was checked, so it re-checks the
token and its user against the database (never the token cache) every `live_recheck_seconds`: a deleted
token or a deactivated user ends it as if the document had left the reader's view. (A GraphQL
subscription is ended by its WebSocket, which re-checks its own credentials: schema/ws.py.)

Each process caps the streams it serves (`live_max_streams`, and `live_max_streams_per_user`), so a
client cannot hold the server's connections open without bound: past the cap, `StreamLimit` (429).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import Counter
from typing import Any, AsyncIterator, Awaitable, Callable

from pymongo.errors import PyMongoError

from app.backends import Backends
from app.errors import ServiceError
from app.users import service as users

log = logging.getLogger(__name__)
PREFIX = "ikl:live:"


class Slots:
    """Per-process counts of long-lived connections (live streams, GraphQL WebSockets) by key, each key
    capped: `take` counts one in when every (key, limit) given is below its limit, `give` counts it out."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter()

    def take(self, *caps: tuple[str, int]) -> bool:
        if any(self.open[key] >= limit for key, limit in caps):
            return False
        for key, _ in caps:
            self.open[key] += 1
        return True

    def give(self, *keys: str) -> None:
        for key in keys:
            self.open[key] -= 1
            if self.open[key] <= 0:
                del self.open[key]


_streams = Slots()  # "*" (all streams) and user ids -> streams open in this process


class StreamLimit(ServiceError):
    status = 429
    code = "TOO_MANY_STREAMS"


def channel(topic: str, doc_id: str) -> str:
    return f"{PREFIX}{topic}:{doc_id}"


async def announce(bk: Backends, topic: str, doc_id: str) -> None:
    try:
        await bk.redis.publish(channel(topic, doc_id), "changed")
    except Exception as exc:  # noqa: BLE001 - followers re-read on their own schedule
        log.warning("live announcement lost", extra={"topic": topic, "error": str(exc)[:200]})


class _Slot:
    """One open stream counted against the caps; released once, whatever happens."""

    def __init__(self, bk: Backends, user_id: str) -> None:
        settings = bk.settings
        if not _streams.take(("*", settings.live_max_streams), (user_id, settings.live_max_streams_per_user)):
            raise StreamLimit("Too many live streams are open; close one and try again",
                              {"max_per_user": settings.live_max_streams_per_user})
        self.user_id: str | None = user_id

    def release(self) -> None:
        if self.user_id is not None:
            _streams.give("*", self.user_id)
            self.user_id = None


def follow(bk: Backends, *, topic: str, doc_id: str, user_id: str,
           read: Callable[[], Awaitable[dict[str, Any] | None]], public: Callable[[dict[str, Any]], Awaitable[Any]],
           finished: Callable[[dict[str, Any]], bool]) -> AsyncIterator[Any]:
    """Yield `public(read())` now and after each change (only when it differs), `None` as a keep-alive,
    until `finished(document)`.

    The caps are checked here, when the stream is asked for — before a response starts — so a refusal
    is a plain 429 (`StreamLimit`). `read()` returns the document as the reader may see it, or None once
    they can no longer see it (the stream then ends); callers check that the document
    exists first, so a missing one is a 404 before any stream starts. The token of the HTTP request asking
    (`users.request_credential`) is re-checked while the stream runs."""
    slot = _Slot(bk, user_id)
    stream = _follow(bk, slot, channel(topic, doc_id), read, public, finished, users.request_credential.get())
    weakref.finalize(stream, slot.release)  # a stream never started still gives its slot back
    return stream


async def _credentials_hold(bk: Backends, key: str) -> bool:
    """Whether the token still names an active user, asked of the database. One that cannot be asked (the
    database out of reach) is given the benefit of the doubt until the next check."""
    try:
        return await users.authenticate(bk, key=key, fresh=True) is not None
    except PyMongoError as exc:
        log.warning("live stream credentials not re-checked", extra={"error": str(exc)[:200]})
        return True


async def _follow(bk: Backends, slot: _Slot, name: str, read, public, finished,
                  key: str | None) -> AsyncIterator[Any]:
    settings = bk.settings
    pubsub = bk.redis.pubsub()
    try:
        try:  # before the first read, so no change slips in between
            await pubsub.subscribe(name)
        except Exception as exc:  # noqa: BLE001 - no broker: follow by re-reading alone
            log.warning("live subscription failed; polling", extra={"error": str(exc)[:200]})
            pubsub = None
        loop = asyncio.get_running_loop()
        end = loop.time() + settings.live_stream_max_seconds
        every = max(settings.live_recheck_seconds, 0.1)
        recheck = loop.time() + every
        last: Any = None
        while True:
            doc = await read()
            if doc is None:
                return
            current = await public(doc)
            if current != last:
                last = current
                yield current
            else:
                yield None
            if finished(doc):
                return
            wake = min(loop.time() + settings.live_keepalive_seconds, end)
            if wake <= loop.time():
                return
            while True:  # until a change is announced or the keep-alive is due; the credentials on the way
                now = loop.time()
                if key is not None and now >= recheck:
                    if not await _credentials_hold(bk, key):
                        return
                    now = loop.time()
                    recheck = now + every
                wait = min(wake, recheck) - now if key is not None else wake - now
                if wait <= 0:
                    if now >= wake:
                        break
                    continue
                if pubsub is None:
                    await asyncio.sleep(wait)
                    continue
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
                except Exception as exc:  # noqa: BLE001 - the broker went away: re-read on the interval
                    log.warning("live subscription lost; polling", extra={"error": str(exc)[:200]})
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                    pubsub = None
                    continue
                if message is not None:
                    break
    finally:
        slot.release()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
