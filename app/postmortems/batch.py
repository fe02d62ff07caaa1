"""Postmortems for recently resolved incidents, in bulk (`ikl generate_postmortems`; a job can call the same).

An incident is selected when it is RESOLVED or CLOSED, was resolved within the last `days` days and has
one of `severities` (all when empty). For each: when a postmortem for it exists, it is skipped, or with
`force` that postmortem is drafted again (`generate_automated(force=True)`); otherwise a DRAFT
"Postmortem: <incident title>" is created (owner: the `postmortem-bot` user, an admin with RESTRICTED
clearance; severity and classification from the incident) and drafted. A failure on one incident is
recorded in its result and the others go on; a server out of reach ends the run. `dry_run` writes nothing
(not even the bot user) and reports what would be done."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterable

from pymongo.errors import ConnectionFailure

from app.backends import Backends
from app.errors import ServiceError
from app.incidents.models import RESOLVED_STATUSES, Severity
from app.postmortems import drafting, service
from app.postmortems.models import PostmortemCreate
from app.timefmt import utcnow
from app.users import service as users
from app.users.models import Classification, Role, User, UserCreate

BOT_USERNAME = "postmortem-bot"
CREATED, REDRAFTED, SKIPPED, FAILED = "created", "re-drafted", "skipped (exists)", "failed"
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


async def bot_user(bk: Backends) -> User:
    return await users.ensure_user(bk, data=UserCreate(username=BOT_USERNAME, role=Role.ADMIN,
                                                       clearance=Classification.RESTRICTED))


async def select_incidents(bk: Backends, *, days: int, severities: Iterable[str] = ()) -> list[dict]:
    """Incidents resolved within the last `days` days with one of `severities` (all when empty), oldest first."""
    query: dict = {"status": {"$in": sorted(RESOLVED_STATUSES)}, "resolved_at": {"$gte": utcnow() - timedelta(days=days)}}
    if sevs := sorted({Severity(s).value for s in severities}):
        query["severity"] = {"$in": sevs}
    cursor = bk.mongo.incidents.find(query, {"name": 1, "title": 1, "severity": 1, "resolved_at": 1,
                                             "data_classification": 1}).sort([("resolved_at", 1), ("_id", 1)])
    return await cursor.to_list(None)


async def _existing(bk: Backends, incident_ids: list[str]) -> dict[str, str]:
    """incident id -> its latest postmortem's id."""
    out: dict[str, str] = {}
    cursor = bk.mongo.postmortems.find({"incident": {"$in": incident_ids}}, {"incident": 1}).sort("created_at", 1)
    async for doc in cursor:
        out[doc["incident"]] = doc["_id"]
    return out


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ServiceError):
        return f"{exc.status} {exc.code}: {exc.error}"
    return f"{type(exc).__name__}: {exc}"


async def generate_for_recent(bk: Backends, *, days: int = 7, severities: Iterable[str] = (), force: bool = False,
                              dry_run: bool = False,
                              progress: Callable[[int, int], None] | None = None) -> list[Result]:
    """Create (or with `force` re-draft) a postmortem for each recently resolved incident; one Result each.
    `progress(done, total)` is called before the first and after each incident."""
    incidents = await select_incidents(bk, days=days, severities=severities)
    existing = await _existing(bk, [i["_id"] for i in incidents])
    user = None if dry_run else await bot_user(bk)
    results: list[Result] = []
    if progress:
        progress(0, len(incidents))
    for n, inc in enumerate(incidents, 1):
        res = Result(incident_id=inc["_id"], incident_name=inc.get("name") or inc["_id"],
                     incident_title=inc.get("title") or "", severity=inc.get("severity") or "",
                     action="", postmortem_id=existing.get(inc["_id"]))
        if res.postmortem_id and not force:
            res.action = SKIPPED
        elif dry_run:
            res.action = WOULD_REDRAFT if res.postmortem_id else WOULD_CREATE
        else:
            try:
                if res.postmortem_id is None:
                    pm = await service.create_postmortem(bk, user=user, data=PostmortemCreate(
                        incident=inc["_id"], title=f"Postmortem: {res.incident_title}"[:TITLE_MAX],
                        owner=user.id, severity=inc.get("severity"),
                        data_classification=inc.get("data_classification")))
                    res.postmortem_id, res.action = pm["_id"], CREATED
                    doc = await drafting.generate_automated(bk, pm_id=pm["_id"], user=user)
                else:
                    res.action = REDRAFTED
                    doc = await drafting.generate_automated(bk, pm_id=res.postmortem_id, user=user, force=True)
                res.confidence = doc.get("generation_confidence")
            except ConnectionFailure:
                raise  # a server out of reach ends the run (the command says which)
            except Exception as exc:  # noqa: BLE001 - one incident's failure does not stop the others
                res.action, res.error = FAILED, _error_text(exc)
        results.append(res)
        if progress:
            progress(n, len(incidents))
    return results
