"""The connections one process holds: MongoDB, OpenSearch and the job queue.

A client belongs to one event loop, so the API process and each worker process build their own
`Backends` with `connect()` and release them with `close()`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

import pymongo
import redis.asyncio as redis
from opensearchpy import AsyncOpenSearch
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from app import jobs
from app.settings import Settings

log = logging.getLogger(__name__)
CLOSE_SECONDS = 10.0  # each client's close, at most

T = TypeVar("T")


class Database(AsyncDatabase):
    """The service's database: its collections made once, not on every `db.incidents` or `db["incidents"]` (the
    driver builds a new collection object each time: a few µs on every request's every read)."""

    KEPT_MAX = 1_000  # collection names come from the code; a bound all the same

    def __init__(self, client: AsyncMongoClient, name: str) -> None:
        super().__init__(client, name)
        self._kept: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        found = self._kept.get(name)
        if found is None:
            if len(self._kept) >= self.KEPT_MAX:
                self._kept.clear()
            found = self._kept[name] = super().__getitem__(name)
        return found


@dataclass
class Backends:
    settings: Settings
    client: AsyncMongoClient
    mongo: AsyncDatabase
    search: AsyncOpenSearch
    redis: redis.Redis  # the Redis-protocol server behind the broker; also holds rate-limit counters
    db_timeout: float = 2.5  # seconds: the deadline of one MongoDB operation, or of one whole transaction

    def index_alias(self, name: str) -> str:
        return f"{self.settings.index_prefix}-{name}"

    async def transaction(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """Run `op(session)` in one MongoDB transaction (retried by the driver on transient errors), all of
        it within one database deadline: the driver would otherwise retry a transaction for up to 120 s."""
        with pymongo.timeout(self.db_timeout):
            async with self.client.start_session() as session:
                return await session.with_transaction(op)

    async def enqueue(self, actor_name: str, *args: Any) -> None:
        """Send a job to the workers by actor name (app/jobs.py). What it is asked to do is already recorded
        in MongoDB (an outbox entry, a PENDING job), so a broker that is down only delays it until a sweep."""
        await jobs.send(self.settings, actor_name, *args)

    async def notify_index(self, index: str, doc_id: str) -> None:
        """Ask a worker to sync one document now (its outbox entry is already written)."""
        await self.enqueue("sync_document", index, doc_id)

    async def close(self) -> None:
        """Close the three clients, each given at most CLOSE_SECONDS: a process's stop must not hang on one. PyMongo's
        async close can wait for ever — CI saw it once after a frozen MongoDB woke up, a server monitor waiting for
        the topology's lock that the close held."""
        for name, closing in (("search", self.search.close), ("broker", self.redis.aclose),
                              ("mongodb", self.client.close)):
            try:
                await asyncio.wait_for(closing(), CLOSE_SECONDS)
            except TimeoutError:
                log.warning("closing a client timed out; left to the process's exit",
                            extra={"client": name, "seconds": CLOSE_SECONDS})


API_APP, JOBS_APP = "ikl-api", "ikl-jobs"  # MongoDB app names of the two kinds of connection


def connect(settings: Settings, *, jobs: bool = False) -> Backends:
    """The connections of the API (`jobs=False`) or of a worker or command (`jobs=True`: a longer database
    deadline, for aggregations over whole collections)."""
    # A server that is down or frozen fails each operation within one deadline (`timeoutMS`): server
    # selection, connecting, the reply and the driver's retries all share it, and a request's own
    # deadline is longer (see observability), so the caller gets DATABASE_UNAVAILABLE, not a timeout.
    ms = settings.mongodb_job_timeout_ms if jobs else settings.mongodb_timeout_ms
    # the app name tells a request's operations from a job's in MongoDB's currentOp, logs and profiler
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url, tz_aware=True, uuidRepresentation="standard",
                                                 timeoutMS=ms, serverSelectionTimeoutMS=ms,
                                                 appname=JOBS_APP if jobs else API_APP)
    http_auth = None
    if settings.opensearch_password is not None:
        http_auth = ("admin", settings.opensearch_password.get_secret_value())
    search = AsyncOpenSearch(hosts=[settings.opensearch_url], http_auth=http_auth,
                             timeout=settings.search_timeout_seconds, max_retries=1, retry_on_timeout=False)
    kv = redis.from_url(settings.broker_url, socket_connect_timeout=settings.broker_timeout_seconds,
                        socket_timeout=settings.broker_timeout_seconds)
    return Backends(settings=settings, client=client, mongo=Database(client, settings.mongodb_db), search=search,
                    redis=kv, db_timeout=ms / 1000)
