"""The index outbox: a write accepted by MongoDB always reaches the search index.

A service writes its document and an outbox entry in one MongoDB transaction (`write`). A worker
is then asked to sync that one document; when the broker or the search server is down the entry
simply stays, with the error and a retry time, and the periodic sweep (`drain`) finishes the job.
Entries are keyed by (index, doc_id) and carry a sequence number, so many writes to one document
coalesce into one sync, and an entry is removed only if no newer write arrived meanwhile.

The same outbox carries per-document **jobs** a write sets off (`JOB_KINDS`: `embeddings`, an
incident's vector, recorded with every write to the incidents index (`FOLLOW_UPS`); `recommendations`,
regenerating an incident's recommendations): recorded in the writing transaction, optionally `delay`ed
(a debounce: more writes meanwhile push it back and coalesce), run by workers only (`drain(jobs=True)`;
the API's sweep leaves them), with the same lease, back-off and retry as an index sync. One more job,
`search-rebuild` (its doc id an index's name), rebuilds a search index from MongoDB (`rebuild`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from app import periodic
from app.backends import Backends
from app.leases import Jobs
from indexers import registry
from indexers.base import building, ensure_index, needs_rebuild, write_docs

log = logging.getLogger(__name__)

def _now() -> datetime:
    return datetime.now(timezone.utc)


REBUILD = "search-rebuild"  # a search index rebuilt from MongoDB (`rebuild`)
JOB_KINDS = ("recommendations", "embeddings", "article-embeddings", REBUILD)
# Jobs every write to an index's documents sets off, recorded in the same transaction.
FOLLOW_UPS = {"incidents": ("embeddings",), "articles": ("article-embeddings",)}
# Of those, the ones the write also runs at once, like its index sync (within the same inline timeout): an
# article's vector, so that a search right after the write ranks it by meaning as every later search will
# (before, a search before the job ran gave the meaning's share to the words and another score). A job not
# done in time stays recorded for the workers. Incidents are not waited for: their similarity embeds a
# fresh one on the spot (app/incidents/embeddings.py), and their writes are many.
INLINE_FOLLOW_UPS = {"articles": ("article-embeddings",)}


Handler = Callable[[Backends, list[str]], Awaitable[None]]
_HANDLERS: dict[str, Handler] = {}


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register `handler(bk, doc ids)` as what runs job `kind` (one of JOB_KINDS). Each job's handler is
    registered where it is defined, by the domain that owns the job; a worker runs what its imports
    registered (app/worker.py imports every domain)."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}; known: {JOB_KINDS}")

    def register(handler: Handler) -> Handler:
        _HANDLERS[kind] = handler
        return handler

    return register


async def record(bk: Backends, index: str, doc_id: str, *, session=None, delay: float = 0.0) -> None:
    """Record that `doc_id` must be synced to `index` (or job `index` run for it), `delay` seconds from now."""
    now = _now()
    await bk.mongo.outbox.update_one(
        {"index": index, "doc_id": doc_id},
        {"$set": {"updated_at": now, "next_attempt_at": now + timedelta(seconds=delay)}, "$inc": {"seq": 1},
         "$setOnInsert": {"created_at": now, "attempts": 0}},
        upsert=True, session=session)


async def write(bk: Backends, index: str, doc_id: str,
                operation: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `operation(session)` and record the outbox entry in the same transaction, then ask a
    worker to sync. Returns what `operation` returned."""
    async def txn(s):
        result = await operation(s)
        for kind in (index, *FOLLOW_UPS.get(index, ())):
            await record(bk, kind, doc_id, session=s)
        return result

    result = await bk.transaction(txn)
    inline = (index, *INLINE_FOLLOW_UPS.get(index, ()))
    for kind in (index, *FOLLOW_UPS.get(index, ())):  # what is not done here now, a worker is asked to do
        if kind not in inline or not await _inline(bk, kind, doc_id, jobs=kind in JOB_KINDS):
            await bk.notify_index(kind, doc_id)
    return result


async def _inline(bk: Backends, index: str, doc_id: str, *, jobs: bool = False) -> bool:
    """Sync one document now (or run job `index` for it, with `jobs`), refreshed so that the next search sees
    it (read-your-writes). False when it did not happen in time or failed: its outbox entry stays, and a
    worker or the sweep delivers it."""
    timeout = bk.settings.index_inline_timeout
    if timeout <= 0:
        return False
    try:
        done = await asyncio.wait_for(drain(bk, index=index, doc_id=doc_id, due_only=False, refresh=True,
                                            jobs=jobs), timeout)
    except Exception as exc:  # noqa: BLE001 - the outbox still holds the entry
        log.warning("inline index sync did not finish; the outbox will deliver it",
                    extra={"index": index, "doc_id": doc_id, "error": str(exc)[:300] or type(exc).__name__})
        return False
    return done["synced"] > 0


def _entries(index: str | None, jobs: bool) -> dict[str, Any]:
    """The entries a caller may take: those of `index` (all when None), and jobs only when `jobs` — a
    caller without jobs that names a job kind gets none."""
    if jobs:
        return {"index": index} if index is not None else {}
    if index in JOB_KINDS:
        return {"index": {"$in": []}}
    return {"index": index} if index is not None else {"index": {"$nin": list(JOB_KINDS)}}


# The entries are leased jobs (app/leases.py): whoever claims one holds its lease; only the holder removes
# it, records its failure or gives it back, and a job kind's lease is renewed while its handler runs — so an
# entry whose holder died is taken again once its lease runs out, and a slow job is never run twice.
ENTRIES = Jobs(collection="outbox", running="running",
               lease_seconds=lambda s: s.outbox_lease_seconds, what="outbox entry")


async def _claim(bk: Backends, flt: dict, *, due_only: bool) -> dict | None:
    """Lease one entry so no other sweeper or worker syncs it at the same time."""
    now = _now()
    cond = {**flt, **ENTRIES.claimable(now)}
    if due_only:
        cond["next_attempt_at"] = {"$lte": now}
    return await ENTRIES.claim(bk, cond, sort=[("next_attempt_at", 1)])


async def drain(bk: Backends, *, index: str | None = None, doc_id: str | None = None,
                limit: int = 500, due_only: bool = True, jobs: bool = False, refresh: bool = False) -> dict[str, int]:
    """Sync up to `limit` entries to the search index: those due (the sweep), or the one named,
    even if it is waiting out a back-off (a worker asked to sync it now). Jobs only with `jobs`;
    `refresh`: searchable when this returns."""
    flt = _entries(index, jobs)
    if doc_id is not None:
        flt["doc_id"] = doc_id
    entries: list[dict] = []
    while len(entries) < limit and (entry := await _claim(bk, flt, due_only=due_only)) is not None:
        entries.append(entry)
    defs = registry()
    synced = failed = 0
    by_index: dict[str, list[dict]] = {}
    for e in entries:
        by_index.setdefault(e["index"], []).append(e)
    for name, group in by_index.items():
        definition = defs.get(name)
        try:
            if name in JOB_KINDS:
                if name not in _HANDLERS:
                    raise RuntimeError(f"no handler for job {name!r} in this process (its domain is not imported)")
                async with contextlib.AsyncExitStack() as beating:  # a job may outlast its lease: renewed
                    for e in group:
                        await beating.enter_async_context(ENTRIES.heartbeat(bk, e))
                    await _HANDLERS[name](bk, [e["doc_id"] for e in group])
            elif definition is None:
                raise RuntimeError(f"unknown index {name!r}")
            else:
                await _sync_or_rebuild(bk, definition, [e["doc_id"] for e in group], refresh=refresh)
        except Exception as exc:  # noqa: BLE001 - recorded on the entry and retried
            failed += len(group)
            await _fail(bk, group, exc)
            continue
        for e in group:  # done: removed by its holder, unless written again meanwhile (then given back)
            gone = await bk.mongo.outbox.delete_one({**ENTRIES.holds(e, unexpired=False), "seq": e["seq"]})
            if not gone.deleted_count:
                await ENTRIES.release(bk, e, status="pending")
        synced += len(group)
    return {"synced": synced, "failed": failed}


async def _sync_or_rebuild(bk: Backends, definition, ids: list[str], *, refresh: bool = False) -> None:
    """A search cluster that lost the index (restarted, replaced) gets it rebuilt from MongoDB (`rebuild`);
    once it is, the batch is tried again. Otherwise the error stands (the entry is retried)."""
    try:
        await _sync(bk, definition, ids, refresh=refresh)
    except Exception:
        if await rebuild(bk, definition) != "rebuilt":
            raise
        await _sync(bk, definition, ids, refresh=refresh)


async def rebuild(bk: Backends, definition) -> str:
    """Have `definition`'s index rebuilt from MongoDB when it needs it, through the leased `search-rebuild`
    job, so a rebuild runs once however many processes ask: "current" (nothing to do), "rebuilt" (done
    here, now: a collection of at most IKL_SEARCH_INLINE_REBUILD_MAX documents, or a worker), or "queued"
    (left to the workers — a large one, or another process is rebuilding it)."""
    if await needs_rebuild(bk, definition) is None:
        return "current"
    await record(bk, REBUILD, definition.name)
    size = await bk.mongo[definition.collection].estimated_document_count()
    if size > bk.settings.search_inline_rebuild_max:
        log.warning("search index rebuild handed to the workers", extra={"index": definition.name, "documents": size})
        return "queued"
    await drain(bk, index=REBUILD, doc_id=definition.name, due_only=False, jobs=True)
    return "rebuilt" if await needs_rebuild(bk, definition) is None else "queued"


@job_handler(REBUILD)
async def _rebuild_indexes(bk: Backends, names: list[str]) -> None:
    """The job: rebuild each named index that still needs it (the lease is renewed while it runs)."""
    defs = registry()
    for name in names:
        if (definition := defs.get(name)) is not None and (stats := await ensure_index(bk, definition)):
            log.info("search index rebuilt from MongoDB", extra=stats)


async def _sync(bk: Backends, definition, ids: list[str], *, refresh: bool = False) -> None:
    """Index the current MongoDB state of these documents; ids no longer in MongoDB are deleted."""
    docs = await bk.mongo[definition.collection].find({"_id": {"$in": ids}}).to_list(None)
    found = {str(d["_id"]) for d in docs}
    deleted = [i for i in ids if i not in found]
    await write_docs(bk, definition, docs, deleted_ids=deleted, refresh=refresh)
    for target in await building(bk, definition):  # a reindex in progress gets the change too
        await write_docs(bk, definition, docs, deleted_ids=deleted, target=target)


async def _fail(bk: Backends, group: list[dict], exc: Exception) -> None:
    log.warning("index sync failed; will retry", extra={"error": str(exc)[:300], "entries": len(group)})
    for e in group:
        delay = min(2.0 ** e.get("attempts", 0), bk.settings.outbox_max_backoff)
        await ENTRIES.release(bk, e, status="failed", update={
            "$inc": {"attempts": 1}, "$set": {"last_error": str(exc)[:1000], "failed_at": _now(),
                                              "next_attempt_at": _now() + timedelta(seconds=delay)}})


async def flush(bk: Backends, *, index: str | None = None, timeout: float = 30.0, jobs: bool = False) -> None:
    """Sync everything pending now (jobs too with `jobs`), waiting for entries another sweeper or worker
    holds; raises TimeoutError if entries are still there after `timeout` seconds (e.g. the search server
    is down)."""
    flt = _entries(index, jobs)
    deadline = asyncio.get_running_loop().time() + timeout
    while await bk.mongo.outbox.count_documents(flt):
        await drain(bk, index=index, due_only=False, jobs=jobs)
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"outbox not empty after {timeout}s")
        await asyncio.sleep(0.05)


async def pending(bk: Backends) -> dict[str, Any]:
    """How much is waiting, and the oldest error, for readiness and operators."""
    count = await bk.mongo.outbox.count_documents({})
    failing = await bk.mongo.outbox.count_documents({"attempts": {"$gt": 0}})
    return {"pending": count, "failing": failing}


async def sweep(bk: Backends, *, jobs: bool = False) -> None:
    """Drain every due entry (jobs too with `jobs`: workers), 500 at a time."""
    while (await drain(bk, jobs=jobs))["synced"] >= 500:
        pass


@periodic.every(lambda s: s.outbox_sweep_interval, name="outbox sweep", lane=periodic.OUTBOX)
async def sweep_with_jobs(bk: Backends) -> None:
    """The workers' sweep: index syncs and jobs (the API's own sweep, `sweep_forever`, leaves jobs)."""
    await sweep(bk, jobs=True)


async def sweep_forever(bk: Backends, interval: float, *, jobs: bool = False) -> None:
    """Drain due entries (jobs too with `jobs`) every `interval` seconds until cancelled."""
    await periodic.forever(lambda: sweep(bk, jobs=jobs), interval, name="outbox sweep")
