"""Mining runs: resolved incidents and reviewed postmortems in, learning patterns created or updated.

`run(bk, days=30, min_frequency=3, dry_run=False)` reports the patterns that occurred in the last `days`
days: every resolved incident is clustered (the history: a cause seen once this month and twice last year
recurs), and a group becomes or updates a pattern when at least one of its members was resolved in the
window (so `--days 30` asks "which recurring causes hit us in the last 30 days", with their whole history
as frequency and trend; nothing resolved in the window: nothing to do, nothing embedded). It
embeds what caused and what fixed each (app/patterns/mining.py `cause_text`, `fix_text`; in a thread),
mines candidates (`mining.mine`) and pairs them with the patterns mined before (`mining.match`, by their
members), so re-runs update patterns in place and never multiply them: a new group creates a pattern
(`origin: "mined"`, classified as the most secret of its sources); a known one is updated — a validated one
with a trace of what changed in its `history` (app/patterns/service.py). Patterns written by hand are never
touched. A known pattern's `success_rate` blends the mined one (the share of its incidents resolved with a
recorded fix) with how often its recommendations were rated as having helped (`blended_success`). `dry_run`
writes nothing and reports what would be done. Each run (but a dry one) leaves a record
in `pattern_mining_runs`, and only one runs at a time (app/patterns/run_records.py): a second start gets
the running run back in `Report.already_running` and does nothing — unless it was asked to `wait`: then
it waits for that run to end (at most `wait` seconds, polling; a run whose process died is failed once its
lease runs out) and starts its own, since the run it waited for began before it was asked for and may have
missed what changed since (re-runs update in place: nothing is multiplied). `ikl update_learning_patterns`, the
workers' schedule and the GraphQL mutation (`request`: a PENDING run a worker claims) all call this.
Twins count once (`mining.canonical`): incidents closed as a duplicate of another (`duplicate_of` set) and
incidents citing the same public postmortem as an earlier one are skipped; their canonical incident counts.
A new group none of whose members records a fix or prevention (no actions) is not created: the report
lists it as `NO_FIX` ("not created: no fix recorded"), since nobody could act on it or validate it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from pymongo.errors import DuplicateKeyError

from app.activity.service import record_audit
from app.backends import Backends
from app.embeddings import available, embed
from app.incidents.models import RESOLVED_STATUSES
from app.patterns import mining, run_records, wording
from app.patterns.run_records import RunStatus
from app import classification, leases, periodic
from app.patterns.service import HISTORY_MAX
from app.timefmt import utcnow
from app.users import service as users
from app.users.models import Role, User, require_role

BOT_USERNAME = users.Bot.PATTERNS.value
INCIDENT_FIELDS = {"name": 1, "title": 1, "root_cause": 1, "resolution": 1, "category": 1, "affected_services": 1,
                   "description": 1,
                   "status": 1, "duplicate_of": 1, "detected_at": 1, "resolved_at": 1, "created_at": 1, "reporter": 1,
                   "data_classification": 1, "timeline": {"$slice": 50}}
CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
NO_FIX = "not created: no fix recorded"  # a new group none of whose members records a fix or prevention
ROWS_KEPT = 500  # pattern rows kept on a run's record
BUSY_EXIT_CODE = 75  # the command, when another run is running (sysexits EX_TEMPFAIL: try again later)
WOULD_CREATE, WOULD_UPDATE = "would create", "would update"
WAIT_POLL_SECONDS = 1.0  # how often a run waiting for another one looks whether it has ended


@dataclass
class Row:
    action: str
    pattern_type: str
    name: str
    frequency: int
    confidence: float
    pattern_id: str | None = None


@dataclass
class Report:
    incidents: int = 0                     # resolved in the window (a group needs one of them)
    history: int = 0                       # resolved incidents clustered (any time)
    rows: list[Row] = field(default_factory=list)
    run_id: str | None = None
    eligible: int = 0                      # of the history: with a cause, twins once
    duplicates_skipped: int = 0            # closed as a duplicate of another incident or citing the same public
                                           # postmortem as an earlier one (counted once, there)
    already_running: dict | None = None    # the run that was running: nothing was done
    waited: list[dict] = field(default_factory=list)  # the runs waited for (`wait`), as they ended
    skipped: bool = False                  # a requested run no longer PENDING: nothing was done


async def bot(bk: Backends) -> User:
    return await users.bot(bk, users.Bot.PATTERNS)


async def run(bk: Backends, *, days: int = 30, min_frequency: int = 3, dry_run: bool = False,
              progress: Callable[[str], None] | None = None, trigger: str = "command",
              run_id: str | None = None, wait: float = 0.0,
              waiting: Callable[[dict, float], None] | None = None) -> Report:
    """One mining run (module docstring). A real (not dry) run starts only while no other is running
    (app/patterns/run_records.py): when one is, it waits for it to end for at most `wait` seconds, then
    starts; when it is still running then, nothing is done and the report names it (`already_running`).
    `waiting(run, seconds)` is told the run waited for at each poll and once as it ended. `run_id`: a
    PENDING run recorded by `request`, run here by a worker (nothing is done when it is no longer PENDING:
    `skipped`)."""
    if dry_run:
        return await _mine(bk, days=days, min_frequency=min_frequency, dry_run=True, progress=progress)
    waited: list[dict] = []
    if run_id is not None:
        record = await run_records.claim(bk, run_id)
        if record is None:
            return Report(run_id=run_id, skipped=True)
        days, min_frequency = record["days"], record["min_frequency"]
    else:
        record, created = await _begin(bk, trigger=trigger, days=days, min_frequency=min_frequency, wait=wait,
                                       waiting=waiting, waited=waited)
        if not created:
            return Report(already_running=record, waited=waited)
    try:
        async with run_records.heartbeat(bk, record) as beat:
            report = await _mine(bk, days=days, min_frequency=min_frequency, dry_run=False, progress=progress,
                                 record=record, beat=beat)
    except BaseException as exc:
        await run_records.finish(bk, record, RunStatus.FAILED, error_message=run_records.error_text(exc))
        raise
    report.run_id = record["_id"]
    report.waited = waited
    await run_records.finish(
        bk, record, RunStatus.COMPLETED, incidents=report.incidents, history=report.history,
        eligible=report.eligible, duplicates_skipped=report.duplicates_skipped,
        counts={a: sum(r.action == a for r in report.rows) for a in (CREATED, UPDATED, UNCHANGED)}
        | {"not_created_no_fix": sum(r.action == NO_FIX for r in report.rows)},
        patterns=[{"pattern_id": r.pattern_id, "action": r.action, "pattern_type": r.pattern_type, "name": r.name,
                   "frequency": r.frequency, "confidence_score": r.confidence} for r in report.rows[:ROWS_KEPT]])
    return report


async def _begin(bk: Backends, *, trigger: str, days: int, min_frequency: int, wait: float,
                 waiting: Callable[[dict, float], None] | None, waited: list[dict]) -> tuple[dict, bool]:
    """Record a RUNNING run; while another runs, wait up to `wait` seconds for it to end (each run waited
    for is added to `waited` as it ended) and try again: (the run, created) as `run_records.begin`."""
    start = time.monotonic()
    deadline = start + max(0.0, wait)
    while True:
        record, created = await run_records.begin(bk, trigger=trigger, days=days, min_frequency=min_frequency)
        if created or time.monotonic() >= deadline:
            return record, created
        other = record
        while other.get("active") and time.monotonic() < deadline:
            if waiting:
                waiting(other, time.monotonic() - start)
            await asyncio.sleep(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            await run_records.expire_stale(bk)  # a run whose process died ends once its lease runs out
            other = await bk.mongo.pattern_mining_runs.find_one({"_id": other["_id"]}, {"patterns": 0}) or {
                k: v for k, v in other.items() if k != "active"}
        if not other.get("active"):
            waited.append(other)
            if waiting:
                waiting(other, time.monotonic() - start)


async def request(bk: Backends, *, days: int, min_frequency: int, user: User) -> tuple[dict, bool]:
    """A run asked for by an admin (GraphQL `startPatternMining`): recorded PENDING and handed to a worker, or
    the run already running: (run, created)."""
    require_role(user, Role.ADMIN)
    record, created = await run_records.begin(bk, trigger=run_records.RunTrigger.REQUESTED.value, days=days,
                                              min_frequency=min_frequency, status=RunStatus.PENDING, user=user)
    if created:
        await record_audit(bk, action="start", user=user, subject_type="pattern_mining_run", subject_id=record["_id"],
                           changes={"days": days, "min_frequency": min_frequency})
        await bk.enqueue("mine_learning_patterns", days, min_frequency, record["_id"])
    return record, created


async def _mine(bk: Backends, *, days: int, min_frequency: int, dry_run: bool,
                progress: Callable[[str], None] | None, record: dict | None = None,
                beat: leases.Heartbeat | None = None) -> Report:
    async def step(what: str) -> None:
        if beat is not None:  # renewed at each step (and every third of the lease): a run taken as dead stops
            await beat.renew()
            beat.check()
        if progress:
            progress(what)

    started = utcnow()
    await step("loading incidents")
    since = started - timedelta(days=days)
    history = await bk.mongo.incidents.find({"status": {"$in": sorted(RESOLVED_STATUSES)}},
                                            INCIDENT_FIELDS).sort("_id", 1).to_list(None)
    recent = {i["_id"] for i in history if _aware(i.get("resolved_at")) and _aware(i["resolved_at"]) >= since}
    if record is not None:
        await run_records.classify(bk, record, history)
    report = Report(incidents=len(recent), history=len(history))
    eligible, _ = mining.canonical(i for i in history if mining.cause_text(i))
    report.eligible = len(eligible)
    report.duplicates_skipped = sum(1 for i in history if mining.cause_text(i)) - len(eligible)
    if not recent & {i["_id"] for i in eligible}:  # nothing happened in the window: no pattern to report
        return report
    await step(f"embedding {len(eligible)} incidents")
    vectors: dict[str, Any] = {}
    fixes: dict[str, Any] = {}
    if available() and eligible:
        causes = await asyncio.to_thread(embed, [mining.cause_text(i) for i in eligible])
        vectors = {i["_id"]: v for i, v in zip(eligible, causes) if v.any()}
        fixed = [i for i in eligible if mining.fix_text(i)]
        if fixed:
            fix_vecs = await asyncio.to_thread(embed, [mining.fix_text(i) for i in fixed])
            fixes = {i["_id"]: v for i, v in zip(fixed, fix_vecs) if v.any()}
    postmortems = [{**p, "incident_id": p["incident"]} async for p in bk.mongo.postmortems.find(
        {"incident": {"$in": [i["_id"] for i in history]}, "status": {"$in": list(wording.REVIEWED_POSTMORTEMS)}},
        {"incident": 1, "status": 1, "action_items": 1, "lessons_learned": 1})]
    await step("mining")
    candidates = await asyncio.to_thread(mining.mine, history, vectors, min_frequency=min_frequency,
                                         postmortems=postmortems, fix_vectors=fixes or None, recent=recent)
    existing = await bk.mongo.learning_patterns.find({"origin": "mined"}).to_list(None)
    by_id = {i["_id"]: i for i in history}
    user = None if dry_run else await bot(bk)
    await step(f"writing {len(candidates)} patterns")
    ratings = await _ratings(bk, [p["_id"] for p in existing])
    for current, cand in mining.match(existing, candidates):
        if beat is not None:
            beat.check()  # a run taken as dead writes nothing more
        content = cand.content()
        content["data_classification"] = classification.most_secret(
            [by_id[i] for i in cand.source_incidents if i in by_id])
        if current is not None and current["_id"] in ratings:
            content["success_rate"] = blended_success(cand.success_rate, *ratings[current["_id"]])
        row = Row(action="", pattern_type=cand.pattern_type, name=content["name"], frequency=cand.frequency,
                  confidence=cand.confidence_score, pattern_id=current["_id"] if current else None)
        if current is None and not cand.actions:  # says why in the report; never offered for validation
            row.action = NO_FIX
        elif current is None:
            row.action = WOULD_CREATE if dry_run else CREATED
            if not dry_run:
                row.pattern_id = await _create(bk, content, cand, user)
        else:
            changed = {k: v for k, v in content.items() if current.get(k) != v}
            if not changed:
                row.action = UNCHANGED
            else:
                row.action = WOULD_UPDATE if dry_run else UPDATED
                if not dry_run:
                    await _update(bk, current, changed, cand, user)
        report.rows.append(row)
    return report


def _aware(v: Any) -> datetime | None:
    """A stored datetime, timezone-aware (UTC)."""
    if not isinstance(v, datetime):
        return None
    return v if v.tzinfo else v.replace(tzinfo=timezone.utc)


async def _create(bk: Backends, content: dict[str, Any], cand: mining.Candidate, user: User) -> str:
    now = utcnow()
    doc = {**content, "_id": str(uuid.uuid4()), "is_validated": False, "validated_by": None, "validation_notes": "",
           "validated_at": None, "times_applied": 0, "last_applied": None, "applications": [], "history": [],
           "origin": "mined", "mined_key": cand.key, "created_at": now, "updated_at": now, "created_by": user.id}

    async def op(s):
        await bk.mongo.learning_patterns.insert_one(doc, session=s)
        await record_audit(bk, action="mine", user=user, subject_type="learning_pattern", subject_id=doc["_id"],
                           changes={"name": doc["name"], "frequency": doc["frequency"]}, session=s)

    await bk.transaction(op)
    return doc["_id"]


async def _update(bk: Backends, current: dict, changed: dict[str, Any], cand: mining.Candidate, user: User) -> None:
    update: dict[str, Any] = {"$set": {**changed, "mined_key": cand.key, "updated_at": utcnow()}}
    if current.get("is_validated"):  # never rewritten without a trace
        trace = {"at": utcnow(), "by": user.id, "action": "mining run",
                 "before": {k: current.get(k) for k in changed}}
        update["$push"] = {"history": {"$each": [trace], "$slice": -HISTORY_MAX}}

    async def op(s):
        await bk.mongo.learning_patterns.update_one({"_id": current["_id"]}, update, session=s)
        await record_audit(bk, action="mine", user=user, subject_type="learning_pattern", subject_id=current["_id"],
                           changes={"fields": sorted(changed)}, session=s)

    await bk.transaction(op)


@periodic.every(lambda s: periodic.maintenance_interval(s) if s.pattern_mining_interval_seconds > 0 else 0,
                name="scheduled pattern mining", lane="mining")  # its own lane: a long run delays nothing else
async def scheduled(bk: Backends) -> None:
    """The workers' schedule: a run every `pattern_mining_interval_seconds`, once across all workers (`due`)."""
    settings = bk.settings
    if await due(bk):
        await run(bk, days=settings.pattern_mining_days, min_frequency=settings.pattern_mining_min_frequency,
                  trigger="schedule")


async def due(bk: Backends) -> bool:
    """Whether a scheduled run is due, claiming it (one worker wins; the others see it claimed). Every
    worker asks this at each maintenance sweep, so it also fails a running run whose lease ran out (its
    process died): such a run blocks nobody for longer than run_records.LEASE_SECONDS."""
    await run_records.expire_stale(bk)
    now = utcnow()
    interval = timedelta(seconds=bk.settings.pattern_mining_interval_seconds)
    claimed = await bk.mongo.pattern_mining_schedule.find_one_and_update(
        {"_id": "schedule", "$or": [{"next_at": {"$lte": now}}, {"next_at": {"$exists": False}}]},
        {"$set": {"next_at": now + interval, "claimed_at": now}})
    if claimed is not None:
        return True
    try:  # the very first time: create the schedule, due now
        await bk.mongo.pattern_mining_schedule.insert_one({"_id": "schedule", "next_at": now + interval,
                                                           "claimed_at": now})
        return True
    except DuplicateKeyError:
        return False


RATING_PRIOR = 3  # the mined success rate counts as this many ratings


def blended_success(mined: float, helped: float, count: int) -> float:
    """The mined success rate (resolved with a recorded fix) blended with how often the pattern's
    recommendations were rated as having helped (rating 4-5 of the 1-2 and 4-5 ones), by count."""
    return round((mined * RATING_PRIOR + helped * count) / (RATING_PRIOR + count), 4)


async def _ratings(bk: Backends, pattern_ids: list[str]) -> dict[str, tuple[float, int]]:
    """pattern id -> (share of its LEARNING_PATTERN recommendations rated as helping, how many were rated)."""
    if not pattern_ids:
        return {}
    rows = await (await bk.mongo.recommendations.aggregate([
        {"$match": {"recommendation_type": "LEARNING_PATTERN", "target": {"$in": pattern_ids},
                    "effectiveness_rating": {"$in": [1, 2, 4, 5]}}},
        {"$group": {"_id": "$target", "helped": {"$avg": {"$cond": [{"$gte": ["$effectiveness_rating", 4]}, 1, 0]}},
                    "count": {"$sum": 1}}}])).to_list(None)
    return {r["_id"]: (r["helped"], r["count"]) for r in rows}
