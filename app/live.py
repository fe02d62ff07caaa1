"""Live updates: a change announced by one process reaches every stream following it, in any process.

A service announces that a document changed with `announce(bk, topic, doc_id)` (Redis pub/sub on the
broker's server; best-effort: a broker that is down loses the announcement, never the write). A stream
follows one document with `follow(...)`: it yields the document's current public form at once, then
again after every announcement, and also re-reads it every `live_keepalive_seconds` (so a lost
announcement delays an update, never loses it), until the document reaches a final state, disappears
from the reader's view, or `live_stream_max_seconds` pass. An announcement carries only the id: each
reader re-reads the document through its own service call, so a stream shows only what that reader may
see. Between changes `follow` yields `None` every keep-alive interval (SSE comments, WebSocket pings).

Each process caps the streams it serves (`live_max_streams`, and `live_max_streams_per_user`), so a
client cannot hold the server's connections open without bound: past the cap, `StreamLimit` (429).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import Any, AsyncIterator, Awaitable, Callable

from app.backends import Backends
from app.http.ratelimit import RateLimited

log = logging.getLogger(__name__)
PREFIX = "ikl:live:"
_open: Counter[str] = Counter()  # user id -> streams open in this process


class StreamLimit(RateLimited):
    code = "TOO_MANY_STREAMS"


def channel(topic: str, doc_id: str) -> str:
    return f"{PREFIX}{topic}:{doc_id}"


async def announce(bk: Backends, topic: str, doc_id: str) -> None:
    try:
        await bk.redis.publish(channel(topic, doc_id), "changed")
    except Exception as exc:  # noqa: BLE001 - followers re-read on their own schedule
        log.warning("live announcement lost", extra={"topic": topic, "error": str(exc)[:200]})


@contextlib.contextmanager
def _slot(bk: Backends, user_id: str):
    settings = bk.settings
    if sum(_open.values()) >= settings.live_max_streams or _open[user_id] >= settings.live_max_streams_per_user:
        raise StreamLimit("Too many live streams are open; close one and try again",
                          {"max_per_user": settings.live_max_streams_per_user})
    _open[user_id] += 1
    try:
        yield
    finally:
        _open[user_id] -= 1
        if _open[user_id] <= 0:
            del _open[user_id]


async def follow(bk: Backends, *, topic: str, doc_id: str, user_id: str,
                 read: Callable[[], Awaitable[dict[str, Any] | None]],
                 finished: Callable[[dict[str, Any]], bool]) -> AsyncIterator[dict[str, Any] | None]:
    """Yield `read()` now and after each change (only when it differs), `None` as a keep-alive.

    `read()` returns the reader's public form of the document, or None once the reader can no longer
    see it (the stream then ends). The first `read()` happens before this generator is entered by the
    caller's own check, so a missing document is a 404 before any stream starts."""
    settings = bk.settings
    with _slot(bk, user_id):
        pubsub = bk.redis.pubsub()
        try:
            try:  # before the first read, so no change slips in between
                await pubsub.subscribe(channel(topic, doc_id))
            except Exception as exc:  # noqa: BLE001 - no broker: follow by re-reading alone
                log.warning("live subscription failed; polling", extra={"error": str(exc)[:200]})
                pubsub = None
            loop = asyncio.get_running_loop()
            end = loop.time() + settings.live_stream_max_seconds
            last: dict[str, Any] | None = None
            while True:
                current = await read()
                if current is None:
                    return
                if current != last:
                    last = current
                    yield current
                else:
                    yield None
                if finished(current):
                    return
                wait = min(settings.live_keepalive_seconds, end - loop.time())
                if wait <= 0:
                    return
                if pubsub is None:
                    await asyncio.sleep(wait)
                    continue
                try:
                    await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
                except Exception as exc:  # noqa: BLE001 - the broker went away: re-read on the interval
                    log.warning("live subscription lost; polling", extra={"error": str(exc)[:200]})
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                    pubsub = None
        finally:
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
