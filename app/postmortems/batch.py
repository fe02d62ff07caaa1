"""Postmortems for recently resolved incidents, in bulk (`ikl generate_postmortems`; a job can call the same).

An incident is selected when it is RESOLVED or CLOSED, was resolved within the last `days` days and has
one of `severities` (all when empty). For each: when a postmortem for it exists, it is skipped, or with
`force` that postmortem is drafted again, edited sections included; otherwise a DRAFT
"Postmortem: <incident title>" is created (owner: the `postmortem-bot` user) and drafted. Each one is a
generation (trigger `command`, run in this process through app/postmortems/generations.py, so it leaves
the same log a worker's would). A failure on one incident is recorded in its result and the others go
on. `dry_run` writes nothing (not even the bot user) and reports what would be done."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterable

from app.backends import Backends
from app.incidents.models import RESOLVED_STATUSES, Severity
from app.postmortems import generations
from app.postmortems.models import GenerationStatus, GenerationTrigger
from app.timefmt import utcnow

CREATED, REDRAFTED, SKIPPED, FAILED = "created", "re-drafted", "skipped (exists)", "failed"
DUPLICATE = "skipped (duplicate)"  # closed as a duplicate: its canonical incident gets the postmortem
WOULD_CREATE, WOULD_REDRAFT = "would create", "would re-draft"
TITLE_MAX = 200


@dataclass
class Result:
    incident_id: str
    incident_name: str
    incident_title: str
    severity: str
    action: str
    postmortem_id: str | None = None
    confidence: float | None = None
    error: str | None = None
    status: str | None = None  # the generation's final status (COMPLETED, REVIEW_REQUIRED, FAILED)
    generation_id: str | None = None


async def select_incidents(bk: Backends, *, days: int, severities: Iterable[str] = ()) -> list[dict]:
    """Incidents resolved within the last `days` days with one of `severities` (all when empty), oldest first."""
    query: dict = {"status": {"$in": sorted(RESOLVED_STATUSES)}, "resolved_at": {"$gte": utcnow() - timedelta(days=days)}}
    if sevs := sorted({Severity(s).value for s in severities}):
        query["severity"] = {"$in": sevs}
    cursor = bk.mongo.incidents.find(query, {"name": 1, "title": 1, "severity": 1, "resolved_at": 1, "duplicate_of": 1,
                                             "data_classification": 1}).sort([("resolved_at", 1), ("_id", 1)])
    return await cursor.to_list(None)


async def _existing(bk: Backends, incident_ids: list[str]) -> dict[str, str]:
    """incident id -> its latest postmortem's id."""
    out: dict[str, str] = {}
    cursor = bk.mongo.postmortems.find({"incident": {"$in": incident_ids}}, {"incident": 1}).sort("created_at", 1)
    async for doc in cursor:
        out[doc["incident"]] = doc["_id"]
    return out


async def generate_for_recent(bk: Backends, *, days: int = 7, severities: Iterable[str] = (), force: bool = False,
                              dry_run: bool = False,
                              progress: Callable[[int, int], None] | None = None) -> list[Result]:
    """Create (or with `force` re-draft) a postmortem for each recently resolved incident, except those closed
    as duplicates (their canonical incident gets it); one Result each.
    `progress(done, total)` is called before the first and after each incident."""
    incidents = await select_incidents(bk, days=days, severities=severities)
    existing = await _existing(bk, [i["_id"] for i in incidents])
    twins = sorted({i["duplicate_of"] for i in incidents if i.get("duplicate_of")})
    canonicals = {d["_id"]: d["name"] async for d in bk.mongo.incidents.find({"_id": {"$in": twins}}, {"name": 1})}
    user = None if dry_run else await generations.bot_user(bk)
    results: list[Result] = []
    if progress:
        progress(0, len(incidents))
    for n, inc in enumerate(incidents, 1):
        res = Result(incident_id=inc["_id"], incident_name=inc.get("name") or inc["_id"],
                     incident_title=inc.get("title") or "", severity=inc.get("severity") or "",
                     action="", postmortem_id=existing.get(inc["_id"]))
        if inc.get("duplicate_of"):
            res.action = DUPLICATE
            res.error = f"duplicate of {canonicals.get(inc['duplicate_of'], inc['duplicate_of'])}"
        elif res.postmortem_id and not force:
            res.action = SKIPPED
        elif dry_run:
            res.action = WOULD_REDRAFT if res.postmortem_id else WOULD_CREATE
        else:
            await _generate(bk, res, inc, user=user, force=force)
        results.append(res)
        if progress:
            progress(n, len(incidents))
    return results


async def _generate(bk: Backends, res: Result, incident: dict, *, user, force: bool) -> None:
    """One incident's generation, run here; its outcome written into `res`."""
    gen, created = await generations.create(bk, incident=incident, user=user,
                                            trigger=GenerationTrigger.COMMAND.value, force=force)
    res.generation_id = gen["_id"]
    done = await generations.run(bk, gen["_id"]) if created else None
    if done is None:
        res.action = FAILED
        res.error = ("another generation of this incident is running" if not created else
                     "interrupted (database out of reach); a worker's sweep will finish it")
        return
    res.status = done["status"]
    res.postmortem_id = done.get("postmortem") or res.postmortem_id
    res.confidence = done.get("confidence_score")
    if done["status"] == GenerationStatus.FAILED.value:
        res.action, res.error = FAILED, done.get("error_message")
    else:
        res.action = CREATED if done.get("postmortem_created") else REDRAFTED
        if done["status"] == GenerationStatus.REVIEW_REQUIRED.value:
            res.error = done.get("review_reason")
