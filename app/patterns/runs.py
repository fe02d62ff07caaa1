"""Mining runs: resolved incidents and published postmortems in, learning patterns created or updated.

`run(bk, days=30, min_frequency=3, dry_run=False)` loads the incidents resolved in the last `days` days,
embeds what caused and what fixed each (app/patterns/mining.py `cause_text`, `fix_text`; in a thread),
mines candidates (`mining.mine`) and pairs them with the patterns mined before (`mining.match`, by their
members), so re-runs update patterns in place and never multiply them: a new group creates a pattern
(`origin: "mined"`, classified as the most secret of its sources); a known one is updated — a validated one
with a trace of what changed in its `history` (app/patterns/service.py). Patterns written by hand are never
touched. A known pattern's `success_rate` blends the mined one (the share of its incidents resolved with a
recorded fix) with how often its recommendations were rated as having helped (`blended_success`). `dry_run`
writes nothing and reports what would be done. Each run (but a dry one) leaves a record
in `pattern_mining_runs`. `ikl update_learning_patterns`, the workers' schedule and the GraphQL mutation
all call this.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

from pymongo.errors import DuplicateKeyError

from app.activity.service import record_audit
from app.backends import Backends
from app.embeddings import available, embed
from app.incidents.models import RESOLVED_STATUSES
from app.patterns import mining
from app import classification
from app.patterns.service import HISTORY_MAX
from app.timefmt import utcnow
from app.users import service as users
from app.users.models import User

BOT_USERNAME = "pattern-miner"
INCIDENT_FIELDS = {"name": 1, "title": 1, "root_cause": 1, "resolution": 1, "category": 1, "affected_services": 1,
                   "status": 1, "detected_at": 1, "resolved_at": 1, "created_at": 1, "reporter": 1,
                   "data_classification": 1, "timeline": {"$slice": 50}}
CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
WOULD_CREATE, WOULD_UPDATE = "would create", "would update"


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
    incidents: int = 0
    rows: list[Row] = field(default_factory=list)
    run_id: str | None = None


async def bot(bk: Backends) -> User:
    return await users.service_account(bk, username=BOT_USERNAME)


async def run(bk: Backends, *, days: int = 30, min_frequency: int = 3, dry_run: bool = False,
              progress: Callable[[str], None] | None = None, trigger: str = "command") -> Report:
    def step(what: str) -> None:
        if progress:
            progress(what)

    started = utcnow()
    step("loading incidents")
    incidents = await bk.mongo.incidents.find(
        {"status": {"$in": sorted(RESOLVED_STATUSES)}, "resolved_at": {"$gte": started - timedelta(days=days)}},
        INCIDENT_FIELDS).sort("_id", 1).to_list(None)
    report = Report(incidents=len(incidents))
    eligible = [i for i in incidents if mining.cause_text(i)]
    step(f"embedding {len(eligible)} incidents")
    vectors: dict[str, Any] = {}
    fixes: dict[str, Any] = {}
    if available() and eligible:
        causes = await asyncio.to_thread(embed, [mining.cause_text(i) for i in eligible])
        vectors = {i["_id"]: v for i, v in zip(eligible, causes) if v.any()}
        fixed = [i for i in eligible if mining.fix_text(i)]
        if fixed:
            fix_vecs = await asyncio.to_thread(embed, [mining.fix_text(i) for i in fixed])
            fixes = {i["_id"]: v for i, v in zip(fixed, fix_vecs) if v.any()}
    postmortems = [{"_id": p["_id"], "incident_id": p["incident"]} async for p in bk.mongo.postmortems.find(
        {"incident": {"$in": [i["_id"] for i in eligible]}, "status": "PUBLISHED"}, {"incident": 1})]
    step("mining")
    candidates = await asyncio.to_thread(mining.mine, eligible, vectors, min_frequency=min_frequency,
                                         postmortems=postmortems, fix_vectors=fixes or None)
    existing = await bk.mongo.learning_patterns.find({"origin": "mined"}).to_list(None)
    by_id = {i["_id"]: i for i in incidents}
    user = None if dry_run else await bot(bk)
    step(f"writing {len(candidates)} patterns")
    ratings = await _ratings(bk, [p["_id"] for p in existing])
    for current, cand in mining.match(existing, candidates):
        content = cand.content()
        content["data_classification"] = classification.most_secret(
            [by_id[i] for i in cand.source_incidents if i in by_id])
        if current is not None and current["_id"] in ratings:
            content["success_rate"] = blended_success(cand.success_rate, *ratings[current["_id"]])
        row = Row(action="", pattern_type=cand.pattern_type, name=content["name"], frequency=cand.frequency,
                  confidence=cand.confidence_score, pattern_id=current["_id"] if current else None)
        if current is None:
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
    if not dry_run:
        report.run_id = str(uuid.uuid4())
        await bk.mongo.pattern_mining_runs.insert_one({
            "_id": report.run_id, "trigger": trigger, "days": days, "min_frequency": min_frequency,
            "started_at": started, "completed_at": utcnow(), "incidents": report.incidents,
            "counts": {a: sum(r.action == a for r in report.rows) for a in (CREATED, UPDATED, UNCHANGED)}})
    return report


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


async def due(bk: Backends) -> bool:
    """Whether a scheduled run is due, claiming it (one worker wins; the others see it claimed)."""
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
