"""Recommendations for recent incidents, in bulk (`ikl generate_recommendations`).

An incident is selected when it was created within the last `days` days, has one of `statuses` and one
of `severities` (all when empty). One that already has recommendations is skipped, or with `force` they
are generated again (replacing those not applied). Each runs as the `recommendation-bot` user (what it
stores is classified by what it names). A failure on one incident is recorded and the others go on;
`dry_run` writes nothing and reports what would be done."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Iterable

from app.backends import Backends
from app.errors import ServiceError
from app.recommendations import jobs, service
from app.recommendations.models import RecommendationGenerateRequest
from app.timefmt import utcnow
from app.users import service as users

GENERATED, SKIPPED, FAILED, WOULD_GENERATE = "generated", "skipped (exists)", "failed", "would generate"


@dataclass
class Result:
    incident_name: str
    severity: str
    action: str
    count: int = 0
    best: float | None = None
    error: str | None = None


async def generate_for_recent(bk: Backends, *, days: int = 1, statuses: Iterable[str] = ("OPEN",),
                              severities: Iterable[str] = (), force: bool = False, max_recommendations: int = 5,
                              dry_run: bool = False,
                              progress: Callable[[int, int], None] | None = None) -> list[Result]:
    query: dict = {"created_at": {"$gte": utcnow() - timedelta(days=days)}}
    if statuses := sorted(set(statuses)):
        query["status"] = {"$in": statuses}
    if severities := sorted(set(severities)):
        query["severity"] = {"$in": severities}
    incidents = await bk.mongo.incidents.find(query, {"name": 1, "severity": 1}).sort(
        [("created_at", 1), ("_id", 1)]).to_list(None)
    have = set(await bk.mongo.recommendations.distinct("incident", {"incident": {"$in": [i["_id"] for i in incidents]}}))
    bot = None if dry_run else await users.service_account(bk, username=jobs.BOT_USERNAME)
    results: list[Result] = []
    if progress:
        progress(0, len(incidents))
    for n, inc in enumerate(incidents, 1):
        res = Result(incident_name=inc.get("name") or inc["_id"], severity=inc.get("severity") or "", action="")
        if inc["_id"] in have and not force:
            res.action = SKIPPED
        elif dry_run:
            res.action = WOULD_GENERATE
        else:
            try:
                recs = await service.generate_for_incident(bk, user=bot, data=RecommendationGenerateRequest(
                    incident_id=inc["_id"], max_recommendations=max_recommendations, force=force))
                res.action, res.count = GENERATED, len(recs)
                res.best = max((r["confidence_score"] for r in recs), default=None)
            except ServiceError as exc:
                res.action, res.error = FAILED, exc.summary()
        results.append(res)
        if progress:
            progress(n, len(incidents))
    return results
