"""Mining-run records (`pattern_mining_runs`): one running run at a time, leases, the admins' list.

A run is PENDING (asked for through GraphQL, waiting for a worker), RUNNING, COMPLETED or FAILED. A PENDING or
RUNNING run carries `active: True`, and a unique partial index on it (app/db.py `one_active_run`) lets only
one exist: whoever starts a run while another is running gets that one back (`begin`, `request`), never a
second run — the command, the workers' schedule and the GraphQL mutation alike, across processes.

A running run holds a lease (`lease`, `leased_until`) that its process renews every third of `LEASE_SECONDS`
while it works (`heartbeat`, app/leases.py). A run whose lease has run out — its worker was killed, or a PENDING run whose
message was lost — no longer blocks: the next `begin`/`request` (and the workers' periodic `due` check, see
app/patterns/runs.py) marks it FAILED ("abandoned") and starts afresh. A process that loses its lease stops
before writing anything more (`LeaseLost`), and its outcome is not recorded over the run that replaced it.

Runs are read by admins only, and only as far as their clearance goes: a run is classified as the most secret
of the incidents it looked at (its counts cover all of them, so they would tell how many hidden incidents
exist); a hidden run is a 404 `MINING_RUN_NOT_FOUND` like a missing one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from enum import Enum
from typing import Any, Mapping

from pymongo.errors import DuplicateKeyError

from app import classification, leases
from app.backends import Backends
from app.errors import Conflict, ServiceError
from app.listing import Filter, ListSpec, Page
from app.repository import Repository
from app.timefmt import utcnow
from app.users.models import Role, User, require_role

log = logging.getLogger(__name__)

LEASE_SECONDS = 300.0     # a run not heard from for this long is taken as dead (renewed every third of it)


class RunStatus(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class RunTrigger(str, Enum):
    COMMAND = "command"      # ikl update_learning_patterns
    SCHEDULE = "schedule"    # the workers, every pattern_mining_interval_seconds
    REQUESTED = "requested"  # GraphQL startPatternMining


S = RunStatus
LIST_SPEC = ListSpec(
    collection="pattern_mining_runs",
    filters=(Filter("status", "status", RunStatus, indexed=True), Filter("trigger", "trigger", RunTrigger)),
    ordering={"started_at": "started_at", "completed_at": "completed_at"},
    default_ordering=("-started_at",),
)


# mining runs as leased jobs (app/leases.py): `active` while PENDING or RUNNING
JOBS = leases.Jobs("pattern_mining_runs", running=RunStatus.RUNNING.value,
                   lease_seconds=lambda settings: LEASE_SECONDS, what="mining run")
LeaseLost = leases.LeaseLost


RUNS = Repository("Mining run", "MINING_RUN_NOT_FOUND", LIST_SPEC)


# --- reading (admins) ---------------------------------------------------------------------------------

async def get_run(bk: Backends, *, run_id: str, user: User) -> dict:
    require_role(user, Role.ADMIN)
    return await RUNS.get(bk, run_id, user)


async def list_runs(bk: Backends, *, params: Mapping[str, Any], user: User) -> Page:
    require_role(user, Role.ADMIN)
    return await RUNS.page(bk, params, user)


async def running(bk: Backends) -> dict | None:
    """The PENDING or RUNNING run, if any."""
    return await bk.mongo.pattern_mining_runs.find_one({"active": True})


# --- starting -----------------------------------------------------------------------------------------

def _new(*, trigger: str, days: int, min_frequency: int, status: RunStatus, user: User | None) -> dict[str, Any]:
    now = utcnow()
    return {"_id": str(uuid.uuid4()), "status": status.value, "active": True, "trigger": trigger, "days": days,
            "min_frequency": min_frequency, "requested_by": user.id if user else None,
            # hidden from admins below RESTRICTED until it knows what it looked at
            "data_classification": classification.DEFAULT.value, "started_at": now,
            "claimed_at": now if status == S.RUNNING else None, "completed_at": None, "processing_time": None,
            "lease": str(uuid.uuid4()), "leased_until": now + timedelta(seconds=LEASE_SECONDS), "updated_at": now,
            "incidents": None, "counts": None, "patterns": None, "error_message": None}


async def expire_stale(bk: Backends) -> int:
    """Mark the running run FAILED when its lease has run out (its worker died); returns how many."""
    now = utcnow()
    result = await bk.mongo.pattern_mining_runs.update_many(
        {"active": True, "leased_until": {"$lte": now}},
        [{"$set": {"status": S.FAILED.value, "completed_at": now, "updated_at": now,
                   "error_message": "abandoned: its lease ran out (the process running it stopped)"}},
         {"$unset": ["active", "lease", "leased_until"]}])
    if result.modified_count:
        log.warning("mining run abandoned: lease expired", extra={"runs": result.modified_count})
    return result.modified_count


async def begin(bk: Backends, *, trigger: str, days: int, min_frequency: int, status: RunStatus = S.RUNNING,
                user: User | None = None) -> tuple[dict, bool]:
    """Record a run (RUNNING: the caller runs it now and holds its lease; PENDING: for a worker), or return
    the run already running: (run, created). A running run whose lease ran out is failed first."""
    for _ in range(3):
        doc = _new(trigger=trigger, days=days, min_frequency=min_frequency, status=status, user=user)
        try:
            await bk.mongo.pattern_mining_runs.insert_one(doc)
            return doc, True
        except DuplicateKeyError:  # one running run at a time
            if await expire_stale(bk):
                continue
            if (active := await running(bk)) is not None:
                return active, False
    raise Conflict("Could not start a mining run; try again", code="MINING_RUN_BUSY")


async def claim(bk: Backends, run_id: str) -> dict | None:
    """A worker takes a PENDING run (RUNNING, a fresh lease); None when it is no longer PENDING."""
    return await JOBS.claim(bk, {"_id": run_id, "status": S.PENDING.value, "active": True}, claimed_at=utcnow())


# --- running ------------------------------------------------------------------------------------------

def heartbeat(bk: Backends, run: Mapping[str, Any]) -> leases.Heartbeat:
    """Renews the run's lease while the work goes on (`async with`); `check()` raises LeaseLost once it is gone."""
    return JOBS.heartbeat(bk, run)


async def classify(bk: Backends, run: Mapping[str, Any], incidents: list[Mapping[str, Any]]) -> None:
    """The run is as secret as the most secret incident it looked at."""
    await bk.mongo.pattern_mining_runs.update_one(
        {"_id": run["_id"], "lease": run["lease"]},
        {"$set": {"data_classification": classification.most_secret(incidents)}})


async def finish(bk: Backends, run: Mapping[str, Any], status: RunStatus, **fields: Any) -> dict | None:
    """Record the outcome and free the slot, only while this process still holds the lease."""
    return await JOBS.finish(bk, run, status.value, since=run.get("claimed_at") or run["started_at"], **fields)


def error_text(exc: BaseException) -> str:
    if isinstance(exc, ServiceError):
        return exc.summary()
    if isinstance(exc, LeaseLost):
        return "lease lost: the run was taken as dead and replaced"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled (the process was stopped)"
    return f"{type(exc).__name__}: {exc}"[:1000]
