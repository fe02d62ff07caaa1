"""Leased jobs: the one mechanism behind every job a worker takes from MongoDB (postmortem generations,
pattern mining runs, the outbox's index syncs and jobs, webhook deliveries).

A job document holds `lease` (a random id) and `leased_until`. Whoever claims the job writes a new lease;
from then on only the holder of that lease writes: it renews the lease while it works (`Heartbeat`, every
third of the lease, so a slow job is never taken for a dead one), every write it makes is conditional on
the lease being its own and unexpired (`holds`, `renew` in the writing transaction, `Fenced`), and it
records the outcome only while it still holds the lease (`finish`). A job whose lease ran out (its process
died or froze) can be claimed again; the old holder, should it wake up, writes nothing — its renewal
fails, its writes abort with `LeaseLost`. So a job never runs twice to completion and its record tells the
truth about the run that finished it.

`Jobs` binds the mechanism to one collection: the status that means "running", and the lease length.
Every job document carries the same flag, `active` (ACTIVE), while it is pending or running: a unique
partial index on it allows one per key where a collection needs that (one generation per incident, one
mining run at a time); `finish` clears it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from datetime import timedelta
from typing import Any, Awaitable, Callable, Mapping

from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from app.backends import Backends
from app.timefmt import utcnow

log = logging.getLogger(__name__)

ACTIVE = "active"  # the flag every job document carries while it is pending or running


class LeaseLost(Exception):
    """This process no longer holds the job's lease (it ran out, or another run took the job over): it
    writes nothing more."""


@dataclasses.dataclass(frozen=True)
class Jobs:
    collection: str                          # the MongoDB collection of the job documents
    running: str | None                      # the status of a claimed job (None: claiming leaves it)
    lease_seconds: Callable[[Any], float]    # settings -> seconds a lease lasts without renewal
    what: str = "job"                        # for log lines

    def coll(self, bk: Backends):
        return bk.mongo[self.collection]

    def seconds(self, bk: Backends) -> float:
        return float(self.lease_seconds(bk.settings))

    def new_lease(self, bk: Backends) -> dict[str, Any]:
        """The fields of a fresh lease held from now."""
        return {"lease": str(uuid.uuid4()), "leased_until": utcnow() + timedelta(seconds=self.seconds(bk))}

    async def claim(self, bk: Backends, where: Mapping[str, Any], *, inc: Mapping[str, int] | None = None,
                    sort: list[tuple[str, int]] | None = None, **fields: Any) -> dict | None:
        """Take the job matching `where` (the caller states which are claimable; the first in `sort` order):
        status running, a fresh lease, `fields` set, `inc` counted; the job as claimed, or None when none
        matched."""
        now = utcnow()
        status = {"status": self.running} if self.running else {}
        update: dict[str, Any] = {"$set": {**status, "updated_at": now, **self.new_lease(bk), **fields}}
        if inc:
            update["$inc"] = dict(inc)
        return await self.coll(bk).find_one_and_update(dict(where), update, sort=sort,
                                                       return_document=ReturnDocument.AFTER)

    @staticmethod
    def claimable(now=None) -> dict[str, Any]:
        """The filter of jobs no one holds: never leased, released, or their lease ran out."""
        return {"$or": [{"leased_until": None}, {"leased_until": {"$lte": now or utcnow()}}]}

    async def release(self, bk: Backends, job: Mapping[str, Any], *, status: str,
                      update: Mapping[str, Any] | None = None) -> bool:
        """Give the job back (to be claimed again), with `status` and `update` (more operators), only while
        this holder has the lease; False (nothing written) when it lost it."""
        ops: dict[str, Any] = {k: dict(v) for k, v in (update or {}).items()}
        ops.setdefault("$set", {})["status"] = status
        ops.setdefault("$unset", {}).update({"lease": "", "leased_until": ""})
        result = await self.coll(bk).update_one(self.holds(job, unexpired=False), ops)
        return result.matched_count == 1

    def holds(self, job: Mapping[str, Any], *, unexpired: bool = True) -> dict[str, Any]:
        """The filter of `job` while its lease is still the one it was claimed with (and unexpired)."""
        flt: dict[str, Any] = {"_id": job["_id"], "lease": job["lease"]}
        if unexpired:
            flt["leased_until"] = {"$gt": utcnow()}
        return flt

    async def renew(self, bk: Backends, job: Mapping[str, Any], *, session=None) -> bool:
        """Extend the lease from now, only while it is still this holder's and unexpired. The update always
        changes the document (a counter), so inside a transaction it conflicts with a concurrent claim."""
        now = utcnow()
        result = await self.coll(bk).update_one(
            self.holds(job), {"$set": {"leased_until": now + timedelta(seconds=self.seconds(bk)), "updated_at": now},
                              "$inc": {"lease_renewals": 1}}, session=session)
        return result.matched_count == 1

    async def finish(self, bk: Backends, job: Mapping[str, Any], status: str, *, since, **fields: Any) -> dict | None:
        """Record the outcome and free the job's slot (`active`), only while this holder has the lease;
        None (and nothing written) when it lost it."""
        now = utcnow()
        fields.update(status=status, completed_at=now, updated_at=now,
                      processing_time=round((now - since).total_seconds(), 3))
        doc = await self.coll(bk).find_one_and_update(
            {"_id": job["_id"], "lease": job["lease"]},
            {"$set": fields, "$unset": {ACTIVE: "", "lease": "", "leased_until": ""}},
            return_document=ReturnDocument.AFTER)
        if doc is None:
            log.warning("%s lease lost before it finished", self.what, extra={"job": job["_id"]})
        return doc

    def heartbeat(self, bk: Backends, job: Mapping[str, Any]) -> "Heartbeat":
        return Heartbeat(self, bk, job)

    def fenced(self, bk: Backends, job: Mapping[str, Any], *, then=None) -> Backends:
        """`bk` for the writes of the holder of `job`'s lease: every MongoDB transaction made through it (a
        service's write with its audit entry) first renews the lease in that same transaction, and aborts
        with `LeaseLost` when it is gone; `then(session)` runs after the write, inside it too."""
        base = {f.name: getattr(bk, f.name) for f in dataclasses.fields(Backends)}
        return Fenced(**base, jobs=self, job=job, then=then)


class Heartbeat:
    """Renews a job's lease every third of its length while the block runs (`async with`); `lost` once a
    renewal found the lease gone (then it stops), `check()` raises LeaseLost from then on."""

    def __init__(self, jobs: Jobs, bk: Backends, job: Mapping[str, Any]) -> None:
        self.jobs, self.bk, self.job = jobs, bk, job
        self.lost = False
        self._task: asyncio.Task | None = None

    async def renew(self) -> bool:
        self.lost = self.lost or not await self.jobs.renew(self.bk, self.job)
        return not self.lost

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(f"{self.jobs.what} '{self.job['_id']}' lost its lease")

    async def _beat(self) -> None:
        every = max(self.jobs.seconds(self.bk) / 3, 0.05)
        while not self.lost:
            await asyncio.sleep(every)
            try:
                if not await self.renew():
                    log.warning("%s lease lost", self.jobs.what, extra={"job": self.job["_id"]})
            except PyMongoError as exc:  # out of reach now: try again at the next beat; the lease outlives a few
                log.warning("%s lease not renewed", self.jobs.what,
                            extra={"job": self.job["_id"], "error": str(exc)[:300]})

    async def __aenter__(self) -> "Heartbeat":
        self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclasses.dataclass
class Fenced(Backends):
    """The backends of one lease holder (see `Jobs.fenced`)."""

    jobs: Jobs | None = None
    job: Mapping[str, Any] | None = None
    then: Callable[[Any], Awaitable[None]] | None = None

    async def transaction(self, op):
        async def guarded(s):
            if not await self.jobs.renew(self, self.job, session=s):
                raise LeaseLost(f"{self.jobs.what} '{self.job['_id']}' lost its lease")
            result = await op(s)
            if self.then is not None:
                await self.then(s)
            return result

        return await super().transaction(guarded)
