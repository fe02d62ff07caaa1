"""Versioned changes to stored documents: each step runs once per database, in order, at the start of every
process that prepares the database (the API at start, a command: `app.db.ensure_indexes`), and is recorded
in the `migrations` collection with when it ran, how long it took and how many documents it changed.

A step is a leased job (app/leases.py): when several processes start at once, one claims the step and the
others wait for it to finish (its lease renewed while it runs, so a step over a million documents is never
taken for a dead one); a step that fails is recorded as failed with why, and the next start tries it again.
Every step is idempotent — it changes only what it still has to — so a step run again after a crash is
harmless. A step is never edited once released: a new change is a new step at the end of `STEPS`.

The steps replace what used to run on every start (a default filled into every older document: a full
collection scan each time, at a million incidents several seconds), and rename stored fields the code no
longer reads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Awaitable, Callable

from pymongo.errors import DuplicateKeyError, OperationFailure

from app import leases
from app.backends import Backends
from app.timefmt import utcnow

log = logging.getLogger(__name__)

COLLECTION = "migrations"
DONE, FAILED = "done", "failed"
JOBS = leases.Jobs(COLLECTION, running="running", lease_seconds=lambda s: 60, what="migration")


@dataclasses.dataclass(frozen=True)
class Step:
    name: str                                      # unique, never reused
    description: str
    run: Callable[[Backends], Awaitable[int]]      # -> documents changed


def default(collection: str, field: str, value: object) -> Callable[[Backends], Awaitable[int]]:
    """A field added after documents were written: every older document gets its default."""
    async def run(bk: Backends) -> int:
        result = await bk.mongo[collection].update_many({field: {"$exists": False}}, {"$set": {field: value}})
        return result.modified_count
    return run


def rename(collection: str, old: str, new: str, *, old_index: str) -> Callable[[Backends], Awaitable[int]]:
    """A stored field renamed; the index on the old name dropped (the new one is declared in app/db.py)."""
    async def run(bk: Backends) -> int:
        result = await bk.mongo[collection].update_many({old: {"$exists": True}}, {"$rename": {old: new}})
        try:
            await bk.mongo[collection].drop_index(old_index)
        except OperationFailure as exc:
            if exc.code != 27:  # IndexNotFound: a database made after the rename never had it
                raise
        return result.modified_count
    return run


STEPS: tuple[Step, ...] = (
    Step("0001-incidents-classification", "incidents written before classification are INTERNAL",
         default("incidents", "data_classification", "INTERNAL")),
    Step("0002-mining-runs-status", "mining runs recorded before runs had a status finished",
         default("pattern_mining_runs", "status", "COMPLETED")),
    Step("0003-mining-runs-classification", "mining runs recorded before runs were classified are RESTRICTED "
         "(their counts cover every incident)", default("pattern_mining_runs", "data_classification", "RESTRICTED")),
    Step("0004-mining-runs-active-flag", "a mining run's job flag is `active`, as every leased job's",
         rename("pattern_mining_runs", "running", "active", old_index="one_running_run")),
    Step("0005-webhook-deliveries-active-flag", "a webhook delivery's job flag is `active`, as every leased job's",
         rename("webhook_deliveries", "queued", "active", old_index="queued_due")),
)


async def migrate(bk: Backends, *, steps: tuple[Step, ...] = STEPS, poll_seconds: float = 0.2) -> list[str]:
    """Run the steps this database has not recorded as done, in order; the names of those this process ran.
    A step another process is running is waited for; a step that fails stops the rest (raised)."""
    coll = bk.mongo[COLLECTION]
    done = {d["_id"] async for d in coll.find({"status": DONE}, {"_id": 1})}
    ran: list[str] = []
    for step in steps:
        while step.name not in done:
            job = await _claim(bk, step)
            if job is None:  # another process holds it: wait for its outcome
                await asyncio.sleep(poll_seconds)
                if (await coll.find_one({"_id": step.name}, {"status": 1}) or {}).get("status") == DONE:
                    done.add(step.name)
                continue
            await _run(bk, step, job)
            done.add(step.name)
            ran.append(step.name)
    return ran


async def _claim(bk: Backends, step: Step) -> dict | None:
    now = utcnow()
    try:
        await bk.mongo[COLLECTION].update_one(
            {"_id": step.name}, {"$setOnInsert": {"description": step.description, "status": "pending",
                                                  "active": True, "created_at": now}}, upsert=True)
    except DuplicateKeyError:  # two processes inserted it at once: it exists now
        pass
    return await JOBS.claim(bk, {"_id": step.name, "status": {"$ne": DONE}, **JOBS.claimable(now)}, started_at=now)


async def _run(bk: Backends, step: Step, job: dict) -> None:
    try:
        async with JOBS.heartbeat(bk, job):
            changed = await step.run(bk)
    except Exception as exc:
        await JOBS.release(bk, job, status=FAILED, update={"$set": {"error_message": str(exc)[:1000]}})
        log.error("migration failed", extra={"migration": step.name, "error": str(exc)[:300]})
        raise
    doc = await JOBS.finish(bk, job, DONE, since=job["started_at"], changed=changed, error_message=None)
    log.info("migration applied", extra={"migration": step.name, "changed": changed,
                                         "seconds": (doc or {}).get("processing_time")})
